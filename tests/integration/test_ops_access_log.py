"""The access log (contract §8, §9): one JSON object per request on stdout, secrets never logged."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import uuid
from urllib.parse import urlencode

import pytest

from harness import PORTCULLIS_BIN
from ops_support import (
    trusted_issuer_and_johndoe,
    AUDIENCE, ENV, ISSUER, JOHNDOE_HASH, JWT_SECRET, REALM, access_log, q, send, token, wait_until,
)

REQUIRED = ("time", "request_id", "client", "method", "path", "route", "decision", "status", "duration_ms", "bytes")

PASSWORD = "pw-" + secrets.token_urlsafe(18)
WRONG_PASSWORD = "wrongpw-" + secrets.token_urlsafe(18)
KEY_HEADER = "kh_" + secrets.token_hex(20)
KEY_QUERY = "kq_" + secrets.token_hex(20)
KEY_COOKIE = "kc_" + secrets.token_hex(20)
QUERY_SECRET = "qs_" + secrets.token_hex(16)


def sha(k: str) -> str:
    return "sha256:" + hashlib.sha256(k.encode()).hexdigest()


def config(upstream_url: str, logcheck_hash: str) -> str:
    return f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
  access_log: stdout
  shutdown_grace: 2s
{trusted_issuer_and_johndoe()}
  - username: logcheck
    password_hash: {q(logcheck_hash)}
    scopes: [me]
api_keys:
  - {{ name: key-header, key_hash: {q(sha(KEY_HEADER))}, scopes: [items], in: header, param: X-API-Key }}
  - {{ name: key-query, key_hash: {q(sha(KEY_QUERY))}, scopes: [items], in: query, param: api_key }}
  - {{ name: key-cookie, key_hash: {q(sha(KEY_COOKIE))}, scopes: [items], in: cookie, param: session }}
token_endpoint:
  path: /token
  issuer: {q(ISSUER)}
  audience: {AUDIENCE}
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
  scopes: {{ me: Me., items: Items. }}
  store: "memory:"
upstreams:
  echo: {{ url: {q(upstream_url)}, connect_timeout: 2s, timeout: 10s }}
routes:
  - name: open
    match: {{ path: "/open/**" }}
    auth: none
    upstream: echo
  - name: me
    match: {{ path: /me }}
    auth: bearer
    scopes: [me]
    upstream: echo
  - name: basic
    match: {{ path: /basic }}
    auth: basic
    upstream: echo
  - name: keyed
    match: {{ path: "/k/**" }}
    auth: api_key
    upstream: echo
"""


@pytest.fixture(scope="module")
def gw(module_spawner):
    proc = subprocess.run([PORTCULLIS_BIN, "hash-password", "--password-stdin"], input=PASSWORD + "\n",
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    phc = proc.stdout.strip()
    assert phc.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), phc
    up = module_spawner.echo()
    return module_spawner.gateway(config(up.url, phc), env=ENV, extra_args=["--log-level", "debug"],
                                  name="access-log.yaml")


def form(body: dict) -> tuple[list, bytes]:
    data = urlencode(body).encode()
    return [("Content-Type", "application/x-www-form-urlencoded")], data


def test_access_log_lines_and_no_secrets(gw):
    good = token(sub="johndoe", scope="me items")
    forged = token(sub="johndoe", scope="me", secret="z" * 48)
    basic_good = "Basic " + base64.b64encode(f"logcheck:{PASSWORD}".encode()).decode()
    basic_bad = "Basic " + base64.b64encode(f"logcheck:{WRONG_PASSWORD}".encode()).decode()
    h_form, login_body = form({"username": "logcheck", "password": PASSWORD, "scope": "me"})
    _, bad_login_body = form({"username": "johndoe", "password": WRONG_PASSWORD})

    # (method, target, headers, body, expected status, expected route, subject or None)
    plan = [
        ("GET", f"/open/a?token={QUERY_SECRET}", [], b"", 200, "open", None),
        ("GET", "/me", [("Authorization", "Bearer " + good)], b"", 200, "me", "johndoe"),
        ("GET", "/me", [("Authorization", "Bearer " + forged)], b"", 401, "me", None),
        ("GET", "/me", [], b"", 401, "me", None),
        ("GET", "/basic", [("Authorization", basic_good)], b"", 200, "basic", "logcheck"),
        ("GET", "/basic", [("Authorization", basic_bad)], b"", 401, "basic", None),
        ("GET", "/k/h", [("X-API-Key", KEY_HEADER)], b"", 200, "keyed", "key-header"),
        ("GET", f"/k/q?api_key={KEY_QUERY}&x=1", [], b"", 200, "keyed", "key-query"),
        ("GET", "/k/c", [("Cookie", f"theme=dark; session={KEY_COOKIE}")], b"", 200, "keyed", "key-cookie"),
        ("GET", "/k/c", [("X-API-Key", KEY_HEADER + "0")], b"", 401, "keyed", None),
        ("GET", "/nowhere", [], b"", 404, None, None),
        ("GET", "/open/%2Fx", [], b"", 400, None, None),
        ("POST", "/token", h_form, login_body, 200, None, None),
        ("POST", "/token", h_form, bad_login_body, 400, None, None),
    ]
    issued: list[str] = []
    responses = []
    for method, target, headers, body, want, _, _ in plan:
        resp = send(gw.port, method, target, headers=headers, body=body)
        assert resp.status == want, f"{method} {target}: {resp!r}"
        responses.append(resp)
        if target == "/token" and resp.status == 200:
            answer = resp.json()
            issued.append(answer["access_token"])
            if answer.get("refresh_token"):
                issued.append(answer["refresh_token"])
    assert issued, "the password grant issued no token"

    # One more request; once its line is there every earlier line is too (requests were sequential).
    final = send(gw.port, "GET", "/open/final-marker")
    assert final.status == 200
    wait_until(lambda: any("/open/final-marker" in l for l in list(gw.stdout_lines)), timeout=5,
               message="the access-log line of the last request")
    entries = access_log(gw)  # every stdout line must be a JSON object
    assert len(entries) == len(plan) + 1, (
        f"{len(plan) + 1} requests sent, {len(entries)} access-log lines:\n" + "\n".join(gw.stdout_lines))

    unused = [e for e in entries if e.get("path") != "/open/final-marker"]
    assert len(unused) == len(plan), "\n".join(gw.stdout_lines)

    def entry_for(method, target, want, resp):
        rid = resp.header("X-Request-Id")
        for e in unused:
            if rid is not None and e.get("request_id") == rid:
                return e
        for e in unused:
            if (e.get("method"), e.get("path"), e.get("status")) == (method, target.split("?")[0], want):
                return e
        raise AssertionError(f"no access-log line for {method} {target} -> {want} (X-Request-Id {rid!r}):\n"
                             + "\n".join(gw.stdout_lines))

    for (method, target, headers, body, want, route, subject), resp in zip(plan, responses):
        entry = entry_for(method, target, want, resp)
        unused.remove(entry)
        missing = [k for k in REQUIRED if k not in entry]
        assert not missing, f"{method} {target}: access-log line lacks {missing}: {entry}"
        assert entry["method"] == method, entry
        assert entry["status"] == want, (method, target, entry)
        assert entry["path"] == target.split("?")[0], f"path must be the path without the query: {entry}"
        assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0, entry
        assert isinstance(entry["bytes"], int) and entry["bytes"] >= 0, entry
        assert isinstance(entry["time"], str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["time"]), entry
        assert str(entry["client"]).startswith("127.0.0.1"), entry
        assert isinstance(entry["request_id"], str) and entry["request_id"], entry
        rid = resp.header("X-Request-Id")
        if rid is not None:
            assert entry["request_id"] == rid, f"log request_id {entry['request_id']!r} != X-Request-Id {rid!r}"
        if route is not None:
            assert entry["route"] == route, entry
        if want == 200 and target != "/token":
            assert entry["decision"] == "allow", entry
        elif want != 200:
            assert entry["decision"] == "deny", entry
        if subject is not None:
            assert entry.get("subject") == subject, f"{method} {target}: authenticated line needs subject: {entry}"
    ids = [e["request_id"] for e in entries]
    assert len(set(ids)) == len(ids), "request ids repeat"

    secrets_sent = {
        "bearer token": good,
        "bearer token signature": good.split(".")[2],
        "forged token": forged,
        "forged token signature": forged.split(".")[2],
        "Basic password": PASSWORD,
        "wrong Basic password": WRONG_PASSWORD,
        "Basic credentials (base64)": basic_good.split(" ")[1],
        "wrong Basic credentials (base64)": basic_bad.split(" ")[1],
        "API key (header)": KEY_HEADER,
        "API key (query)": KEY_QUERY,
        "API key (cookie)": KEY_COOKIE,
        "secret in a query string": QUERY_SECRET,
        "JWT HMAC secret": JWT_SECRET,
    }
    for i, t in enumerate(issued):
        secrets_sent[f"issued token {i}"] = t
        secrets_sent[f"issued token {i} tail"] = t[-24:]
    stdout = "\n".join(gw.stdout_lines)
    stderr = "\n".join(gw.stderr_lines)
    leaks = [f"{what} in {where}" for what, value in secrets_sent.items()
             for where, text in (("stdout", stdout), ("stderr", stderr)) if value in text]
    assert not leaks, "secrets logged: " + ", ".join(leaks)
    assert not re.search(r"(?i)authorization\"?\s*[:=]\s*\"?(bearer|basic)\s", stdout + stderr), \
        "an Authorization value appears in the logs"


def test_userinfo_and_fragments_of_a_target_never_reach_the_log(gw):
    secret_user, secret_fragment = "pw-" + uuid.uuid4().hex, "frag-" + uuid.uuid4().hex
    for target in (f"http://johndoe:{secret_user}@gw.test/open/userinfo", f"/open/fragment#api_key={secret_fragment}"):
        resp = send(gw.port, "GET", target, headers=[("Host", "gw.test")])
        assert resp.status in (200, 400), resp
    marker = "/open/after-" + uuid.uuid4().hex
    assert send(gw.port, "GET", marker).status == 200
    wait_until(lambda: any(marker in l for l in list(gw.stdout_lines)), timeout=5, message="the marker's log line")
    text = "\n".join(gw.stdout_lines)
    assert secret_user not in text and secret_fragment not in text, text
    paths = [e.get("path") for e in access_log(gw)]
    assert "http://gw.test/open/userinfo" in paths and "/open/fragment" in paths, paths


def test_sigusr1_and_sighup_reopen_a_rotated_access_log_file(spawner, tmp_path):
    """logrotate moves the file away, then signals: new lines go to a new file of the old name."""
    import signal

    log = tmp_path / "access.log"
    up = spawner.echo()
    gw = spawner.gateway(f"""version: 1
server: {{ admin_listen: "", access_log: "{log}" }}
upstreams: {{ echo: {{ url: "{up.url}" }} }}
routes:
  - {{ name: open, match: {{ path: "/open/**" }}, auth: none, upstream: echo }}
""", name="rotate.yaml")

    def logged(path, marker):
        return path.exists() and marker in path.read_text()

    assert send(gw.port, "GET", "/open/first").status == 200
    wait_until(lambda: logged(log, "/open/first"), timeout=5, message="the first line")
    for number, sig in enumerate((signal.SIGUSR1, signal.SIGHUP), start=1):
        rotated = tmp_path / f"access.log.{number}"
        log.rename(rotated)
        gw.proc.send_signal(sig)
        wait_until(lambda: log.exists(), timeout=5, message=f"the access log reopened after {sig.name}")
        marker = f"/open/after-{sig.name}"
        assert send(gw.port, "GET", marker).status == 200
        wait_until(lambda: logged(log, marker), timeout=5, message=f"the line after {sig.name} in the new file")
        assert not logged(rotated, marker)
        assert gw.alive()
    assert logged(tmp_path / "access.log.1", "/open/first")
