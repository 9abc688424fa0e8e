"""The admin listener: /healthz, /readyz, /metrics (contract §8, §9)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from jwt_support import claims, keypair, mint
from ops_support import (
    AUDIENCE, ENV, ISSUER, JOHNDOE_HASH, JWKSServer, LOCAL_TOKEN_ENDPOINT, REALM, admin_port_of, fetch_metrics, free_port, http_get, metric_value,
    parse_metrics, port_is_closed, q, send, token, wait_until,
)


def base_config(upstream_url: str, admin_port: int, issuers: str) -> str:
    return f"""version: 1
server:
  admin_listen: "127.0.0.1:{admin_port}"
  realm: "{REALM}"
  access_log: "off"
  shutdown_grace: 2s
jwt:
  issuers:
{issuers}
upstreams:
  echo: {{ url: {q(upstream_url)}, connect_timeout: 2s, timeout: 10s }}
routes:
  - name: open
    match: {{ path: "/open/**" }}
    auth: none
    upstream: echo
  - name: guarded
    match: {{ path: "/guarded/**", methods: [GET] }}
    auth: bearer
    scopes: [me]
    upstream: echo
"""


HMAC_ISSUER = f"""    - issuer: {q(ISSUER)}
      audiences: [{q(AUDIENCE)}]
      algorithms: [HS256]
      keys:
        - {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}"""


@pytest.fixture(scope="module")
def plain(module_spawner):
    up = module_spawner.echo()
    aport = free_port()
    gw = module_spawner.gateway(base_config(up.url, aport, HMAC_ISSUER), env=ENV, name="admin-plain.yaml")
    got = admin_port_of(gw)
    assert got == aport, f"admin listener on {got}, configured 127.0.0.1:{aport}"
    return gw, aport


def test_healthz_and_readyz_without_jwks_url(plain):
    _, aport = plain
    assert http_get(aport, "/healthz")[0] == 200
    status, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(http_get(aport, "/readyz")),
                              timeout=5, message="/readyz 200 without jwks_url issuers")
    assert status == 200, body


def test_admin_paths_not_on_public_listener(plain):
    gw, _ = plain
    for path in ("/healthz", "/readyz", "/metrics"):
        resp = send(gw.port, "GET", path)
        assert resp.status == 404, f"{path} on the public listener: {resp!r}"


def test_metrics_is_prometheus_text(plain):
    gw, aport = plain
    send(gw.port, "GET", "/open/x")
    send(gw.port, "GET", "/guarded/x")
    resp = send(aport, "GET", "/metrics", host=f"127.0.0.1:{aport}")
    assert resp.status == 200, resp
    ctype = resp.header("Content-Type") or ""
    assert ctype.startswith("text/plain"), f"/metrics Content-Type {ctype!r}"
    text = resp.body.decode()
    samples = parse_metrics(text)  # fails on any line that is neither a comment nor `name{labels} value`
    assert samples, "no samples"
    for line in text.split("\n"):
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
    names = {n for n, _, _ in samples}
    assert "portcullis_requests_total" in names, sorted(names)


def test_requests_total_grows_by_exactly_what_was_sent(plain):
    gw, aport = plain
    _, before = fetch_metrics(aport)
    good = token(scope="me")
    sent_allow, sent_401, sent_403 = 5, 3, 2
    for i in range(sent_allow):
        assert send(gw.port, "GET", f"/guarded/{i}", headers=[("Authorization", "Bearer " + good)]).status == 200
    for i in range(sent_401):
        assert send(gw.port, "GET", f"/guarded/n{i}").status == 401
    for i in range(sent_403):
        r = send(gw.port, "GET", f"/guarded/s{i}", headers=[("Authorization", "Bearer " + token(scope="items"))])
        assert r.status == 403
    total = sent_allow + sent_401 + sent_403

    def grown():
        _, after = fetch_metrics(aport)
        d = (metric_value(after, "portcullis_requests_total", route="guarded")
             - metric_value(before, "portcullis_requests_total", route="guarded"))
        return after if d >= total else None
    try:
        after = wait_until(grown, timeout=3, message="portcullis_requests_total to count the requests")
    except AssertionError:
        _, after = fetch_metrics(aport)
    delta = (metric_value(after, "portcullis_requests_total", route="guarded")
             - metric_value(before, "portcullis_requests_total", route="guarded"))
    assert delta == total, f'portcullis_requests_total{{route="guarded"}} grew by {delta}, sent {total}'
    for status, n in (("200", sent_allow), ("401", sent_401), ("403", sent_403)):
        d = (metric_value(after, "portcullis_requests_total", route="guarded", status=status)
             - metric_value(before, "portcullis_requests_total", route="guarded", status=status))
        assert d == n, f'portcullis_requests_total{{route="guarded",status="{status}"}} grew by {d}, sent {n}'
    # the other route did not move
    assert (metric_value(after, "portcullis_requests_total", route="open")
            == metric_value(before, "portcullis_requests_total", route="open"))


# ---------------------------------------------------------------------------------------------
# /readyz waits for the first jwks_url fetch


def test_readyz_waits_for_jwks_url(spawner):
    up = spawner.echo()
    aport = free_port()
    jwks_port = free_port()
    assert port_is_closed(jwks_port)
    rsa = keypair("rsa", "ops-readyz")
    issuers = HMAC_ISSUER + f"""
    - issuer: "https://idp.test"
      audiences: [{q(AUDIENCE)}]
      algorithms: [RS256]
      jwks_url: "http://127.0.0.1:{jwks_port}/jwks.json"
      jwks_refresh: 1s"""
    gw = spawner.gateway(base_config(up.url, aport, issuers), env=ENV)
    assert admin_port_of(gw) == aport
    assert http_get(aport, "/healthz")[0] == 200, "/healthz must be 200 while running"
    status, body = http_get(aport, "/readyz")
    assert status == 503, f"/readyz with an unfetched jwks_url: {status} {body!r}"
    # still not ready a moment later (the fetch keeps failing)
    assert http_get(aport, "/readyz")[0] == 503

    server = JWKSServer(jwks_port, {"keys": [rsa.jwk("r1", "RS256")]})
    spawner.things.append(server)

    def ready():
        return http_get(aport, "/readyz")[0] == 200
    wait_until(ready, timeout=10, interval=0.1, message="/readyz 200 after the JWKS server came up")
    assert server.hits >= 1
    assert http_get(aport, "/healthz")[0] == 200
    text, samples = fetch_metrics(aport)
    jwks = [(n, l, v) for n, l, v in samples if "jwks" in n]
    assert jwks, f"§8: /metrics counts JWKS refreshes; no series mentions jwks:\n{text[:3000]}"
    tok = mint(rsa, "RS256", "r1", claims(sub="svc", scope="me", iss="https://idp.test", aud=AUDIENCE))
    resp = send(gw.port, "GET", "/guarded/x", headers=[("Authorization", "Bearer " + tok)])
    assert resp.status == 200, f"a token from the fetched JWKS: {resp!r}"


# ---------------------------------------------------------------------------------------------
# The other families §8 names: tokens issued, login failures, upstream errors


def test_metrics_count_tokens_logins_and_upstream_errors(spawner):
    aport = free_port()
    text = f"""version: 1
server:
  admin_listen: "127.0.0.1:{aport}"
  access_log: "off"
  shutdown_grace: 2s
jwt:
  issuers:
{HMAC_ISSUER}
users:
  - {{ username: johndoe, password_hash: {q(JOHNDOE_HASH)}, scopes: [me] }}
{LOCAL_TOKEN_ENDPOINT}
upstreams:
  dead: {{ url: "http://127.0.0.1:{free_port()}", connect_timeout: 2s, timeout: 5s }}
routes:
  - name: dead
    match: {{ path: "/dead/**" }}
    auth: none
    upstream: dead
"""
    gw = spawner.gateway(text, env=ENV)
    assert admin_port_of(gw) == aport
    _, before = fetch_metrics(aport)
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    assert send(gw.port, "POST", "/token", form, body=urlencode({"username": "johndoe", "password": "secret"}).encode()).status == 200
    for _ in range(2):
        assert send(gw.port, "POST", "/token", form, body=urlencode({"username": "johndoe", "password": "nope"}).encode()).status == 400
    for _ in range(3):
        assert send(gw.port, "GET", "/dead/x").status == 502
    body, after = fetch_metrics(aport)

    def grew(pred):
        names = {n for n, _, _ in after if pred(n)}
        return {n: sum(v for m, _, v in after if m == n) - sum(v for m, _, v in before if m == n) for n in names}
    tokens = grew(lambda n: "token" in n and "issued" in n)
    logins = grew(lambda n: "login" in n and "fail" in n)
    upstream = grew(lambda n: "upstream" in n and "error" in n)
    assert 1 in tokens.values(), f"no tokens-issued series grew by 1: {tokens}\n{body[:3000]}"
    assert 2 in logins.values(), f"no login-failures series grew by 2: {logins}"
    assert 3 in upstream.values(), f"no upstream-errors series grew by 3: {upstream}"
    assert metric_value(after, "portcullis_requests_total", route="dead", status="502") == 3


def test_admin_405_names_allow_and_unknown_paths_are_404_for_any_method(plain):
    _, aport = plain
    for path in ("/metrics", "/healthz", "/readyz"):
        resp = send(aport, "POST", path)
        assert resp.status == 405 and resp.header("Allow") == "GET, HEAD", resp
    for method in ("GET", "POST", "DELETE"):
        assert send(aport, method, "/nope").status == 404
