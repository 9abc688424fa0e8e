"""Area 9: `portcullis validate` and `serve` on valid, invalid and suspicious configurations."""

import json
import os
import re
import subprocess

import pytest

from harness import PORTCULLIS_BIN, run_portcullis

VALID = """\
version: 1
server:
  admin_listen: ""
  realm: "R"
  max_request_body: 1MiB
  idle_timeout: 30s
upstreams:
  main:
    url: "http://127.0.0.1:9"
    timeout: 250ms
routes:
  - name: public
    match: { path: "/public/**", methods: [GET, POST] }
    auth: none
    upstream: main
  - name: private
    match: { path: "/private/{id}" }
    auth: bearer
    scopes: [read]
    upstream: main
"""


def replace_line(text: str, lineno: int, new: str) -> str:
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


def insert_after(text: str, lineno: int, new: str) -> str:
    lines = text.split("\n")
    lines.insert(lineno, new)
    return "\n".join(lines)


DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning): (?P<msg>.+)$")


def diagnostics(stderr: str, kind: str):
    out = []
    for line in stderr.splitlines():
        m = DIAG.match(line.strip())
        if m and m.group("kind") == kind:
            out.append(m)
    return out


def write(tmp_path, text, name="routes.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_error_at(tmp_path, text, line, words=()):
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    errors = diagnostics(res.stderr, "error")
    assert errors, f"no FILE:LINE:COL: error: line in stderr:\n{res.stderr}"
    for e in errors:
        assert e.group("file") in (str(path), path.name) or e.group("file").endswith("/" + path.name), e.group(0)
        assert int(e.group("col")) >= 1
    lines = [int(e.group("line")) for e in errors]
    assert line in lines, f"expected an error on line {line}, got {lines}:\n{res.stderr}"
    msg = " ".join(e.group("msg") for e in errors if int(e.group("line")) == line).lower()
    for w in words:
        assert w.lower() in msg, f"{w!r} not in error message {msg!r}"
    return res, path


def test_valid_config_exits_0(tmp_path):
    # With an external issuer that could carry the private route's scope, nothing is left to warn
    # about (without one, validate rightly warns that no credential could hold `read`).
    issuer = ('jwt:\n  issuers:\n    - { issuer: "https://idp.example", algorithms: [HS256],'
              ' keys: [ { kid: k, secret_env: PORTCULLIS_TEST_SECRET } ] }\n')
    path = write(tmp_path, VALID + issuer)
    res = run_portcullis(["validate", "--config", str(path)], env={"PORTCULLIS_TEST_SECRET": "x" * 32})
    assert res.returncode == 0, res.stderr
    assert diagnostics(res.stderr, "error") == []
    assert diagnostics(res.stderr, "warning") == []


def test_valid_config_json(tmp_path):
    path = write(tmp_path, VALID)
    res = run_portcullis(["validate", "--config", str(path), "--json"])
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)


def test_config_from_environment_variable(tmp_path):
    path = write(tmp_path, VALID, name="elsewhere.yaml")
    res = run_portcullis(["validate"], env={"PORTCULLIS_CONFIG": str(path)})
    assert res.returncode == 0, res.stderr
    bad = write(tmp_path, VALID.replace("timeout: 250ms", "timeout: soon"), name="bad.yaml")
    res = run_portcullis(["validate"], env={"PORTCULLIS_CONFIG": str(bad)})
    assert res.returncode == 2


def test_unknown_top_level_key(tmp_path):
    text = insert_after(VALID, 6, "listen_backlog: 5")  # new line 7
    assert_error_at(tmp_path, text, 7, words=["listen_backlog"])


def test_unknown_server_key(tmp_path):
    text = insert_after(VALID, 5, "  max_request_bodyy: 2MiB")  # new line 6
    assert_error_at(tmp_path, text, 6, words=["max_request_bodyy"])


def test_unknown_route_key_typo_of_scopes(tmp_path):
    # `scope:` instead of `scopes:` must not silently drop the scope requirement
    text = replace_line(VALID, 19, "    scope: [read]")
    assert_error_at(tmp_path, text, 19, words=["scope"])


def test_bad_duration(tmp_path):
    text = replace_line(VALID, 10, "    timeout: 30 seconds")
    assert_error_at(tmp_path, text, 10)


@pytest.mark.parametrize("value", ["10", "5x", "-1s", "1.5.2s"])
def test_bad_duration_values(tmp_path, value):
    text = replace_line(VALID, 6, f"  idle_timeout: {value}")
    assert_error_at(tmp_path, text, 6)


def test_bad_size(tmp_path):
    text = replace_line(VALID, 5, "  max_request_body: 10 megabytes")
    assert_error_at(tmp_path, text, 5)


def test_route_names_unknown_upstream(tmp_path):
    text = replace_line(VALID, 20, "    upstream: nowhere")
    assert_error_at(tmp_path, text, 20, words=["nowhere"])


def test_auth_typo_is_an_error(tmp_path):
    text = replace_line(VALID, 18, "    auth: bearr")
    assert_error_at(tmp_path, text, 18)


def test_wrong_type(tmp_path):
    text = replace_line(VALID, 14, "    auth: [none, 7]")
    res, _ = assert_error_at(tmp_path, text, 14)


def test_yaml_syntax_error(tmp_path):
    # a mapping value where none is allowed: the parser stops on line 5
    text = replace_line(VALID, 5, "   max_request_body: 1MiB: 2")
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 2, res.stderr
    errors = diagnostics(res.stderr, "error")
    assert [int(e.group("line")) for e in errors] == [5], res.stderr


def test_yaml_unclosed_flow_mapping(tmp_path):
    text = replace_line(VALID, 13, '    match: { path: "/public/**", methods: [GET, POST]')
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 2
    errors = diagnostics(res.stderr, "error")
    assert errors, res.stderr
    # libyaml notices the missing '}' at the next token, one line later at most
    assert int(errors[0].group("line")) in (13, 14), res.stderr


def test_several_errors_are_all_reported(tmp_path):
    text = replace_line(VALID, 10, "    timeout: forever")
    text = replace_line(text, 20, "    upstream: nowhere")
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 2
    lines = {int(e.group("line")) for e in diagnostics(res.stderr, "error")}
    assert {10, 20} <= lines, res.stderr


def test_invalid_json_output(tmp_path):
    path = write(tmp_path, replace_line(VALID, 20, "    upstream: nowhere"))
    res = run_portcullis(["validate", "--config", str(path), "--json"])
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert "20" in json.dumps(doc), doc


def test_missing_file_is_exit_2(tmp_path):
    res = run_portcullis(["validate", "--config", str(tmp_path / "does-not-exist.yaml")])
    assert res.returncode == 2
    assert res.stderr.strip()


def test_shadowed_route_warns_and_exits_0(tmp_path):
    text = VALID + (
        "  - name: never\n"  # line 21
        '    match: { path: "/private/reports", methods: [GET] }\n'  # /private/{id} takes every method
        "    auth: none\n"
        "    upstream: main\n"
    )
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 0, res.stderr
    warnings = diagnostics(res.stderr, "warning")
    assert warnings, res.stderr
    shadow = [w for w in warnings if "can never match" in w.group("msg")]
    assert shadow, res.stderr
    assert 21 <= int(shadow[0].group("line")) <= 24, shadow[0].group(0)
    assert diagnostics(res.stderr, "error") == []


def test_route_limited_by_method_is_not_shadowed(tmp_path):
    # /public/** only takes GET and POST, so a later DELETE route on /public/x can match.
    text = VALID + (
        "  - name: deleter\n"
        '    match: { path: "/public/x", methods: [DELETE] }\n'
        "    auth: bearer\n"
        "    upstream: main\n"
    )
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 0, res.stderr
    assert not [w for w in diagnostics(res.stderr, "warning") if "can never match" in w.group("msg")], res.stderr


@pytest.mark.parametrize(
    "lineno,new",
    [(10, "    timeout: 30 seconds"), (20, "    upstream: nowhere"), (2, "server: [")],
    ids=["bad-duration", "unknown-upstream", "yaml-syntax"],
)
def test_serve_exits_2_on_invalid_config(tmp_path, lineno, new):
    path = write(tmp_path, replace_line(VALID, lineno, new))
    proc = subprocess.Popen(
        [PORTCULLIS_BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert diagnostics(err, "error"), err
    assert "portcullis listening" not in err


@pytest.mark.parametrize("pattern", ["/public/%2F", "/public/a%5Cb", "/public/%00", "/public/%zz", "/public/%2E%2E"])
def test_a_pattern_no_request_can_match_is_an_error_at_its_line(tmp_path, pattern):
    """A percent-encoding every request is refused for (or that decodes to a dot-segment) would
    make the route dead: validate says so at the pattern's line."""
    path = write(tmp_path, replace_line(VALID, 13, f'    match: {{ path: "{pattern}", methods: [GET, POST] }}'))
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 2, res.stderr
    errors = diagnostics(res.stderr, "error")
    assert errors and errors[0].group("line") == "13", res.stderr


def test_escapes_in_a_pattern_match_as_requests_are_normalized(tmp_path):
    """`/enc/%3a/%7e` is stored as a normalized request would spell it (`/enc/%3A/~`)."""
    text = VALID.replace('"/public/**"', '"/enc/%3a/%7e"')
    path = write(tmp_path, text)
    assert run_portcullis(["validate", "--config", str(path)]).returncode == 0
    for target in ["/enc/%3a/%7e", "/enc/%3A/~", "/enc/%3a/%7E"]:
        res = run_portcullis(["check", "--config", str(path), "--json", "GET", target])
        assert res.returncode == 0, (target, res.stdout, res.stderr)
        assert json.loads(res.stdout)["route"]["name"] == "public", (target, res.stdout)


def test_an_alias_repeating_a_long_value_gives_a_small_report(tmp_path):
    """A 100 KB value repeated by 1,500 aliases once made a 150 MB report (and a reload logged it
    all): messages are capped in length and number."""
    lines = ["version: 1", "server:", '  realm: &b "' + "x" * 100_000 + '"',
             'upstreams: { u: { url: "http://127.0.0.1:9" } }', "routes:", "  - name: r",
             "    match: { path: /r, methods: [" + ", ".join(["*b"] * 1500) + "] }", "    upstream: u"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    res = run_portcullis(["validate", "--config", str(path)], timeout=60)
    assert res.returncode == 2, res.stderr[-500:]
    assert len(res.stderr) < 200_000, len(res.stderr)
    errors = diagnostics(res.stderr, "error")
    assert 1 < len(errors) <= 201, len(errors)
    assert any("only the first 200" in e.group("msg") for e in errors), res.stderr[-500:]


def test_a_byte_order_mark_is_allowed(tmp_path):
    """YAML allows a leading BOM, and Windows editors write one."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    res = run_portcullis(["validate", "--config", str(path)])
    assert res.returncode == 0, res.stderr


def test_a_refresh_token_store_that_cannot_be_opened_stops_serve_with_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    text = f"""version: 1
server: {{ admin_listen: "" }}
jwt:
  issuers:
    - {{ issuer: "https://gw", algorithms: [HS256], keys: [ {{ kid: k1, secret_env: S }} ] }}
token_endpoint: {{ issuer: "https://gw", signing_key: {{ alg: HS256, kid: k1, secret_env: S }}, store: "sqlite:file/db.sqlite" }}
upstreams: {{ u: {{ url: "http://127.0.0.1:9" }} }}
routes:
  - {{ name: r, match: {{ path: /r }}, auth: none, upstream: u }}
"""
    path = write(tmp_path, text)
    res = run_portcullis(["serve", "--config", str(path), "--listen", "127.0.0.1:0"],
                         env={"S": "secretsecretsecretsecretsecretsecret"})
    assert res.returncode == 2, res.stderr
    errors = diagnostics(res.stderr, "error")
    assert errors and errors[0].group("line") == "6" and "cannot start" in errors[0].group("msg"), res.stderr


def test_files_that_are_not_regular_files_are_errors_at_their_line(tmp_path):
    # /dev/zero as a secret and a FIFO without a writer as a JWKS file would make start-up read
    # forever or wait forever; a directory as users_file cannot be read at all.
    fifo = tmp_path / "jwks.fifo"
    os.mkfifo(fifo)
    (tmp_path / "users.d").mkdir()
    text = VALID.replace(
        "upstreams:\n",
        "jwt:\n"
        "  issuers:\n"
        '    - issuer: "https://a"\n'
        "      algorithms: [HS256]\n"
        "      keys: [ { kid: k1, secret_file: /dev/zero } ]\n"
        "      jwks_file: jwks.fifo\n"
        "users_file: users.d\n"
        "upstreams:\n",
    )
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)], timeout=20)
    assert res.returncode == 2, (res.returncode, res.stderr)
    errors = {int(e.group("line")): e.group("msg") for e in diagnostics(res.stderr, "error")}
    base = text.split("\n").index("jwt:") + 1
    assert "not a regular file" in errors.get(base + 4, ""), res.stderr
    assert "not a regular file" in errors.get(base + 5, ""), res.stderr
    assert "directory" in errors.get(base + 6, ""), res.stderr


def test_a_config_path_that_is_a_device_or_too_large_is_refused(tmp_path):
    res = run_portcullis(["validate", "--config", "/dev/zero"], timeout=20)
    assert res.returncode == 2 and "not a regular file" in res.stderr, res.stderr
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(65 << 20)  # sparse: costs no disk
    res = run_portcullis(["validate", "--config", str(big)], timeout=20)
    assert res.returncode == 2 and "larger than 64 MiB" in res.stderr, res.stderr


@pytest.mark.parametrize("method,words", [
    ("DELET", ("never match", "DELETE")),
    ("FOO", ("never match",)),
    ("CONNECT", ("never match",)),
    ("M-SEARCH", ("never match",)),
    ("get", ("upper-case",)),
])
def test_a_method_the_gateway_refuses_is_an_error_at_its_line(tmp_path, method, words):
    # A misspelt method must not leave the requests it meant to the next, weaker route.
    text = VALID.replace('match: { path: "/public/**", methods: [GET, POST] }',
                         f'match: {{ path: "/public/**", methods: [GET, {method}] }}')
    line = text.split("\n").index('    match: { path: "/public/**", methods: [GET, %s] }' % method) + 1
    assert_error_at(tmp_path, text, line, words)


@pytest.mark.parametrize("name", ["-", "token_endpoint"])
def test_route_names_that_logs_and_metrics_reserve_are_errors(tmp_path, name):
    text = VALID.replace("  - name: public\n", f'  - name: "{name}"\n')
    line = text.split("\n").index(f'  - name: "{name}"') + 1
    assert_error_at(tmp_path, text, line, ("reserved",))


def test_admin_listen_on_the_listen_port_is_an_error(tmp_path):
    text = VALID.replace('  admin_listen: ""\n', '  listen: "127.0.0.1:18999"\n  admin_listen: "0.0.0.0:18999"\n')
    line = text.split("\n").index('  admin_listen: "0.0.0.0:18999"') + 1
    assert_error_at(tmp_path, text, line, ("port",))


@pytest.mark.parametrize("where,param,words", [
    ("cookie", "a;b", ("cookie name",)),
    ("cookie", "sess ion", ("cookie name",)),
    ("header", "X-API Key", ("header name",)),
    ("query", "", ("empty",)),
    ("query", "api\\tkey", ("control",)),
])
def test_an_api_key_param_no_request_can_carry_is_an_error(tmp_path, where, param, words):
    """A key name no client can send would make the route refuse everything, or worse, look
    configured while checking nothing: it is a config error at its line."""
    text = VALID + (
        "api_keys:\n"
        "  - name: bot\n"
        f"    key_hash: \"sha256:{'0' * 64}\"\n"
        f"    in: {where}\n"
        f"    param: \"{param}\"\n")
    line = text.split("\n").index(f"    param: \"{param}\"") + 1
    assert_error_at(tmp_path, text, line, words)


@pytest.mark.parametrize("line,value,words", [
    (6, "  idle_timeout: 106751991168d", ("3650d",)),
    (6, "  idle_timeout: 999999999999d", ("3650d",)),
    (5, "  max_request_body: 9999999999GiB", ("1024GiB",)),
])
def test_a_duration_or_size_too_large_is_an_error_not_a_crash(tmp_path, line, value, words):
    text = replace_line(VALID, line, value)
    res, _ = assert_error_at(tmp_path, text, line, words)
    assert res.returncode == 2


def test_token_ttl_too_large_is_a_usage_error(tmp_path):
    path = write(tmp_path, VALID + 'token_endpoint:\n  issuer: "https://gw.example"\n'
                 '  signing_key: { alg: HS256, kid: k1, secret_env: CFG_TEST_SECRET }\n'
                 'jwt:\n  issuers:\n    - issuer: "https://gw.example"\n      algorithms: [HS256]\n'
                 '      keys: [ { kid: k1, secret_env: CFG_TEST_SECRET } ]\n')
    env = {"CFG_TEST_SECRET": "x" * 32}
    res = run_portcullis(["token", "--config", str(path), "--sub", "bob"], env=env)
    assert res.returncode == 0 and res.stdout.count(".") == 2, (res.returncode, res.stdout, res.stderr)
    res = run_portcullis(["token", "--config", str(path), "--sub", "bob", "--ttl", "999999999999d"], env=env)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "--ttl" in res.stderr
    for sub in ["", " bob", "bo\nb"]:
        res = run_portcullis(["token", "--config", str(path), "--sub", sub], env=env)
        assert res.returncode == 2 and not res.stdout.strip(), (sub, res.returncode, res.stdout, res.stderr)
    res = run_portcullis(["token", "--config", str(path), "--sub", "bob", "--scope", 'me a"b'], env=env)
    assert res.returncode == 2 and "a\"b" in res.stderr, (res.returncode, res.stdout, res.stderr)
    res = run_portcullis(["token", "--config", str(path), "--sub", "bob", "--scope", "me items", "--ttl", "3650d"], env=env)
    assert res.returncode == 0 and res.stdout.count(".") == 2, (res.returncode, res.stdout, res.stderr)


def test_a_tagged_repeat_of_a_key_is_an_error(tmp_path):
    """A tag made the composer see a different key, so the repeat silently replaced the first:
    `!!binary auth: none` under a bearer route made it public."""
    for tag in ["!!binary ", "!x ", "!!str ", '"', ""]:
        close = '"' if tag == '"' else ""
        text = VALID.replace("    auth: bearer\n", f"    auth: bearer\n    {tag}auth{close}: basic\n")
        line = text.split("\n").index(f"    {tag}auth{close}: basic") + 1
        assert_error_at(tmp_path, text, line, ("auth",))


def test_tags_on_values_are_errors(tmp_path):
    text = replace_line(VALID, 4, '  realm: !!int R')
    assert_error_at(tmp_path, text, 4, ("tag",))
    text = replace_line(VALID, 4, '  realm: !!str R')
    res = run_portcullis(["validate", "--config", str(write(tmp_path, text))])
    assert res.returncode == 0, res.stderr


def test_a_repeat_inside_a_flow_mapping_is_reported_where_it_is(tmp_path):
    text = replace_line(VALID, 13, '    match: { path: "/public/**", methods: [GET], path: "/**" }')
    res, _ = assert_error_at(tmp_path, text, 13, ("duplicate", "path"))
    errors = [e for e in diagnostics(res.stderr, "error") if int(e.group("line")) == 13]
    assert any(int(e.group("col")) == len('    match: { path: "/public/**", methods: [GET], ') + 1 for e in errors), res.stderr


def test_an_alias_bomb_as_a_key_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases as a mapping key: composing it would hash 9^9 nodes. The key
    is refused before composing (the subprocess timeout is a hang guard, not a measurement)."""
    text = "a0: &a0 [" + ", ".join(["lol"] * 9) + "]\n"
    for n in range(1, 10):
        text += f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]\n"
    text += "? *a9\n: 1\n"
    res = run_portcullis(["validate", "--config", str(write(tmp_path, text))], timeout=20)
    assert res.returncode == 2
    assert [int(e.group("line")) for e in diagnostics(res.stderr, "error")] == [11], res.stderr


def test_a_control_character_is_reported_at_its_line(tmp_path):
    text = replace_line(VALID, 4, '  realm: "R\x01"')
    assert_error_at(tmp_path, text, 4, ("control",))


JWT_PART = """jwt:
  issuers:
    - issuer: "https://idp.example"
      audiences: [api]
      algorithms: [HS256]
      keys: [ { kid: k1, secret_env: CFG_TEST_SECRET } ]
"""
CLIENTS_PART = """token_endpoint:
  issuer: "https://idp.example"
  signing_key: { alg: HS256, kid: k1, secret_env: CFG_TEST_SECRET }
  clients:
    - { client_id: c1, secret_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA" }
    - { client_id: c2, secret_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA" }
"""


@pytest.mark.parametrize("extra,old,new,words", [
    # each would silently weaken or break a rule
    (JWT_PART, "audiences: [api]", "audiences: []", ("audience",)),
    (JWT_PART, "keys: [ { kid: k1, secret_env: CFG_TEST_SECRET } ]", "keys: []", ("key",)),
    (JWT_PART + CLIENTS_PART, "{ client_id: c2,", "{ client_id: c1,", ("twice",)),
    ("", 'admin_listen: ""', 'admin_listen: ""\n  identity_headers: { subject: Content-Length }', ("meaning",)),
    ("", 'admin_listen: ""', 'admin_listen: ""\n  identity_headers: { method: X-Forwarded-For }', ("meaning",)),
    ("", 'admin_listen: ""', 'admin_listen: ""\n  identity_headers: { subject: X-A, scopes: x-a }', ("already",)),
    ("", 'admin_listen: ""', 'admin_listen: ""\n  identity_headers: { method: x-auth-subject }', ("already",)),
])
def test_settings_that_would_weaken_a_rule_are_errors(tmp_path, extra, old, new, words):
    text = VALID + extra
    assert old in text
    text = text.replace(old, new, 1)
    target = new.split("\n")[-1].strip()
    line = [i for i, l in enumerate(text.split("\n"), 1) if target in l][-1]  # the repeat, where there is one
    path = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path)], env={"CFG_TEST_SECRET": "x" * 32})
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = {int(e.group("line")): e.group("msg") for e in diagnostics(res.stderr, "error")}
    assert line in lines, (line, res.stderr)
    assert all(w in lines[line] for w in words), res.stderr


@pytest.mark.parametrize("setting,words", [
    ('  listen: "[abc]:18999"', ("listen",)),
    ('  listen: "999.1.1.1:18999"', ("listen",)),
    ('  listen: " 127.0.0.1:18999"', ("listen",)),
    ('  listen: "127.0.0.1:18999"\n  admin_listen: "localhost:18999"', ("port",)),
    ('  access_log: "."', ("directory",)),
    ('  access_log: "no/such/folder/access.log"', ("folder",)),
])
def test_what_serve_would_fail_on_is_a_validate_error(tmp_path, setting, words):
    """validate must not pass a file that serve then cannot start with."""
    text = VALID.replace('  admin_listen: ""\n', setting + "\n" if "admin_listen" in setting else f'  admin_listen: ""\n{setting}\n')
    line = text.split("\n").index(setting.split("\n")[-1]) + 1
    assert_error_at(tmp_path, text, line, words)
    res = run_portcullis(["serve", "--config", str(tmp_path / "routes.yaml")], timeout=20)
    assert res.returncode == 2, (res.returncode, res.stderr)


@pytest.mark.parametrize("old,new,words", [
    # paths no normalized request can equal
    ('    auth: none\n', '    auth: none\n    strip_prefix: "/a b"\n', ("strip_prefix",)),
    ('    auth: none\n', '    auth: none\n    strip_prefix: "/pub/%7e"\n', ("/pub/~",)),
    ('    auth: none\n', '    auth: none\n    strip_prefix: "//admin"\n', ("/admin",)),
    ('match: { path: "/public/**"', 'match: { path: "/public/..;x/**"', ("never match",)),
    # upstream URLs libcurl could never use
    ('url: "http://127.0.0.1:9"', 'url: "http://127.0.0.1:99999"', ("upstream url",)),
    ('url: "http://127.0.0.1:9"', 'url: "http://127.0.0.1:0"', ("upstream url",)),
    ('url: "http://127.0.0.1:9"', 'url: "http://127.0.0.1:9/a b"', ("upstream url",)),
    ('url: "http://127.0.0.1:9"', 'url: "http://127.0.0.1:9/%zz"', ("upstream url",)),
    ('version: 1', 'version: "1"', ("number 1",)),
])
def test_values_that_can_never_work_are_errors(tmp_path, old, new, words):
    assert old in VALID
    text = VALID.replace(old, new, 1)
    target = new.rstrip("\n").split("\n")[-1]
    line = next(i for i, l in enumerate(text.split("\n"), 1) if target in l)
    assert_error_at(tmp_path, text, line, words)


@pytest.mark.parametrize("path", ["/tok%65n", "//token", "/a/%2e%2e/token", "/token?x", "/tok en"])
def test_a_token_endpoint_path_no_request_can_reach_is_an_error(tmp_path, path):
    text = VALID + ('token_endpoint:\n  issuer: "https://idp.example"\n'
                    '  signing_key: { alg: HS256, kid: k1, secret_env: CFG_TEST_SECRET }\n'
                    f'  path: "{path}"\n'
                    'jwt:\n  issuers:\n    - issuer: "https://idp.example"\n      algorithms: [HS256]\n'
                    '      keys: [ { kid: k1, secret_env: CFG_TEST_SECRET } ]\n')
    line = text.split("\n").index(f'  path: "{path}"') + 1
    path_file = write(tmp_path, text)
    res = run_portcullis(["validate", "--config", str(path_file)], env={"CFG_TEST_SECRET": "x" * 32})
    assert res.returncode == 2, res.stderr
    assert line in [int(e.group("line")) for e in diagnostics(res.stderr, "error")], res.stderr


def test_an_error_never_quotes_the_content_of_a_file_named_by_mistake(tmp_path):
    """users_file pointing at a secret file: the message names the file, never its content."""
    secret = "SuperSecretValue-DoNotLeak-123456789"
    (tmp_path / "secret.txt").write_text(secret + "\n")
    text = VALID + "users_file: secret.txt\n"
    res = run_portcullis(["validate", "--config", str(write(tmp_path, text))])
    assert res.returncode == 2
    assert "secret.txt" in res.stderr and secret[:6] not in res.stderr, res.stderr


def test_scopes_on_an_optional_route_warn_that_anonymous_requests_pass(tmp_path):
    text = VALID.replace("    auth: bearer\n", "    auth: optional\n", 1)
    line = text.split("\n").index("    scopes: [read]") + 1
    res = run_portcullis(["validate", "--config", str(write(tmp_path, text))])
    assert res.returncode == 0, res.stderr
    warnings = {int(w.group("line")): w.group("msg") for w in diagnostics(res.stderr, "warning")}
    assert "optional" in warnings.get(line, ""), res.stderr
