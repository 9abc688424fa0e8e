"""Bearer-JWT verification at the gateway: challenges (contract §4), token validation (§2 jwt,
users, token_endpoint) and identity headers (§5). Every test runs against a gateway with the
verified-token cache on (cache_size 10000) and off (cache_size 0)."""

from __future__ import annotations

import time

import pytest

from jwt_support import (
    GATEWAY_ISSUER, JOSERFC_WARNINGS, USERS_YAML, EchoUpstream, Gateway, RecordingUpstream, assert_insufficient_scope,
    assert_invalid_request, assert_invalid_token, assert_not_authenticated, b64u, b64u_decode, base_env, claims, decode_part,
    describe, hmac_token, keypair, marker, mint, now, raw_request, run_portcullis, unsigned_token, upstream_headers,
    wait_until, write)

pytestmark = JOSERFC_WARNINGS

IDP = "https://idp.example"
ES_ISS = "https://es.example"


class Setup:
    """A running gateway with the brief's configuration, and token makers for its issuers."""

    def __init__(self, gateway: Gateway, rec: RecordingUpstream, secret: str, config, env):
        self.gw = gateway
        self.rec = rec
        self.secret = secret.encode()
        self.config = config
        self.env = env
        self.rsa = keypair("rsa", "idp")
        self.es = keypair("P-256", "es")
        self.other_rsa = keypair("rsa", "other")
        self.other_es = keypair("P-256", "other")

    def hs(self, kid="k1", **kw) -> str:
        """HS256 token of the gateway's own issuer, signed with the configured secret."""
        return hmac_token(self.secret, {"alg": "HS256", "typ": "JWT", "kid": kid}, claims(**kw))

    def rs(self, alg="RS256", key=None, kid="r1", **kw) -> str:
        kw.setdefault("iss", IDP)
        kw.setdefault("sub", "svc-1")
        return mint(key or self.rsa, alg, kid, claims(**kw))

    def ec(self, key=None, kid="e1", **kw) -> str:
        kw.setdefault("iss", ES_ISS)
        kw.setdefault("sub", "svc-es")
        return mint(key or self.es, "ES256", kid, claims(**kw))

    def request(self, path: str, token: str | None = None, scheme="Bearer", headers=None):
        """GET path?<marker>; returns (response, the requests the upstream saw with the marker)."""
        m = marker()
        sep = "&" if "?" in path else "?"
        resp = self.gw.get(f"{path}{sep}{m}", token=token, scheme=scheme, headers=headers)
        return resp, self.rec.seen(m)


def main_config(cache_size: int, rec_url: str, echo_url: str, extra_server: str = "", leeway: str = "30s") -> str:
    return f"""version: 1
server: {{ admin_listen: "", realm: "api"{extra_server} }}
jwt:
  leeway: {leeway}
  scope_claims: [scope, scp]
  cache_size: {cache_size}
  issuers:
    - issuer: "{GATEWAY_ISSUER}"
      audiences: ["api"]
      algorithms: [HS256]
      keys: [ {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }} ]
    - issuer: "{IDP}"
      algorithms: [RS256, PS256]
      keys: [ {{ kid: r1, public_key_file: keys/rs.pem }} ]
    - issuer: "{ES_ISS}"
      audiences: ["api", "other-api"]
      algorithms: [ES256]
      jwks_file: keys/jwks.json
{USERS_YAML}token_endpoint:
  issuer: "{GATEWAY_ISSUER}"
  audience: api
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
upstreams: {{ u: {{ url: "{rec_url}" }}, e: {{ url: "{echo_url}" }} }}
routes:
  - {{ name: me, match: {{ path: /users/me }}, auth: bearer, scopes: [me], upstream: u }}
  - {{ name: items, match: {{ path: "/users/me/items/**" }}, auth: bearer, scopes: [me, items], upstream: u }}
  - {{ name: admin, match: {{ path: "/admin/**" }}, auth: bearer, scopes_any: [admin, ops], upstream: u }}
  - {{ name: opt, match: {{ path: "/opt/**" }}, auth: optional, upstream: u }}
  - {{ name: open, match: {{ path: "/open/**" }}, auth: none, upstream: u }}
  - {{ name: plain, match: {{ path: "/plain/**" }}, auth: bearer, upstream: u }}
  - {{ name: nofwd, match: {{ path: "/nofwd/**" }}, auth: bearer, scopes: [me], forward_authorization: false, upstream: u }}
  - {{ name: echo, match: {{ path: "/echo/**" }}, auth: bearer, upstream: e }}
  - {{ name: echo-open, match: {{ path: "/echo-open/**" }}, auth: none, upstream: e }}
"""


def write_keys(directory):
    write(directory / "keys/rs.pem", keypair("rsa", "idp").public_pem)
    write(directory / "keys/jwks.json", {"keys": [
        keypair("P-256", "es").jwk("e1", "ES256"),
        keypair("P-256", "es2").jwk("e2"),  # a second key without "alg"
    ]})


@pytest.fixture(scope="module")
def upstreams():
    rec = RecordingUpstream()
    echo = EchoUpstream()
    yield rec, echo
    echo.stop()
    rec.stop()


def start_gateway(tmp_path_factory, name, config_text):
    directory = tmp_path_factory.mktemp(name)
    write_keys(directory)
    config = write(directory / "gateway.yaml", config_text)
    secret = keypair("hmac", "gateway").secret
    env = base_env(PORTCULLIS_JWT_SECRET=secret)
    return Gateway(config, env), secret, config, env


@pytest.fixture(scope="module", params=[10000, 0], ids=["cache10000", "cache0"])
def s(request, tmp_path_factory, upstreams):
    rec, echo = upstreams
    gw, secret, config, env = start_gateway(
        tmp_path_factory, f"main{request.param}", main_config(request.param, rec.url, echo.url))
    yield Setup(gw, rec, secret, config, env)
    gw.stop()


# ---------------------------------------------------------------------------------------------
# No credentials


@pytest.mark.parametrize("path,scope", [
    ("/users/me", "me"),
    ("/users/me/items/42", "me items"),
    ("/admin/stats", "admin ops"),   # only scopes_any: those are the scope attribute
    ("/plain/x", None),              # no scopes: no scope attribute
])
def test_no_credentials_challenge(s, path, scope):
    resp, seen = s.request(path)
    assert_not_authenticated(resp, scope)
    assert seen == [], "a refused request reached the upstream"


def test_token_in_query_string_is_ignored(s):
    token = s.hs()
    resp, seen = s.request(f"/users/me?access_token={token}")
    assert_not_authenticated(resp, "me")
    assert seen == []


def test_token_in_query_string_is_ignored_on_optional_route(s):
    token = s.hs()
    resp, seen = s.request(f"/opt/x?access_token={token}")
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1
    names = {k.lower() for k, _ in seen[0]["headers"]}
    assert not names & {"x-auth-subject", "x-auth-scopes", "x-auth-method"}, seen[0]["headers"]


def test_other_scheme_on_bearer_route_is_not_credentials(s):
    """Authorization: Basic on a bearer-only route carries no bearer credentials."""
    resp, seen = s.request("/users/me", headers={"Authorization": "Basic am9obmRvZTpzZWNyZXQ="})
    assert resp.status_code in (400, 401), describe(resp)
    assert resp.headers.get("WWW-Authenticate", "").startswith('Bearer realm="api"'), describe(resp)
    assert seen == []


# ---------------------------------------------------------------------------------------------
# Malformed Authorization → 400 invalid_request


@pytest.mark.parametrize("value", [
    "Bearer",
    "Bearer    ",
    "Bearer a b",
    "Bearer tok@en",
    "Bearer tok,en",
    'Bearer tok"en',
    "Bearer ab=cd",          # '=' is only allowed as trailing padding (RFC 6750 §2.1 b64token)
], ids=["no-token", "only-spaces", "two-words", "at-sign", "comma", "quote", "inner-equals"])
def test_malformed_authorization(s, value):
    m = marker()
    resp = raw_request(s.gw.port, "GET", f"/users/me?{m}", [("Host", "api.test"), ("Authorization", value)])
    assert_invalid_request(resp)
    assert s.rec.seen(m) == []


def test_malformed_authorization_with_valid_jwt_plus_garbage(s):
    m = marker()
    resp = raw_request(s.gw.port, "GET", f"/users/me?{m}",
                       [("Host", "api.test"), ("Authorization", f"Bearer {s.hs()} extra")])
    assert_invalid_request(resp)
    assert s.rec.seen(m) == []


@pytest.mark.parametrize("second", ["valid", "garbage"])
def test_two_authorization_headers(s, second):
    m = marker()
    other = f"Bearer {s.hs()}" if second == "valid" else "Bearer xyz"
    resp = raw_request(s.gw.port, "GET", f"/users/me?{m}",
                       [("Host", "api.test"), ("Authorization", f"Bearer {s.hs()}"), ("Authorization", other)])
    assert_invalid_request(resp)
    assert s.rec.seen(m) == []


def test_malformed_authorization_on_optional_route(s):
    m = marker()
    resp = raw_request(s.gw.port, "GET", f"/opt/x?{m}", [("Host", "api.test"), ("Authorization", "Bearer a b")])
    assert_invalid_request(resp)
    assert s.rec.seen(m) == []


# ---------------------------------------------------------------------------------------------
# Invalid tokens → 401 invalid_token


def _tampered_payload(s):
    token = s.hs(scope="me")
    h, _, sig = token.split(".")
    payload = decode_part(token, 1)
    payload["scope"] = "me items admin"
    return f"{h}.{b64u(payload)}.{sig}"


def _tampered_payload_rs(s):
    token = s.rs(scope="me")
    h, _, sig = token.split(".")
    payload = decode_part(token, 1)
    payload["sub"] = "root"
    return f"{h}.{b64u(payload)}.{sig}"


def _key_confusion(s, with_kid=True):
    """HS256 signed with the RSA public key's PEM bytes as the HMAC secret (CVE-2015-9235 style)."""
    header = {"alg": "HS256", "typ": "JWT"}
    if with_kid:
        header["kid"] = "r1"
    return hmac_token(s.rsa.public_pem, header, claims(iss=IDP, sub="svc-1"))


def _none_header_keeping_signature(s):
    _, p, sig = s.hs().split(".")
    return f"{b64u({'alg': 'none', 'kid': 'k1'})}.{p}.{sig}"


def _hs_flip_signature(s):
    token = s.hs()
    h, p, sig = token.split(".")
    raw = bytearray(b64u_decode(sig))
    raw[0] ^= 1
    return f"{h}.{p}.{b64u(bytes(raw))}"


DUP_ALG_HEADER = b'{"alg":"HS256","kid":"k1","alg":"none"}'  # RFC 7515 §5.2: reject, or use the last

INVALID = {
    "bad-signature-hs256": lambda s: hmac_token(b"another-secret-another-secret-another-secret-0000",
                                                 {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims()),
    "flipped-signature-bit": _hs_flip_signature,
    "empty-signature": lambda s: s.hs().rsplit(".", 1)[0] + ".",
    "expired": lambda s: s.hs(exp=now() - 60),
    "expired-long-ago": lambda s: s.hs(iat=now() - 7200, exp=now() - 3600),
    "nbf-in-future": lambda s: s.hs(nbf=now() + 120),
    "wrong-iss": lambda s: s.hs(iss="https://evil.example"),
    "iss-trailing-slash": lambda s: s.hs(iss=GATEWAY_ISSUER + "/"),
    "missing-iss": lambda s: s.hs(iss=None),
    "wrong-aud": lambda s: s.hs(aud="other"),
    "wrong-aud-array": lambda s: s.hs(aud=["other", "more"]),
    "missing-aud": lambda s: s.hs(aud=None),
    "unknown-kid": lambda s: s.hs(kid="k9"),
    "alg-none": lambda s: unsigned_token({"alg": "none", "typ": "JWT", "kid": "k1"}, claims()),
    "alg-None-capitalised": lambda s: unsigned_token({"alg": "None", "typ": "JWT", "kid": "k1"}, claims()),
    "alg-none-with-signature": lambda s: _none_header_keeping_signature(s),
    "alg-HS384-not-pinned": lambda s: hmac_token(s.secret, {"alg": "HS384", "kid": "k1"}, claims(), alg="HS384"),
    "alg-HS512-not-pinned": lambda s: hmac_token(s.secret, {"alg": "HS512", "kid": "k1"}, claims(), alg="HS512"),
    "alg-RS384-not-pinned": lambda s: s.rs(alg="RS384"),
    "crit-header": lambda s: hmac_token(s.secret, {"alg": "HS256", "kid": "k1", "crit": ["x-custom"], "x-custom": 1},
                                        claims()),
    "crit-exp-header": lambda s: hmac_token(s.secret, {"alg": "HS256", "kid": "k1", "crit": ["exp"], "exp": 1},
                                            claims()),
    "hs256-with-rsa-public-key-as-secret": _key_confusion,
    "hs256-with-rsa-public-key-as-secret-no-kid": lambda s: _key_confusion(s, with_kid=False),
    "payload-changed-after-signing": _tampered_payload,
    "payload-changed-after-signing-rs256": _tampered_payload_rs,
    "rs256-other-key": lambda s: s.rs(key=s.other_rsa),
    "ps256-other-key": lambda s: s.rs(alg="PS256", key=s.other_rsa),
    "es256-other-key": lambda s: s.ec(key=s.other_es),
    "es256-wrong-aud": lambda s: s.ec(aud="nope"),
    "rs256-token-claims-gateway-issuer": lambda s: s.rs(iss=GATEWAY_ISSUER, sub="johndoe"),
    "not-a-jwt": lambda s: "abc.def.ghi",
    "single-segment": lambda s: "abcdef",
    "four-segments": lambda s: s.hs() + ".abc",
    "payload-not-json": lambda s: hmac_token(s.secret, {"alg": "HS256", "kid": "k1"}, claims()).split(".")[0] + "."
                                  + b64u(b"not json") + "." + "AAAA",
    "exp-as-string": lambda s: s.hs(exp=str(now() + 300)),
    "missing-exp": lambda s: s.hs(exp=None),
    "missing-sub": lambda s: s.hs(sub=None),
    "missing-sub-foreign-issuer": lambda s: s.rs(sub=None),
    "sub-not-a-string": lambda s: s.rs(sub=12345),
    "sub-with-a-leading-space": lambda s: s.rs(sub=" admin"),
    "sub-with-a-trailing-space": lambda s: s.rs(sub="admin "),
    "sub-with-crlf": lambda s: s.rs(sub="svc-1\r\nX-Auth-Scopes: admin"),
    "aud-empty-array": lambda s: s.hs(aud=[]),
    "iat-an-hour-in-the-future": lambda s: s.hs(iat=now() + 3600, exp=now() + 7200),
    "duplicate-alg-last-none": lambda s: b64u(DUP_ALG_HEADER) + "." + b64u(claims()) + ".",
    "embedded-jwk-header": lambda s: mint(keypair("P-256", "attacker"), "ES256", "e1",
                                          claims(iss=ES_ISS, sub="x"), jwk=keypair("P-256", "attacker").jwk("e1")),
    "jku-header": lambda s: mint(keypair("P-256", "attacker"), "ES256", "e9", claims(iss=ES_ISS, sub="x"),
                                 jku="http://127.0.0.1:9/jwks.json"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_token_is_refused(s, case):
    token = INVALID[case](s)
    resp, seen = s.request("/users/me", token)
    assert_invalid_token(resp)
    assert seen == [], "a refused request reached the upstream"


@pytest.mark.parametrize("sub,description", [("alice", "Inactive user"), ("mallory", "Unknown user")],
                         ids=["disabled-user", "unknown-user"])
def test_inactive_local_user(s, sub, description):
    resp, seen = s.request("/users/me", s.hs(sub=sub, scope="me"))
    assert_invalid_token(resp, description)
    assert resp.json() == {"detail": "Could not validate credentials", "error": "invalid_token",
                           "error_description": description}
    assert seen == []


def test_inactive_user_token_minted_by_cli(s):
    out = run_portcullis(["token", "--config", str(s.config), "--sub", "alice", "--scope", "me"], s.env)
    assert out.returncode == 0, out.stderr
    resp, seen = s.request("/users/me", out.stdout.strip())
    assert_invalid_token(resp, "Inactive user")
    assert seen == []


def test_foreign_issuer_subject_need_not_be_a_local_user(s):
    resp, seen = s.request("/users/me", s.rs(sub="svc-1", scope="me"))
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1


def test_local_user_check_only_for_the_gateway_issuer(s):
    """'alice' is a disabled local user, but a token of another issuer is not about local users."""
    resp, seen = s.request("/users/me", s.rs(sub="alice", scope="me"))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["alice"]


def test_invalid_token_on_optional_route(s):
    resp, seen = s.request("/opt/x", s.hs(exp=now() - 120))
    assert_invalid_token(resp)
    assert seen == []
    resp, seen = s.request("/opt/x", INVALID["bad-signature-hs256"](s))
    assert_invalid_token(resp)
    assert seen == []


def test_error_description_names_nothing_secret(s):
    """The description is short, RFC 6750 §3 clean, and never echoes the token."""
    token = s.hs(exp=now() - 120)
    resp, _ = s.request("/users/me", token)
    description = assert_invalid_token(resp)
    for part in token.split("."):
        assert part not in description and part not in resp.text


# ---------------------------------------------------------------------------------------------
# Valid tokens


def _header(record, name):
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def test_valid_hs256_token_forwards_identity(s):
    token = s.hs(scope="me items")
    resp, seen = s.request("/users/me", token)
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1
    r = seen[0]
    assert _header(r, "X-Auth-Subject") == ["johndoe"]
    assert _header(r, "X-Auth-Scopes") == ["me items"]
    assert _header(r, "X-Auth-Method") == ["bearer"]
    assert _header(r, "Authorization") == [f"Bearer {token}"], "Authorization is forwarded on bearer routes by default"


def test_valid_token_on_items_route(s):
    resp, seen = s.request("/users/me/items/7", s.hs(scope="me items"))
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1 and seen[0]["path"] == "/users/me/items/7"


@pytest.mark.parametrize("scope", ["ops", "admin", "me admin"])
def test_scopes_any(s, scope):
    resp, seen = s.request("/admin/stats", s.rs(scope=scope))
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_issuer_pinning_two_rsa_algorithms(s, alg):
    resp, seen = s.request("/users/me", s.rs(alg=alg, sub="svc-1", scope="me"))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["svc-1"]
    assert _header(seen[0], "X-Auth-Scopes") == ["me"]


def test_es256_from_jwks_file(s):
    resp, seen = s.request("/users/me", s.ec(scope="me", aud=["x", "other-api"]))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["svc-es"]


def test_es256_from_jwks_file_key_without_alg(s):
    resp, seen = s.request("/users/me", s.ec(key=keypair("P-256", "es2"), kid="e2", scope="me"))
    assert resp.status_code == 200, describe(resp)


def test_aud_array_containing_audience(s):
    resp, seen = s.request("/users/me", s.hs(aud=["something", "api"], scope="me"))
    assert resp.status_code == 200, describe(resp)


def test_token_minted_by_cli_verifies(s):
    out = run_portcullis(["token", "--config", str(s.config), "--sub", "johndoe", "--scope", "me items"], s.env)
    assert out.returncode == 0, out.stderr
    resp, seen = s.request("/users/me/items/", out.stdout.strip())
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["johndoe"]
    assert _header(seen[0], "X-Auth-Scopes") == ["me items"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(s, scheme):
    resp, seen = s.request("/users/me", s.hs(scope="me"), scheme=scheme)
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1


def test_expired_within_leeway_passes(s):
    resp, _ = s.request("/users/me", s.hs(scope="me", iat=now() - 300, exp=now() - 10))
    assert resp.status_code == 200, describe(resp)


def test_expired_beyond_leeway_fails(s):
    resp, seen = s.request("/users/me", s.hs(scope="me", iat=now() - 300, exp=now() - 60))
    assert_invalid_token(resp)
    assert seen == []


def test_nbf_within_leeway_passes(s):
    resp, _ = s.request("/users/me", s.hs(scope="me", nbf=now() + 10))
    assert resp.status_code == 200, describe(resp)


# ---------------------------------------------------------------------------------------------
# Scopes


def test_missing_scope_403(s):
    resp, seen = s.request("/users/me/items/1", s.hs(scope="me"))
    assert_insufficient_scope(resp, "me items")
    assert seen == []


def test_missing_scopes_any_403(s):
    resp, seen = s.request("/admin/x", s.rs(scope="me items"))
    assert_insufficient_scope(resp, "admin ops")
    assert seen == []


def test_no_scope_claim_403(s):
    resp, seen = s.request("/users/me", s.hs(scope=None))
    assert_insufficient_scope(resp, "me")
    assert seen == []


def test_scope_prefix_is_not_the_scope(s):
    """'me:read' or 'items2' are not 'me' / 'items'."""
    resp, seen = s.request("/users/me/items/1", s.hs(scope="me:read items2 mee"))
    assert_insufficient_scope(resp, "me items")
    assert seen == []


def test_scp_array_claim(s):
    resp, seen = s.request("/users/me/items/1", s.hs(scope=None, scp=["me", "items"]))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Scopes") == ["me items"]


def test_scope_array_claim(s):
    resp, seen = s.request("/users/me/items/1", s.hs(scope=["me", "items"]))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Scopes") == ["me items"]


def test_first_scope_claim_wins(s):
    """scope_claims: [scope, scp] — the first present claim wins; scp is not merged in."""
    resp, seen = s.request("/users/me/items/1", s.hs(scope="me", scp=["me", "items"]))
    assert_insufficient_scope(resp, "me items")
    assert seen == []


def test_scopes_header_as_the_token_holds_them(s):
    resp, seen = s.request("/users/me", s.rs(scope="read:x me write:y"))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Scopes") == ["read:x me write:y"]


def test_scopes_header_keeps_token_order(s):
    resp, seen = s.request("/users/me", s.hs(scope="items me"))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Scopes") == ["items me"]


def test_token_without_scopes_forwards_an_empty_scopes_header(s):
    # The upstream learns "authenticated, no scopes" rather than seeing no scopes header at all
    # (which is what an anonymous request on an optional route looks like).
    resp, seen = s.request("/plain/x", s.hs(scope=None), headers=SPOOF)
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["johndoe"]
    assert _header(seen[0], "X-Auth-Scopes") == [""]


# ---------------------------------------------------------------------------------------------
# Identity headers and Authorization forwarding (§5)

SPOOF = {"X-Auth-Subject": "mallory", "X-Auth-Scopes": "admin ops", "X-Auth-Method": "basic"}


def test_client_identity_headers_replaced_on_bearer_route(s):
    resp, seen = s.request("/users/me", s.hs(scope="me"), headers=SPOOF)
    assert resp.status_code == 200, describe(resp)
    r = seen[0]
    assert _header(r, "X-Auth-Subject") == ["johndoe"]
    assert _header(r, "X-Auth-Scopes") == ["me"]
    assert _header(r, "X-Auth-Method") == ["bearer"]


def test_client_identity_headers_stripped_on_open_route(s):
    m = marker()
    resp = raw_request(s.gw.port, "GET", f"/open/x?{m}", [
        ("Host", "api.test"), ("X-Auth-Subject", "mallory"), ("x-auth-scopes", "admin"),
        ("X-AUTH-METHOD", "bearer"), ("X-Auth-Subject", "second")])
    assert resp.status_code == 200, describe(resp)
    seen = s.rec.seen(m)
    names = {k.lower() for k, _ in seen[0]["headers"]}
    assert not names & {"x-auth-subject", "x-auth-scopes", "x-auth-method"}, seen[0]["headers"]


def test_client_identity_headers_stripped_with_echo_upstream(s):
    token = s.hs(scope="me items")
    resp = s.gw.get("/echo/x", token=token, headers={**SPOOF, "x-auth-subject": "mallory2"})
    h = upstream_headers(resp)
    assert h.get("x-auth-subject") == ["johndoe"]
    assert h.get("x-auth-scopes") == ["me items"]
    assert h.get("x-auth-method") == ["bearer"]
    assert h.get("authorization") == [f"Bearer {token}"]
    resp = s.gw.get("/echo-open/x", headers=SPOOF)
    h = upstream_headers(resp)
    assert not {"x-auth-subject", "x-auth-scopes", "x-auth-method"} & set(h), h


def test_forward_authorization_false(s):
    resp, seen = s.request("/nofwd/x", s.hs(scope="me"))
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "Authorization") == []
    assert _header(seen[0], "X-Auth-Subject") == ["johndoe"]


def test_optional_route_anonymous(s):
    resp, seen = s.request("/opt/x", headers=SPOOF)
    assert resp.status_code == 200, describe(resp)
    names = {k.lower() for k, _ in seen[0]["headers"]}
    assert not names & {"x-auth-subject", "x-auth-scopes", "x-auth-method", "authorization"}, seen[0]["headers"]


def test_optional_route_with_valid_token(s):
    resp, seen = s.request("/opt/x", s.hs(scope="me"), headers=SPOOF)
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-Auth-Subject") == ["johndoe"]
    assert _header(seen[0], "X-Auth-Scopes") == ["me"]
    assert _header(seen[0], "X-Auth-Method") == ["bearer"]


# ---------------------------------------------------------------------------------------------
# The verified-token cache must never change a decision


def test_cache_does_not_accept_a_different_signature(s):
    token = s.hs(scope="me")
    for _ in range(2):
        resp, _ = s.request("/users/me", token)
        assert resp.status_code == 200, describe(resp)
    h, p, sig = token.split(".")
    forged = f"{h}.{p}.{b64u(b'x' * 32)}"
    for _ in range(2):
        resp, seen = s.request("/users/me", forged)
        assert_invalid_token(resp)
        assert seen == []
    resp, _ = s.request("/users/me", token)
    assert resp.status_code == 200, describe(resp)


def test_cache_still_checks_route_scopes(s):
    token = s.hs(scope="me")
    resp, _ = s.request("/users/me", token)
    assert resp.status_code == 200, describe(resp)
    resp, seen = s.request("/users/me/items/1", token)
    assert_insufficient_scope(resp, "me items")
    assert seen == []


# ---------------------------------------------------------------------------------------------
# Gateways with other settings


@pytest.fixture(scope="module")
def strict_pair(tmp_path_factory, upstreams):
    """leeway 0 and insufficient_scope_status 401, with and without the cache."""
    rec, echo = upstreams
    gws = []
    try:
        for size in (10000, 0):
            gw, secret, config, env = start_gateway(
                tmp_path_factory, f"strict{size}",
                main_config(size, rec.url, echo.url, extra_server=", insufficient_scope_status: 401", leeway="0s"))
            gws.append(Setup(gw, rec, secret, config, env))
        yield gws
    finally:
        for g in gws:
            g.gw.stop()


def test_insufficient_scope_status_401(strict_pair):
    for g in strict_pair:
        resp, seen = g.request("/users/me/items/1", g.hs(scope="me"))
        assert_insufficient_scope(resp, "me items", status=401)
        assert seen == []


def test_cached_token_expires_on_time(strict_pair):
    """With leeway 0 a token is accepted until exp and refused from then on, cached or not."""
    exp = now() + 2
    tokens = [g.hs(scope="me", exp=exp) for g in strict_pair]
    for g, token in zip(strict_pair, tokens):
        for _ in range(3):
            resp, _ = g.request("/users/me", token)
            assert resp.status_code == 200, describe(resp)
    wait_until(lambda: time.time() >= exp + 0.2, timeout=5, what="token expiry")
    for g, token in zip(strict_pair, tokens):
        resp, seen = g.request("/users/me", token)
        assert_invalid_token(resp)
        assert seen == []


def test_leeway_zero_refuses_just_expired(strict_pair):
    for g in strict_pair:
        resp, _ = g.request("/users/me", g.hs(scope="me", exp=now() - 2))
        assert_invalid_token(resp)
        resp, _ = g.request("/users/me", g.hs(scope="me", nbf=now() + 5))
        assert_invalid_token(resp)


@pytest.fixture(scope="module")
def custom_names(tmp_path_factory, upstreams):
    rec, echo = upstreams
    extra = ", identity_headers: { subject: X-User, scopes: X-User-Scopes, method: X-Auth-Via }"
    gw, secret, config, env = start_gateway(tmp_path_factory, "custom", main_config(10000, rec.url, echo.url, extra))
    yield Setup(gw, rec, secret, config, env)
    gw.stop()


def test_custom_identity_header_names(custom_names):
    g = custom_names
    spoof = {"X-User": "mallory", "X-User-Scopes": "admin", "X-Auth-Via": "basic"}
    resp, seen = g.request("/users/me", g.hs(scope="me items"), headers=spoof)
    assert resp.status_code == 200, describe(resp)
    assert _header(seen[0], "X-User") == ["johndoe"]
    assert _header(seen[0], "X-User-Scopes") == ["me items"]
    assert _header(seen[0], "X-Auth-Via") == ["bearer"]
    resp, seen = g.request("/open/x", headers=spoof)
    assert resp.status_code == 200, describe(resp)
    names = {k.lower() for k, _ in seen[0]["headers"]}
    assert not names & {"x-user", "x-user-scopes", "x-auth-via"}, seen[0]["headers"]


@pytest.mark.parametrize("aud", [["api", 1], ["api", {"x": 2}], 7])
def test_aud_that_is_not_strings_is_invalid(s, aud):
    # RFC 7519 §4.1.3: a string or an array of strings
    resp, seen = s.request("/users/me", s.hs(aud=aud, scope="me"))
    assert_invalid_token(resp)
    assert not seen


@pytest.mark.parametrize("sub", ["john\u0085doe", "john\u2028doe", "john\u009bdoe"])
def test_a_subject_with_a_line_breaking_character_is_invalid(s, sub):
    # C1 controls (NEL) and the Unicode line separators end a line for some header and log
    # readers. A foreign issuer's token: its subject need not be a local user.
    resp, seen = s.request("/users/me", s.rs(sub=sub, scope="me"))
    assert_invalid_token(resp)
    assert not seen
    resp, seen = s.request("/users/me", s.rs(sub="john doe é", scope="me"))
    assert resp.status_code == 200, describe(resp)
