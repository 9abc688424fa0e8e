"""`check` and `test` refuse what `serve` refuses before deciding, say when only the network
could decide, and report their own failures as errors (contract §1, §7, §9)."""

from __future__ import annotations


from jwt_support import claims, keypair, mint
from ops_support import ENV, LOCAL_TOKEN_ENDPOINT, REALM, check_json, q, run, send, trusted_issuer_and_johndoe

REMOTE = "https://remote.example"
# The trusted HS256 issuer, an RS256 issuer whose keys only its jwks_url knows, and the users.
REMOTE_ISSUER = f"""    - issuer: {q(REMOTE)}
      algorithms: [RS256]
      jwks_url: "http://127.0.0.1:9/jwks.json"
"""
JWT_AND_USERS = trusted_issuer_and_johndoe().replace("users:", REMOTE_ISSUER + "users:", 1)

CONFIG = f"""version: 1
server:
  admin_listen: ""
  realm: "{REALM}"
{JWT_AND_USERS}
{LOCAL_TOKEN_ENDPOINT}
upstreams:
  echo: {{ url: "http://127.0.0.1:9" }}
routes:
  - name: hosted
    match: {{ path: "/h/**", hosts: ["*.example.com"], methods: [GET] }}
    auth: none
    upstream: echo
  - name: me
    match: {{ path: /users/me }}
    auth: bearer
    scopes: [me]
    upstream: echo
"""


def config_file(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(CONFIG)
    return path


def test_two_host_fields_are_refused_as_serve_refuses_them(tmp_path, spawner):
    path = config_file(tmp_path)
    code, data, proc = check_json(path, "GET", "/h/a", ["-H", "Host: x.example.com", "-H", "Host: y.example.com"])
    assert code == 1 and data["status"] == 400 and data["reason"] == "bad_host", proc.stdout + proc.stderr
    code, data, proc = check_json(path, "GET", "/h/a", ["-H", "Host: x.example.com, y.example.com"])
    assert code == 1 and data["status"] == 400, proc.stdout + proc.stderr
    # serve, on the same file, gives the same status
    up = spawner.echo()
    gw = spawner.gateway(CONFIG.replace('"http://127.0.0.1:9"', q(up.url)), name="hosts.yaml", env=ENV)
    resp = send(gw.port, "GET", "/h/a", headers=[("Host", "x.example.com"), ("Host", "y.example.com")])
    assert resp.status == 400
    # and a case file describing the same request fails its 200 expectation
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: two hosts\n    request: { method: GET, path: /h/a, "
                     "headers: { host: y.example.com, Host: x.example.com } }\n    expect: { status: 400 }\n")
    proc = run(["test", "--config", str(path), str(cases)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"


def test_a_control_character_in_a_field_is_a_400(tmp_path):
    code, data, proc = check_json(config_file(tmp_path), "GET", "/h/a", ["-H", "Host: x.example.com", "-H", "X-A: a\x01b"])
    assert code == 1 and data["status"] == 400, proc.stdout + proc.stderr


def test_a_kid_only_the_jwks_url_could_know_is_undecidable_offline(tmp_path):
    token = mint(keypair("rsa", "remote"), "RS256", "remote-1", claims(iss=REMOTE, aud=None, scope="me"))
    code, data, proc = check_json(config_file(tmp_path), "GET", "/users/me", ["--token", token])
    assert code == 2, (code, proc.stdout, proc.stderr)
    assert "offline" in proc.stderr and "jwks.json" in proc.stderr
    assert data is not None and data["status"] == 401  # the trace is still printed


def test_a_405_trace_carries_allow(tmp_path):
    code, data, proc = check_json(config_file(tmp_path), "POST", "/h/a", ["-H", "Host: x.example.com"])
    assert code == 1 and data["status"] == 405, proc.stdout
    assert data["headers"] == {"Allow": "GET, HEAD"}, proc.stdout
    text = run(["check", "--config", str(config_file(tmp_path)), "-H", "Host: x.example.com", "POST", "/h/a"])
    assert "Allow: GET, HEAD" in text.stdout, text.stdout


def test_now_accepts_lower_case_t_and_z(tmp_path):
    proc = run(["check", "--config", str(config_file(tmp_path)), "--now", "2030-01-01t00:00:00z",
                "-H", "Host: x.example.com", "GET", "/h/a"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_minted_token_is_issued_now_and_checked_at_now(tmp_path):
    """--now moves the clock the token is checked against, not the time it is issued: a token
    minted with the default 30 minutes has expired in 2100, in check as in test."""
    path = config_file(tmp_path)
    later = ["--mint-sub", "johndoe", "--mint-scope", "me", "--now", "2100-01-01T00:00:00Z"]
    code, data, proc = check_json(path, "GET", "/users/me", later)
    assert code == 1 and data["token_error"] == "expired", proc.stdout
    code, data, proc = check_json(path, "GET", "/users/me", later[:4])
    assert code == 0, proc.stdout + proc.stderr
    cases = tmp_path / "cases.yaml"
    cases.write_text('cases:\n  - name: later\n    request: { method: GET, path: /users/me }\n'
                     '    token: { sub: johndoe, scope: me }\n    now: "2100-01-01T00:00:00Z"\n    expect: { status: 401 }\n')
    proc = run(["test", "--config", str(path), str(cases)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_unwritable_junit_path_is_an_error_after_the_summary(tmp_path):
    path = config_file(tmp_path)
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: ok\n    request: { method: GET, path: /h/a, headers: { Host: a.example.com } }\n"
                     "    expect: { status: 200 }\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = run(["test", "--config", str(path), "--junit", str(blocker / "report.xml"), str(cases)])
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.strip().splitlines()[-1] == "1 passed, 0 failed", proc.stdout
    assert "JUnit" in proc.stderr and "NSCocoaErrorDomain" not in proc.stderr, proc.stderr


def test_a_case_with_both_password_and_password_env_is_an_error(tmp_path):
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: ambiguous\n    request: { method: GET, path: /users/me }\n"
                     "    basic: { username: johndoe, password: secret, password_env: HOME }\n"
                     "    expect: { status: 200 }\n")
    proc = run(["test", "--config", str(config_file(tmp_path)), str(cases)])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cases.yaml:4:" in proc.stderr, proc.stderr
