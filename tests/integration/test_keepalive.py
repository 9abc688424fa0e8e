"""Area 4: connections to the upstream are reused (keep-alive pool); client keep-alive works."""

import requests

from harness import RawConn, get_bytes, make_config, upstream

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""


def test_sequential_requests_on_one_session_reuse_one_upstream_connection(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES))
    seen = []
    with requests.Session() as s:
        for i in range(20):
            r = s.get(gw.url(f"/public/{i}"), timeout=10)
            assert r.status_code == 200
            assert r.json()["path"] == f"/public/{i}"
            seen.append(int(r.headers["X-Echo-Connection"]))
            assert r.json()["connection"] == seen[-1]
    distinct = set(seen)
    assert len(distinct) < 20
    assert len(distinct) <= 2, f"20 sequential requests used upstream connections {seen}"


def test_separate_client_connections_share_the_upstream_pool(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES))
    seen = []
    for i in range(10):
        with requests.Session() as s:  # a new client connection each time
            r = s.get(gw.url(f"/public/{i}"), timeout=10, headers={"Connection": "close"})
            assert r.status_code == 200
            seen.append(int(r.headers["X-Echo-Connection"]))
    assert len(set(seen)) <= 2, f"10 requests from 10 client connections used upstream connections {seen}"


def test_many_requests_on_one_client_connection(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    with RawConn(gw.port) as conn:
        for i in range(20):
            r = conn.request(get_bytes(f"/public/ka/{i}"))
            assert r.status == 200
            assert r.json()["path"] == f"/public/ka/{i}"
        # HTTP/1.0 without keep-alive: answered, then closed by the gateway
        conn.send(b"GET /public/ten HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        r = conn.read_response()
        assert r.status == 200
        assert r.json()["path"] == "/public/ten"
        assert conn.wait_closed(3), "HTTP/1.0 request without keep-alive: connection not closed"


def test_connection_close_is_honoured(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    with RawConn(gw.port) as conn:
        r = conn.request(get_bytes("/public/bye", extra=b"Connection: close\r\n"))
        assert r.status == 200
        assert conn.wait_closed(3)
