"""Shadow mode (contract §7, §9; docs/configuration.md "Shadow mode").

A route with `mode: dry-run`, and the whole gateway with `serve --dry-run` / `server.dry_run`:
refusals are logged as `would_deny` with the status enforcement would have sent and counted in
/metrics, but the request is forwarded; identity headers only for valid credentials.
"""

from __future__ import annotations

import re
import uuid

import pytest

from ops_support import (
    trusted_issuer_and_johndoe,
    API_KEY, API_KEY_SHA, JOHNDOE_HASH, basic,
    AUDIENCE, ENV, ISSUER, REALM, access_log, admin_port_of, check_json, fetch_metrics, free_port, q, wait_until,
    run, send, token,
)

IDENTITY = ("x-auth-subject", "x-auth-scopes", "x-auth-method")


def config(upstream_url: str, *, admin_port: int, per_route_modes: bool = True, server_dry_run: bool = False) -> str:
    """per_route_modes: the shadow-* routes say `mode: dry-run` and `enforced` says `mode: enforce`;
    otherwise no route has a `mode` key (for the gateway-wide shadow mode)."""
    dry = "\n  dry_run: true" if server_dry_run else ""
    shadow = "\n    mode: dry-run" if per_route_modes else ""
    enforce = "\n    mode: enforce" if per_route_modes else ""
    return f"""version: 1
server:
  admin_listen: "127.0.0.1:{admin_port}"
  realm: "{REALM}"
  access_log: stdout
  shutdown_grace: 2s{dry}
{trusted_issuer_and_johndoe()}
api_keys:
  - {{ name: ci-bot, key_hash: {q(API_KEY_SHA)}, scopes: [items], in: header, param: X-API-Key }}
upstreams:
  rec: {{ url: {q(upstream_url)}, connect_timeout: 2s, timeout: 10s }}
routes:
  - name: shadow-basic
    match: {{ path: "/shadow-basic/**" }}
    auth: basic
    scopes: [admin]
    upstream: rec{shadow}
  - name: shadow-key
    match: {{ path: "/shadow-key/**" }}
    auth: api_key
    scopes: [admin]
    upstream: rec{shadow}
  - name: shadowed
    match: {{ path: "/shadow/**" }}
    auth: bearer
    scopes: [me, items]
    upstream: rec{shadow}
  - name: enforced
    match: {{ path: "/enforced/**" }}
    auth: bearer
    scopes: [me, items]
    upstream: rec{enforce}
"""


def mark() -> str:
    return uuid.uuid4().hex


def seen(rec, m: str):
    return [r for r in rec.snapshot() if m in r.target]


def ident(req) -> dict:
    return {k.lower(): v for k, v in req.headers if k.lower() in IDENTITY}


def log_for(gw, m_path: str, n_expected: int | None = None):
    """The access-log lines whose path is `m_path` (waits for them)."""

    wait_until(lambda: any(f'"{m_path}"' in l for l in list(gw.stdout_lines)), timeout=5,
               message=f"an access-log line for {m_path}")
    return [e for e in access_log(gw) if e.get("path") == m_path]


def warned(gw) -> list[str]:
    return [l for l in gw.stderr_lines
            if re.search(r"\bwarn(ing)?\b", l, re.I) and re.search(r"dry[ -]?run|shadow", l, re.I)]


# ---------------------------------------------------------------------------------------------
# A route in mode: dry-run next to one in enforce mode


@pytest.fixture(scope="module")
def route_shadow(module_spawner):
    rec = module_spawner.recorder()
    aport = free_port()
    gw = module_spawner.gateway(config(rec.url, admin_port=aport), env=ENV, name="route-shadow.yaml")
    return gw, rec, admin_port_of(gw)


def test_route_shadow_startup_warning(route_shadow):
    gw, _, _ = route_shadow
    lines = warned(gw)
    assert lines, "no warning-level start-up line saying dry run / shadow mode:\n" + "\n".join(gw.stderr_lines)


def test_route_shadow_forwards_without_credentials(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    path = f"/shadow/{m}"
    resp = send(gw.port, "GET", path + "?q=1", headers=[("X-Auth-Subject", "forged"), ("X-Auth-Method", "bearer")])
    assert resp.status == 200, f"a shadowed refusal must be forwarded: {resp!r}"
    got = seen(rec, m)
    assert len(got) == 1, f"the upstream saw {got}"
    assert ident(got[0]) == {}, f"identity headers without valid credentials: {ident(got[0])}"
    [line] = log_for(gw, path)
    assert line["decision"] == "would_deny", line
    assert line["status"] == 401, f"the would_deny line must carry the status enforcement would send: {line}"
    assert line["route"] == "shadowed", line


def test_route_shadow_invalid_token_forwarded_without_identity(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    path = f"/shadow/{m}"
    bad = token(scope="me items", secret="y" * 48)
    resp = send(gw.port, "GET", path, headers=[("Authorization", "Bearer " + bad)])
    assert resp.status == 200, resp
    [req] = seen(rec, m)
    assert ident(req) == {}, f"identity headers for an invalid token: {ident(req)}"
    [line] = log_for(gw, path)
    assert line["decision"] == "would_deny" and line["status"] == 401, line


def test_route_shadow_valid_token_lacking_scope_has_identity(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    path = f"/shadow/{m}"
    resp = send(gw.port, "GET", path, headers=[("Authorization", "Bearer " + token(sub="johndoe", scope="me"))])
    assert resp.status == 200, resp
    [req] = seen(rec, m)
    assert ident(req) == {"x-auth-subject": "johndoe", "x-auth-scopes": "me", "x-auth-method": "bearer"}, ident(req)
    [line] = log_for(gw, path)
    assert line["decision"] == "would_deny" and line["status"] == 403, line


def test_route_shadow_allowed_request_logged_allow(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    path = f"/shadow/{m}"
    resp = send(gw.port, "GET", path, headers=[("Authorization", "Bearer " + token(scope="me items"))])
    assert resp.status == 200, resp
    [req] = seen(rec, m)
    assert ident(req)["x-auth-subject"] == "johndoe"
    [line] = log_for(gw, path)
    assert line["decision"] == "allow" and line["status"] == 200, line


def test_enforced_route_next_to_it_still_refuses(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    path = f"/enforced/{m}"
    resp = send(gw.port, "GET", path)
    assert resp.status == 401, resp
    assert resp.header("WWW-Authenticate") == f'Bearer realm="{REALM}", scope="me items"', resp
    resp = send(gw.port, "GET", path, headers=[("Authorization", "Bearer " + token(scope="me"))])
    assert resp.status == 403, resp
    assert seen(rec, m) == [], "an enforce-mode refusal reached the upstream"
    lines = log_for(gw, path)
    assert [(l["decision"], l["status"]) for l in lines] == [("deny", 401), ("deny", 403)], lines


@pytest.mark.parametrize("what,path,headers,would,forbidden", [
    ("right password", "/shadow-basic/", [("Authorization", basic("johndoe", "secret"))], 403, "authorization"),
    ("wrong password", "/shadow-basic/", [("Authorization", basic("johndoe", "secreT"))], 401, "authorization"),
    ("right key", "/shadow-key/", [("X-API-Key", API_KEY)], 403, "x-api-key"),
    # The last hex digit changed (the key is random, so "0" alone would sometimes be the key).
    ("wrong key", "/shadow-key/", [("X-API-Key", API_KEY[:-1] + ("1" if API_KEY.endswith("0") else "0"))], 401,
     "x-api-key"),
])
def test_route_shadow_never_forwards_basic_or_header_key(route_shadow, what, path, headers, would, forbidden):
    """docs/configuration.md: forward_authorization defaults to false for Basic and API-key credentials,
    and "a key sent in a header is not forwarded unless the route sets forward_authorization: true".
    Shadow mode forwards the request, but must not hand the upstream a password or key it would
    never see in enforce mode — right or wrong (a wrong password is often a near-miss of the real one)."""
    gw, rec, _ = route_shadow
    m = mark()
    resp = send(gw.port, "GET", path + m, headers=headers)
    assert resp.status == 200, resp
    [req] = seen(rec, m)
    leaked = [(k, v) for k, v in req.headers if k.lower() == forbidden]
    assert not leaked, f"{what}: the upstream received {leaked} on a shadowed {path} route"
    [line] = log_for(gw, path + m)
    assert line["decision"] == "would_deny" and line["status"] == would, line


def test_route_shadow_unmatched_not_forwarded(route_shadow):
    gw, rec, _ = route_shadow
    m = mark()
    resp = send(gw.port, "GET", f"/elsewhere/{m}")
    assert resp.status == 404, resp
    assert seen(rec, m) == []


def test_route_shadow_metrics_count_would_deny(route_shadow):
    gw, _, aport = route_shadow
    m = mark()
    n = 3
    _, before = fetch_metrics(aport)
    for i in range(n):
        assert send(gw.port, "GET", f"/shadow/{m}/{i}").status == 200
    def key(name, labels):
        return name, tuple(sorted(labels.items()))
    old = {key(n_, l_): v for n_, l_, v in before}

    def measure():
        text, after = fetch_metrics(aport)
        series = [(name, labels, v) for name, labels, v in after
                  if "would_deny" in name or any("would_deny" in str(x) for x in labels.values())]
        deltas = {key(n_, l_): v - old.get(key(n_, l_), 0.0) for n_, l_, v in series}
        return text, series, deltas
    try:
        wait_until(lambda: n in measure()[2].values(), timeout=3, message="the would_deny counter")
    except AssertionError:
        pass  # reported precisely below
    text, series, deltas = measure()
    assert series, f"no /metrics series mentions would_deny:\n{text[:3000]}"
    assert n in deltas.values(), (
        f"sent {n} would_deny requests to one route; no would_deny series grew by exactly {n}: {deltas}")


def test_check_reports_enforced_decision_for_shadow_route(route_shadow):
    gw, _, _ = route_shadow
    rc, data, proc = check_json(gw.config_path, "GET", "/shadow/x")
    assert data is not None, proc.stdout + proc.stderr
    assert data["status"] == 401, data
    text = run(["check", "--config", str(gw.config_path), "GET", "/shadow/x"])
    assert re.search(r"forward", text.stdout, re.I), (
        f"check should note that a shadow route forwards anyway (docs, Shadow mode):\n{text.stdout}")


# ---------------------------------------------------------------------------------------------
# The whole gateway in shadow mode: serve --dry-run, server.dry_run


@pytest.fixture(scope="module", params=["serve --dry-run", "server.dry_run"])
def global_shadow(module_spawner, request):
    rec = module_spawner.recorder()
    aport = free_port()
    if request.param == "serve --dry-run":
        text = config(rec.url, admin_port=aport, per_route_modes=False)
        gw = module_spawner.gateway(text, extra_args=["--dry-run"], env=ENV)
    else:
        text = config(rec.url, admin_port=aport, per_route_modes=False, server_dry_run=True)
        gw = module_spawner.gateway(text, env=ENV)
    assert "mode:" not in text
    return gw, rec, admin_port_of(gw)


def test_global_shadow_warns_and_forwards(global_shadow):
    gw, rec, aport = global_shadow
    assert warned(gw), "no warning-level start-up line saying dry run / shadow mode:\n" + "\n".join(gw.stderr_lines)
    m = mark()
    cases = [
        (f"/shadow/{m}/a", [], 401, {}),
        (f"/enforced/{m}/b", [], 401, {}),
        (f"/enforced/{m}/c", [("Authorization", "Bearer " + token(scope="me"))], 403,
         {"x-auth-subject": "johndoe", "x-auth-scopes": "me", "x-auth-method": "bearer"}),
        (f"/enforced/{m}/d", [("Authorization", "Bearer " + token(scope="me", aud="nope"))], 401, {}),
    ]
    for path, headers, would, want_ident in cases:
        resp = send(gw.port, "GET", path, headers=headers)
        assert resp.status == 200, f"{path}: shadow mode must forward: {resp!r}"
        reqs = [r for r in rec.snapshot() if r.target == path]
        assert len(reqs) == 1, f"{path}: upstream saw {reqs}"
        assert ident(reqs[0]) == want_ident, f"{path}: identity headers {ident(reqs[0])}"
        [line] = log_for(gw, path)
        assert line["decision"] == "would_deny" and line["status"] == would, line
    text, samples = fetch_metrics(aport)
    assert any("would_deny" in name or "would_deny" in labels.values() for name, labels, _ in samples), text[:2000]


def test_global_shadow_never_forwards_unmatched_or_bad_targets(global_shadow):
    gw, rec, _ = global_shadow
    m = mark()
    assert send(gw.port, "GET", f"/nowhere/{m}").status == 404
    assert send(gw.port, "GET", f"/shadow/{m}%2Fx").status == 400
    assert [r for r in rec.snapshot() if m in r.target] == []


def test_a_reload_that_turns_shadow_mode_on_warns_like_a_start(spawner):
    """A reload can open every route as surely as a restart with --dry-run: it must not do so
    silently. (The SIGHUP follows the start at once: it must be a reload, not the end.)"""
    from ops_support import sighup

    rec = spawner.recorder()
    aport = free_port()
    gw = spawner.gateway(config(rec.url, admin_port=aport, per_route_modes=False), env=ENV, name="reload-shadow.yaml")
    assert not warned(gw), gw.stderr_lines
    gw.config_path.write_text(config(rec.url, admin_port=aport, per_route_modes=False, server_dry_run=True))
    sighup(gw)
    wait_until(lambda: any("reloaded" in line for line in gw.stderr_lines), timeout=10, message="the reload")
    assert warned(gw), "no shadow-mode warning after the reload:\n" + "\n".join(gw.stderr_lines)
