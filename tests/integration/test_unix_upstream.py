"""Area 10: an upstream on a Unix domain socket (`url: "unix:/path"`)."""

import os

import pytest
import requests

from harness import make_config, upstream

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: sock
- name: stripped
  match: { path: "/u/**" }
  auth: none
  upstream: sock
  strip_prefix: /u
"""


@pytest.fixture
def unix_gw(spawner, short_tmp):
    sock = os.path.join(short_tmp, "echo.sock")
    up = spawner.echo(unix_path=sock)
    gw = spawner.gateway(make_config({"sock": upstream(up.url, preserve_host=True)}, ROUTES))
    return gw


def test_get_through_unix_socket(unix_gw):
    r = requests.get(unix_gw.url("/public/a/b?x=1&y=two"), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "GET"
    assert body["path"] == "/public/a/b"
    assert body["query"] == "x=1&y=two"
    hosts = [v for k, v in body["headers"] if k.lower() == "host"]
    assert hosts == [f"127.0.0.1:{unix_gw.port}"]


def test_post_body_and_large_response_through_unix_socket(unix_gw):
    payload = os.urandom(300_000)
    r = requests.post(unix_gw.url("/public/upload"), data=payload, timeout=10)
    assert r.status_code == 200
    assert r.json()["body_length"] == len(payload)
    r = requests.get(unix_gw.url("/public/big?echo_bytes=3000000"), timeout=20)
    assert r.status_code == 200
    assert len(r.content) == 3_000_000 and r.content.count(b"x") == 3_000_000


def test_strip_prefix_and_reuse_over_unix_socket(unix_gw):
    seen = set()
    with requests.Session() as s:
        for i in range(10):
            r = s.get(unix_gw.url(f"/u/item/{i}"), timeout=10)
            assert r.status_code == 200
            assert r.json()["path"] == f"/item/{i}"
            seen.add(r.headers["X-Echo-Connection"])
    assert len(seen) <= 2, f"10 sequential requests used {len(seen)} unix-socket connections"


def test_unix_upstream_errors(unix_gw):
    r = requests.get(unix_gw.url("/public/x?echo_close=1"), timeout=10)
    assert r.status_code == 502
    assert r.json() == {"detail": "Bad Gateway"}
    r = requests.get(unix_gw.url("/public/x?echo_status=418"), timeout=10)
    assert r.status_code == 418
