"""`portcullis token` (contract §1, §6): tokens minted with every kind of signing key verify in
joserfc with the corresponding public key, carry typ at+jwt and kid and the claims iss, sub, aud,
exp, iat, jti, scope, and verify at a gateway configured with the public key."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.errors import JoseError

from jwt_support import (
    ALG_KIND, GATEWAY_ISSUER, JOSERFC_WARNINGS, USERS_YAML, Gateway, RecordingUpstream, assert_invalid_token, b64u,
    b64u_decode, base_env, decode_part, describe, keypair, marker, run_portcullis, write)

pytestmark = JOSERFC_WARNINGS

SIGNING_ALGS = ["HS256", "RS256", "PS256", "ES256", "ES512", "EdDSA"]
SIG_LENGTH = {"ES256": 64, "ES512": 132, "EdDSA": 64, "RS256": 256, "PS256": 256, "HS256": 32}


class Minting:
    def __init__(self, alg, directory, rec_url):
        self.alg = alg
        self.kid = f"sk-{alg.lower()}"
        self.key = keypair(ALG_KIND[alg], f"cli-{alg}")
        self.env = base_env()
        if ALG_KIND[alg] == "hmac":
            self.env["PORTCULLIS_JWT_SECRET"] = self.key.secret
            verify_key = f"secret_env: PORTCULLIS_JWT_SECRET"
            signing = f"{{ alg: {alg}, kid: {self.kid}, secret_env: PORTCULLIS_JWT_SECRET }}"
        else:
            write(directory / "keys/signing.pem", self.key.private_pem)
            write(directory / "keys/public.pem", self.key.public_pem)
            verify_key = "public_key_file: keys/public.pem"
            signing = f"{{ alg: {alg}, kid: {self.kid}, private_key_file: keys/signing.pem }}"
        self.config = write(directory / "gateway.yaml", f"""version: 1
server: {{ admin_listen: "", realm: "api" }}
jwt:
  issuers:
    - issuer: "{GATEWAY_ISSUER}"
      audiences: ["api"]
      algorithms: [{alg}]
      keys: [ {{ kid: {self.kid}, {verify_key} }} ]
{USERS_YAML}token_endpoint:
  issuer: "{GATEWAY_ISSUER}"
  audience: api
  access_token_ttl: 20m
  signing_key: {signing}
upstreams: {{ u: {{ url: "{rec_url}" }} }}
routes:
  - {{ name: items, match: {{ path: "/users/me/items/**" }}, auth: bearer, scopes: [me, items], upstream: u }}
""")

    def token(self, *extra, sub="johndoe", scope="me items") -> str:
        args = ["token", "--config", str(self.config), "--sub", sub]
        if scope is not None:
            args += ["--scope", scope]
        out = run_portcullis(args + list(extra), self.env)
        assert out.returncode == 0, f"portcullis token failed ({out.returncode}): {out.stderr}"
        token = out.stdout.strip()
        assert token.count(".") == 2, f"not a compact JWS: {out.stdout!r}"
        return token


@pytest.fixture(scope="module")
def rec():
    r = RecordingUpstream()
    yield r
    r.stop()


@pytest.fixture(scope="module", params=SIGNING_ALGS)
def minting(request, tmp_path_factory, rec):
    return Minting(request.param, tmp_path_factory.mktemp(f"cli-{request.param}"), rec.url)


def test_token_verifies_in_joserfc(minting):
    before = int(time.time())
    token = minting.token("--ttl", "30s")
    after = int(time.time())
    decoded = jwt.decode(token, minting.key.public, algorithms=[minting.alg])
    h, c = decoded.header, decoded.claims
    assert h.get("alg") == minting.alg
    assert h.get("typ") == "at+jwt"
    assert h.get("kid") == minting.kid
    assert c.get("iss") == GATEWAY_ISSUER
    assert c.get("sub") == "johndoe"
    assert c.get("aud") in ("api", ["api"])
    assert c.get("scope") == "me items"
    assert isinstance(c.get("iat"), int) and isinstance(c.get("exp"), int), c
    assert before - 2 <= c["iat"] <= after + 2, c
    assert c["exp"] - c["iat"] == 30, c
    assert isinstance(c.get("jti"), str) and len(c["jti"]) >= 16, c
    assert len(b64u_decode(token.split(".")[2])) == SIG_LENGTH[minting.alg], "signature length (raw JWS form)"


def test_token_tampered_fails_in_joserfc(minting):
    """The joserfc check above can fail: a changed payload does not verify."""
    token = minting.token()
    h, _, sig = token.split(".")
    payload = decode_part(token, 1)
    payload["sub"] = "root"
    with pytest.raises(JoseError):
        jwt.decode(f"{h}.{b64u(payload)}.{sig}", minting.key.public, algorithms=[minting.alg])


def test_default_ttl_and_unique_jti(minting):
    a, b = minting.token(), minting.token()
    ca, cb = decode_part(a, 1), decode_part(b, 1)
    assert ca["exp"] - ca["iat"] == 1200, "access_token_ttl 20m is the default --ttl"
    assert ca["jti"] != cb["jti"]


def test_token_verifies_at_gateway(minting, rec):
    token = minting.token()
    gw = Gateway(minting.config, minting.env)
    try:
        m = marker()
        resp = gw.get(f"/users/me/items/?{m}", token=token)
        assert resp.status_code == 200, describe(resp)
        h = {k.lower(): v for k, v in rec.seen(m)[0]["headers"]}
        assert h.get("x-auth-subject") == "johndoe"
        assert h.get("x-auth-scopes") == "me items"
        assert h.get("x-auth-method") == "bearer"
        # a CLI token for the disabled local user is refused
        resp = gw.get(f"/users/me/items/?{marker()}", token=minting.token(sub="alice"))
        assert_invalid_token(resp, "Inactive user")
    finally:
        gw.stop()


def test_token_without_signing_key_exits_2(tmp_path):
    config = write(tmp_path / "nokey.yaml", """version: 1
server: { admin_listen: "", realm: "api" }
upstreams: { u: { url: "http://127.0.0.1:9" } }
routes:
  - { name: open, match: { path: "/**" }, auth: none, upstream: u }
""")
    out = run_portcullis(["token", "--config", str(config), "--sub", "johndoe"], base_env())
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.strip() == "", "no token may be printed"
