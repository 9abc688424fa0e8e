"""`jwks_url` issuers (contract §2, §9): the key set is fetched at start, refreshed every
`jwks_refresh`, refetched at most once per 30 s per issuer when a token names an unknown kid,
and a failing refresh keeps the last good set. A Python http.server plays the identity provider,
counts the fetches, and rotates keys by changing what it serves."""

from __future__ import annotations

import http.server
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from jwt_support import (
    JOSERFC_WARNINGS, Gateway, RecordingUpstream, assert_invalid_token, base_env, claims, describe, keypair, marker,
    mint, session, wait_until, write, HTTP_TIMEOUT)

pytestmark = JOSERFC_WARNINGS

ISSUER = "https://remote.example"


class JWKSServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, object] = {}   # kid -> KeyPair
        self.extra: list[dict] = []         # further JWKs served as they are
        self.mode = "ok"                    # ok | 500 | garbage
        self.delay = 0.0                    # seconds before each answer
        self.fetches: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with server.lock:
                    server.fetches.append(self.path)
                    mode = server.mode
                    delay = server.delay
                time.sleep(delay)
                with server.lock:
                    body = json.dumps({"keys": [k.jwk(kid, "ES256") for kid, k in server.keys.items()]
                                       + server.extra}).encode()
                status = 200
                if mode == "500":
                    status, body = 500, b'{"error":"boom"}'
                elif mode == "garbage":
                    body = b'{"keys": [ this is not json'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def serve(self, *kids, mode="ok"):
        with self.lock:
            self.keys = {kid: keypair("P-256", f"jwks-{kid}") for kid in kids}
            self.mode = mode

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.fetches)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def token(kid, key_name=None, **kw):
    return mint(keypair("P-256", f"jwks-{key_name or kid}"), "ES256", kid,
                claims(iss=ISSUER, sub=f"svc-{kid}", scope="read", **kw))


@pytest.fixture
def env(tmp_path):
    rec = RecordingUpstream()
    idp = JWKSServer()
    gateways = []

    def start(refresh="10m", cache_size=10000, algorithms="ES256", url=None):
        config = write(tmp_path / f"jwks{len(gateways)}.yaml", f"""version: 1
server: {{ admin_listen: "", realm: "api" }}
jwt:
  cache_size: {cache_size}
  issuers:
    - issuer: "{ISSUER}"
      audiences: ["api"]
      algorithms: [{algorithms}]
      jwks_url: "{url or idp.url}"
      jwks_refresh: {refresh}
upstreams: {{ u: {{ url: "{rec.url}" }} }}
routes:
  - {{ name: r, match: {{ path: "/r/**" }}, auth: bearer, upstream: u }}
""")
        gw = Gateway(config, base_env())
        gateways.append(gw)
        return gw

    class Env:
        pass

    e = Env()
    e.rec, e.idp, e.start = rec, idp, start
    yield e
    for gw in gateways:
        gw.stop()
    idp.stop()
    rec.stop()


def status(gw, tok):
    return gw.get(f"/r/x?{marker()}", token=tok).status_code


def wait_ready(gw, kid="k1"):
    """Readiness poll: the first fetch may complete just after the listener is up."""
    wait_until(lambda: status(gw, token(kid)) == 200, timeout=5, what=f"a {kid} token to verify")


def test_fetched_at_start_and_verifies(env):
    env.idp.serve("k1")
    gw = env.start()
    wait_until(lambda: env.idp.count >= 1, timeout=5, what="the first JWKS fetch")
    wait_ready(gw)
    m = marker()
    resp = gw.get(f"/r/x?{m}", token=token("k1"))
    assert resp.status_code == 200, describe(resp)
    h = {k.lower(): v for k, v in env.rec.seen(m)[0]["headers"]}
    assert h.get("x-auth-subject") == "svc-k1"
    assert env.idp.count == 1, f"a known kid must not cause fetches: {env.idp.fetches}"
    assert env.idp.fetches[0] == "/jwks.json"
    # the same kid signed with another key is refused without a refetch storm
    resp = gw.get(f"/r/x?{marker()}", token=token("k1", key_name="intruder"))
    assert_invalid_token(resp)


def test_unknown_kid_triggers_one_refetch_then_rate_limited(env):
    env.idp.serve("k1")
    gw = env.start()
    wait_ready(gw)
    assert env.idp.count == 1
    # rotation at the identity provider: k2 appears
    env.idp.serve("k1", "k2")
    m = marker()
    resp = gw.get(f"/r/x?{m}", token=token("k2"))
    assert resp.status_code == 200, "an unknown kid must trigger a refetch: " + describe(resp)
    assert env.idp.count == 2, env.idp.fetches
    # within 30 s, further unknown kids are refused without any new fetch
    env.idp.serve("k1", "k2", "k3")
    for kid in ("k3", "zz", "k3"):
        resp = gw.get(f"/r/x?{marker()}", token=token(kid))
        assert_invalid_token(resp)
    assert env.idp.count == 2, f"unknown kids refetched within 30 s: {env.idp.fetches}"
    # known keys keep working
    assert status(gw, token("k1")) == 200
    assert status(gw, token("k2")) == 200


def test_burst_of_unknown_kids_is_one_fetch(env):
    env.idp.serve("k1")
    gw = env.start()
    wait_ready(gw)
    assert env.idp.count == 1
    env.idp.serve("k1", "k2")
    tokens = [token("k2") for _ in range(12)] + [token(f"unknown{i}") for i in range(12)]

    def send(tok):
        s = session()
        try:
            return s.get(gw.url(f"/r/x?{marker()}"), headers={"Authorization": f"Bearer {tok}"},
                         timeout=HTTP_TIMEOUT)
        finally:
            s.close()

    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(send, tokens))
    for resp in responses[12:]:
        assert_invalid_token(resp)
    for resp in responses[:12]:
        assert resp.status_code in (200, 401), describe(resp)
        if resp.status_code == 401:
            assert_invalid_token(resp)
    assert env.idp.count == 2, f"a burst of unknown kids became {env.idp.count - 1} fetches: {env.idp.fetches}"
    assert status(gw, token("k2")) == 200, "the refetched key set must be in use"


def test_periodic_refresh_rotates_keys(env):
    env.idp.serve("k1")
    gw = env.start(refresh="500ms")
    wait_ready(gw)
    # the provider drops k1 and publishes k2; no k2 token is sent until a refresh has happened
    env.idp.serve("k2")
    seen = env.idp.count
    wait_until(lambda: env.idp.count >= seen + 2, timeout=5, what="two periodic refreshes")
    before = env.idp.count
    assert status(gw, token("k2")) == 200
    resp = gw.get(f"/r/x?{marker()}", token=token("k1"))
    assert_invalid_token(resp)
    # k2 was already known: it did not need an unknown-kid refetch; removing k1 is effective
    assert env.idp.count <= before + 1


def test_periodic_refresh_keeps_fetching(env):
    env.idp.serve("k1")
    gw = env.start(refresh="300ms")
    wait_ready(gw)
    start = env.idp.count
    wait_until(lambda: env.idp.count >= start + 3, timeout=5, what="three refreshes at a 300ms interval")


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_failing_refresh_keeps_last_good_set(env, mode):
    env.idp.serve("k1")
    gw = env.start(refresh="300ms")
    wait_ready(gw)
    env.idp.set_mode(mode)
    seen = env.idp.count
    wait_until(lambda: env.idp.count >= seen + 2, timeout=5, what="two failed refreshes")
    m = marker()
    resp = gw.get(f"/r/x?{m}", token=token("k1"))  # a fresh token: not in the verified-token cache
    assert resp.status_code == 200, "the last good key set must stay in use: " + describe(resp)
    assert len(env.rec.seen(m)) == 1
    resp = gw.get(f"/r/x?{marker()}", token=token("other"))
    assert_invalid_token(resp)
    # the provider recovers with a rotated set
    env.idp.serve("k1", "k2")
    wait_until(lambda: status(gw, token("k2")) == 200, timeout=5, what="recovery after the provider is back")
    assert status(gw, token("k1")) == 200


def test_first_fetch_fails_then_recovers(env):
    env.idp.serve("k1", mode="500")
    gw = env.start(refresh="300ms")
    wait_until(lambda: env.idp.count >= 1, timeout=5, what="the first JWKS fetch")
    resp = gw.get(f"/r/x?{marker()}", token=token("k1"))
    assert_invalid_token(resp)  # no keys yet: refused as invalid_token, not a 5xx
    env.idp.set_mode("ok")
    wait_until(lambda: status(gw, token("k1")) == 200, timeout=5, what="the gateway to pick up the key set")


def test_foreign_keys_in_the_set(env):
    """The set may hold keys the issuer does not pin (an RSA key, an encryption key): the EC key still
    works, and a token signed with the RSA key is refused because RS256 is not pinned."""
    rsa = keypair("rsa", "jwks-foreign")
    env.idp.serve("k1")
    env.idp.extra = [rsa.jwk("rsa1", "RS256"), {**keypair("rsa", "jwks-enc").jwk("enc1"), "use": "enc"}]
    gw = env.start()
    wait_ready(gw)
    tok = mint(rsa, "RS256", "rsa1", claims(iss=ISSUER, sub="svc-rsa", scope="read"))
    resp = gw.get(f"/r/x?{marker()}", token=tok)
    assert_invalid_token(resp)


def test_cache_disabled_with_jwks_url(env):
    env.idp.serve("k1")
    gw = env.start(cache_size=0)
    wait_ready(gw)
    tok = token("k1")
    for _ in range(3):
        assert status(gw, tok) == 200
    assert env.idp.count == 1


def test_token_arriving_during_the_start_up_fetch_waits_for_it(env):
    """No second fetch: a request whose kid is unknown only because the first fetch has not
    finished yet waits for that fetch instead of spending the on-demand refetch."""
    env.idp.serve("k1")
    env.idp.delay = 1.0
    gw = env.start()
    wait_until(lambda: env.idp.count >= 1, timeout=5, what="the start-up fetch to begin")
    started = time.monotonic()
    resp = gw.get(f"/r/x?{marker()}", token=token("k1"))
    assert resp.status_code == 200, describe(resp)
    assert time.monotonic() - started < 3
    assert env.idp.count == 1, env.idp.fetches


def _rsa_exponent_one_forgery(rsa_key, kid: str) -> tuple[dict, str]:
    """A JWK with a real modulus and e = 1, and a token 'signed' for it with no private key:
    with e = 1 the signature is the PKCS#1 v1.5 encoding of the digest itself."""
    import base64
    import hashlib

    numbers = rsa_key.crypto_key.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    jwk = {"kty": "RSA", "kid": kid, "n": b64(numbers.n.to_bytes(size, "big")), "e": "AQ", "use": "sig"}
    header = b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(iss=ISSUER, sub="forged", scope="read")).encode())
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(
        f"{header}.{payload}".encode()).digest()
    encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return jwk, f"{header}.{payload}.{b64(encoded)}"


def test_keys_it_cannot_use_are_left_out_not_the_whole_set(env):
    """RFC 7517 §5: unusable keys (an exotic kty, another curve, a short RSA key, RSA with e = 1)
    are ignored; the usable ones work, /readyz-style verification succeeds, and the e = 1 key can
    never verify a forged token."""
    rsa = keypair("rsa", "jwks-e1")
    jwk, forged = _rsa_exponent_one_forgery(rsa, "e1")
    env.idp.serve("k1")
    env.idp.extra = [
        jwk,
        {"kty": "AKP", "kid": "pq1", "alg": "ML-DSA-44", "pub": "AAAA"},
        {"kty": "EC", "kid": "k256", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"},
        {"kty": "RSA", "kid": "zero", "n": "AAAA", "e": "AQAB"},
        rsa.jwk("good-rsa", "RS256"),
    ]
    gw = env.start(algorithms="ES256, RS256")
    wait_ready(gw)
    resp = gw.get(f"/r/x?{marker()}", token=forged)
    assert_invalid_token(resp)
    good = mint(rsa, "RS256", "good-rsa", claims(iss=ISSUER, sub="svc-rsa", scope="read"))
    assert gw.get(f"/r/x?{marker()}", token=good).status_code == 200
    log = gw.log()
    assert "left out" in log and "e1" in log, log


def test_credentials_in_the_jwks_url_never_reach_the_log(env):
    env.idp.serve("k1")
    env.idp.extra = [{"kty": "AKP", "kid": "pq1"}]  # a warning that names the URL
    url = env.idp.url.replace("http://", "http://svc:s3cretPW@") + "?token=abc123secret"
    gw = env.start(url=url)
    wait_ready(gw)
    env.idp.set_mode("500")
    gw.get(f"/r/x?{marker()}", token=token("k9"))  # an unknown kid: a refetch that fails
    wait_until(lambda: "keeping the previous one" in gw.log(), timeout=5, what="the failed refetch to be logged")
    log = gw.log()
    assert "s3cretPW" not in log and "abc123secret" not in log, log
    assert "***@127.0.0.1" in log, log
