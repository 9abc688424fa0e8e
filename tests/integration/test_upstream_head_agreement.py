"""The decision is the whole answer: the request head `check --json` says the upstream gets is,
header by header and in order, the head a recording upstream receives from `serve` (contract
§5, §7).

A table of requests (bearer, basic, api_key, optional, shadow mode, trusted and untrusted
peers, strip_prefix, preserve_host, hop-by-hop and forwarding headers) is sent to a live
gateway in front of the recorder, from 127.0.0.1 (untrusted) or 127.0.0.2 (a trusted proxy),
and through `check --json --peer` with the same fields."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest

from harness import RawConn
from ops_support import (
    API_KEY, API_KEY_SHA, ENV, ISSUER, JOHNDOE_HASH, REALM, basic, check_json, q, token,
    trusted_issuer_and_johndoe,
)

UNTRUSTED = "127.0.0.1"
TRUSTED = "127.0.0.2"


def config_text(upstream_url: str) -> str:
    return f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
  access_log: "off"
  request_header_timeout: 5s
  shutdown_grace: 2s
  trusted_proxies: ["{TRUSTED}/32"]
  identity_headers:
    subject: X-Auth-Subject
    scopes: X-Auth-Scopes
    method: X-Auth-Method
{trusted_issuer_and_johndoe(leeway="5s")}
api_keys:
  - name: ci-bot
    key_hash: {q(API_KEY_SHA)}
    scopes: [items]
    in: header
    param: X-API-Key
  - name: cookie-bot
    key_hash: {q(API_KEY_SHA)}
    scopes: [items]
    in: cookie
    param: session_key
upstreams:
  rec:
    url: {q(upstream_url)}
    connect_timeout: 2s
    timeout: 10s
  rec-own-host:
    url: {q(upstream_url + "/base")}
    preserve_host: false
routes:
  - name: public
    match: {{ path: "/public/**" }}
    auth: none
    upstream: rec
  - name: maybe
    match: {{ path: "/maybe/**" }}
    auth: optional
    upstream: rec
  - name: me
    match: {{ path: "/users/me" }}
    auth: bearer
    scopes: [me]
    upstream: rec
  - name: basic-area
    match: {{ path: "/basic/**" }}
    auth: basic
    upstream: rec
  - name: basic-passing
    match: {{ path: "/basic-pass/**" }}
    auth: basic
    forward_authorization: true
    upstream: rec
  - name: keyed
    match: {{ path: "/keyed/**" }}
    auth: api_key
    upstream: rec
  - name: either
    match: {{ path: "/either/**" }}
    auth: [bearer, basic, api_key]
    upstream: rec
  - name: stripped
    match: {{ path: "/svc/**" }}
    auth: bearer
    strip_prefix: /svc
    upstream: rec-own-host
  - name: shadow
    match: {{ path: "/shadow/**" }}
    auth: bearer
    scopes: [admin]
    mode: dry-run
    upstream: rec
"""


@dataclass
class Case:
    id: str
    method: str
    target: str
    headers: list = field(default_factory=list)
    peer: str = UNTRUSTED
    host: str | None = "api.example"


T = token
GOOD = T(scope="me items")


CASES = [
    Case("public-plain", "GET", "/public/a?x=1&y=%2F"),
    Case("public-head", "HEAD", "/public/a"),
    Case("public-delete", "DELETE", "/public/a"),
    Case("public-forged-identity", "GET", "/public/a",
         [("X-Auth-Subject", "root"), ("X-Auth-Scopes", "admin"), ("x-auth-method", "bearer")]),
    Case("public-underscore-identity", "GET", "/public/a", [("X_Auth_Subject", "root"), ("X_Forwarded_For", "1.2.3.4")]),
    Case("public-authorization-passes", "GET", "/public/a", [("Authorization", "Bearer " + GOOD)]),
    Case("public-hop-by-hop", "GET", "/public/a",
         [("Connection", "X-Custom, keep-alive"), ("X-Custom", "1"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
          ("Upgrade", "h2c"), ("Trailer", "X-Sum"), ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes")]),
    Case("public-repeats-in-order", "GET", "/public/a",
         [("Accept", "text/html"), ("X-Multi", "one"), ("Accept", "application/json"), ("X-Multi", "two")]),
    Case("public-padded-value", "GET", "/public/a", [("X-Padded", "value   ")]),
    Case("public-expect-dropped", "GET", "/public/a", [("Expect", "100-continue")]),
    Case("public-proxy-authorization", "GET", "/public/a", [("Proxy-Authorization", "Basic eDp5")]),
    Case("untrusted-forwarding", "GET", "/public/a",
         [("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"),
          ("X-Forwarded-Prefix", "/evil"), ("Forwarded", "for=10.0.0.1"), ("X-Real-IP", "10.0.0.1"),
          ("True-Client-IP", "10.0.0.1"), ("Front-End-Https", "on")]),
    Case("trusted-forwarding", "GET", "/public/a",
         [("X-Forwarded-For", "10.0.0.1, 10.0.0.9"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "www.example"),
          ("X-Forwarded-Prefix", "/app"), ("Forwarded", "for=10.0.0.1"), ("X-Real-IP", "10.0.0.1")], peer=TRUSTED),
    Case("trusted-two-xff-fields", "GET", "/public/a",
         [("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2")], peer=TRUSTED),
    Case("trusted-bearer", "GET", "/users/me", [("Authorization", "Bearer " + GOOD), ("X-Forwarded-For", "10.1.1.1")],
         peer=TRUSTED),
    Case("absolute-form", "GET", "http://abs.example:8080/public/a", host="abs.example:8080"),
    Case("no-host-http10-like", "GET", "/public/a", host="bare.example"),
    Case("optional-anonymous", "GET", "/maybe/x"),
    Case("optional-token", "GET", "/maybe/x", [("Authorization", "Bearer " + GOOD)]),
    Case("optional-forged-identity", "GET", "/maybe/x", [("X-Auth-Subject", "root")]),
    Case("bearer-good", "GET", "/users/me", [("Authorization", "Bearer " + GOOD)]),
    Case("bearer-lowercase-scheme", "GET", "/users/me", [("Authorization", "bearer " + GOOD)]),
    Case("bearer-post", "POST", "/users/me", [("Authorization", "Bearer " + GOOD), ("Content-Type", "text/plain")]),
    Case("basic-stripped", "GET", "/basic/x", [("Authorization", basic("johndoe", "secret"))]),
    Case("basic-forwarded", "GET", "/basic-pass/x", [("Authorization", basic("johndoe", "secret"))]),
    Case("apikey-header-stripped", "GET", "/keyed/x", [("X-API-Key", API_KEY), ("X-Other", "kept")]),
    Case("apikey-cookie", "GET", "/keyed/x", [("Cookie", f"a=1; session_key={API_KEY}")]),
    Case("either-with-bearer", "GET", "/either/x", [("Authorization", "Bearer " + GOOD), ("X-API-Key", "not-checked")]),
    Case("either-with-api-key", "GET", "/either/x", [("X-API-Key", API_KEY)]),
    Case("strip-prefix-own-host", "GET", "/svc/items/1?q=2", [("Authorization", "Bearer " + GOOD)]),
    Case("strip-prefix-root", "GET", "/svc", [("Authorization", "Bearer " + GOOD)]),
    Case("shadow-anonymous", "GET", "/shadow/x"),
    Case("shadow-missing-scope", "GET", "/shadow/x", [("Authorization", "Bearer " + GOOD)]),
    Case("shadow-bad-token", "GET", "/shadow/x", [("Authorization", "Bearer abc.def.ghi")]),
    Case("shadow-basic-never-passed", "GET", "/shadow/x", [("Authorization", basic("johndoe", "secret"))]),
    Case("shadow-trusted", "GET", "/shadow/x", [("X-Forwarded-For", "10.2.2.2"), ("X-Forwarded-Proto", "https")],
         peer=TRUSTED),
]


@pytest.fixture(scope="module")
def env(module_spawner, rec):
    text = config_text(rec.url)
    path = module_spawner.write(text, "head-agreement.yaml")
    gw = module_spawner.gateway(text, env=ENV, name="head-agreement-serve.yaml")
    return {"config": path, "gw": gw, "rec": rec}


def test_the_table_covers_enough():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def fields(case: Case, index: int) -> list[tuple[str, str]]:
    out = []
    if case.host is not None:
        out.append(("Host", case.host))
    out += case.headers
    out.append(("X-Request-Id", f"agreement-{index}"))
    return out


def send_from(source: str, port: int, method: str, target: str, headers) -> object:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    conn = RawConn.__new__(RawConn)
    conn.sock, conn.timeout, conn.buf = sock, 10.0, b""
    sock.settimeout(10.0)
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    with conn:
        return conn.request(head.encode("latin-1"), method=method)


@pytest.mark.parametrize("index,case", list(enumerate(CASES)), ids=[c.id for c in CASES])
def test_serve_sends_exactly_the_head_check_computes(env, index, case):
    headers = fields(case, index)
    args = ["--peer", case.peer]
    for name, value in headers:
        args += ["-H", f"{name}: {value}"]
    rc, data, proc = check_json(env["config"], case.method, case.target, args)
    assert data is not None, proc.stdout + proc.stderr
    assert "upstream_headers" in data, f"check decided not to forward: {data}"

    env["rec"].clear()
    resp = send_from(case.peer, env["gw"].port, case.method, case.target, headers)
    assert resp.status == 200, resp
    seen = [r for r in env["rec"].snapshot() if r.header_all("X-Request-Id") == [f"agreement-{index}"]]
    assert len(seen) == 1, env["rec"].snapshot()
    received = seen[0]
    expected = [(name, value) for name, value in data["upstream_headers"]]
    assert received.headers == expected, (
        f"\nupstream received: {received.headers}\ncheck computed:    {expected}")
    assert received.method == data["upstream_method"] == case.method
    assert env["rec"].url + received.target == data.get("upstream_url", data.get("shadow_forward"))


def test_shadow_mode_forwards_with_the_refusal_it_would_have_sent(env):
    rc, data, _ = check_json(env["config"], "GET", "/shadow/x", ["-H", "Host: a.example"])
    assert rc == 1 and data["status"] == 401 and data["decision"] == "deny", data
    assert data["shadow_forward"].endswith("/shadow/x"), data
