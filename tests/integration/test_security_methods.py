"""The upstream receives exactly the method that was authorized, and headers that describe the
client's path through proxies (or a proxy's own credential) never pass from untrusted peers
(contract §9).

Every method the gateway accepts is sent with no body, a Content-Length body, a chunked body
and an empty chunked body: the recording upstream must see that method, or nothing at all."""

from __future__ import annotations

import pytest

from harness import RawConn, echo_headers, get_bytes, make_config, run_portcullis, upstream

# Policy.servedMethods: every method the server's parser accepts, less CONNECT.
METHODS = [
    "DELETE", "GET", "HEAD", "POST", "PUT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE",
    "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY",
    "CHECKOUT", "MERGE", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK",
    "UNLINK", "SOURCE", "QUERY",
]

BODIES = {
    "none": (b"", b""),
    "content-length": (b"Content-Length: 5\r\n", b"hello"),
    "chunked": (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "empty-chunked": (b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
}

ROUTES = """
- name: any
  match: { path: "/any/**" }
  auth: none
  upstream: main
- name: read-only
  match: { path: "/ro/**", methods: [GET] }
  auth: none
  upstream: main
"""


@pytest.fixture(scope="module")
def gw(module_spawner, rec):
    return module_spawner.gateway(make_config({"main": upstream(rec.url)}, ROUTES))


def send(port: int, method: str, path: str, body_kind: str):
    framing, body = BODIES[body_kind]
    data = f"{method} {path} HTTP/1.1\r\nHost: gw.test\r\n".encode() + framing + b"\r\n" + body
    with RawConn(port) as conn:
        return conn.request(data, method=method)


@pytest.mark.parametrize("body_kind", list(BODIES))
def test_every_method_reaches_the_upstream_as_itself_or_not_at_all(gw, rec, body_kind):
    for method in METHODS:
        rec.clear()
        resp = send(gw.port, method, f"/any/{method.lower()}", body_kind)
        seen = [r.method for r in rec.snapshot()]
        if method == "HEAD" and body_kind != "none":
            assert resp.status == 400, (method, body_kind, resp)
            assert seen == [], (method, body_kind, seen)
        elif resp.status >= 400:
            # Refused by the gateway: then the upstream saw nothing.
            assert seen == [], (method, body_kind, resp, seen)
        else:
            assert seen == [method], (method, body_kind, seen)


@pytest.mark.parametrize("body_kind", ["content-length", "chunked", "empty-chunked"])
def test_a_head_with_a_body_on_a_get_only_route_is_400_and_never_a_put(gw, rec, body_kind):
    rec.clear()
    resp = send(gw.port, "HEAD", "/ro/doc", body_kind)
    assert resp.status == 400, resp
    assert rec.snapshot() == []
    # The direct PUT is 405, as before.
    assert send(gw.port, "PUT", "/ro/doc", "content-length").status == 405


def test_a_head_with_content_length_zero_is_forwarded_as_head(gw, rec):
    rec.clear()
    data = b"HEAD /ro/doc HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n"
    with RawConn(gw.port) as conn:
        resp = conn.request(data, method="HEAD")
    assert resp.status == 200, resp
    assert [r.method for r in rec.snapshot()] == ["HEAD"]


def test_check_refuses_a_head_with_a_body_as_serve_does(module_spawner):
    path = module_spawner.write(make_config({"main": upstream("http://127.0.0.1:9")}, ROUTES))
    refused = run_portcullis(["check", "--config", str(path), "-H", "Content-Length: 5", "HEAD", "/ro/doc"])
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "400" in refused.stdout
    allowed = run_portcullis(["check", "--config", str(path), "-H", "Content-Length: 0", "HEAD", "/ro/doc"])
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


# ---------------------------------------------------------------------------------------------
# Forwarding headers and proxy credentials

CLIENT_PATH_HEADERS = [
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Forwarded-Scheme", "https"),
    ("X-Forwarded-Server", "evil.example"),
    ("X-Forwarded-Anything", "x"),
    ("Front-End-Https", "on"),
    ("X-Url-Scheme", "https"),
    ("True-Client-IP", "10.9.9.9"),
    ("X-Client-IP", "10.9.9.9"),
    ("X-Real-IP", "10.9.9.9"),
    ("Forwarded", "for=10.9.9.9;proto=https"),
    ("X_Forwarded_Prefix", "/underscored"),
]


@pytest.fixture(scope="module")
def untrusted(module_spawner, echo):
    return module_spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES, server={"trusted_proxies": "[]"}))


@pytest.fixture(scope="module")
def trusted(module_spawner, echo):
    return module_spawner.gateway(
        make_config({"main": upstream(echo.url)}, ROUTES, server={"trusted_proxies": '["127.0.0.1/32"]'}))


def forwarded_names(port: int, headers) -> set[str]:
    extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    with RawConn(port) as conn:
        resp = conn.request(get_bytes("/any/h", extra=extra))
    assert resp.status == 200, resp
    return {name.lower() for name, _ in echo_headers(resp.json())}


def test_forwarding_headers_from_an_untrusted_peer_never_reach_the_upstream(untrusted):
    names = forwarded_names(untrusted.port, CLIENT_PATH_HEADERS + [("X-Keep-Me", "1")])
    for name, _ in CLIENT_PATH_HEADERS:
        assert name.lower() not in names, (name, sorted(names))
    assert "x-keep-me" in names


def test_forwarding_headers_from_a_trusted_proxy_are_kept(trusted):
    names = forwarded_names(trusted.port, CLIENT_PATH_HEADERS)
    for name in ("x-forwarded-port", "x-forwarded-prefix", "front-end-https", "true-client-ip", "x-real-ip", "forwarded"):
        assert name in names, (name, sorted(names))


@pytest.mark.parametrize("which", ["untrusted", "trusted"])
def test_proxy_authorization_is_never_forwarded(request, which):
    gw = request.getfixturevalue(which)
    names = forwarded_names(gw.port, [("Proxy-Authorization", "Basic dXNlcjpwYXNz"), ("Proxy_Authorization", "x")])
    assert "proxy-authorization" not in names and "proxy_authorization" not in names, sorted(names)
