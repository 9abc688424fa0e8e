"""`portcullis test --coverage`: which outcomes of each route (allow, 401, 403) the cases reach,
the figure, `--min-coverage`, the JUnit skipped cases and `--json` (contract §7, §13)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import REPO
from ops_support import JOHNDOE_HASH, LOCAL_TOKEN_ENDPOINT, REALM, q, run, trusted_issuer_and_johndoe

DEPLOY_KEY = "ak_" + secrets.token_hex(20)
READ_KEY = "ak_" + secrets.token_hex(20)


def sha(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# Every kind of route. Outcomes (contract §13): none 1, optional 2 (with scopes too), every other
# route 3 (the bare route refuses on a claim condition): 23 in all.
CONFIG = f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
{trusted_issuer_and_johndoe()}
  - username: root
    password_hash: {q(JOHNDOE_HASH)}
    scopes: [admin]
api_keys:
  - name: deployer
    key_hash: {q(sha(DEPLOY_KEY))}
    scopes: [deploy]
  - name: reader
    key_hash: {q(sha(READ_KEY))}
    scopes: [items]
{LOCAL_TOKEN_ENDPOINT}
upstreams:
  echo: {{ url: "http://127.0.0.1:9" }}
routes:
  - name: status
    match: {{ path: /status, methods: [GET] }}
    auth: none
    upstream: echo
  - name: maybe
    match: {{ path: /maybe }}
    auth: optional
    upstream: echo
  - name: maybe-scoped
    match: {{ path: /maybe-scoped }}
    auth: optional
    scopes: [me]
    upstream: echo
  - name: profile
    match: {{ path: /profile }}
    auth: bearer
    scopes: [me]
    upstream: echo
  - name: admin
    match: {{ path: "/admin/**" }}
    auth: basic
    scopes: [admin]
    upstream: echo
  - name: keyed
    match: {{ path: "/keyed/**" }}
    auth: api_key
    scopes: [deploy]
    upstream: echo
  - name: either
    match: {{ path: /either }}
    auth: [bearer, basic]
    scopes_any: [ops, admin]
    upstream: echo
  - name: bare
    match: {{ path: /bare }}
    auth: bearer
    claims:
      - {{ claim: scope, contains: ops }}
    upstream: echo
  - name: shadow
    match: {{ path: /shadow }}
    auth: bearer
    scopes: [ops]
    upstream: echo
    mode: dry-run
"""

OUTCOMES = {
    "status": ["allow"],
    "maybe": ["allow", "401"],
    "maybe-scoped": ["allow", "401"],
    "profile": ["allow", "401", "403"],
    "admin": ["allow", "401", "403"],
    "keyed": ["allow", "401", "403"],
    "either": ["allow", "401", "403"],
    "bare": ["allow", "401", "403"],
    "shadow": ["allow", "401", "403"],
}
TOTAL = 23

# Ten outcomes, some twice, plus answers that are no route's outcome (404, 405, 400).
PARTIAL = f"""cases:
  - name: status is public
    request: {{ path: /status }}
    expect: {{ status: 200, route: status }}
  - name: a bad token on an optional route
    request: {{ path: /maybe }}
    bearer: not.a.jwt
    expect: {{ status: 401, route: maybe }}
  - name: no token on the profile
    request: {{ path: /profile }}
    expect: {{ status: 401, route: profile }}
  - name: no token on the profile again
    request: {{ path: /profile }}
    expect: {{ status: 401 }}
  - name: the profile without the me scope
    request: {{ path: /profile }}
    token: {{ sub: johndoe, scope: items }}
    expect: {{ status: 403, route: profile }}
  - name: johndoe is no admin
    request: {{ path: /admin/x }}
    basic: {{ username: johndoe, password: secret }}
    expect: {{ status: 403, route: admin }}
  - name: the deploy key
    request: {{ path: /keyed/x, headers: {{ X-API-Key: {DEPLOY_KEY} }} }}
    expect: {{ status: 200, route: keyed }}
  - name: either without credentials
    request: {{ path: /either }}
    expect: {{ status: 401, route: either }}
  - name: a token with ops on the bare route
    request: {{ path: /bare }}
    token: {{ sub: johndoe, scope: ops }}
    expect: {{ status: 200, route: bare }}
  - name: a token without ops on the bare route
    request: {{ path: /bare }}
    token: {{ sub: johndoe, scope: me }}
    expect: {{ status: 403, route: bare }}
  - name: shadow mode reports what enforcement answers
    request: {{ path: /shadow }}
    token: {{ sub: johndoe, scope: me }}
    expect: {{ status: 403, route: shadow }}
  - name: an optional route refuses a token without its scopes
    request: {{ path: /maybe-scoped }}
    token: {{ sub: johndoe, scope: items }}
    expect: {{ status: 403, route: maybe-scoped }}
  - name: nothing else
    request: {{ path: /elsewhere }}
    expect: {{ status: 404 }}
  - name: no POST on the status page
    request: {{ method: POST, path: /status }}
    expect: {{ status: 405 }}
  - name: an encoded slash
    request: {{ path: /profile%2Fx }}
    expect: {{ status: 400 }}
"""
N_PARTIAL = 15
PARTIAL_REACHED = {
    "status": ["allow"],
    "maybe": ["401"],
    "maybe-scoped": [],  # an optional route's 403 is no outcome of it
    "profile": ["401", "403"],
    "admin": ["403"],
    "keyed": ["allow"],
    "either": ["401"],
    "bare": ["allow", "403"],
    "shadow": ["403"],
}
PARTIAL_COVERED = 10  # 10 of 23 is 43.478…%: printed 43.4, rounded down

FULL = PARTIAL + f"""  - name: anonymous on the optional route
    request: {{ path: /maybe }}
    expect: {{ status: 200, route: maybe }}
  - name: anonymous on the scoped optional route
    request: {{ path: /maybe-scoped }}
    expect: {{ status: 200, route: maybe-scoped }}
  - name: a bad token on the scoped optional route
    request: {{ path: /maybe-scoped }}
    bearer: not.a.jwt
    expect: {{ status: 401, route: maybe-scoped }}
  - name: the profile with its scope
    request: {{ path: /profile }}
    token: {{ sub: johndoe, scope: me }}
    expect: {{ status: 200, route: profile }}
  - name: root is an admin
    request: {{ path: /admin/x }}
    basic: {{ username: root, password: secret }}
    expect: {{ status: 200, route: admin }}
  - name: the admin area without credentials
    request: {{ path: /admin/x }}
    expect: {{ status: 401, route: admin }}
  - name: a wrong key
    request: {{ path: /keyed/x, headers: {{ X-API-Key: ak_wrong }} }}
    expect: {{ status: 401, route: keyed }}
  - name: a key without the deploy scope
    request: {{ path: /keyed/x, headers: {{ X-API-Key: {READ_KEY} }} }}
    expect: {{ status: 403, route: keyed }}
  - name: either with an admin password
    request: {{ path: /either }}
    basic: {{ username: root, password: secret }}
    expect: {{ status: 200, route: either }}
  - name: either with a token that has neither scope
    request: {{ path: /either }}
    token: {{ sub: johndoe, scope: me }}
    expect: {{ status: 403, route: either }}
  - name: no token on the bare route
    request: {{ path: /bare }}
    expect: {{ status: 401, route: bare }}
  - name: shadow mode with the scope
    request: {{ path: /shadow }}
    token: {{ sub: johndoe, scope: ops }}
    expect: {{ status: 200, route: shadow }}
  - name: shadow mode without a token
    request: {{ path: /shadow }}
    expect: {{ status: 401, route: shadow }}
"""
N_FULL = N_PARTIAL + 13

FAILING = """cases:
  - name: status is public
    request: { path: /status }
    expect: { status: 200 }
  - name: wrong on purpose
    request: { path: /profile }
    expect: { status: 200 }
"""

# insufficient_scope_status: 401 sends the scope refusal as 401; it is still the 403 outcome.
CONFIG_401 = CONFIG.replace('  realm: "', '  insufficient_scope_status: 401\n  realm: "', 1)
SCOPE_AS_401 = """cases:
  - name: a token without the me scope
    request: { path: /profile }
    token: { sub: johndoe, scope: items }
    expect: { status: 401, challenge: 'error="insufficient_scope"' }
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("coverage")
    (d / "gateway.yaml").write_text(CONFIG)
    (d / "gateway-401.yaml").write_text(CONFIG_401)
    (d / "partial.yaml").write_text(PARTIAL)
    (d / "full.yaml").write_text(FULL)
    (d / "failing.yaml").write_text(FAILING)
    (d / "scope-as-401.yaml").write_text(SCOPE_AS_401)
    return d


def ptest(folder: Path, *args, config="gateway.yaml"):
    return run(["test", "--config", str(folder / config), *args])


def lines_of(proc) -> list[str]:
    return [l for l in proc.stdout.split("\n") if l.strip()]


def name_lines(config_text: str) -> dict[str, int]:
    """The line of each route's `- name:` in the configuration."""
    found = {}
    for number, line in enumerate(config_text.split("\n"), start=1):
        m = re.fullmatch(r"  - name: (\S+)", line)
        if m and m.group(1) in OUTCOMES:
            found[m.group(1)] = number
    assert set(found) == set(OUTCOMES)
    return found


ROUTE_LINE = re.compile(r"^\s+(\S+)\s+(\S+):(\d+)\s+reached: (.+?)\s+not reached: (.+?)\s*$")


def route_lines(lines: list[str]) -> dict[str, tuple[str, int, list[str], list[str]]]:
    """name -> (file, line, reached, unreached) from the coverage block."""
    out = {}
    for line in lines:
        m = ROUTE_LINE.match(line)
        if m:
            def outcomes(text):
                return [] if text.strip() == "-" else text.split()
            out[m.group(1)] = (m.group(2), int(m.group(3)), outcomes(m.group(4)), outcomes(m.group(5)))
    return out


def figure(lines: list[str]) -> tuple[int, int, str]:
    found = [re.fullmatch(r"coverage: (\d+) of (\d+) outcomes \((\d+(?:\.\d)?)%\)", l.strip()) for l in lines]
    found = [m for m in found if m]
    assert len(found) == 1, "\n".join(lines)
    return int(found[0].group(1)), int(found[0].group(2)), found[0].group(3)


def test_partial_coverage_per_route_and_figure(folder):
    proc = ptest(folder, "--coverage", str(folder / "partial.yaml"))
    lines = lines_of(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert lines[-1] == f"{N_PARTIAL} passed, 0 failed", proc.stdout
    assert figure(lines) == (PARTIAL_COVERED, TOTAL, "43.4")
    routes = route_lines(lines)
    assert set(routes) == set(OUTCOMES), proc.stdout
    where = name_lines(CONFIG)
    for name, outcomes in OUTCOMES.items():
        file, line, reached, unreached = routes[name]
        assert Path(file).name == "gateway.yaml" and line == where[name], (name, file, line)
        assert reached == PARTIAL_REACHED[name], (name, reached)
        assert unreached == [o for o in outcomes if o not in PARTIAL_REACHED[name]], (name, unreached)
    # The coverage block follows every case line.
    last_case = max(i for i, l in enumerate(lines) if l.startswith(("PASS", "FAIL")))
    first_route = min(i for i, l in enumerate(lines) if ROUTE_LINE.match(l))
    assert last_case < first_route, proc.stdout


def test_full_coverage(folder):
    proc = ptest(folder, "--coverage", "--min-coverage", "100", str(folder / "full.yaml"))
    lines = lines_of(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert lines[-1] == f"{N_FULL} passed, 0 failed", proc.stdout
    assert figure(lines) == (TOTAL, TOTAL, "100.0")
    routes = route_lines(lines)
    for name, outcomes in OUTCOMES.items():
        assert routes[name][2] == outcomes and routes[name][3] == [], (name, routes[name])


def test_cases_of_several_files_add_up(folder):
    # PARTIAL twice adds nothing; FULL's own cases add the rest.
    proc = ptest(folder, "--coverage", str(folder / "partial.yaml"), str(folder / "partial.yaml"))
    assert figure(lines_of(proc))[:2] == (PARTIAL_COVERED, TOTAL)
    proc = ptest(folder, "--coverage", str(folder / "partial.yaml"), str(folder / "full.yaml"))
    assert figure(lines_of(proc))[:2] == (TOTAL, TOTAL)


def test_without_coverage_nothing_changes(folder):
    proc = ptest(folder, str(folder / "partial.yaml"))
    lines = lines_of(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(lines) == N_PARTIAL + 1, proc.stdout
    assert not [l for l in lines if "coverage" in l], proc.stdout


@pytest.mark.parametrize("minimum, code", [
    ("0", 0), ("40", 0), ("43.4", 0), ("43.47", 0),
    # The printed figure is rounded down; the threshold compares the exact share (43.478…%).
    ("43.48", 1), ("43.5", 1), ("50", 1), ("100", 1),
])
def test_threshold(folder, minimum, code):
    proc = ptest(folder, "--coverage", "--min-coverage", minimum, str(folder / "partial.yaml"))
    lines = lines_of(proc)
    assert proc.returncode == code, f"--min-coverage {minimum}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert lines[-1] == f"{N_PARTIAL} passed, 0 failed", proc.stdout
    assert figure(lines)[2] == "43.4"
    if code == 1:
        assert "below the minimum" in proc.stderr, proc.stderr


def test_min_coverage_implies_coverage(folder):
    proc = ptest(folder, "--min-coverage", "50", str(folder / "partial.yaml"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert figure(lines_of(proc))[:2] == (PARTIAL_COVERED, TOTAL)


def test_failing_case_still_exits_1_with_coverage_met(folder):
    proc = ptest(folder, "--coverage", "--min-coverage", "0", str(folder / "failing.yaml"))
    lines = lines_of(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert lines[-1] == "1 passed, 1 failed", proc.stdout
    # The failing case's decision counts: the profile's 401 was reached.
    assert route_lines(lines)["profile"][2] == ["401"], proc.stdout


@pytest.mark.parametrize("minimum", ["150", "-1", "lots"])
def test_bad_threshold_is_an_error(folder, minimum):
    proc = ptest(folder, "--coverage", "--min-coverage", minimum, str(folder / "partial.yaml"))
    assert proc.returncode == 2, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_errors_still_exit_2(folder, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: x\n    request: { path: /status }\n    expectt: { status: 200 }\n")
    proc = ptest(folder, "--coverage", "--min-coverage", "0", str(bad))
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_insufficient_scope_sent_as_401_is_the_403_outcome(folder):
    proc = ptest(folder, "--coverage", str(folder / "scope-as-401.yaml"), config="gateway-401.yaml")
    lines = lines_of(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert route_lines(lines)["profile"][2:] == (["403"], ["allow", "401"]), proc.stdout
    assert figure(lines)[:2] == (1, TOTAL)


def test_junit_skips_exactly_the_uncovered_outcomes(folder, tmp_path):
    junit = tmp_path / "coverage.xml"
    proc = ptest(folder, "--coverage", "--junit", str(junit), str(folder / "partial.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines_of(proc)[-1] == f"{N_PARTIAL} passed, 0 failed"
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    skipped = [c for c in cases if c.find("skipped") is not None]
    expected = {f"coverage: {name} {o}" for name, outcomes in OUTCOMES.items()
                for o in outcomes if o not in PARTIAL_REACHED[name]}
    assert len(expected) == TOTAL - PARTIAL_COVERED
    assert {c.get("name") for c in skipped} == expected
    assert len(skipped) == len(expected), "one testcase per uncovered outcome"
    for case in skipped:
        assert case.get("classname") == "coverage"
        assert case.find("skipped").get("message"), ET.tostring(case)
        assert case.find("failure") is None
    assert len(cases) == N_PARTIAL + len(expected)
    assert not [c for c in cases if c.find("failure") is not None]
    suites = list(root.iter("testsuite"))
    assert sum(int(s.get("tests", 0)) for s in suites) == N_PARTIAL + len(expected)
    assert sum(int(s.get("skipped", 0)) for s in suites) == len(expected)
    assert sum(int(s.get("failures", 0)) for s in suites) == 0
    for suite in suites:
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("skipped", 0)) == len([c for c in suite.findall("testcase") if c.find("skipped") is not None])


def test_junit_full_coverage_has_no_skipped_cases(folder, tmp_path):
    junit = tmp_path / "full.xml"
    proc = ptest(folder, "--coverage", "--junit", str(junit), str(folder / "full.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) == N_FULL
    assert not [c for c in cases if c.find("skipped") is not None]


def test_junit_without_coverage_has_no_coverage_cases(folder, tmp_path):
    junit = tmp_path / "plain.xml"
    ptest(folder, "--junit", str(junit), str(folder / "partial.yaml"))
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) == N_PARTIAL
    assert not [c for c in cases if c.get("classname") == "coverage"]


def test_json(folder):
    proc = ptest(folder, "--json", "--coverage", "--min-coverage", "50", str(folder / "partial.yaml"), str(folder / "failing.yaml"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)  # one object, nothing else on stdout
    assert [c["name"] for c in data["cases"]][:2] == ["status is public", "a bad token on an optional route"]
    assert len(data["cases"]) == N_PARTIAL + 2
    for case in data["cases"]:
        assert isinstance(case["passed"], bool) and isinstance(case["failures"], list)
        assert case["passed"] == (case["failures"] == [])
    wrong = [c for c in data["cases"] if c["name"] == "wrong on purpose"]
    assert len(wrong) == 1 and not wrong[0]["passed"] and "401" in wrong[0]["failures"][0]
    assert data["passed"] == N_PARTIAL + 1 and data["failed"] == 1
    coverage = data["coverage"]
    assert (coverage["covered"], coverage["total"]) == (PARTIAL_COVERED, TOTAL)
    assert coverage["percent"] == pytest.approx(43.4)
    assert coverage["min_coverage"] == 50 and coverage["meets_minimum"] is False
    where = name_lines(CONFIG)
    assert [r["name"] for r in coverage["routes"]] == list(OUTCOMES)
    for route in coverage["routes"]:
        name = route["name"]
        assert route["outcomes"] == OUTCOMES[name]
        assert route["reached"] == PARTIAL_REACHED[name]
        assert route["unreached"] == [o for o in OUTCOMES[name] if o not in PARTIAL_REACHED[name]]
        assert Path(route["file"]).name == "gateway.yaml" and route["line"] == where[name]


def test_json_without_coverage(folder):
    proc = ptest(folder, "--json", str(folder / "partial.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert "coverage" not in data
    assert data["passed"] == N_PARTIAL and data["failed"] == 0


def test_shipped_policy_tests_cover_every_outcome():
    proc = run(["test", "--config", str(REPO / "routes.yaml"), "--coverage", "--min-coverage", "100",
                str(REPO / "policy-tests.yaml")],
               env={"PORTCULLIS_JWT_SECRET": "an-arbitrary-secret-of-at-least-32-bytes!"})
    lines = lines_of(proc)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    covered, total, percent = figure(lines)
    assert covered == total and percent == "100.0", proc.stdout
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]
