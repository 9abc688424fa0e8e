"""`portcullis test`: case files, summary line, exit codes, JUnit XML (contract §1, §7, §9)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import REPO
from ops_support import API_KEY, API_KEY_SHA, JOHNDOE_HASH, LOCAL_TOKEN_ENDPOINT, REALM, q, run, trusted_issuer_and_johndoe

CONFIG = f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
{trusted_issuer_and_johndoe()}
api_keys:
  - name: ci-bot
    key_hash: {q(API_KEY_SHA)}
    scopes: [items]
{LOCAL_TOKEN_ENDPOINT}
upstreams:
  echo: {{ url: "http://127.0.0.1:9" }}
routes:
  - name: status
    match: {{ path: /status, methods: [GET] }}
    auth: none
    upstream: echo
  - name: me
    match: {{ path: /users/me }}
    auth: bearer
    scopes: [me]
    upstream: echo
  - name: my-items
    match: {{ path: "/users/me/items/**" }}
    auth: bearer
    scopes: [me, items]
    upstream: echo
  - name: admin
    match: {{ path: "/admin/**", hosts: ["admin.example.com"] }}
    auth: [bearer, basic]
    scopes_any: [admin, ops]
    upstream: echo
    strip_prefix: /admin
  - name: keyed
    match: {{ path: "/keyed/**" }}
    auth: api_key
    upstream: echo
"""

PASSING = f"""cases:
  - name: the status page is public
    request: {{ method: GET, path: /status }}
    expect: {{ status: 200, route: status, upstream_path: /status }}
  - name: no POST on the status page
    request: {{ method: POST, path: /status }}
    expect: {{ status: 405 }}
  - name: normalized before forwarding
    request: {{ method: GET, path: "/users/me/items/a/./b/../c?q=1" }}
    token: {{ sub: johndoe, scope: "me items" }}
    expect: {{ status: 200, route: my-items, upstream_path: "/users/me/items/a/c?q=1" }}
  - name: johndoe reads his profile
    request: {{ method: GET, path: /users/me }}
    token: {{ sub: johndoe, scope: "me" }}
    expect: {{ status: 200, route: me, headers: {{ X-Auth-Subject: johndoe, X-Auth-Scopes: me, X-Auth-Method: bearer }} }}
  - name: no token
    request: {{ method: GET, path: /users/me }}
    expect: {{ status: 401, challenge: 'Bearer realm="{REALM}", scope="me"' }}
  - name: missing a scope
    request: {{ method: GET, path: /users/me/items/ }}
    token: {{ sub: johndoe, scope: "me" }}
    expect: {{ status: 403, challenge: 'error="insufficient_scope"' }}
  - name: expired
    request: {{ method: GET, path: /users/me }}
    token: {{ sub: johndoe, scope: "me", ttl: 1m }}
    now: "2100-01-01T00:00:00Z"
    expect: {{ status: 401, challenge: 'error="invalid_token"' }}
  - name: raw garbage bearer
    request: {{ method: GET, path: /users/me }}
    bearer: not.a.jwt
    expect: {{ status: 401 }}
  - name: basic on the admin host, strip_prefix
    request: {{ method: GET, path: /admin/stats, headers: {{ Host: admin.example.com }} }}
    basic: {{ username: johndoe, password_env: JOHNDOE_PASSWORD }}
    expect: {{ status: 403, route: admin }}
  - name: the admin route lists both schemes
    request: {{ method: GET, path: /admin/stats, headers: {{ Host: admin.example.com }} }}
    expect: {{ status: 401, challenge: 'Basic realm="{REALM}"' }}
  - name: an api key
    request: {{ method: GET, path: /keyed/x, headers: {{ X-API-Key: {API_KEY} }} }}
    expect: {{ status: 200, route: keyed, headers: {{ X-Auth-Subject: ci-bot }} }}
  - name: an encoded slash
    request: {{ method: GET, path: /users%2Fme }}
    expect: {{ status: 400 }}
  - name: nothing else
    request: {{ method: GET, path: /elsewhere }}
    expect: {{ status: 404 }}
"""
N_PASSING = 13

FAILING = """cases:
  - name: right one
    request: { method: GET, path: /status }
    expect: { status: 200 }
  - name: wrong status on purpose
    request: { method: GET, path: /users/me }
    expect: { status: 200 }
  - name: another right one
    request: { method: GET, path: /nowhere }
    expect: { status: 404 }
  - name: wrong route on purpose
    request: { method: GET, path: /status }
    expect: { status: 200, route: me }
"""

MALFORMED = """cases:
  - name: fine
    request: { method: GET, path: /status }
    expect: { status: 200 }
  - name: has a typo
    request: { method: GET, path: /status }
    expect: { status: 200 }
    expectt: { status: 401 }
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("policy")
    (d / "gateway.yaml").write_text(CONFIG)
    (d / "passing.yaml").write_text(PASSING)
    (d / "failing.yaml").write_text(FAILING)
    (d / "malformed.yaml").write_text(MALFORMED)
    return d


def stdout_lines(proc) -> list[str]:
    return [l for l in proc.stdout.split("\n") if l.strip()]


def ptest(folder: Path, *args, env=None):
    return run(["test", "--config", str(folder / "gateway.yaml"), *args],
               env={"JOHNDOE_PASSWORD": "secret", **(env or {})})


def test_passing_cases(folder):
    proc = ptest(folder, str(folder / "passing.yaml"))
    lines = stdout_lines(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert lines, "no output"
    assert lines[-1].strip() == f"{N_PASSING} passed, 0 failed", f"last stdout line: {lines[-1]!r}\n{proc.stdout}"
    pass_lines = [l for l in lines if l.startswith("PASS")]
    assert len(pass_lines) == N_PASSING, proc.stdout
    assert not [l for l in lines if l.startswith("FAIL")], proc.stdout
    for name in ("the status page is public", "an api key", "expired"):
        assert any(name in l for l in pass_lines), f"no PASS line names {name!r}:\n{proc.stdout}"


def test_failing_case_exit_1_and_reason(folder):
    proc = ptest(folder, str(folder / "failing.yaml"))
    lines = stdout_lines(proc)
    assert proc.returncode == 1, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert lines[-1].strip() == "2 passed, 2 failed", f"last stdout line: {lines[-1]!r}"
    fails = [l for l in lines if l.startswith("FAIL")]
    assert len(fails) == 2, proc.stdout
    status_fail = [l for l in fails if "wrong status on purpose" in l]
    assert status_fail, proc.stdout
    assert "200" in status_fail[0] and "401" in status_fail[0], (
        f"the FAIL line must name the expected (200) and actual (401) status: {status_fail[0]!r}")
    assert status_fail[0].index("200") < status_fail[0].index("401") or re.search(
        r"expected\D*200.*got\D*401", status_fail[0]), status_fail[0]
    assert any("wrong route on purpose" in l and "me" in l and "status" in l for l in fails), proc.stdout
    assert len([l for l in lines if l.startswith("PASS")]) == 2, proc.stdout


def test_junit_xml(folder, tmp_path):
    junit = tmp_path / "out.xml"
    proc = ptest(folder, "--junit", str(junit), str(folder / "passing.yaml"), str(folder / "failing.yaml"))
    assert proc.returncode == 1, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert stdout_lines(proc)[-1].strip() == f"{N_PASSING + 2} passed, 2 failed", proc.stdout
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    failures = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert len(cases) == N_PASSING + 4, ET.tostring(root)[:2000]
    assert len(failures) == 2, ET.tostring(root)[:2000]
    assert {c.get("name") for c in failures} == {"wrong status on purpose", "wrong route on purpose"}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert sum(int(s.get("tests", 0)) for s in suites) == N_PASSING + 4
    assert sum(int(s.get("failures", 0)) for s in suites) == 2


def test_junit_all_passing(folder, tmp_path):
    junit = tmp_path / "ok.xml"
    proc = ptest(folder, "--junit", str(junit), str(folder / "passing.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == N_PASSING
    assert not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]


def test_malformed_case_file_exit_2(folder):
    path = folder / "malformed.yaml"
    proc = ptest(folder, str(path))
    assert proc.returncode == 2, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout + proc.stderr
    m = re.search(r"(\S*malformed\.yaml):(\d+):(\d+): error:", out)
    assert m, f"no FILE:LINE:COL: error: in output:\n{out}"
    assert Path(m.group(1)).name == "malformed.yaml"
    assert re.search(r"malformed\.yaml:8:5: error:.*expectt", out), (
        f"the unknown key 'expectt' is on line 8, column 5:\n{out}")


def test_shipped_policy_tests_pass():
    proc = run(["test", "--config", str(REPO / "routes.yaml"), str(REPO / "policy-tests.yaml")],
               env={"PORTCULLIS_JWT_SECRET": "an-arbitrary-secret-of-at-least-32-bytes!"})
    lines = stdout_lines(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    m = re.fullmatch(r"(\d+) passed, 0 failed", lines[-1].strip())
    assert m, f"last line {lines[-1]!r}"
    assert int(m.group(1)) == len([l for l in lines if l.startswith("PASS")]) >= 16
