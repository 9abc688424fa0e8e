"""Area 6: request-target normalization and path traversal (contract §3), over raw sockets.

Routes: /public/** (auth none) and /admin/** (auth bearer). The recording upstream tells us
exactly which paths were forwarded; nothing must ever reach it under /admin.
"""

import json

import pytest

from harness import PUBLIC_AND_ADMIN_ROUTES, RawConn, make_config, upstream

ROUTES = PUBLIC_AND_ADMIN_ROUTES


@pytest.fixture(scope="module")
def gw(module_spawner, rec):
    return module_spawner.gateway(make_config({"main": upstream(rec.url)}, ROUTES, server={"merge_slashes": "true"}))


@pytest.fixture(autouse=True)
def _clear(rec):
    rec.clear()
    yield
    # whatever a test sent, nothing unnormalized and nothing under /admin reached the upstream
    assert_nothing_unsafe_forwarded(rec)


def send_target(port: int, target: bytes, method: bytes = b"GET"):
    with RawConn(port) as conn:
        return conn.request(method + b" " + target + b" HTTP/1.1\r\nHost: gw.test\r\n\r\n", method.decode())


def assert_nothing_unsafe_forwarded(rec):
    for r in rec.snapshot():
        assert not r.path.startswith("/admin"), f"upstream received {r.target!r}"
        segments = r.path.split("/")[1:]
        assert ".." not in segments and "." not in segments, f"dot-segment forwarded: {r.target!r}"
        assert "//" not in r.path, f"unmerged slashes forwarded: {r.target!r}"
        lowered = r.path.lower()
        for bad in ("%2e", "%2f", "%5c", "%00", "\\"):
            assert bad not in lowered, f"{bad} forwarded: {r.target!r}"


def assert_400_json(resp):
    assert resp.status == 400, resp
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    assert isinstance(json.loads(resp.body).get("detail"), str), resp


def assert_admin_challenge_or_400(resp):
    if resp.status == 400:
        assert_400_json(resp)
        return
    assert resp.status == 401, f"expected the admin route's 401 (or 400), got {resp!r}"
    assert resp.header("WWW-Authenticate") == 'Bearer realm="R"', resp
    assert json.loads(resp.body) == {"detail": "Not authenticated"}


# -- traversal into /admin ------------------------------------------------------------------

TRAVERSALS = [
    b"/public/../admin/x",
    b"/public/%2e%2e/admin/x",
    b"/public/%2E%2E/admin/x",
    b"/public/.%2e/admin/x",
    b"/public/%2e./admin/x",
    b"/public/./../admin/x",
    b"/public/a/b/../../../admin/x",
    b"/public/%2e%2e/%61dmin/x",
    b"//admin/x",
    b"///admin/x",
    b"/./admin/x",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_reaches_only_the_admin_route(gw, rec, target):
    resp = send_target(gw.port, target)
    assert_admin_challenge_or_400(resp)
    assert rec.snapshot() == [], f"forwarded: {rec.snapshot()}"


def test_double_slash_dot_dot_is_consistent(gw, rec):
    # Dot-segment removal and slash merging may be ordered either way; whatever is forwarded
    # must be a clean path that the matched route allows.
    resp = send_target(gw.port, b"/public//../admin/x")
    if resp.status == 200:
        forwarded = rec.snapshot()
        assert len(forwarded) == 1 and forwarded[0].path.startswith("/public/")
    else:
        assert_admin_challenge_or_400(resp)
    assert_nothing_unsafe_forwarded(rec)


# -- targets that must be refused with 400 --------------------------------------------------

REFUSED = [
    b"/public/%2F..",
    b"/public/%2f../admin/x",
    b"/public/a%2Fb",
    b"/public/%5c",
    b"/public/%5C..%5Cadmin",
    b"/public/..\\admin",
    b"/public/a\\b",
    b"/public/a%00b",
    b"/public/%00",
    b"/public/a\x01b",
    b"/public/a\x7fb",
    b"/public/a\x1bb",
    b"/..",
    b"/../admin/x",
    b"/public/../../x",
    b"/public/%2e%2e/%2e%2e/x",
    b"/public/../..",
]


@pytest.mark.parametrize("target", REFUSED, ids=[repr(t)[2:-1] for t in REFUSED])
def test_bad_target_is_400_with_json_detail(gw, rec, target):
    resp = send_target(gw.port, target)
    assert_400_json(resp)
    assert rec.snapshot() == []


@pytest.mark.parametrize(
    "request_line",
    [b"OPTIONS * HTTP/1.1", b"GET public/x HTTP/1.1", b"GET gw.test:80 HTTP/1.1"],
    ids=["asterisk-form", "relative", "authority-like"],
)
def test_non_origin_forms_are_400(gw, rec, request_line):
    with RawConn(gw.port) as conn:
        resp = conn.request(request_line + b"\r\nHost: gw.test\r\n\r\n", request_line.split()[0].decode())
    assert resp.status == 400, resp
    assert rec.snapshot() == []


def test_connection_usable_after_bad_target_400(gw, rec):
    with RawConn(gw.port) as conn:
        first = conn.request(b"GET /public/%2F.. HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert_400_json(first)
        second = conn.request(b"GET /.. HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert_400_json(second)
        third = conn.request(b"GET /public/ok HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert third.status == 200, third
    assert [r.path for r in rec.snapshot()] == ["/public/ok"]


# -- normalization of forwarded paths ------------------------------------------------------

NORMALIZED = [
    (b"/public/%7Euser", "/public/~user"),
    (b"/public/%7euser", "/public/~user"),
    (b"/public/%41%62%2D%5F%30", "/public/Ab-_0"),
    (b"/public/%3a", "/public/%3A"),
    (b"/public/%3A", "/public/%3A"),
    (b"/public/%e2%82%ac", "/public/%E2%82%AC"),
    (b"/public/a%20b", "/public/a%20b"),
    (b"/public/%252e%252e", "/public/%252e%252e"),
    (b"/public/./x", "/public/x"),
    (b"/public/a/../b", "/public/b"),
    (b"/public/a/%2e/b", "/public/a/b"),
    (b"/public/a/%2e%2e/b", "/public/b"),
    (b"/public//x///y", "/public/x/y"),
    (b"//public/x", "/public/x"),
    (b"/public/x/", "/public/x/"),
    (b"/public", "/public"),
]


@pytest.mark.parametrize("target,expected", NORMALIZED, ids=[t.decode() for t, _ in NORMALIZED])
def test_forwarded_path_is_normalized(gw, rec, target, expected):
    resp = send_target(gw.port, target)
    assert resp.status == 200, resp
    forwarded = rec.snapshot()
    assert len(forwarded) == 1
    assert forwarded[0].path == expected
    assert forwarded[0].query is None


@pytest.mark.parametrize(
    "target,path,query",
    [
        (b"/public/a/../b?p=../x&q=%2e%2e&r=%2F", "/public/b", "p=../x&q=%2e%2e&r=%2F"),
        (b"/public/%7e?%7e=%7e", "/public/~", "%7e=%7e"),
        (b"/public/x?a=%3a&b=\\", "/public/x", "a=%3a&b=\\"),
        (b"/public/x?/admin/../..", "/public/x", "/admin/../.."),
    ],
)
def test_query_is_not_normalized(gw, rec, target, path, query):
    resp = send_target(gw.port, target)
    assert resp.status == 200, resp
    (forwarded,) = rec.snapshot()
    assert forwarded.path == path
    assert forwarded.query == query


def test_query_does_not_affect_matching(gw, rec):
    resp = send_target(gw.port, b"/admin/x?/public/y")
    assert_admin_challenge_or_400(resp)
    assert resp.status == 401
    assert rec.snapshot() == []


def test_absolute_form_is_accepted(gw, rec):
    resp = send_target(gw.port, b"http://gw.test/public/abs/%7E?x=1")
    assert resp.status == 200, resp
    (forwarded,) = rec.snapshot()
    assert forwarded.path == "/public/abs/~"
    assert forwarded.query == "x=1"


def test_absolute_form_traversal_into_admin(gw, rec):
    resp = send_target(gw.port, b"http://gw.test/public/../admin/x")
    assert_admin_challenge_or_400(resp)
    assert rec.snapshot() == []


def test_patterns_are_case_sensitive(gw, rec):
    # /ADMIN is not /admin: no route → 404, nothing forwarded
    resp = send_target(gw.port, b"/ADMIN/x")
    assert resp.status == 404
    assert json.loads(resp.body) == {"detail": "Not Found"}
    resp = send_target(gw.port, b"/public/%2e%2e")  # normalizes to "/"
    assert resp.status in (400, 404), resp
    assert rec.snapshot() == []
