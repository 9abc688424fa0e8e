"""The token endpoint with an asymmetric signing key (contract §6, §2 `token_endpoint.signing_key`):
`/.well-known/jwks.json` serves the public key, `/.well-known/oauth-authorization-server`
(RFC 8414) describes the endpoint; issued tokens verify with the served JWKS (joserfc)."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from jwt_support import JOSERFC_WARNINGS, b64u, keypair
from token_support import (
    GATEWAY_ISSUER, JWT_SECRET, EchoUpstream, Portcullis, assert_token_response, base_config, check_access_claims,
    describe, echo_headers, json_body, write, write_config)

pytestmark = JOSERFC_WARNINGS

VARIANTS = {"ES256": ("P-256", "e1"), "RS256": ("rsa", "r1")}


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module", params=list(VARIANTS))
def asym(request, echo, tmp_path_factory):
    alg = request.param
    kind, kid = VARIANTS[alg]
    key = keypair(kind, "token-endpoint")
    d = tmp_path_factory.mktemp(f"token-jwks-{alg}")
    write(d / "keys/signing.pem", key.private_pem)
    write(d / "keys/signing.pub.pem", key.public_pem)
    cfg = base_config(echo.url,
                      signing_key={"alg": alg, "kid": kid, "private_key_file": "keys/signing.pem"},
                      verify_keys={"algorithms": [alg], "keys": [{"kid": kid, "public_key_file": "keys/signing.pub.pem"}]})
    g = Portcullis(write_config(d / "gateway.yaml", cfg))
    body = assert_token_response(g.login(scope="me items"), "me items")
    yield g, alg, kid, key, body
    g.stop()


def served_jwks(g) -> dict:
    resp = g.get("/.well-known/jwks.json")
    assert resp.status_code == 200, describe(resp)
    return json_body(resp)


def test_jwks_serves_only_the_public_signing_key(asym):
    g, alg, kid, key, _ = asym
    jwks = served_jwks(g)
    keys = jwks.get("keys")
    assert isinstance(keys, list) and len(keys) == 1, jwks
    jwk = keys[0]
    assert jwk.get("kid") == kid, jwk
    assert jwk.get("alg", alg) == alg, jwk
    assert jwk.get("use", "sig") == "sig", jwk
    for private in ("d", "p", "q", "dp", "dq", "qi", "k"):
        assert private not in jwk, f"private member {private!r} served in the JWKS: {jwk}"
    expected = key.public.as_dict(private=False)
    for member in ("kty", "crv", "x", "y", "n", "e"):
        assert jwk.get(member) == expected.get(member), (member, jwk, expected)


@pytest.mark.parametrize("spelling", ["/.%77ell-known/jwks.json", "/x/../.well-known/./jwks.json"])
def test_jwks_is_found_under_any_spelling_that_normalizes_to_its_path(asym, spelling):
    from harness import get_bytes, raw_exchange

    g, *_ = asym
    resp = raw_exchange(g.port, get_bytes(spelling))  # raw: an HTTP library would tidy the path itself
    assert resp.status == 200, resp
    assert resp.json() == served_jwks(g)


def test_issued_token_verifies_with_the_served_jwks(asym):
    g, alg, kid, _, body = asym
    keyset = KeySet.import_key_set(served_jwks(g))
    tok = jwt.decode(body["access_token"], keyset, algorithms=[alg])
    assert tok.header.get("alg") == alg, tok.header
    check_access_claims(tok, sub="johndoe", scope="me items", kid=kid)
    resp = g.get("/users/me/items/", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]


def test_authorization_server_metadata(asym):
    g, alg, _, _, _ = asym
    resp = g.get("/.well-known/oauth-authorization-server")
    assert resp.status_code == 200, describe(resp)
    meta = json_body(resp)
    assert meta.get("issuer") == GATEWAY_ISSUER, meta
    assert isinstance(meta.get("token_endpoint"), str) and meta["token_endpoint"].endswith("/token"), meta
    assert meta["token_endpoint"].startswith(("http://", "https://")), meta
    grants = meta.get("grant_types_supported")
    assert isinstance(grants, list) and {"password", "refresh_token"} <= set(grants), meta
    jwks_uri = meta.get("jwks_uri")
    assert isinstance(jwks_uri, str) and jwks_uri.startswith(("http://", "https://")), meta
    assert jwks_uri.endswith("/.well-known/jwks.json"), meta
    if "scopes_supported" in meta:
        assert {"me", "items"} <= set(meta["scopes_supported"]), meta
    if "token_endpoint_auth_signing_alg_values_supported" in meta:
        assert isinstance(meta["token_endpoint_auth_signing_alg_values_supported"], list), meta


def test_symmetric_signing_key_is_never_published(echo, tmp_path):
    g = Portcullis(write_config(tmp_path / "gateway.yaml", base_config(echo.url)))
    try:
        resp = g.get("/.well-known/jwks.json")
        for form in (JWT_SECRET, b64u(JWT_SECRET)):
            assert form not in resp.text, "the HMAC secret is served"
        if resp.status_code == 200:
            assert all(k.get("kty") != "oct" for k in json_body(resp).get("keys", [])), resp.text
        else:
            assert resp.status_code == 404, describe(resp)
    finally:
        g.stop()
