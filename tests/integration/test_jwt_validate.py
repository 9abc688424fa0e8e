"""Configuration checks for the JWT keys (contract §1 `validate`, §2, §9): a bad `jwt`,
`users` or `token_endpoint` value is an error with FILE:LINE:COL and exit code 2; a typo never
silently weakens verification."""

from __future__ import annotations

import re
import subprocess

import pytest

from jwt_support import GATEWAY_ISSUER, PORTCULLIS_BIN, USERS_YAML, base_env, keypair, run_portcullis, write

SECRET = "s" * 64

GOOD_ISSUERS = f"""    - issuer: "{GATEWAY_ISSUER}"
      audiences: ["api"]
      algorithms: [HS256]
      keys: [ {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }} ]
    - issuer: "https://idp.example"
      algorithms: [RS256, PS256]
      keys: [ {{ kid: r1, public_key_file: keys/rs.pem }} ]
    - issuer: "https://es.example"
      algorithms: [ES256]
      jwks_file: keys/jwks.json
    - issuer: "https://remote.example"
      algorithms: [ES256]
      jwks_url: "http://127.0.0.1:9/jwks.json"
      jwks_refresh: 5m
"""

TOKEN_ENDPOINT = f"""token_endpoint:
  issuer: "{GATEWAY_ISSUER}"
  audience: api
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
"""

TAIL = """upstreams: { u: { url: "http://127.0.0.1:9" } }
routes:
  - { name: me, match: { path: /users/me }, auth: bearer, scopes: [me], upstream: u }
"""


def config(issuers=GOOD_ISSUERS, jwt_extra="  leeway: 30s\n", token_endpoint=TOKEN_ENDPOINT):
    return (f'version: 1\nserver: {{ admin_listen: "", realm: "api" }}\njwt:\n{jwt_extra}  issuers:\n{issuers}'
            f"{USERS_YAML}{token_endpoint}{TAIL}")


@pytest.fixture
def folder(tmp_path):
    write(tmp_path / "keys/rs.pem", keypair("rsa", "idp").public_pem)
    write(tmp_path / "keys/rs-private.pem", keypair("rsa", "idp").private_pem)
    write(tmp_path / "keys/es-private.pem", keypair("P-256", "es").private_pem)
    write(tmp_path / "keys/jwks.json", {"keys": [keypair("P-256", "es").jwk("e1", "ES256")]})
    write(tmp_path / "keys/broken.jwks.json", '{"keys": [ {"kty": "EC", ')
    write(tmp_path / "keys/not-a-key.pem", "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    return tmp_path


def validate(folder, text, env=None):
    path = write(folder / "routes.yaml", text)
    out = run_portcullis(["validate", "--config", str(path)],
                         env if env is not None else base_env(PORTCULLIS_JWT_SECRET=SECRET))
    return out, out.stdout + out.stderr


def error_lines(output):
    return [int(m.group(1)) for m in re.finditer(r"routes\.yaml:(\d+):(\d+): error: ", output)]


def line_of(text, needle):
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the config")


def test_good_config_is_valid(folder):
    out, output = validate(folder, config())
    assert out.returncode == 0, output


BAD_ISSUERS = {
    # case: (replace in GOOD_ISSUERS, with, the text on the line the error must point at)
    "unsupported-alg": ("algorithms: [HS256]", "algorithms: [HS257]", "HS257"),
    "alg-none": ("algorithms: [HS256]", "algorithms: [none]", "[none]"),
    "no-algorithms": ("algorithms: [HS256]", "algorithms: []", "algorithms: []"),
    "issuer-key-typo": ("algorithms: [RS256, PS256]", "algorithm: [RS256, PS256]", "algorithm: [RS256"),
    "key-entry-typo": ("secret_env: PORTCULLIS_JWT_SECRET", "secret_evn: PORTCULLIS_JWT_SECRET", "secret_evn"),
    "missing-public-key-file": ("keys/rs.pem", "keys/missing.pem", "missing.pem"),
    "public-key-file-not-a-key": ("keys/rs.pem", "keys/not-a-key.pem", "not-a-key.pem"),
    "rsa-key-for-es256": ("algorithms: [RS256, PS256]", "algorithms: [ES256]", "public_key_file: keys/rs.pem"),
    "broken-jwks-file": ("jwks_file: keys/jwks.json", "jwks_file: keys/broken.jwks.json", "broken.jwks.json"),
    "jwks-url-not-http": ('jwks_url: "http://127.0.0.1:9/jwks.json"', 'jwks_url: "ftp://127.0.0.1/jwks.json"',
                          "ftp://"),
    "bad-jwks-refresh": ("jwks_refresh: 5m", "jwks_refresh: 5 minutes", "5 minutes"),
    "audiences-wrong-type": ('audiences: ["api"]', "audiences: { api: 1 }", "audiences: { api"),
    # a jwks_url never serves shared secrets, so an HMAC-only issuer behind one accepts nothing
    "hmac-behind-jwks-url": ("algorithms: [ES256]\n      jwks_url", "algorithms: [HS256]\n      jwks_url",
                             "jwks_url: \"http://127.0.0.1:9"),
    # every key of the jwks_file is a P-256 key: an RS256-only issuer could verify nothing
    "jwks-file-no-fitting-key": ("algorithms: [ES256]\n      jwks_file", "algorithms: [RS256]\n      jwks_file",
                                 "jwks_file: keys/jwks.json"),
}


@pytest.mark.parametrize("case", list(BAD_ISSUERS))
def test_bad_issuer_is_an_error_with_location(folder, case):
    old, new, at = BAD_ISSUERS[case]
    assert old in GOOD_ISSUERS
    text = config(issuers=GOOD_ISSUERS.replace(old, new, 1))
    out, output = validate(folder, text)
    assert out.returncode == 2, output
    assert line_of(text, at) in error_lines(output), f"expected an error on line {line_of(text, at)}:\n{output}"


@pytest.mark.parametrize("jwt_extra,at", [
    ("  leeway: 30 seconds\n", "30 seconds"),
    ("  cache_size: -1\n", "cache_size"),
    ("  scope_claims: []\n", "scope_claims"),
    ("  leway: 30s\n", "leway"),
])
def test_bad_jwt_settings(folder, jwt_extra, at):
    text = config(jwt_extra=jwt_extra)
    out, output = validate(folder, text)
    assert out.returncode == 2, output
    assert line_of(text, at) in error_lines(output), output


def test_secret_env_not_set(folder):
    text = config()
    out, output = validate(folder, text, env=base_env())
    assert out.returncode == 2, output
    assert line_of(text, "kid: k1, secret_env: PORTCULLIS_JWT_SECRET } ]") in error_lines(output), output
    assert SECRET not in output


def test_secret_never_printed(folder):
    """An error near a secret names the variable, never the value."""
    text = config(issuers=GOOD_ISSUERS.replace("algorithms: [HS256]", "algorithms: [HS25]", 1))
    out, output = validate(folder, text)
    assert out.returncode == 2
    assert SECRET not in output


TE_CASES = {
    "issuer-not-listed": TOKEN_ENDPOINT.replace(f'issuer: "{GATEWAY_ISSUER}"', 'issuer: "https://unlisted.example"'),
    "alg-does-not-fit-key": TOKEN_ENDPOINT.replace(
        "{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }",
        "{ alg: ES256, kid: e1, private_key_file: keys/rs-private.pem }"),
    "private-key-file-is-public": TOKEN_ENDPOINT.replace(
        "{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }",
        "{ alg: RS256, kid: r1, private_key_file: keys/rs.pem }"),
    "signing-alg-none": TOKEN_ENDPOINT.replace("alg: HS256", "alg: none"),
    "signing-key-typo": TOKEN_ENDPOINT.replace("secret_env:", "secret_enb:"),
}


@pytest.mark.parametrize("case", list(TE_CASES))
def test_bad_token_endpoint(folder, case):
    text = config(token_endpoint=TE_CASES[case])
    out, output = validate(folder, text)
    assert out.returncode == 2, output
    assert error_lines(output), f"no FILE:LINE:COL: error: line:\n{output}"


def test_asymmetric_signing_key_is_valid(folder):
    te = TOKEN_ENDPOINT.replace("{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }",
                                "{ alg: ES256, kid: e1, private_key_file: keys/es-private.pem }")
    own = "algorithms: [HS256]\n      keys: [ {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }} ]".replace("{{", "{").replace("}}", "}")
    assert own in GOOD_ISSUERS
    issuers = GOOD_ISSUERS.replace(own, "algorithms: [ES256]\n      jwks_file: keys/jwks.json", 1)
    out, output = validate(folder, config(issuers=issuers, token_endpoint=te))
    assert out.returncode == 0, output


@pytest.mark.parametrize("signing_key,why", [
    ("{ alg: ES256, kid: e1, private_key_file: keys/es-private.pem }", "algorithm"),  # issuer pins HS256
    ("{ alg: HS384, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }", "algorithm"),
    ("{ alg: HS256, kid: k2, secret_env: PORTCULLIS_JWT_SECRET }", "key id"),
    ("{ alg: HS256, kid: k1, secret_env: OTHER_SECRET }", "signature"),
])
def test_a_signing_key_the_gateway_would_refuse_is_an_error(folder, signing_key, why):
    """Every token from /token and `portcullis token` would be refused with 401."""
    te = TOKEN_ENDPOINT.replace("{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }", signing_key)
    text = config(token_endpoint=te)
    out, output = validate(folder, text, env=base_env(PORTCULLIS_JWT_SECRET=SECRET, OTHER_SECRET="o" * 64))
    assert out.returncode == 2, output
    assert line_of(text, "signing_key:") in error_lines(output), output
    assert why in output, output


def test_an_audience_the_issuer_does_not_accept_is_an_error(folder):
    text = config(token_endpoint=TOKEN_ENDPOINT.replace("audience: api", "audience: other"))
    out, output = validate(folder, text)
    assert out.returncode == 2, output
    assert "audience" in output


def test_serve_refuses_invalid_jwt_config(folder):
    path = write(folder / "routes.yaml", config(issuers=GOOD_ISSUERS.replace("HS256", "HS257", 1)))
    out = subprocess.run([PORTCULLIS_BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0"],
                         env=base_env(PORTCULLIS_JWT_SECRET=SECRET), capture_output=True, text=True, timeout=20,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "HS257" in out.stdout + out.stderr


@pytest.mark.parametrize("routes, warned", [
    ("  - { name: me, match: { path: /me }, auth: bearer, upstream: u }\n",
     "route 'me' refuses every request: no issuer is configured for Bearer tokens (jwt.issuers)"),
    ("  - { name: me, match: { path: /me }, upstream: u }\n",
     "route 'me' refuses every request: no issuer is configured for Bearer tokens (jwt.issuers)"),
    ("  - { name: both, match: { path: /both }, auth: [bearer, api_key], upstream: u }\n",
     "route 'both' refuses every request: no issuer is configured for Bearer tokens (jwt.issuers); "
     "no API key is configured (api_keys)"),
], ids=["bearer", "bearer-by-default", "bearer-or-api-key"])
def test_a_route_no_credential_can_pass_is_a_warning(folder, routes, warned):
    out, _ = validate(folder, 'version: 1\nupstreams: { u: { url: "http://127.0.0.1:9" } }\nroutes:\n' + routes)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [f"{folder / 'routes.yaml'}:4:7: warning: {warned}"], out.stderr


@pytest.mark.parametrize("routes", [
    "  - { name: open, match: { path: /open }, auth: optional, upstream: u }\n",
    "  - { name: mixed, match: { path: /m }, auth: [bearer, basic], upstream: u }\n",
], ids=["optional", "bearer-or-basic"])
def test_a_route_one_scheme_can_pass_is_not_warned_about(folder, routes):
    users = 'users:\n  - { username: a, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }\n'
    out, _ = validate(folder, 'version: 1\n' + users + 'upstreams: { u: { url: "http://127.0.0.1:9" } }\nroutes:\n' + routes)
    assert out.returncode == 0 and "refuses every request" not in out.stderr, out.stderr
