"""`portcullis diff OLD NEW [CASES…] [--json]` (contract §13): one test per kind of change, each
detected, and cosmetic edits detected as no change. No secrets are set: the configurations use
a jwks_url issuer and a secret_env that is not in the environment."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness import PORTCULLIS_BIN

BASE = """version: 1
server:
  admin_listen: ""
  identity_headers: { subject: X-Auth-Subject }
jwt:
  issuers:
    - issuer: "https://idp.example"
      audiences: [api]
      algorithms: [RS256]
      jwks_url: "https://idp.example/keys"
      roles_claims: [realm_access.roles]
    - issuer: "https://other.example"
      algorithms: [HS256]
      keys: [{ kid: k1, secret_env: DIFF_TEST_SECRET_NOT_SET }]
upstreams:
  a: { url: "http://127.0.0.1:9001" }
  b: { url: "http://127.0.0.1:9002" }
routes:
  - name: reports
    match: { path: "/reports/{id}", methods: [GET] }
    scopes: [reports]
    upstream: a
  - name: billing
    match: { path: "/billing/**", hosts: ["*.example.com"] }
    roles: [billing]
    claims:
      - { claim: tenant, equals: acme }
    upstream: a
  - name: admin
    match: { path: "/admin/**" }
    issuers: ["https://idp.example"]
    upstream: a
    strip_prefix: /admin
  - name: docs
    match: { path: "/docs/**" }
    auth: none
    upstream: b
  - name: docs-private
    match: { path: "/docs/private" }
    upstream: b
"""


def run_diff(tmp_path, old: str, new: str, *extra):
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(new)
    env = {k: v for k, v in os.environ.items() if k != "DIFF_TEST_SECRET_NOT_SET"}
    out = subprocess.run([PORTCULLIS_BIN, "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--json", *extra],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert (out.returncode == 1) == bool(data["differences"]), out.stdout
    return data


def change(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


CHANGES = {
    "scope-added": (change(BASE, "scopes: [reports]", "scopes: [reports, audit]"), "reports", "closed"),
    "auth-weakened": (change(BASE, """    scopes: [reports]
    upstream: a""", """    auth: optional
    upstream: a"""), "reports", "opened"),
    "route-removed": (change(BASE, """  - name: reports
    match: { path: "/reports/{id}", methods: [GET] }
    scopes: [reports]
    upstream: a
""", ""), "reports", "refusal changed"),
    "order-swapped": (change(BASE, """  - name: docs
    match: { path: "/docs/**" }
    auth: none
    upstream: b
  - name: docs-private
    match: { path: "/docs/private" }
    upstream: b
""", """  - name: docs-private
    match: { path: "/docs/private" }
    upstream: b
  - name: docs
    match: { path: "/docs/**" }
    auth: none
    upstream: b
"""), "docs-private", "closed"),
    "upstream-changed": (change(BASE, """    strip_prefix: /admin
""", """    strip_prefix: /admin
""").replace("""  - name: admin
    match: { path: "/admin/**" }
    issuers: ["https://idp.example"]
    upstream: a""", """  - name: admin
    match: { path: "/admin/**" }
    issuers: ["https://idp.example"]
    upstream: b"""), "admin", "forward changed"),
    "strip-prefix-changed": (change(BASE, "    strip_prefix: /admin\n", ""), "admin", "forward changed"),
    "hosts-changed": (change(BASE, '["*.example.com"]', '["*.example.org"]'), None, None),
    "methods-changed": (change(BASE, "methods: [GET]", "methods: [GET, DELETE]"), None, None),
    "role-changed": (change(BASE, "roles: [billing]", "roles: [finance]"), "billing", None),
    "condition-changed": (change(BASE, "equals: acme", "equals: globex"), "billing", None),
    "issuers-changed": (change(BASE, 'issuers: ["https://idp.example"]', 'issuers: ["https://other.example"]'), "admin", None),
    "identity-header-renamed": (change(BASE, "{ subject: X-Auth-Subject }", "{ subject: X-User }"), None, "forward changed"),
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_each_kind_of_change_is_detected(tmp_path, kind):
    new, route, severity = CHANGES[kind]
    data = run_diff(tmp_path, BASE, new)
    assert data["differences"], f"{kind}: no difference found in {data['probes']} probes"
    if route is not None:
        assert any(d["route"] == route for d in data["differences"]), data["differences"]
    if severity is not None:
        assert any(d["kind"] == severity for d in data["differences"]), [d["kind"] for d in data["differences"]]
    # most severe first: an opened probe is never listed after a closed one
    order = ["opened", "closed", "forward changed", "refusal changed"]
    kinds = [order.index(d["kind"]) for d in data["differences"]]
    assert kinds == sorted(kinds), kinds


def test_cosmetic_edits_are_no_change(tmp_path):
    cosmetic = "# reviewed\n" + BASE.replace("  - name: docs\n    match: { path: \"/docs/**\" }\n    auth: none\n",
                                              "  # the public docs\n  - name: docs\n    auth: none\n    match: { path: \"/docs/**\" }\n")
    assert cosmetic != BASE
    data = run_diff(tmp_path, BASE, cosmetic)
    assert data["differences"] == [] and data["probes"] > 20, data


def test_the_scope_change_shows_both_answers(tmp_path):
    new, _, _ = CHANGES["scope-added"]
    data = run_diff(tmp_path, BASE, new)
    closed = [d for d in data["differences"] if d["kind"] == "closed"]
    assert closed and closed[0]["old"]["status"] == 200 and closed[0]["new"]["status"] == 403, closed
    assert closed[0]["old"]["upstream"].startswith("GET http://127.0.0.1:9001/reports/"), closed[0]
    assert 'scope="reports audit"' in closed[0]["new"]["challenge"]


def test_case_files_are_probes_too(tmp_path):
    cases = tmp_path / "cases.yaml"
    cases.write_text("""cases:
  - name: an odd path the generated probes would not try
    request: { method: GET, path: /reports/x/../7 }
    expect: { status: 401 }
""")
    new = CHANGES["route-removed"][0]
    data = run_diff(tmp_path, BASE, new, str(cases))
    assert any("an odd path" in d["probe"] for d in data["differences"]), data["differences"]


def test_text_output_and_errors(tmp_path):
    (tmp_path / "old.yaml").write_text(BASE)
    (tmp_path / "bad.yaml").write_text(BASE.replace("scopes: [reports]", "scopez: [reports]"))
    out = subprocess.run([PORTCULLIS_BIN, "diff", str(tmp_path / "old.yaml"), str(tmp_path / "bad.yaml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "bad.yaml:" in out.stderr and "error" in out.stderr, out.stdout + out.stderr
    (tmp_path / "new.yaml").write_text(CHANGES["scope-added"][0])
    out = subprocess.run([PORTCULLIS_BIN, "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stdout.splitlines()[0] == "route reports" and "closed: GET /reports/sample" in out.stdout, out.stdout
