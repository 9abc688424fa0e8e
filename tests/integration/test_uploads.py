"""Area 3: chunked uploads stream through; bodies beyond max_request_body get 413."""

import json
import time

import pytest
import requests

from harness import ConnectionClosed, RawConn, make_config, upstream, wait_until

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def big_gw(module_spawner, echo):
    """Default-ish limit (10 MiB), echo upstream."""
    return module_spawner.gateway(
        make_config({"main": upstream(echo.url)}, ROUTES, server={"max_request_body": "10MiB"})
    )


@pytest.fixture(scope="module")
def small_gw(module_spawner, rec):
    """max_request_body 64 KiB, in front of the recording upstream."""
    return module_spawner.gateway(make_config({"main": upstream(rec.url)}, ROUTES, server={"max_request_body": "64KiB"}))


@pytest.fixture(autouse=True)
def _clear(rec):
    rec.clear()


def _pieces(total: int, size: int):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes([65 + (sent // size) % 26]) * n
        sent += n


def test_chunked_upload_with_requests_generator(big_gw):
    total = 3 * 1024 * 1024 + 12345
    r = requests.post(big_gw.url("/public/upload"), data=_pieces(total, 70_000), timeout=30)
    assert r.status_code == 200, r.text
    echoed = r.json()
    assert echoed["body_length"] == total
    assert echoed["method"] == "POST"


def test_chunked_upload_raw_with_extensions_and_trailer(big_gw):
    body = (
        b"5\r\nhello\r\n"
        b"6;ext=1\r\n world\r\n"
        b"A\r\n0123456789\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )
    with RawConn(big_gw.port) as conn:
        r = conn.request(
            b"PUT /public/raw HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        )
        assert r.status == 200, r
        assert r.json()["body_length"] == 21
        # the connection is in sync afterwards
        r2 = conn.request(b"GET /public/next HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert r2.status == 200 and r2.json()["path"] == "/public/next"


def test_body_exactly_at_limit_is_accepted(small_gw, rec):
    r = requests.post(small_gw.url("/public/at-limit"), data=b"a" * LIMIT, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["body_length"] == LIMIT
    r = requests.post(small_gw.url("/public/at-limit-chunked"), data=_pieces(LIMIT, 10_000), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["body_length"] == LIMIT


def _assert_413(resp):
    assert resp.status == 413, resp
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    assert "detail" in json.loads(resp.body), resp


def test_content_length_over_limit_is_413(small_gw, rec):
    size = LIMIT + 1
    with RawConn(small_gw.port) as conn:
        conn.send(
            b"POST /public/too-big HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        try:
            conn.send(b"b" * size)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may refuse before reading the body
        resp = conn.read_response("POST")
    _assert_413(resp)
    assert not any(r.complete and r.path == "/public/too-big" for r in rec.snapshot())


def test_content_length_far_over_limit_is_refused_before_the_body(small_gw, rec):
    """A 1 GiB Content-Length is refused from the head alone: the client never has to send it."""
    with RawConn(small_gw.port, timeout=10) as conn:
        conn.send(b"POST /public/huge HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1073741824\r\n\r\n")
        resp = conn.read_response("POST")
    _assert_413(resp)
    assert all(len(r.body) <= LIMIT for r in rec.snapshot())


def test_chunked_over_limit_is_413_and_upstream_never_gets_a_complete_body(small_gw, rec):
    chunk = 16 * 1024
    total = LIMIT * 3
    resp = None
    with RawConn(small_gw.port, timeout=10) as conn:
        conn.send(b"POST /public/chunked-too-big HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            while sent < total:
                conn.send(f"{chunk:X}\r\n".encode() + b"c" * chunk + b"\r\n")
                sent += chunk
                time.sleep(0.005)
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            resp = conn.read_response("POST")
        except ConnectionClosed as exc:
            raise AssertionError(f"connection closed without a 413 (partial: {exc.partial[:200]!r})")
    _assert_413(resp)
    # Give a misbehaving gateway the chance to finish an upstream request; then check what arrived.
    time.sleep(0.3)
    for r in rec.snapshot():
        assert r.path == "/public/chunked-too-big"
        assert not r.complete, f"upstream received a complete request: {r!r}"
        assert len(r.body) <= LIMIT, f"upstream received {len(r.body)} bytes, more than the {LIMIT} limit"


def test_chunked_over_limit_with_requests(small_gw, rec):
    try:
        r = requests.post(small_gw.url("/public/gen-too-big"), data=_pieces(LIMIT * 4, 8192), timeout=10)
    except requests.ConnectionError as exc:
        raise AssertionError(f"no 413 answer: {exc}")
    assert r.status_code == 413
    assert "detail" in r.json()
    assert not any(x.complete for x in rec.snapshot())


def test_gateway_still_serves_after_413(small_gw, rec):
    try:
        first = requests.post(small_gw.url("/public/x"), data=b"z" * (LIMIT + 10), timeout=10)
        assert first.status_code == 413
    except requests.ConnectionError:
        pass  # the refusal may race the upload; the point is what happens next
    r = requests.post(small_gw.url("/public/ok"), data=b"z" * 10, timeout=10)
    assert r.status_code == 200
    wait_until(lambda: any(x.path == "/public/ok" and x.complete for x in rec.snapshot()), message="upstream request")


def test_a_refused_body_is_one_request_in_the_log_and_the_metrics(spawner, rec):
    """A 413 closes the connection while the body is still coming (or never comes): that end
    of the body is not a second, malformed request with a 400 of its own."""
    from ops_support import admin_port_of, fetch_metrics, metric_value

    gw = spawner.gateway(make_config(
        {"main": upstream(rec.url)}, ROUTES,
        server={"max_request_body": "1KiB", "access_log": "stdout", "admin_listen": '"127.0.0.1:0"'}))
    with RawConn(gw.port) as conn:
        conn.send(b"POST /public/declared HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2048\r\n\r\n")
        assert conn.read_response("POST").status == 413
    with RawConn(gw.port) as conn:
        conn.send(b"POST /public/chunked HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"800\r\n" + b"a" * 2048 + b"\r\n0\r\n\r\n")
        assert conn.read_response("POST").status == 413
    wait_until(lambda: len(gw.stdout_lines) >= 2, message="two access-log lines")
    time.sleep(0.3)
    lines = [json.loads(line) for line in gw.stdout_lines]
    assert [(x["path"], x["status"], x["reason"]) for x in lines] == [
        ("/public/declared", 413, "body_too_large"), ("/public/chunked", 413, "body_too_large")], lines
    _, samples = fetch_metrics(admin_port_of(gw))
    assert metric_value(samples, "portcullis_requests_total", status="413") == 2
    assert metric_value(samples, "portcullis_requests_total", status="400") == 0


def test_a_malformed_body_after_a_refusal_ends_the_connection_without_a_second_answer(small_gw):
    """A refused request's body is read and dropped; when that body turns out malformed, the
    request has its answer already and the connection just ends (a 400 now would look like
    the answer to a request the client has not sent)."""
    with RawConn(small_gw.port) as conn:
        conn.send(b"POST /no-route HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        assert conn.read_response("POST").status == 404
        conn.send(b"zz\r\n")
        assert conn.wait_closed(), "the connection stayed open after a malformed chunk"
        assert conn.buf == b"", f"a second answer arrived: {conn.buf[:200]!r}"
