"""Every supported JWS algorithm, cross-checked with joserfc: a token minted by joserfc with a
fresh key verifies at the gateway (key from a PEM file, a JWKS file, an environment variable or
a secret file), and the same token signed with another key of the same kind is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec as cec

from jwt_support import (
    ALG_KIND, ALL_ALGS, JOSERFC_WARNINGS, Gateway, KeyPair, RecordingUpstream, assert_invalid_token, b64u,
    base_env, claims, describe, hmac_token, keypair, marker, mint, write)

pytestmark = JOSERFC_WARNINGS

ASYMMETRIC = [a for a in ALL_ALGS if ALG_KIND[a] != "hmac"]
HMAC = [a for a in ALL_ALGS if ALG_KIND[a] == "hmac"]

# (alg, how the gateway gets the key)
CASES = [(a, "secret_env") for a in HMAC] + [("HS384", "secret_file"), ("HS512", "secret_file_no_newline")] \
    + [(a, "public_key_file") for a in ASYMMETRIC] + [(a, "jwks_file") for a in ASYMMETRIC]


def issuer_name(alg, source):
    return f"https://alg.test/{alg}/{source}"


def kid(alg, source):
    return f"{alg}-{source}"


def key_for(alg, source) -> KeyPair:
    # a fresh key per algorithm and per source
    return keypair(ALG_KIND[alg], f"alg-{alg}-{source}")


def other_key_for(alg) -> KeyPair:
    return keypair(ALG_KIND[alg], f"alg-other-{ALG_KIND[alg]}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    directory = tmp_path_factory.mktemp("algs")
    rec = RecordingUpstream()
    env = base_env()
    issuers = []
    for alg, source in CASES:
        k = key_for(alg, source)
        name = kid(alg, source)
        if source == "secret_env":
            var = f"PORTCULLIS_TEST_{alg}_SECRET"
            env[var] = k.secret
            keys = f"keys: [ {{ kid: {name}, secret_env: {var} }} ]"
        elif source.startswith("secret_file"):
            newline = "" if source.endswith("no_newline") else "\n"
            write(directory / f"secrets/{name}.txt", k.secret + newline)
            keys = f"keys: [ {{ kid: {name}, secret_file: secrets/{name}.txt }} ]"
        elif source == "public_key_file":
            write(directory / f"keys/{name}.pem", k.public_pem)
            keys = f"keys: [ {{ kid: {name}, public_key_file: keys/{name}.pem }} ]"
        else:
            write(directory / f"keys/{name}.jwks.json", {"keys": [k.jwk(name, alg)]})
            keys = f"jwks_file: keys/{name}.jwks.json"
        issuers.append(f"""    - issuer: "{issuer_name(alg, source)}"
      audiences: ["api"]
      algorithms: [{alg}]
      {keys}
""")
    config = write(directory / "algs.yaml", f"""version: 1
server: {{ admin_listen: "", realm: "api" }}
jwt:
  leeway: 30s
  issuers:
{"".join(issuers)}upstreams: {{ u: {{ url: "{rec.url}" }} }}
routes:
  - {{ name: r, match: {{ path: "/r/**" }}, auth: bearer, scopes: [read], upstream: u }}
""")
    g = Gateway(config, env)
    g.rec = rec
    yield g
    g.stop()
    rec.stop()


def call(gw, token):
    m = marker()
    resp = gw.get(f"/r/x?{m}", token=token)
    return resp, gw.rec.seen(m)


def token_for(alg, source, key=None, **kw):
    return mint(key or key_for(alg, source), alg, kid(alg, source),
                claims(iss=issuer_name(alg, source), sub=f"sub-{alg}", scope="read", **kw))


@pytest.mark.parametrize("alg,source", CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_joserfc_token_verifies(gw, alg, source):
    resp, seen = call(gw, token_for(alg, source))
    assert resp.status_code == 200, describe(resp)
    assert len(seen) == 1
    h = {k.lower(): v for k, v in seen[0]["headers"]}
    assert h.get("x-auth-subject") == f"sub-{alg}"
    assert h.get("x-auth-scopes") == "read"
    assert h.get("x-auth-method") == "bearer"


@pytest.mark.parametrize("alg,source", CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_other_key_is_refused(gw, alg, source):
    resp, seen = call(gw, token_for(alg, source, key=other_key_for(alg)))
    assert_invalid_token(resp)
    assert seen == []


def test_secret_file_newline_is_not_part_of_the_key(gw):
    """secret_file: one trailing newline is ignored, so a key that includes it does not verify."""
    k = key_for("HS384", "secret_file")
    token = hmac_token((k.secret + "\n").encode(), {"alg": "HS384", "kid": kid("HS384", "secret_file")},
                       claims(iss=issuer_name("HS384", "secret_file"), scope="read"), alg="HS384")
    resp, seen = call(gw, token)
    assert_invalid_token(resp)
    assert seen == []


@pytest.mark.parametrize("alg,wrong", [
    ("RS256", "PS256"), ("PS256", "RS256"), ("RS256", "RS512"), ("ES256", "ES384"), ("HS256", "HS512"),
    ("ES384", "ES256"), ("PS384", "PS512"),
])
def test_algorithm_of_the_same_family_not_pinned(gw, alg, wrong):
    """A token with an algorithm the issuer does not pin, signed with the issuer's own key (or, where the
    algorithm needs another curve, a key of that curve)."""
    source = "secret_env" if ALG_KIND[alg] == "hmac" else "public_key_file"
    k = key_for(alg, source)
    if ALG_KIND[wrong] != ALG_KIND[alg]:  # ES384 on a P-256 key cannot be made; use a key of the right curve
        k = KeyPair(ALG_KIND[wrong])
    token = mint(k, wrong, kid(alg, source), claims(iss=issuer_name(alg, source), scope="read"))
    resp, seen = call(gw, token)
    assert_invalid_token(resp)
    assert seen == []


def test_key_of_another_issuer_is_not_used(gw):
    """A valid signature by issuer B's key is refused when the token claims issuer A."""
    token = mint(key_for("ES256", "jwks_file"), "ES256", kid("ES256", "jwks_file"),
                 claims(iss=issuer_name("ES256", "public_key_file"), scope="read"))
    resp, seen = call(gw, token)
    assert_invalid_token(resp)
    assert seen == []


def test_eddsa_signature_malleated_is_refused(gw):
    token = token_for("EdDSA", "public_key_file")
    h, p, sig = token.split(".")
    # change one character near the end of the signature
    last = sig[-2]
    alt = "A" if last != "A" else "B"
    resp, seen = call(gw, f"{h}.{p}.{sig[:-2]}{alt}{sig[-1]}")
    assert_invalid_token(resp)
    assert seen == []


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_der_signature_is_refused(gw, alg):
    """JWS ECDSA signatures are raw R||S (RFC 7518 §3.4); a DER-encoded one is not a valid JWS."""
    k = key_for(alg, "public_key_file")
    header = {"alg": alg, "kid": kid(alg, "public_key_file")}
    signing_input = f"{b64u(header)}.{b64u(claims(iss=issuer_name(alg, 'public_key_file'), scope='read'))}"
    digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
    der = k.crypto_key.sign(signing_input.encode(), cec.ECDSA(digest))
    resp, seen = call(gw, f"{signing_input}.{b64u(der)}")
    assert_invalid_token(resp)
    assert seen == []
