"""Contract §9: a JWKS key whose `key_ops` is present and lacks `verify` is left out of the set
(RFC 7517 §4.3), in a `jwks_file` and in a set fetched from `jwks_url` alike. Each set also holds
an ordinary key, so it is never empty and the gateway's readiness can be polled with it."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from jwt_support import (
    JOSERFC_WARNINGS, Gateway, RecordingUpstream, assert_invalid_token, base_env, claims, describe, keypair, marker,
    mint, wait_until, write)

pytestmark = JOSERFC_WARNINGS

ISSUER = "https://ops.example"


def limited_key(key_ops) -> dict:
    jwk = keypair("rsa", "key-ops").jwk("limited", "RS256")
    del jwk["use"]  # key_ops alone says what the key is for
    if key_ops is not None:
        jwk["key_ops"] = key_ops
    return jwk


def key_set(key_ops) -> dict:
    return {"keys": [limited_key(key_ops), keypair("rsa", "key-ops-other").jwk("other", "RS256")]}


def token(key_name: str, kid: str | None) -> str:
    return mint(keypair("rsa", key_name), "RS256", kid, claims(iss=ISSUER, sub=f"svc-{key_name}", scope="read"))


class KeySetServer:
    """Serves one fixed JSON Web Key Set over HTTP."""

    def __init__(self, document: dict):
        body = json.dumps(document).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def rec():
    upstream = RecordingUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture
def start(tmp_path, rec):
    """start(source, key_ops) -> a gateway whose one issuer has the limited key and another."""
    stoppers = []

    def start(source: str, key_ops):
        if source == "jwks_file":
            write(tmp_path / "keys.jwks.json", key_set(key_ops))
            keys = "jwks_file: keys.jwks.json"
        else:
            server = KeySetServer(key_set(key_ops))
            stoppers.append(server.stop)
            keys = f'jwks_url: "{server.url}"'
        config = write(tmp_path / "gateway.yaml", f"""version: 1
server: {{ admin_listen: "", realm: "api" }}
jwt:
  issuers:
    - issuer: "{ISSUER}"
      audiences: ["api"]
      algorithms: [RS256]
      {keys}
upstreams: {{ u: {{ url: "{rec.url}" }} }}
routes:
  - {{ name: r, match: {{ path: "/r/**" }}, auth: bearer, upstream: u }}
""")
        gw = Gateway(config, base_env())
        stoppers.append(gw.stop)
        # A jwks_url set may load just after the listener is up.
        wait_until(lambda: gw.get(f"/r/x?{marker()}", token=token("key-ops-other", "other")).status_code == 200,
                   timeout=5, what="the ordinary key to verify")
        return gw

    yield start
    for stop in reversed(stoppers):
        stop()


SOURCES = ["jwks_file", "jwks_url"]


def ops_id(key_ops) -> str:
    return "absent" if key_ops is None else ",".join(key_ops) or "empty"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key_ops", [["encrypt"], ["sign"], ["wrapKey", "encrypt"], []], ids=ops_id)
def test_a_key_whose_key_ops_lacks_verify_verifies_nothing(start, rec, source, key_ops):
    gw = start(source, key_ops)
    for kid in ("limited", None):  # by its kid, and as the one key without a kid would try
        m = marker()
        resp = gw.get(f"/r/x?{m}", token=token("key-ops", kid))
        assert_invalid_token(resp)
        assert rec.seen(m) == [], f"kid={kid}: forwarded"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key_ops", [["verify"], ["sign", "verify"], None], ids=ops_id)
def test_a_key_that_may_verify_is_used(start, rec, source, key_ops):
    gw = start(source, key_ops)
    for kid in ("limited", None):
        m = marker()
        resp = gw.get(f"/r/x?{m}", token=token("key-ops", kid))
        assert resp.status_code == 200, f"kid={kid}: " + describe(resp)
        assert len(rec.seen(m)) == 1
