"""OpenID Connect discovery against a provider nobody here wrote (contract §10): the
oidc-provider-mock package (authlib), started on loopback. An id_token with nested role claims,
obtained through the authorization-code flow, is accepted on a route that needs its role and
refused with 403 on one that needs another; /readyz follows discovery; a discovery document
whose issuer differs keeps the issuer unready."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests

from harness import RawConn, free_port, make_config, upstream, wait_until

CLIENT = "portcullis-test"
REDIRECT = "http://127.0.0.1:1/callback"


class Provider:
    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "oidc_provider_mock", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.up, timeout=20, message="the OpenID provider to start")

    def up(self) -> bool:
        try:
            return requests.get(self.url + "/.well-known/openid-configuration", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def id_token(self, sub: str, claims: dict) -> str:
        assert requests.put(f"{self.url}/users/{sub}", json=claims, timeout=5).status_code == 204
        query = urllib.parse.urlencode({"client_id": CLIENT, "redirect_uri": REDIRECT, "response_type": "code",
                                        "scope": "openid email", "state": "s"})
        resp = requests.post(f"{self.url}/oauth2/authorize?{query}", data={"sub": sub}, allow_redirects=False, timeout=5)
        assert resp.status_code in (302, 303), resp.text[:500]
        code = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)["code"][0]
        token = requests.post(f"{self.url}/oauth2/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": CLIENT,
            "client_secret": "unused"}, timeout=5)
        assert token.status_code == 200, token.text[:500]
        return token.json()["id_token"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def config(provider_url: str, echo_url: str, admin_port: int) -> str:
    routes = """
- name: admins
  match: { path: "/admin/**" }
  roles: [admin]
  upstream: main
- name: auditors
  match: { path: "/audit/**" }
  roles: [auditor]
  upstream: main
"""
    text = make_config({"main": upstream(echo_url)}, routes, server={
        "admin_listen": f'"127.0.0.1:{admin_port}"', "claim_headers": "{X-Auth-Email: email}"})
    return text.replace("upstreams:", f"""jwt:
  issuers:
    - issuer: "{provider_url}"
      discovery: true
      jwks_refresh: 1s
      audiences: ["{CLIENT}"]
      algorithms: [RS256]
      roles_claims: [realm_access.roles]
upstreams:""", 1)


def ready(admin_port: int) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2).status_code
    except requests.RequestException:
        return 0


def get(gw, path, token):
    head = f"GET {path} HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer {token}\r\n\r\n"
    with RawConn(gw.port) as conn:
        return conn.request(head.encode())


def test_discovery_roles_and_readiness(spawner, echo):
    port, admin = free_port(), free_port()
    provider_url = f"http://127.0.0.1:{port}"
    # The gateway starts first: until the provider answers, the issuer is not ready.
    gw = spawner.gateway(config(provider_url, echo.url, admin))
    assert ready(admin) == 503
    provider = Provider(port)
    try:
        wait_until(lambda: ready(admin) == 200, timeout=20, message="/readyz after discovery")
        token = provider.id_token("alice", {"email": "alice@example.com", "realm_access": {"roles": ["admin"]}})
        ok = get(gw, "/admin/x", token)
        assert ok.status == 200, ok
        seen = {k.lower(): v for k, v in ok.json()["headers"]}
        assert seen["x-auth-subject"] == "alice" and seen["x-auth-roles"] == "admin"
        assert seen["x-auth-email"] == "alice@example.com"
        refused = get(gw, "/audit/x", token)
        assert refused.status == 403, refused
        assert 'error="insufficient_scope"' in refused.header("WWW-Authenticate")
    finally:
        provider.stop()


def test_a_discovery_document_for_another_issuer_keeps_the_issuer_unready(spawner, echo):
    port, admin = free_port(), free_port()
    provider = Provider(port)
    try:
        # The provider calls itself http://127.0.0.1:PORT; this configuration names another issuer
        # whose discovery URL is the same document.
        gw = spawner.gateway(config(f"http://127.0.0.1:{port}/", echo.url, admin))
        time.sleep(2.5)  # more than two refresh rounds
        assert ready(admin) == 503
        token = provider.id_token("bob", {"realm_access": {"roles": ["admin"]}})
        resp = get(gw, "/admin/x", token)
        assert resp.status == 401, resp
        assert any("discovery document refused" in line for line in gw.stderr_lines), gw.stderr_lines[-5:]
    finally:
        provider.stop()


def test_discovery_cannot_be_combined_with_keys(tmp_path):
    from harness import run_portcullis

    path = tmp_path / "c.yaml"
    path.write_text("""version: 1
jwt:
  issuers:
    - issuer: "https://idp.example"
      discovery: true
      jwks_url: "https://idp.example/keys"
      algorithms: [RS256]
upstreams: { u: { url: "http://127.0.0.1:9" } }
routes:
  - { name: r, match: { path: /x }, upstream: u }
""")
    out = run_portcullis(["validate", "--config", str(path)])
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(r"c\.yaml:6:7: error: .*discovery", out.stderr), out.stderr
