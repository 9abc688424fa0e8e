"""Area 1: every method is forwarded with its path, query and body; bodiless answers stay bodiless."""

import pytest
import requests

from harness import RawConn, get_bytes, make_config, upstream

ROUTES = """
- name: status
  match: { path: /status, methods: [GET] }
  auth: none
  upstream: main
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""


@pytest.fixture(scope="module")
def gw(module_spawner, echo):
    return module_spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_method_forwarded_with_path_and_query(gw, method):
    body = b"" if method in ("GET", "OPTIONS") else (method.encode() * 100)[: 137 + len(method)]
    r = requests.request(method, gw.url("/public/items/42?b=2&a=1"), data=body or None, timeout=10)
    assert r.status_code == 200, r.text
    echoed = r.json()
    assert echoed["method"] == method
    assert echoed["path"] == "/public/items/42"
    assert echoed["query"] == "b=2&a=1"
    assert echoed["body_length"] == len(body)


def test_delete_with_body_and_options_with_body(gw):
    for method in ("DELETE", "OPTIONS"):
        r = requests.request(method, gw.url("/public/x"), data=b"0123456789", timeout=10)
        assert r.status_code == 200
        assert r.json()["method"] == method
        assert r.json()["body_length"] == 10


def test_no_query_is_forwarded_as_no_query(gw):
    r = requests.get(gw.url("/public/plain"), timeout=10)
    assert r.status_code == 200
    assert r.json()["query"] is None
    assert r.json()["path"] == "/public/plain"


@pytest.mark.parametrize(
    "query",
    [
        b"a=1&b=2",
        b"x=%3a&y=%3A&z=%2F&w=/&v=?&u=%20+plus",
        b"q=%7E~&r=..%2F..&s=%00",
        b"empty=&=v&&flag",
    ],
)
def test_query_forwarded_byte_for_byte(gw, query):
    with RawConn(gw.port) as conn:
        r = conn.request(get_bytes(b"/public/q?" + query))
    assert r.status == 200, r
    assert r.json()["query"] == query.decode()
    assert r.json()["path"] == "/public/q"


def test_head_has_no_body_and_connection_stays_in_sync(gw):
    with RawConn(gw.port) as conn:
        # HEAD on a GET-only route is allowed (a route that lists GET also matches HEAD).
        conn.send(get_bytes("/status").replace(b"GET ", b"HEAD ", 1))
        head = conn.read_response("HEAD")
        assert head.status == 200, head
        # If the gateway wrote body bytes after the HEAD answer, the next response would be
        # garbage; a clean second answer proves the HEAD answer carried no body.
        second = conn.request(get_bytes("/public/after-head"))
        assert second.status == 200, second
        assert second.json()["path"] == "/public/after-head"
    r = requests.head(gw.url("/public/h"), timeout=10)
    assert r.status_code == 200
    assert r.content == b""


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(gw, status):
    with RawConn(gw.port) as conn:
        first = conn.request(get_bytes(f"/public/s?echo_status={status}"))
        assert first.status == status
        assert first.body == b""
        assert first.header("Transfer-Encoding") is None, first
        cl = first.header("Content-Length")
        assert cl in (None, "0"), first
        second = conn.request(get_bytes("/public/after"))
        assert second.status == 200, second
        assert second.json()["path"] == "/public/after"


@pytest.mark.parametrize("status", [201, 202, 400, 403, 404, 418, 500, 503])
def test_upstream_status_is_relayed(gw, status):
    r = requests.get(gw.url(f"/public/s?echo_status={status}"), timeout=10)
    assert r.status_code == status
    # the upstream's own body comes through, not a gateway refusal
    assert r.json()["path"] == "/public/s"


def test_no_expect_100_continue_added(gw):
    body = b"z" * 200_000
    r = requests.put(gw.url("/public/big"), data=body, timeout=10)
    assert r.status_code == 200
    echoed = r.json()
    assert echoed["body_length"] == len(body)
    names = [k.lower() for k, _ in echoed["headers"]]
    assert "expect" not in names


def test_each_request_gets_its_own_method_and_body_after_other_methods(gw):
    # Upstream handles are recycled from one request to the next: nothing of a HEAD, an upload
    # or a custom method may stay behind for the request that follows.
    steps = [("HEAD", b""), ("GET", b""), ("PUT", b"x" * 300), ("GET", b""), ("PATCH", b"y" * 10),
             ("DELETE", b""), ("GET", b""), ("OPTIONS", b""), ("POST", b"z" * 5000), ("HEAD", b""), ("GET", b"")]
    with requests.Session() as s:
        for index, (method, body) in enumerate(steps):
            r = s.request(method, gw.url(f"/public/seq/{index}"), data=body or None, timeout=10)
            assert r.status_code == 200, (index, method, r.text)
            if method == "HEAD":
                assert r.content == b""
                continue
            echoed = r.json()
            assert (echoed["method"], echoed["path"], echoed["body_length"]) == (method, f"/public/seq/{index}", len(body))
            if not body:
                sent = {name.lower() for name, _ in echoed["headers"]}
                assert "content-length" not in sent and "transfer-encoding" not in sent, (index, method, sent)
