"""Contract §9: an HTTP/1.0 request with `Transfer-Encoding` is refused with 400 and the
connection closed (RFC 9112 §6.1), and a `Host` or absolute-form authority with an empty label
is refused with 400 while one trailing dot is ignored for matching. Raw sockets in front of the
recording upstream, and `portcullis check` on the same file."""

from __future__ import annotations

import json
import time

import pytest

from harness import PUBLIC_AND_ADMIN_ROUTES, ConnectionClosed, RawConn, make_config, run_portcullis, upstream

HOST_ROUTES = """
- name: admin
  match: { path: "/x/**", hosts: [admin.example.com] }
  auth: bearer
  upstream: main
- name: open
  match: { path: "/x/**" }
  auth: none
  upstream: main
"""


@pytest.fixture(scope="module")
def gw(module_spawner, rec):
    return module_spawner.gateway(make_config({"main": upstream(rec.url)}, PUBLIC_AND_ADMIN_ROUTES), name="framing.yaml")


@pytest.fixture(scope="module")
def hosts_config(module_spawner, rec):
    return make_config({"main": upstream(rec.url)}, HOST_ROUTES)


@pytest.fixture(scope="module")
def hosts_gw(module_spawner, hosts_config):
    return module_spawner.gateway(hosts_config, name="hosts.yaml")


@pytest.fixture(autouse=True)
def _clear(rec):
    rec.clear()


def refused_and_closed(port: int, request: bytes, what: str):
    """Sends `request`; expects a 400 answer and then the server closing the connection."""
    with RawConn(port) as conn:
        conn.send(request)
        try:
            resp = conn.read_response("POST")
        except ConnectionClosed:
            raise AssertionError(f"{what}: connection closed without a 400 answer")
        assert resp.status == 400, f"{what}: {resp!r}"
        assert conn.wait_closed(2.0), f"{what}: connection left open after the 400"
        assert conn.buf == b"", f"{what}: more bytes after the 400: {conn.buf!r}"
    return resp


# -- HTTP/1.0 with Transfer-Encoding -------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /public/x HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        # Keep-alive asked for explicitly: still closed.
        b"POST /public/x HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # No Host (allowed in HTTP/1.0), and a smuggled request as the "chunked" body.
        b"POST /public/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
    ],
    ids=["chunked", "keep-alive", "no-host-smuggle"],
)
def test_http10_with_transfer_encoding_is_400_and_closes(gw, rec, request_bytes):
    resp = refused_and_closed(gw.port, request_bytes, "HTTP/1.0 + Transfer-Encoding")
    assert resp.json() == {"detail": "Transfer-Encoding in an HTTP/1.0 request"}, resp
    time.sleep(0.1)
    assert rec.snapshot() == [], f"forwarded {rec.snapshot()}"


def test_http10_with_content_length_is_still_forwarded(gw, rec):
    with RawConn(gw.port) as conn:
        resp = conn.request(b"POST /public/x HTTP/1.0\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello", "POST")
    assert resp.status == 200, resp
    assert [(r.method, r.path, bytes(r.body)) for r in rec.snapshot()] == [("POST", "/public/x", b"hello")]


# -- Host with an empty label ---------------------------------------------------------------------


@pytest.mark.parametrize("host", [b"admin.example.com..", b"admin..example.com", b".admin.example.com", b"admin.example.com..:80"])
def test_host_with_an_empty_label_is_400(hosts_gw, rec, host):
    with RawConn(hosts_gw.port) as conn:
        resp = conn.request(b"GET /x/a HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert resp.status == 400, f"{host!r}: {resp!r}"
    assert resp.json() == {"detail": "Invalid Host header"}, resp
    time.sleep(0.1)
    assert rec.snapshot() == [], f"{host!r}: forwarded {rec.snapshot()}"


@pytest.mark.parametrize("authority", [b"admin.example.com..", b"admin..example.com", b".admin.example.com"])
def test_absolute_form_authority_with_an_empty_label_is_400(hosts_gw, rec, authority):
    with RawConn(hosts_gw.port) as conn:
        resp = conn.request(b"GET http://" + authority + b"/x/a HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert resp.status == 400, f"{authority!r}: {resp!r}"
    time.sleep(0.1)
    assert rec.snapshot() == [], f"{authority!r}: forwarded {rec.snapshot()}"


@pytest.mark.parametrize("host", [b"admin.example.com.", b"admin.example.com", b"ADMIN.example.com.:8080"])
def test_one_trailing_dot_still_matches_the_host_route(hosts_gw, rec, host):
    with RawConn(hosts_gw.port) as conn:
        resp = conn.request(b"GET /x/a HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert resp.status == 401, f"{host!r}: {resp!r}"
        absolute = conn.request(b"GET http://" + host + b"/x/a HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert absolute.status == 401, f"{host!r} (absolute-form): {absolute!r}"
    assert rec.snapshot() == []


@pytest.mark.parametrize("host", [b"other.example.com", b"127.0.0.1", b"[::1]:8080"])
def test_other_hosts_reach_the_public_route(hosts_gw, rec, host):
    with RawConn(hosts_gw.port) as conn:
        resp = conn.request(b"GET /x/a HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert resp.status == 200, f"{host!r}: {resp!r}"
    assert [r.path for r in rec.snapshot()] == ["/x/a"]


def check(config_path, host: str):
    proc = run_portcullis(["check", "--config", str(config_path), "--json", "-H", f"Host: {host}", "GET", "/x/a"])
    try:
        return json.loads(proc.stdout), proc
    except ValueError:
        raise AssertionError(f"check printed no JSON: rc={proc.returncode} {proc.stdout} {proc.stderr}")


def test_check_refuses_a_host_with_an_empty_label(tmp_path, hosts_config):
    path = tmp_path / "hosts.yaml"
    path.write_text(hosts_config)
    for host in ("a..b", "admin.example.com.."):
        data, proc = check(path, host)
        assert data["status"] == 400 and data["reason"] == "bad_host", proc.stdout + proc.stderr
        assert proc.returncode != 0, proc.stdout + proc.stderr
    data, proc = check(path, "admin.example.com.")
    assert data["status"] == 401, proc.stdout + proc.stderr
