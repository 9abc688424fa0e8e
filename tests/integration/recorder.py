"""A recording HTTP/1.1 upstream (standard library only).

Unlike echo-upstream it remembers every request it parses — including requests whose body is
still arriving or was cut off — so tests can assert what did (and did not) reach the upstream.
Every request head is recorded as soon as it is parsed; its body grows as bytes arrive and
`complete` is set once the framing says it ended.

The default answer is JSON like echo-upstream's: {"method","path","query","headers",
"body_length","connection"}. A test may set `responder(request) -> (status, headers, body)`.
"""

from __future__ import annotations

import json
import socket
import threading
import time


class RecordedRequest:
    def __init__(self, connection: int, method: str, target: str, headers: list[tuple[str, str]]):
        self.connection = connection
        self.method = method
        self.target = target
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query if sep else None
        self.headers = headers
        self.body = bytearray()
        self.complete = False

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return f"<{self.method} {self.target} body={len(self.body)} complete={self.complete}>"


class Recorder:
    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.responder = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def clear(self):
        with self.lock:
            self.requests = []
        self.responder = None

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)

    def stop(self):
        self._stopped = True
        try:
            self._sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    # -- server side -----------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int):
        conn.settimeout(30)
        reader = _Reader(conn)
        try:
            while True:
                head = reader.until(b"\r\n\r\n", allow_eof=True)
                if head is None:
                    return
                lines = head[:-4].split(b"\r\n")
                method, target, _version = lines[0].decode("latin-1").split(" ", 2)
                headers = []
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
                req = RecordedRequest(number, method, target, headers)
                with self.lock:
                    self.requests.append(req)
                if any(v.lower() == "100-continue" for v in req.header_all("Expect")):
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                te = ",".join(req.header_all("Transfer-Encoding")).lower()
                cl = req.header_all("Content-Length")
                if "chunked" in te:
                    while True:
                        size_line = reader.until(b"\r\n")
                        size = int(size_line.split(b";")[0].strip(), 16)
                        if size == 0:
                            while reader.until(b"\r\n") != b"\r\n":
                                pass
                            break
                        remaining = size
                        while remaining:
                            piece = reader.some(remaining)
                            req.body += piece
                            remaining -= len(piece)
                        reader.exact(2)
                elif cl:
                    remaining = int(cl[0])
                    while remaining:
                        piece = reader.some(remaining)
                        req.body += piece
                        remaining -= len(piece)
                req.complete = True
                status, rheaders, body = self._answer(req)
                params = dict(p.split("=", 1) for p in (req.query or "").split("&") if "=" in p)
                if "delay_ms" in params:
                    time.sleep(int(params["delay_ms"]) / 1000)
                out = f"HTTP/1.1 {status} X\r\n".encode()
                for k, v in rheaders:
                    out += f"{k}: {v}\r\n".encode("latin-1")
                if not any(k.lower() == "content-length" for k, _ in rheaders) and status not in (204, 304):
                    out += f"Content-Length: {len(body)}\r\n".encode()
                out += b"\r\n"
                if method != "HEAD" and status not in (204, 304):
                    out += body
                conn.sendall(out)
                if any(v.lower() == "close" for v in req.header_all("Connection")):
                    return
        except (OSError, ValueError, _EOF):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, req: RecordedRequest):
        if self.responder is not None:
            return self.responder(req)
        body = json.dumps(
            {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": req.headers,
                "body_length": len(req.body),
                "connection": req.connection,
            }
        ).encode()
        return 200, [("Content-Type", "application/json")], body


class _EOF(Exception):
    pass


class _Reader:
    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def _fill(self):
        chunk = self.conn.recv(65536)
        if not chunk:
            raise _EOF()
        self.buf += chunk

    def until(self, marker: bytes, allow_eof=False):
        while marker not in self.buf:
            try:
                self._fill()
            except _EOF:
                if allow_eof and not self.buf:
                    return None
                raise
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def some(self, limit: int) -> bytes:
        if not self.buf:
            self._fill()
        data, self.buf = self.buf[:limit], self.buf[limit:]
        return data

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data
