"""Area 8: unambiguous message framing (contract §5, RFC 9112 §6.3/§11.2), smuggling and
pipelining, over raw sockets in front of the recording upstream."""

import time

import pytest

from harness import PUBLIC_AND_ADMIN_ROUTES, ConnectionClosed, RawConn, make_config, upstream

ROUTES = PUBLIC_AND_ADMIN_ROUTES


@pytest.fixture(scope="module")
def gw(module_spawner, rec):
    return module_spawner.gateway(make_config({"main": upstream(rec.url)}, ROUTES))


@pytest.fixture(autouse=True)
def _clear(rec):
    rec.clear()


H = b"Host: gw.test\r\n"

AMBIGUOUS = {
    "cl-and-te": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "two-content-lengths": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content-length-list": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!",
    "content-length-not-a-number": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello",
    "content-length-negative": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "te-last-not-chunked": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te-gzip-only": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "te-repeated-last-unknown": b"POST /public/x HTTP/1.1\r\n" + H
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x-custom\r\n\r\n0\r\n\r\n",
    # An empty Transfer-Encoding still means "not Content-Length framed", in either order.
    "empty-te-then-cl": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: \r\nContent-Length: 44\r\n\r\n"
    + b"GET /public/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "cl-then-empty-te": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: \r\n\r\nabc",
    "empty-te-no-space": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
    "tab-te-alone": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: \t\r\n\r\n0\r\n\r\n",
    "two-empty-te-then-cl": b"POST /public/x HTTP/1.1\r\n" + H
    + b"Transfer-Encoding: \r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc",
    "chunked-twice": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Folded: a\r\n  b\r\n\r\n",
    "obs-fold-tab": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Folded: a\r\n\tb\r\n\r\n",
    "space-before-colon": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Spaced : bar\r\n\r\n",
    "space-before-colon-te": b"POST /public/x HTTP/1.1\r\n" + H
    + b"Content-Length: 3\r\nTransfer-Encoding : chunked\r\n\r\nabc",
    "bare-lf-everywhere": b"GET /public/x HTTP/1.1\nHost: gw.test\n\n",
    "bare-lf-one-line": b"GET /public/x HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n",
    "bare-cr-in-head": b"GET /public/x HTTP/1.1\r\nHost: gw.test\rX-A: b\r\n\r\n",
}


@pytest.mark.parametrize("name", list(AMBIGUOUS))
def test_ambiguous_framing_is_400_and_closes(gw, rec, name):
    with RawConn(gw.port) as conn:
        conn.send(AMBIGUOUS[name])
        try:
            resp = conn.read_response()
        except ConnectionClosed:
            raise AssertionError(f"{name}: connection closed without a 400 answer")
        assert resp.status == 400, f"{name}: {resp!r}"
        assert conn.wait_closed(1.0), f"{name}: connection left open after a framing error"
    time.sleep(0.05)
    assert rec.snapshot() == [], f"{name}: forwarded {rec.snapshot()}"


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"deflate,chunked", b"x-custom, chunked"])
def test_a_coding_before_chunked_is_501_and_closes(gw, rec, codings):
    """RFC 9112 §6.1: a coding the gateway cannot decode is refused, not dropped on the way up."""
    with RawConn(gw.port) as conn:
        conn.send(b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + codings + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 501, resp
        assert resp.json() == {"detail": "Not Implemented"}
        assert conn.wait_closed(1.0)
    time.sleep(0.05)
    assert rec.snapshot() == []


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n-1\r\n\r\n", b"5 5\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n"],
    ids=["non-hex", "negative", "space-inside", "missing-crlf"],
)
def test_malformed_chunk_is_400_or_closed(gw, rec, body):
    with RawConn(gw.port) as conn:
        conn.send(b"POST /public/chunks HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body)
        try:
            resp = conn.read_response("POST")
        except ConnectionClosed:
            resp = None
        if resp is not None:
            assert resp.status == 400, resp
            assert conn.wait_closed(1.0), "connection left open after a malformed chunk"
    time.sleep(0.05)
    assert not any(r.complete for r in rec.snapshot()), f"upstream got a complete request: {rec.snapshot()}"


def test_missing_host_is_400(gw, rec):
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    with RawConn(gw.port) as conn:
        resp = conn.request(b"GET /public/x HTTP/1.1\r\n\r\n")
    assert resp.status == 400, resp
    assert rec.snapshot() == []


def test_two_host_headers_is_400(gw, rec):
    # RFC 9112 §3.2: more than one Host field line → 400 (hosts are a routing input).
    with RawConn(gw.port) as conn:
        resp = conn.request(b"GET /public/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
    assert resp.status == 400, resp
    assert rec.snapshot() == []


# -- smuggling ---------------------------------------------------------------------------------

SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def test_request_in_content_length_body_is_only_body(gw, rec):
    with RawConn(gw.port) as conn:
        resp = conn.request(
            b"POST /public/carrier HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, "POST"
        )
        assert resp.status == 200
        assert resp.json()["body_length"] == len(SMUGGLED)
        # no second answer appears on the client connection
        assert not conn.wait_closed(0.5) and conn.buf == b""
    reqs = rec.snapshot()
    assert [(r.method, r.path) for r in reqs] == [("POST", "/public/carrier")]
    assert bytes(reqs[0].body) == SMUGGLED


def test_request_in_chunked_body_is_only_body(gw, rec):
    body = b"%X\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    with RawConn(gw.port) as conn:
        resp = conn.request(b"POST /public/carrier HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body, "POST")
        assert resp.status == 200
        assert resp.json()["body_length"] == len(SMUGGLED)
        assert not conn.wait_closed(0.5) and conn.buf == b""
    reqs = rec.snapshot()
    assert [(r.method, r.path) for r in reqs] == [("POST", "/public/carrier")]
    assert bytes(reqs[0].body) == SMUGGLED


def test_upstream_requests_are_framed_by_the_gateway(gw, rec):
    # Whatever the client's framing, each upstream request is one well-framed message: a body
    # that looks like the end of a chunked message plus a request stays inside the body.
    tricky = b"0\r\n\r\n" + SMUGGLED
    with RawConn(gw.port) as conn:
        resp = conn.request(b"POST /public/tricky HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(tricky) + tricky, "POST")
        assert resp.status == 200
        assert resp.json()["body_length"] == len(tricky)
    time.sleep(0.1)
    reqs = rec.snapshot()
    assert [r.path for r in reqs] == ["/public/tricky"]
    assert bytes(reqs[0].body) == tricky


def test_following_request_is_authorized_on_its_own(gw, rec):
    with RawConn(gw.port) as conn:
        conn.send(b"POST /public/first HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc" + SMUGGLED)
        first = conn.read_response("POST")
        second = conn.read_response()
    assert first.status == 200
    assert first.json()["path"] == "/public/first"
    assert second.status == 401
    assert [r.path for r in rec.snapshot()] == ["/public/first"]


# -- pipelining --------------------------------------------------------------------------------


def test_pipelined_gets_answered_in_order(gw, rec):
    with RawConn(gw.port) as conn:
        conn.send(b"GET /public/one HTTP/1.1\r\n" + H + b"\r\n" + b"GET /public/two HTTP/1.1\r\n" + H + b"\r\n")
        a = conn.read_response()
        b = conn.read_response()
    assert (a.status, b.status) == (200, 200)
    assert a.json()["path"] == "/public/one"
    assert b.json()["path"] == "/public/two"


def test_pipelined_answers_keep_order_when_first_is_slow(gw, rec):
    with RawConn(gw.port) as conn:
        conn.send(
            b"GET /public/slow?delay_ms=300 HTTP/1.1\r\n" + H + b"\r\n"
            b"GET /nowhere HTTP/1.1\r\n" + H + b"\r\n"
            b"GET /public/fast HTTP/1.1\r\n" + H + b"\r\n"
        )
        a = conn.read_response()
        b = conn.read_response()
        c = conn.read_response()
    assert a.status == 200 and a.json()["path"] == "/public/slow"
    assert b.status == 404
    assert c.status == 200 and c.json()["path"] == "/public/fast"


def test_fifty_pipelined_requests_mixing_forwards_refusals_and_bodies_keep_order(gw, rec):
    kinds = []
    data = b""
    for n in range(50):
        if n % 5 == 0:
            data += b"GET /admin/x%d HTTP/1.1\r\n" % n + H + b"\r\n"
            kinds.append((401, None))
        elif n % 5 == 1:
            data += b"POST /public/p%d HTTP/1.1\r\n" % n + H + b"Content-Length: 3\r\n\r\nabc"
            kinds.append((200, "/public/p%d" % n))
        elif n % 5 == 2:
            data += b"GET /nowhere/%d HTTP/1.1\r\n" % n + H + b"\r\n"
            kinds.append((404, None))
        else:
            data += b"GET /public/g%d?delay_ms=%d HTTP/1.1\r\n" % (n, (n * 7) % 20) + H + b"\r\n"
            kinds.append((200, "/public/g%d" % n))
    with RawConn(gw.port) as conn:
        conn.send(data)
        answers = [conn.read_response() for _ in kinds]
    assert [a.status for a in answers] == [status for status, _ in kinds]
    assert [a.json()["path"] for a, (status, _) in zip(answers, kinds) if status == 200] == [
        path for status, path in kinds if status == 200]
    assert [r.body for r in rec.snapshot() if r.method == "POST"] == [b"abc"] * 10


def test_malformed_request_behind_a_slow_one_is_answered_after_it(gw, rec):
    with RawConn(gw.port) as conn:
        conn.send(b"GET /public/slow?delay_ms=200 HTTP/1.1\r\n" + H + b"\r\n" + b"GET /public/x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        first = conn.read_response()
        second = conn.read_response()
        closed = conn.wait_closed()
    assert first.status == 200 and first.json()["path"] == "/public/slow"
    assert second.status == 400
    assert closed
    assert [r.path for r in rec.snapshot()] == ["/public/slow"]


def test_pipelined_requests_after_connection_close_are_not_served(gw, rec):
    with RawConn(gw.port) as conn:
        conn.send(b"GET /public/last?delay_ms=100 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
                  + b"GET /public/never HTTP/1.1\r\n" + H + b"\r\n")
        first = conn.read_response()
        closed = conn.wait_closed()
    assert first.status == 200 and first.header("connection") == "close"
    assert closed
    time.sleep(0.2)
    assert [r.path for r in rec.snapshot()] == ["/public/last"]
