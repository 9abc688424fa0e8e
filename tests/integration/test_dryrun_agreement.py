"""`portcullis check` and `portcullis serve` make the same decision (contract §7, §1, §4).

One configuration with every auth mode; a table of requests; each is run through
`check --json` and through a live `serve` in front of echo-upstream, and the two answers
(status, WWW-Authenticate, forwarded path and identity headers) must agree. Each case also
carries the status the contract (§3, §4) calls for, so a consistent-but-wrong decision fails too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops_support import (
    trusted_issuer_and_johndoe,
    ALICE_HASH, API_KEY, API_KEY_SHA, AUDIENCE, ENV, ISSUER, JOHNDOE_HASH, REALM, basic, challenge_of,
    check_json, mint_cli, q, run, send, token,
)
from harness import PORTCULLIS_BIN

# ---------------------------------------------------------------------------------------------
# The configuration


def config_text(upstream_url: str) -> str:
    return f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
  access_log: "off"
  request_header_timeout: 5s
  shutdown_grace: 2s
  identity_headers:
    subject: X-Auth-Subject
    scopes: X-Auth-Scopes
    method: X-Auth-Method
{trusted_issuer_and_johndoe(leeway="5s")}
  - username: opsuser
    password_hash: {q(JOHNDOE_HASH)}
    scopes: [ops]
  - username: alice
    password_hash: {q(ALICE_HASH)}
    scopes: [me]
    disabled: true
api_keys:
  - name: ci-bot
    key_hash: {q(API_KEY_SHA)}
    scopes: [items]
    in: header
    param: X-API-Key
token_endpoint:
  path: /token
  issuer: {q(ISSUER)}
  audience: {AUDIENCE}
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
  access_token_ttl: 30m
  refresh_token_ttl: 0
  scopes:
    me: Read information about the current user.
    items: Read items.
    admin: Administer.
    ops: Operate.
  store: "memory:"
upstreams:
  echo:
    url: {q(upstream_url)}
    connect_timeout: 2s
    timeout: 10s
routes:
  - name: status
    match: {{ path: /status, methods: [GET] }}
    auth: none
    upstream: echo
  - name: maybe
    match: {{ path: "/maybe/**" }}
    auth: optional
    upstream: echo
  - name: me
    match: {{ path: /users/me }}
    scopes: [me]
    upstream: echo
  - name: my-items
    match: {{ path: "/users/me/items/**" }}
    auth: bearer
    scopes: [me, items]
    upstream: echo
  - name: reports
    match: {{ path: "/reports/{{id}}", methods: [GET, DELETE] }}
    auth: bearer
    scopes_any: [admin, ops]
    upstream: echo
  - name: basic-area
    match: {{ path: "/basic/**" }}
    auth: basic
    upstream: echo
  - name: keyed
    match: {{ path: "/keyed/**" }}
    auth: api_key
    upstream: echo
  - name: admin
    match: {{ path: "/admin/**", hosts: ["admin.example.com", "*.ops.example.com"] }}
    auth: [bearer, basic]
    scopes_any: [admin, ops]
    upstream: echo
    strip_prefix: /admin
  - name: partner
    match: {{ path: "/hosted/**", hosts: ["partner.example.com"] }}
    auth: none
    upstream: echo
  - name: hosted
    match: {{ path: "/hosted/**" }}
    auth: bearer
    upstream: echo
"""


def route_lines(text: str) -> dict[str, int]:
    """1-based line of each route's `- name:` line."""
    out = {}
    in_routes = False
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("routes:"):
            in_routes = True
        m = re.match(r"\s*- name: (\S+)", line)
        if in_routes and m:
            out[m.group(1)] = n
    return out


@pytest.fixture(scope="module")
def env(module_spawner):
    up = module_spawner.echo()
    text = config_text(up.url)
    path = module_spawner.write(text, "agreement.yaml")
    gw = module_spawner.gateway(text, env=ENV, name="agreement-serve.yaml")
    return {"config": path, "text": text, "gw": gw, "minted": {}}


# ---------------------------------------------------------------------------------------------
# The table


@dataclass
class Case:
    id: str
    method: str
    target: str
    expect: int | None                # the status the contract calls for (None: only agreement is pinned)
    token: str | None = None          # sent as Authorization: Bearer
    mint: tuple | None = None         # (sub, scope): check --mint-sub/--mint-scope; serve: `portcullis token`
    basic: str | None = None          # USER:PASS
    headers: list = field(default_factory=list)
    host: str | None = None           # Host header (check: -H 'Host: …')


T = token  # short alias for the table
_now = time.time


def _expired():
    return T(exp=int(_now()) - 3600, iat=int(_now()) - 7200)


CASES = [
    # routing and normalization
    Case("public-status", "GET", "/status", 200),
    Case("head-follows-get", "HEAD", "/status", 200),
    Case("post-status-405", "POST", "/status", 405),
    Case("no-route-404", "GET", "/nowhere", 404),
    Case("dot-segments-to-protected", "GET", "/status/../users/me", 401),
    Case("merged-slashes", "GET", "//users//me", 401),
    Case("unreserved-escape-decoded", "GET", "/users/%6De", 401),
    Case("encoded-slash-400", "GET", "/users%2Fme", 400),
    Case("encoded-backslash-400", "GET", "/users/me/items/%5Cx", 400),
    Case("climb-above-root-400", "GET", "/../status", 400),
    Case("dot-segment-parameter-400", "GET", "/maybe/..;/users/me", 400),
    Case("path-parameter-kept", "GET", "/maybe/a;v=1", 200),
    Case("query-not-matched", "GET", "/status?next=%2F..%2F&x=1", 200),
    Case("normalized-forwarded", "GET", "/users/me/items/a/./b/../c?q=1", 200, token=T(scope="me items")),
    # bearer
    Case("bearer-none", "GET", "/users/me", 401),
    Case("bearer-good", "GET", "/users/me", 200, token=T(scope="me")),
    Case("bearer-lowercase-scheme", "GET", "/users/me", 200, headers=[("Authorization", "bearer " + T(scope="me"))]),
    Case("bearer-missing-scope", "GET", "/users/me", 403, token=T(scope="items")),
    Case("bearer-expired", "GET", "/users/me", 401, token=_expired()),
    Case("bearer-not-yet-valid", "GET", "/users/me", 401, token=T(scope="me", nbf=int(_now()) + 3600)),
    Case("bearer-wrong-issuer", "GET", "/users/me", 401, token=T(scope="me", iss="https://evil.test")),
    Case("bearer-wrong-audience", "GET", "/users/me", 401, token=T(scope="me", aud="other")),
    Case("bearer-bad-signature", "GET", "/users/me", 401, token=T(scope="me", secret="x" * 48)),
    Case("bearer-unknown-kid", "GET", "/users/me", 401, token=T(scope="me", kid="nope")),
    Case("bearer-alg-not-pinned", "GET", "/users/me", 401, token=T(scope="me", alg="HS384")),
    Case("bearer-garbage", "GET", "/users/me", 401, token="abc.def.ghi"),
    Case("bearer-disabled-user", "GET", "/users/me", 401, token=T(sub="alice", scope="me")),
    Case("bearer-unknown-user", "GET", "/users/me", 401, token=T(sub="mallory", scope="me")),
    Case("auth-no-token-400", "GET", "/users/me", 400, headers=[("Authorization", "Bearer")]),
    Case("auth-bad-chars-400", "GET", "/users/me", 400, headers=[("Authorization", "Bearer a@b{c}")]),
    Case("auth-two-headers-400", "GET", "/users/me", 400,
         headers=[("Authorization", "Bearer " + T(scope="me")), ("Authorization", "Bearer " + T(scope="me"))]),
    Case("other-scheme-on-bearer", "GET", "/users/me", 401, headers=[("Authorization", "Token abc")]),
    Case("bearer-tab-separated-400", "GET", "/users/me", 400, headers=[("Authorization", "Bearer\t" + T(scope="me"))]),
    Case("items-good", "GET", "/users/me/items/", 200, token=T(scope="me items")),
    Case("items-missing-scope", "GET", "/users/me/items/", 403, token=T(scope="me")),
    Case("mint-items-good", "GET", "/users/me/items/x", 200, mint=("johndoe", "me items")),
    Case("mint-items-missing", "GET", "/users/me/items/x", 403, mint=("johndoe", "me")),
    # scopes_any and methods
    Case("scopes-any-ops", "GET", "/reports/7", 200, token=T(scope="ops")),
    Case("scopes-any-admin-delete", "DELETE", "/reports/7", 200, token=T(scope="admin me")),
    Case("scopes-any-neither", "GET", "/reports/7", 403, token=T(scope="me items")),
    Case("scopes-any-405", "PUT", "/reports/7", 405, token=T(scope="ops")),
    Case("param-one-segment-404", "GET", "/reports/7/x", 404, token=T(scope="ops")),
    # methods are case-sensitive tokens (RFC 9110 §9.1); a route without `methods` takes every method (§3)
    Case("extension-method-any-route", "PURGE", "/maybe/x", 200),
    # The server's HTTP parser (llhttp) only parses the methods it knows, so an unregistered one
    # cannot reach any route; serve and check both answer 400 (documented in docs/configuration.md).
    Case("unregistered-method-any-route", "FOO", "/maybe/x", None),
    # `get` is not `GET` (405 or 501 are both defensible); only agreement is pinned
    Case("lowercase-method-get-only-route", "get", "/status", None),
    # CONNECT with an origin-form target: whatever the decision, serve must answer as check says
    Case("connect-origin-form", "CONNECT", "/maybe/x", None),
    # authority-form is neither origin- nor absolute-form: 400 (§3.1)
    Case("connect-authority-form", "CONNECT", "admin.example.com:443", 400),
    Case("m-search", "M-SEARCH", "/status", 400),
    # optional
    Case("optional-anonymous", "GET", "/maybe/x", 200),
    Case("optional-good-token", "GET", "/maybe/x", 200, token=T(scope="me")),
    Case("optional-expired-token", "GET", "/maybe/x", 401, token=_expired()),
    # basic
    Case("basic-good", "GET", "/basic/x", 200, basic="johndoe:secret"),
    Case("basic-wrong-password", "GET", "/basic/x", 401, basic="johndoe:wrong"),
    Case("basic-unknown-user", "GET", "/basic/x", 401, basic="nobody:secret"),
    Case("basic-none", "GET", "/basic/x", 401),
    Case("basic-disabled-user", "GET", "/basic/x", 401, basic="alice:secretalice"),
    # api key
    Case("apikey-good", "GET", "/keyed/x", 200, headers=[("X-API-Key", API_KEY)]),
    Case("apikey-wrong", "GET", "/keyed/x", 401, headers=[("X-API-Key", API_KEY + "x")]),
    Case("apikey-none", "GET", "/keyed/x", 401),
    Case("apikey-in-query-not-accepted", "GET", f"/keyed/x?X-API-Key={API_KEY}", 401),
    # list [bearer, basic], hosts, strip_prefix
    Case("list-none", "GET", "/admin/stats", 401, host="admin.example.com"),
    Case("list-basic-ops", "GET", "/admin/stats", 200, basic="opsuser:secret", host="admin.example.com"),
    Case("list-basic-no-scope", "GET", "/admin/stats", 403, basic="johndoe:secret", host="admin.example.com"),
    Case("list-bearer-admin-wildcard-host", "GET", "/admin/stats", 200, token=T(scope="admin"),
         host="eu.ops.example.com"),
    Case("list-bearer-no-scope", "GET", "/admin/stats", 403, token=T(scope="me"), host="admin.example.com"),
    Case("list-bearer-expired", "GET", "/admin", 401, token=_expired(), host="admin.example.com"),
    Case("hosts-other-host-404", "GET", "/admin/stats", 404, token=T(scope="admin"), host="other.example.com"),
    Case("hosts-wildcard-needs-label-404", "GET", "/admin/stats", 404, token=T(scope="admin"),
         host="ops.example.com"),
    Case("absolute-form-host", "GET", "http://admin.example.com/admin/stats?y=2", 200, token=T(scope="ops")),
    Case("host-route-partner", "GET", "/hosted/a", 200, host="partner.example.com"),
    Case("host-route-case-and-port", "GET", "/hosted/a", 200, host="PARTNER.Example.com:8443"),
    Case("host-route-other", "GET", "/hosted/a", 401, host="api.example.com"),
    # RFC 9112 §3.2: a Host field that is not uri-host [":" port] is 400
    Case("host-port-not-digits-400", "GET", "/status", 400, host="a.example.com:abc"),
    Case("host-with-path-400", "GET", "/status", 400, host="a.example.com/x"),
    Case("host-empty-port-ok", "GET", "/status", 200, host="status.example.com:"),
    Case("absolute-form-bad-port-400", "GET", "http://status.example.com:abc/status", 400),
    Case("absolute-form-comma-400", "GET", "http://a,b/status", 400),
    # the token endpoint's path belongs to the gateway, ahead of every route
    Case("token-endpoint-get-405", "GET", "/token", 405),
    Case("token-endpoint-put-405", "PUT", "/token", 405),
    # an HS256 signing key is never published: no document, no route
    Case("jwks-not-published-hs256", "GET", "/.well-known/jwks.json", 404),
]


def _ids():
    seen = set()
    for c in CASES:
        assert c.id not in seen, c.id
        seen.add(c.id)
    return [c.id for c in CASES]


def test_table_is_big_enough():
    assert len(CASES) >= 40


def check_args(case: Case) -> list[str]:
    args: list[str] = []
    if case.token:
        args += ["--token", case.token]
    if case.mint:
        args += ["--mint-sub", case.mint[0], "--mint-scope", case.mint[1]]
    if case.basic:
        args += ["--basic", case.basic]
    if case.host:
        args += ["-H", f"Host: {case.host}"]
    for k, v in case.headers:
        args += ["-H", f"{k}: {v}"]
    return args


def live_headers(case: Case, env) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if case.host:
        headers.append(("Host", case.host))
    elif case.target.startswith("http://"):
        headers.append(("Host", case.target.split("/")[2]))
    if case.token:
        headers.append(("Authorization", "Bearer " + case.token))
    if case.mint:
        key = case.mint
        if key not in env["minted"]:
            env["minted"][key] = mint_cli(env["config"], *key)
        headers.append(("Authorization", "Bearer " + env["minted"][key]))
    if case.basic:
        user, _, pw = case.basic.partition(":")
        headers.append(("Authorization", basic(user, pw)))
    headers += list(case.headers)
    return headers


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_check_and_serve_agree(env, case: Case):
    rc, data, proc = check_json(env["config"], case.method, case.target, check_args(case))
    assert data is not None, f"check --json printed no JSON object: rc={rc} stdout={proc.stdout!r} stderr={proc.stderr!r}"
    assert isinstance(data.get("status"), int), f"check --json status is not an integer: {data}"

    try:
        live = send(env["gw"].port, case.method, case.target, live_headers(case, env), timeout=3)
    except Exception as exc:  # noqa: BLE001 - a missing answer is a disagreement, reported below
        raise AssertionError(
            f"{case.method} {case.target}: serve gave no HTTP answer within 3 s ({type(exc).__name__}: {exc}); "
            f"check --json says status {data['status']} (rc={rc})") from None
    live_challenge = challenge_of(live)
    problems = []
    if live.status != data["status"]:
        problems.append(f"serve answered {live.status}, check --json says status {data['status']}")
    if live_challenge != data.get("challenge"):
        problems.append(f"serve WWW-Authenticate {live_challenge!r} != check challenge {data.get('challenge')!r}")
    want_rc = 0 if data["status"] == 200 else 1
    if rc != want_rc:
        problems.append(f"check exit code {rc} for status {data['status']} (contract §1: 0 forward, 1 denied)")
    if case.expect is not None and data["status"] != case.expect:
        problems.append(f"check decided {data['status']}, the contract calls for {case.expect}")
    if case.expect is not None and live.status != case.expect:
        problems.append(f"serve answered {live.status}, the contract calls for {case.expect}")
    if live.status == 200 and data["status"] == 200 and case.method != "HEAD":
        echo = json.loads(live.body)
        seen = echo["path"] + ("?" + echo["query"] if echo.get("query") else "")
        if data.get("upstream_path") is not None and seen != data["upstream_path"]:
            problems.append(f"upstream saw {seen!r}, check says upstream_path {data['upstream_path']!r}")
        ident = {k: v for k, v in echo["headers"] if k.lower().startswith("x-auth-")}
        want_ident = data.get("identity_headers") or {}
        if {k.lower(): v for k, v in ident.items()} != {k.lower(): v for k, v in want_ident.items()}:
            problems.append(f"upstream identity headers {ident} != check identity_headers {want_ident}")
    assert not problems, (
        f"{case.method} {case.target} headers={live_headers(case, env)!r}\n  - " + "\n  - ".join(problems)
        + f"\ncheck: {json.dumps(data)}\nserve: {live!r}")


# ---------------------------------------------------------------------------------------------
# Exit codes and the text trace


def test_check_exit_code_2_on_broken_config(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\nupstreams:\n  u: { url: \"http://127.0.0.1:1\" }\nroutes:\n"
                   "  - name: r\n    match: { path: /x }\n    auth: bearer\n    upstream: u\n    scopez: [me]\n")
    proc = run(["check", "--config", str(bad), "--json", "GET", "/x"])
    assert proc.returncode == 2, f"rc={proc.returncode} stdout={proc.stdout!r} stderr={proc.stderr!r}"
    assert re.search(re.escape(str(bad)) + r":9:5: error:", proc.stderr) or \
        re.search(r"broken\.yaml:9:5: error:", proc.stderr), proc.stderr
    proc = run(["check", "--config", str(bad), "GET", "/x"])
    assert proc.returncode == 2, f"text mode rc={proc.returncode}"


def test_check_text_names_route_and_file_line(env):
    lines = route_lines(env["text"])
    cfg: Path = env["config"]
    for route, method, target, args, forwarded in [
        ("my-items", "GET", "/users/me/items/", ["--mint-sub", "johndoe", "--mint-scope", "me items"], True),
        ("reports", "GET", "/reports/1", ["--token", token(scope="me")], False),
        ("admin", "GET", "/admin/x", ["-H", "Host: admin.example.com"], False),
    ]:
        proc = run(["check", "--config", str(cfg), *args, method, target])
        out = proc.stdout
        assert proc.returncode == (0 if forwarded else 1), f"{route}: rc={proc.returncode}\n{out}{proc.stderr}"
        assert re.search(rf"\b{re.escape(route)}\b", out), f"route name {route!r} missing:\n{out}"
        want = f":{lines[route]}"
        assert (f"{cfg}{want}" in out) or (f"{cfg.name}{want}" in out), (
            f"expected FILE:LINE {cfg.name}{want} (the route's '- name:' line) in:\n{out}")
        if forwarded:
            assert re.search(r"\b(allow|forward)", out, re.I), out
            assert "k1" in out, f"the kid that verified the token is not shown:\n{out}"
            assert "X-Auth-Subject" in out and "johndoe" in out, out
        else:
            assert re.search(r"\b(deny|refuse)", out, re.I), out


def test_check_text_relative_config_path(env):
    cfg: Path = env["config"]
    line = route_lines(env["text"])["me"]
    proc = run_in(cfg.parent, ["check", "--config", cfg.name, "GET", "/users/me"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{cfg.name}:{line}" in proc.stdout, proc.stdout


def run_in(cwd: Path, args):
    e = dict(os.environ)
    e.update(ENV)
    return subprocess.run([PORTCULLIS_BIN, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)


def test_check_text_expired_token_names_exp(env):
    expired = token(scope="me", exp=int(_now()) - 3600, iat=int(_now()) - 7200)
    proc = run(["check", "--config", str(env["config"]), "--token", expired, "GET", "/users/me"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"\bexp\b", proc.stdout), f"the trace of an expired token does not name exp:\n{proc.stdout}"
    assert 'error="invalid_token"' in proc.stdout, proc.stdout


def test_check_now_moves_time(env):
    tok = token(scope="me", ttl=600)
    ok = run(["check", "--config", str(env["config"]), "--token", tok, "GET", "/users/me"])
    later = run(["check", "--config", str(env["config"]), "--token", tok, "--now", "2099-01-01T00:00:00Z",
                 "--json", "GET", "/users/me"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert later.returncode == 1, later.stdout + later.stderr
    data = json.loads(later.stdout)
    assert data["status"] == 401 and 'error="invalid_token"' in data["challenge"], data
