"""Process and protocol helpers for the Portcullis black-box integration tests.

Everything here uses only the Python standard library: the real `portcullis` and
`echo-upstream` binaries are started on loopback ephemeral ports, and raw sockets are used
wherever a client library would normalize or re-frame what we want to send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PORTCULLIS_BIN = os.environ.get("PORTCULLIS_BIN") or str(REPO / ".build" / "debug" / "portcullis")
ECHO_UPSTREAM_BIN = os.environ.get("ECHO_UPSTREAM_BIN") or str(REPO / ".build" / "debug" / "echo-upstream")

START_TIMEOUT = 15.0


def wait_until(predicate, timeout=5.0, interval=0.01, message="condition"):
    """Polls `predicate` until it returns a truthy value; returns that value or raises."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class _LineReader(threading.Thread):
    """Drains a pipe line by line so it never fills; keeps every line."""

    def __init__(self, stream, sink: list, on_line=None):
        super().__init__(daemon=True)
        self.stream = stream
        self.sink = sink
        self.on_line = on_line

    def run(self):
        try:
            for raw in iter(self.stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.sink.append(line)
                if self.on_line:
                    self.on_line(line)
        except (ValueError, OSError):
            pass
        finally:
            try:
                self.stream.close()
            except OSError:
                pass


def _stop_process(proc: subprocess.Popen, sig=signal.SIGTERM, grace=5.0):
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5)
    except ProcessLookupError:
        return proc.wait(timeout=5)


class EchoUpstream:
    """The project's echo-upstream binary, on a loopback TCP port or a Unix socket."""

    def __init__(self, unix_path: str | None = None):
        self.unix_path = unix_path
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        self.proc: subprocess.Popen | None = None

    def _on_line(self, line: str):
        m = re.search(r"listening on (?:127\.0\.0\.1:(\d+)|unix:(.+))", line)
        if m:
            if m.group(1):
                self.port = int(m.group(1))
            self._ready.set()

    def start(self):
        args = [ECHO_UPSTREAM_BIN]
        args += ["--unix", self.unix_path] if self.unix_path else ["--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _LineReader(self.proc.stdout, self.stdout_lines, self._on_line).start()
        _LineReader(self.proc.stderr, self.stderr_lines).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"echo-upstream did not start: {self.stdout_lines} {self.stderr_lines}")
        return self

    @property
    def url(self) -> str:
        if self.unix_path:
            return f"unix:{self.unix_path}"
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, grace=3)


class Gateway:
    """A `portcullis serve` process listening on an ephemeral loopback port."""

    def __init__(self, config_path: Path, extra_args: list[str] | None = None, env: dict | None = None):
        self.config_path = Path(config_path)
        self.extra_args = extra_args or []
        self.env = env
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        self.proc: subprocess.Popen | None = None

    def _on_line(self, line: str):
        if "portcullis listening" in line and self.port is None:
            m = re.search(r"address=127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._ready.set()

    def start(self):
        args = [PORTCULLIS_BIN, "serve", "--config", str(self.config_path), "--listen", "127.0.0.1:0", *self.extra_args]
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        _LineReader(self.proc.stderr, self.stderr_lines, self._on_line).start()
        _LineReader(self.proc.stdout, self.stdout_lines).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "portcullis did not start (rc=%s):\n%s" % (self.proc.returncode, "\n".join(self.stderr_lines))
                )
        # The log line is written once the socket is bound; confirm it accepts connections.
        def connects():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(connects, timeout=5, message="the gateway to accept connections")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            return _stop_process(self.proc, signal.SIGTERM, grace=5)


def run_portcullis(args: list[str], timeout=20, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [PORTCULLIS_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=full_env
    )


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def q(value: str) -> str:
    """A YAML double-quoted scalar."""
    return json.dumps(value)


def make_config(upstreams: dict, routes: str, server: dict | None = None) -> str:
    """Builds a config file. `upstreams` maps name -> {key: raw YAML value}; `routes` is the
    YAML list (dedented); `server` maps key -> raw YAML value (merged over test defaults)."""
    import textwrap

    srv = {"admin_listen": '""', "realm": '"R"', "request_header_timeout": "5s", "shutdown_grace": "5s"}
    srv.update(server or {})
    lines = ["version: 1", "server:"]
    lines += [f"  {k}: {v}" for k, v in srv.items()]
    lines.append("upstreams:")
    for name, opts in upstreams.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {v}" for k, v in opts.items()]
    lines.append("routes:")
    lines.append(textwrap.indent(textwrap.dedent(routes).strip("\n"), "  "))
    return "\n".join(lines) + "\n"


# A public route and a bearer route on the upstream named "main".
PUBLIC_AND_ADMIN_ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
- name: admin
  match: { path: "/admin/**" }
  auth: bearer
  upstream: main
"""


def upstream(url: str, **opts) -> dict:
    result = {"url": q(url), "connect_timeout": "2s", "timeout": "10s"}
    for k, v in opts.items():
        result[k] = v if isinstance(v, str) else json.dumps(v)
    return result


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.1 client
# ---------------------------------------------------------------------------------------------


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before a complete response arrived."""

    def __init__(self, message, partial: bytes = b""):
        super().__init__(message)
        self.partial = partial


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, head: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.head = head

    def header(self, name: str):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<RawResponse {self.status} headers={self.headers!r} body={self.body[:300]!r}>"


class RawConn:
    """One client TCP connection to which arbitrary bytes can be written."""

    def __init__(self, port: int, timeout: float = 10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def _fill(self, what: str):
        chunk = self._recv()
        if not chunk:
            raise ConnectionClosed(f"connection closed while reading {what}", self.buf)
        self.buf += chunk

    def _read_until(self, marker: bytes, what: str, limit=1 << 20) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"no {marker!r} within {limit} bytes reading {what}")
            self._fill(what)
        idx = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:idx], self.buf[idx:]
        return data

    def _read_exact(self, n: int, what: str) -> bytes:
        while len(self.buf) < n:
            self._fill(what)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method: str = "GET", max_body: int = 1 << 28) -> RawResponse:
        while True:
            head = self._read_until(b"\r\n\r\n", "the response head")
            lines = head[:-4].split(b"\r\n")
            m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise AssertionError(f"bad status line {lines[0]!r} (head {head!r})")
            status = int(m.group(1))
            reason = (m.group(2) or b"").decode("latin-1")
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
            if 100 <= status < 200 and status != 101:
                continue  # interim response
            break
        resp = RawResponse(status, reason, headers, b"", head)
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if method.upper() == "HEAD" or status in (204, 304):
            return resp
        if te:
            assert te.split(",")[-1].strip() == "chunked", f"unexpected response TE {te!r}"
            body = bytearray()
            while True:
                size_line = self._read_until(b"\r\n", "a chunk size")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers
                    while True:
                        t = self._read_until(b"\r\n", "the trailer section")
                        if t == b"\r\n":
                            break
                    break
                body += self._read_exact(size, "a chunk")
                crlf = self._read_exact(2, "a chunk end")
                assert crlf == b"\r\n", f"bad chunk terminator {crlf!r}"
                if len(body) > max_body:
                    raise AssertionError("response body too large")
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self._read_exact(int(cl), "the response body")
        else:
            # close-delimited
            while True:
                chunk = self._recv()
                if not chunk:
                    break
                self.buf += chunk
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, data: bytes, method: str = "GET") -> RawResponse:
        self.send(data)
        return self.read_response(method)

    def wait_closed(self, timeout: float = 3.0) -> bool:
        """True when the peer closes (EOF or reset) within `timeout` and sends nothing more."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.sock.settimeout(remaining)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
                if not chunk:
                    return True
                self.buf += chunk
        finally:
            self.sock.settimeout(self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_exchange(port: int, data: bytes, method="GET", timeout=10.0) -> RawResponse:
    with RawConn(port, timeout=timeout) as conn:
        return conn.request(data, method)


def get_bytes(path: bytes | str, host: bytes = b"gw.test", extra: bytes = b"") -> bytes:
    if isinstance(path, str):
        path = path.encode()
    return b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes; fails if it is still open after `timeout`."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the connection stayed open: {data!r}")


def free_port() -> int:
    """A loopback port on which nothing listens (bound then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def echo_headers(body: dict) -> list[tuple[str, str]]:
    return [(k, v) for k, v in body["headers"]]


def header_values(pairs, name: str) -> list[str]:
    return [v for k, v in pairs if k.lower() == name.lower()]


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
