"""Area 7: the gateway's own answers (404, 405, 401, 502, 504) and upstream failures."""

import json
import time

import pytest
import requests

from harness import ConnectionClosed, RawConn, free_port, get_bytes, make_config, upstream

ROUTES = """
- name: status
  match: { path: /status, methods: [GET] }
  auth: none
  upstream: main
- name: writes
  match: { path: "/things/{id}", methods: [PUT, DELETE] }
  auth: none
  upstream: main
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
- name: slow
  match: { path: "/slow/**" }
  auth: none
  upstream: fast_timeout
- name: dead
  match: { path: "/dead/**" }
  auth: none
  upstream: dead
- name: dead_unix
  match: { path: "/dead-unix/**" }
  auth: none
  upstream: dead_unix
- name: admin
  match: { path: "/admin/**" }
  auth: bearer
  scopes: [a, b]
  upstream: main
"""


@pytest.fixture(scope="module")
def gw(module_spawner, echo, tmp_path_factory):
    missing_sock = tmp_path_factory.mktemp("nosock") / "missing.sock"
    return module_spawner.gateway(
        make_config(
            {
                "main": upstream(echo.url),
                "fast_timeout": upstream(echo.url, timeout="500ms"),
                "dead": upstream(f"http://127.0.0.1:{free_port()}", connect_timeout="1s", timeout="2s"),
                "dead_unix": upstream(f"unix:{missing_sock}", connect_timeout="1s", timeout="2s"),
            },
            ROUTES,
        )
    )


def assert_json_detail(resp, detail):
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    assert json.loads(resp.body) == {"detail": detail}, resp


def raw(gw, data, method="GET"):
    with RawConn(gw.port) as conn:
        return conn.request(data, method)


def test_no_route_is_404(gw):
    r = raw(gw, get_bytes("/nowhere"))
    assert r.status == 404
    assert_json_detail(r, "Not Found")
    # a path that only prefixes a literal route is not a match either
    r = raw(gw, get_bytes("/status/x"))
    assert r.status == 404
    r = raw(gw, get_bytes("/status/"))  # a trailing slash is significant
    assert r.status == 404


def test_wrong_method_is_405_with_allow(gw):
    r = raw(gw, b"POST /status HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n", "POST")
    assert r.status == 405, r
    assert_json_detail(r, "Method Not Allowed")
    allow = {m.strip().upper() for v in r.header_all("Allow") for m in v.split(",")}
    assert "GET" in allow, r
    assert "POST" not in allow
    r = raw(gw, get_bytes("/things/7"))
    assert r.status == 405
    allow = {m.strip().upper() for v in r.header_all("Allow") for m in v.split(",")}
    assert {"PUT", "DELETE"} <= allow and "GET" not in allow, r


def test_head_allowed_where_get_is(gw):
    r = raw(gw, b"HEAD /status HTTP/1.1\r\nHost: gw.test\r\n\r\n", "HEAD")
    assert r.status == 200


def test_unauthenticated_bearer_route_is_401_and_not_forwarded(gw):
    r = raw(gw, get_bytes("/admin/x"))
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'Bearer realm="R", scope="a b"'
    assert_json_detail(r, "Not authenticated")


def test_upstream_port_closed_is_502(gw):
    t0 = time.monotonic()
    r = raw(gw, get_bytes("/dead/x"))
    assert r.status == 502, r
    assert_json_detail(r, "Bad Gateway")
    assert time.monotonic() - t0 < 3


def test_missing_unix_socket_is_502(gw):
    r = raw(gw, get_bytes("/dead-unix/x"))
    assert r.status == 502, r
    assert_json_detail(r, "Bad Gateway")


def test_upstream_slower_than_timeout_is_504(gw):
    t0 = time.monotonic()
    r = raw(gw, get_bytes("/slow/x?echo_delay_ms=3000"))
    elapsed = time.monotonic() - t0
    assert r.status == 504, r
    assert_json_detail(r, "Gateway Timeout")
    assert 0.4 <= elapsed < 2.5, f"504 after {elapsed:.2f}s with a 500ms timeout"
    # within the timeout it works
    r = raw(gw, get_bytes("/slow/x?echo_delay_ms=50"))
    assert r.status == 200


def test_upstream_closes_without_answer_is_502(gw):
    r = raw(gw, get_bytes("/public/x?echo_close=1"))
    assert r.status == 502, r
    assert_json_detail(r, "Bad Gateway")
    # and the next request is fine
    assert requests.get(gw.url("/public/next"), timeout=10).status_code == 200


def test_upstream_failing_mid_body_closes_client_connection(gw):
    total = 1024 * 1024
    with RawConn(gw.port, timeout=10) as conn:
        conn.send(get_bytes(f"/public/x?echo_bytes={total}&echo_fail_mid=1"))
        closed = conn.wait_closed(8)  # collects everything sent until EOF/reset
        data = conn.buf
    assert closed, f"client connection left open after the upstream failed mid-body ({len(data)} bytes received)"
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if status == 502:
        return  # refused before the head was relayed: also acceptable
    assert status == 200, head
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        assert not body.endswith(b"0\r\n\r\n"), "truncated body was terminated as if complete"
    else:
        assert b"content-length: %d" % total in headers, head
        assert len(body) < total


def test_connection_stays_usable_after_refusals(gw):
    with RawConn(gw.port) as conn:
        r = conn.request(get_bytes("/nowhere"))
        assert r.status == 404
        r = conn.request(b"POST /status HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc", "POST")
        assert r.status == 405
        r = conn.request(get_bytes("/admin/x"))
        assert r.status == 401
        r = conn.request(get_bytes("/public/%2F"))
        assert r.status == 400
        r = conn.request(get_bytes("/dead/x"))
        assert r.status == 502
        r = conn.request(get_bytes("/public/still-here"))
        assert r.status == 200
        assert r.json()["path"] == "/public/still-here"


def test_refused_request_body_is_consumed_not_parsed_as_next_request(gw):
    # The 401 for a request with a body must not leave the body on the wire to be read as a
    # request (that would let a refused request smuggle a forwarded one).
    smuggled = b"GET /public/smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
    with RawConn(gw.port) as conn:
        conn.send(
            b"POST /admin/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled
        )
        r = conn.read_response("POST")
        assert r.status == 401
        if conn.wait_closed(0.5):
            return  # closing after a refusal with an unread body is also safe
        r = conn.request(get_bytes("/public/real"))
        assert r.status == 200
        assert r.json()["path"] == "/public/real"
