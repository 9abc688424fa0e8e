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


def test_published_documents_answer_other_methods_with_405(asym):
    from harness import raw_exchange

    g, *_ = asym
    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        for method in ("POST", "PUT", "DELETE"):
            resp = raw_exchange(g.port, f"{method} {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n".encode())
            assert resp.status == 405, (method, path, resp)
            assert resp.header("allow") == "GET, HEAD", resp
            assert resp.json() == {"detail": "Method Not Allowed"}, resp
        head = g.http.head(g.url(path))
        assert head.status_code == 200 and head.content == b"", describe(head)


def test_check_and_test_see_the_gateways_own_paths(asym, tmp_path):
    """`check` and `test` decide the token endpoint and the published documents as serve does,
    even behind a catch-all route that would otherwise forward them (contract §7)."""
    from ops_support import check_json, run

    g, alg, *_ = asym
    config = g.config_path
    rc, data, proc = check_json(config, "GET", "/.well-known/jwks.json")
    assert rc == 0 and data["status"] == 200 and data["decision"] == "gateway", proc.stdout
    assert data["body"] == json_body(g.get("/.well-known/jwks.json")), data
    rc, data, proc = check_json(config, "POST", "/.well-known/jwks.json")
    assert rc == 1 and data["status"] == 405 and data["route"]["name"] == "token_endpoint", proc.stdout
    rc, data, proc = check_json(config, "GET", "/token")
    assert rc == 1 and data["status"] == 405, proc.stdout
    live = g.get("/token")
    assert live.status_code == 405 and live.headers.get("Allow") == "POST", describe(live)
    rc, data, proc = check_json(config, "POST", "/token")
    assert rc == 0 and data["decision"] == "gateway" and data.get("upstream_url") is None, proc.stdout

    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - { name: get token, request: { method: GET, path: /token }, expect: { status: 405, route: token_endpoint } }\n"
        "  - { name: post token, request: { method: POST, path: /token }, expect: { route: token_endpoint } }\n"
        "  - { name: jwks, request: { method: GET, path: /.well-known/jwks.json }, expect: { status: 200 } }\n")
    proc = run(["test", "--config", str(config), str(cases)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "3 passed, 0 failed", proc.stdout


def test_a_catch_all_route_does_not_take_the_token_endpoint(echo, tmp_path):
    from ops_support import check_json

    cfg = base_config(echo.url, extra_routes=[{"name": "all", "match": {"path": "/**"}, "auth": "none", "upstream": "u"}])
    config = write_config(tmp_path / "gateway.yaml", cfg)
    rc, data, proc = check_json(config, "POST", "/token")
    assert rc == 0 and data["decision"] == "gateway" and data.get("upstream_url") is None, proc.stdout
    rc, data, proc = check_json(config, "GET", "/token")
    assert rc == 1 and data["status"] == 405, proc.stdout
    rc, data, proc = check_json(config, "GET", "/anything")
    assert rc == 0 and data["decision"] == "allow", proc.stdout
    g = Portcullis(config)
    try:
        resp = g.http.post(g.url("/token"), data={"username": "johndoe", "password": "wrong"})
        assert resp.status_code == 400 and json_body(resp).get("error") == "invalid_grant", describe(resp)
        assert g.get("/token").status_code == 405
        from harness import raw_exchange
        bad_host = raw_exchange(g.port, b"POST /token HTTP/1.1\r\nHost: gw.test:abc\r\nContent-Length: 0\r\n\r\n")
        assert bad_host.status == 400 and bad_host.json() == {"detail": "Invalid Host header"}, bad_host
    finally:
        g.stop()
