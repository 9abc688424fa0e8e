"""What a broken or hostile upstream can make the gateway send its client (RFC 9112 §6.3,
§5, RFC 9110 §15). The gateway frames every response itself: a response head that could be
framed two ways, or read differently by the client, is refused with 502 before anything is
sent, and the next request on the same client connection is answered on its own. Also: what
an HTTP/1.0 client gets, and client headers with underscores that could pose as the gateway's.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from harness import PUBLIC_AND_ADMIN_ROUTES, RawConn, get_bytes, make_config, read_until_closed, upstream


class ScriptedUpstream:
    """Answers every request on a connection with the same raw bytes, then keeps the connection
    open (so a response without a length only ends when the test stops it). `answer` may also
    be a list of steps: bytes to send, a float to sleep that many seconds, or None to close."""

    def __init__(self, answer: bytes | list):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.conns: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    self.requests += 1
                    for step in self.answer if isinstance(self.answer, list) else [self.answer]:
                        if step is None:
                            conn.close()
                            return
                        if isinstance(step, float):
                            time.sleep(step)
                        else:
                            conn.sendall(step)
        except OSError:
            return

    def stop(self):
        self.stopped = True
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


HOSTILE = {
    # chunked wins over Content-Length in curl; passing the length on would let the client read
    # the de-chunked bytes after it as a second response
    "content-length-and-chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"36\r\nXHTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nevil\r\n0\r\n\r\n",
    "chunked-and-content-length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 54\r\n\r\n"
    b"XHTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nevil",
    "content-length-list": b"HTTP/1.1 200 OK\r\nContent-Length: 1, 54\r\n\r\nX",
    "content-length-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "content-length-huge": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok",
    "unsolicited-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Evil: 1\r\n\r\nevil",
    "interim-then-101": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: x\r\nConnection: Upgrade\r\n\r\nraw bytes",
    "bare-cr-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\rX-B: b\r\nContent-Length: 2\r\n\r\nok",
    "control-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
    "del-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 40\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "status-600": b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
    "status-999": b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
    "status-two-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    # curl removes only `chunked`: gzip would reach the client as if it were the content
    "gzip-coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIPBYTES",
    "gzip-then-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    # the connection closes in the middle of the head: no response to forward
    "closed-mid-head": [b"HTTP/1.1 200 OK\r\nX-A: b\r\n", None],
    "closed-after-status-line": [b"HTTP/1.1 200 OK\r\n", None],
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_response_head_that_could_desync_the_client_is_a_502(spawner, echo, name):
    hostile = ScriptedUpstream(HOSTILE[name])
    try:
        routes = PUBLIC_AND_ADMIN_ROUTES + """
- name: hostile
  match: { path: "/hostile/**" }
  auth: none
  upstream: hostile
"""
        gw = spawner.gateway(make_config({"main": upstream(echo.url), "hostile": upstream(hostile.url, timeout="3s")},
                                         routes))
        with RawConn(gw.port) as conn:
            conn.send(get_bytes("/hostile/x") + get_bytes("/public/second"))
            first = conn.read_response()
            assert first.status == 502, f"{name}: {first!r}"
            assert first.json() == {"detail": "Bad Gateway"}, f"{name}: {first!r}"
            assert first.header("x-evil") is None
            second = conn.read_response()
            assert second.status == 200, f"{name}: the next request got {second!r}"
            assert second.json()["path"] == "/public/second", f"{name}: {second!r}"
            assert second.header("x-evil") is None
    finally:
        hostile.stop()


def test_a_single_length_repeated_identically_is_sent_once(spawner, echo):
    hostile = ScriptedUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2, 2\r\n\r\nok")
    try:
        gw = spawner.gateway(make_config({"main": upstream(hostile.url)}, PUBLIC_AND_ADMIN_ROUTES))
        with RawConn(gw.port) as conn:
            conn.send(get_bytes("/public/x"))
            resp = conn.read_response()
            assert resp.status == 200 and resp.body == b"ok", resp
            assert resp.header_all("content-length") == ["2"], resp
    finally:
        hostile.stop()


def test_http10_client_gets_no_chunked_body_and_a_close(spawner):
    """RFC 9112 §6.1: no chunked coding to HTTP/1.0; without a length the body ends with the
    connection, even when the client asked for keep-alive."""
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    chunked = ScriptedUpstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    try:
        gw = spawner.gateway(make_config({"main": upstream(chunked.url)}, PUBLIC_AND_ADMIN_ROUTES))
        for extra in (b"", b"Connection: keep-alive\r\n"):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
                s.sendall(b"GET /public/x HTTP/1.0\r\nHost: gw.test\r\n" + extra + b"\r\n")
                data = read_until_closed(s)
            head, _, payload = data.partition(b"\r\n\r\n")
            assert b"transfer-encoding" not in head.lower(), head
            assert payload == b"hello world", data
            assert b"connection: close" in head.lower(), head
    finally:
        chunked.stop()


def test_http10_client_is_not_sent_100_continue(spawner, echo):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST /public/x HTTP/1.0\r\nHost: gw.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        time.sleep(0.3)
        s.sendall(b"hello")
        data = read_until_closed(s)
    assert b" 100 " not in data.split(b"\r\n", 1)[0], data
    assert data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"), data


def test_underscored_headers_cannot_pose_as_the_gateways(spawner, echo):
    """X_Auth_Subject reads as X-Auth-Subject to CGI-style upstreams: dropped, as are underscored
    X-Forwarded-* and X-Request-Id; other underscored headers pass."""
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    with RawConn(gw.port) as conn:
        conn.send(get_bytes("/public/x", extra=b"X_Auth_Subject: admin\r\nx_auth_scopes: admin\r\nX_AUTH-METHOD: basic\r\n"
                                                 b"X_Forwarded_For: 10.0.0.1\r\nX_Forwarded_Host: evil\r\n"
                                                 b"X_Request_Id: forged\r\nMy_Header: kept\r\n"))
        resp = conn.read_response()
    assert resp.status == 200, resp
    names = [name.lower() for name, _ in resp.json()["headers"]]
    for posing in ("x_auth_subject", "x_auth_scopes", "x_auth-method", "x_forwarded_for", "x_forwarded_host", "x_request_id"):
        assert posing not in names, (posing, names)
    assert "my_header" in names, names


def test_a_header_section_over_the_limit_is_431(spawner, echo):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    with RawConn(gw.port) as conn:
        conn.send(get_bytes("/public/x", extra=b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"x" * 100) for i in range(900))))
        resp = conn.read_response()
    assert resp.status == 431, resp
    assert resp.json() == {"detail": "Request Header Fields Too Large"}, resp


@pytest.mark.parametrize("head_bytes", [0, 70_000])
def test_a_response_head_goes_out_before_a_late_body(spawner, head_bytes):
    """Server-sent events and long polls send their head first: the client gets it at once, and
    a head larger than the client connection's write buffer does not hold the body back."""
    big = b"X-Big: " + b"b" * head_bytes + b"\r\n" if head_bytes else b""
    slow = ScriptedUpstream([b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 5\r\n\r\n", 1.5, b"hello"])
    try:
        gw = spawner.gateway(make_config({"main": upstream(slow.url, timeout="10s")}, PUBLIC_AND_ADMIN_ROUTES))
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
            started = time.monotonic()
            s.sendall(get_bytes("/public/late"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(65536)
                assert chunk, head
                head += chunk
            assert time.monotonic() - started < 1.2, "the head waited for the body"
            assert head.startswith(b"HTTP/1.1 200 "), head[:200]
            rest = head.split(b"\r\n\r\n", 1)[1]
            while len(rest) < 5:
                chunk = s.recv(65536)
                assert chunk, rest
                rest += chunk
            assert rest == b"hello"
            assert time.monotonic() - started < 5
    finally:
        slow.stop()


def test_an_http10_keep_alive_is_confirmed_in_the_answer(spawner, echo):
    """An HTTP/1.0 connection closes unless the answer says keep-alive (RFC 9112 §9.3)."""
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    with RawConn(gw.port) as conn:
        for path in ("/public/first", "/nowhere"):  # forwarded, then refused, on one connection
            conn.send(f"GET {path} HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\n".encode())
            resp = conn.read_response()
            assert resp.header("connection") == "keep-alive", resp


def test_more_header_fields_than_the_limit_is_431_however_small(spawner, echo):
    """NIO counts only the bytes of names and values; 2,000 tiny fields are far below them."""
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    with RawConn(gw.port) as conn:
        conn.send(get_bytes("/public/x", extra=b"".join(b"a%d: \r\n" % i for i in range(2000))))
        resp = conn.read_response()
    assert resp.status == 431, resp
    with RawConn(gw.port) as conn:
        conn.send(get_bytes("/public/x", extra=b"".join(b"a%d: v\r\n" % i for i in range(200))))
        assert conn.read_response().status == 200
