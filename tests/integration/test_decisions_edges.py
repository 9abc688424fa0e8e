"""The decision service behind real edge proxies (contract §11): nginx `auth_request`, Traefik
`forwardAuth` and Envoy `ext_authz`, each started on loopback from the configuration its page
in docs/ gives, in front of a recording upstream, asking a decision-only Portcullis.

For each proxy: a valid token reaches the upstream with the identity the decision computed;
a missing, bad or insufficient token comes back as 401/403 with its challenge; a forged
identity header never reaches the upstream; the path tricks of contract §3 get §3's answers
and nothing reaches the upstream; and headers that would describe another request (a
client's own X-Original-URI or X-Forwarded-Uri) change nothing."""

from __future__ import annotations

import re

import pytest
import yaml

from edge_support import DOCS_OF, MODES, PROXIES, DecisionGateway, decisions_section, doc_block, replace_all, request
from harness import REPO, RawConn
from ops_support import ENV, REALM, run, token, trusted_issuer_and_johndoe

DOCKER = REPO / "docker"

ROUTES = """routes:
  - { name: public, match: { path: "/public/**" }, auth: none }
  - { name: maybe, match: { path: "/maybe/**" }, auth: optional }
  - { name: me, match: { path: /users/me }, auth: bearer, scopes: [me] }
  - { name: admin, match: { path: "/admin/**" }, auth: bearer, scopes: [admin] }
"""

IDENTITY = ["X-Auth-Subject", "X-Auth-Scopes", "X-Auth-Method", "X-Auth-Roles"]


def config(proxy: str) -> str:
    return f"""version: 1
server:
  listen: ""
  admin_listen: ""
  realm: "{REALM}"
{decisions_section(DOCS_OF[proxy])}{trusted_issuer_and_johndoe()}
{ROUTES}"""


@pytest.fixture(scope="module", params=list(PROXIES))
def edge(request, module_spawner, rec, tmp_path_factory):
    name = request.param
    gateway = DecisionGateway(module_spawner.write(config(name), f"decisions-{name}.yaml"), env=ENV)
    module_spawner.things.append(gateway)
    gateway.start()
    proxy = PROXIES[name](tmp_path_factory.mktemp(name), gateway.port, rec.port)
    module_spawner.things.append(proxy)
    proxy.start()
    yield proxy, gateway, rec
    proxy.stop()
    gateway.stop()


def upstream_saw(rec, marker: str):
    return [r for r in rec.snapshot() if marker in r.target]


def test_each_proxy_uses_the_mode_its_page_documents():
    for name, mode in MODES.items():
        assert f"request_from: {mode}" in decisions_section(DOCS_OF[name])


def test_a_valid_token_reaches_the_upstream_with_the_identity_the_decision_computed(edge):
    proxy, gateway, rec = edge
    rec.clear()
    resp = request(proxy.port, "GET", "/users/me?m=valid", [
        ("Authorization", "Bearer " + token(scope="me items")), ("X-Auth-Subject", "root"), ("X-Auth-Scopes", "admin")])
    assert resp.status == 200, resp
    [seen] = upstream_saw(rec, "m=valid")
    assert seen.header_all("X-Auth-Subject") == ["johndoe"]
    assert seen.header_all("X-Auth-Scopes") == ["me items"]
    assert seen.header_all("X-Auth-Method") == ["bearer"]
    assert gateway.wait_log(listener="decisions", route="me", decision="allow", subject="johndoe")


def test_no_token_is_401_with_the_routes_challenge(edge):
    proxy, _, rec = edge
    rec.clear()
    resp = request(proxy.port, "GET", "/users/me?m=none")
    assert resp.status == 401, resp
    assert resp.header_all("WWW-Authenticate") == [f'Bearer realm="{REALM}", scope="me"']
    assert resp.json()["detail"] == "Not authenticated"
    assert not upstream_saw(rec, "m=none")


def test_a_bad_token_is_401_invalid_token(edge):
    proxy, _, rec = edge
    rec.clear()
    resp = request(proxy.port, "GET", "/users/me?m=bad", [("Authorization", "Bearer " + token(secret="wrong-secret-0123456789"))])
    assert resp.status == 401, resp
    [challenge] = resp.header_all("WWW-Authenticate")
    assert challenge.startswith(f'Bearer realm="{REALM}", error="invalid_token"'), challenge
    assert resp.json()["detail"] == "Could not validate credentials"
    assert not upstream_saw(rec, "m=bad")


def test_a_missing_scope_is_403_insufficient_scope(edge):
    proxy, _, rec = edge
    rec.clear()
    resp = request(proxy.port, "GET", "/admin/x?m=scope", [("Authorization", "Bearer " + token(scope="me"))])
    assert resp.status == 403, resp
    [challenge] = resp.header_all("WWW-Authenticate")
    assert 'error="insufficient_scope", scope="admin"' in challenge
    assert resp.json()["detail"] == "Not enough permissions"
    assert not upstream_saw(rec, "m=scope")


def test_a_forged_identity_without_credentials_never_reaches_the_upstream(edge):
    proxy, gateway, rec = edge
    rec.clear()
    forged = [("X-Auth-Subject", "root"), ("X-Auth-Scopes", "admin"), ("X-Auth-Method", "bearer"), ("X-Auth-Roles", "admin")]
    resp = request(proxy.port, "GET", "/maybe/x?m=forged", forged)
    assert resp.status == 200, resp
    [seen] = upstream_saw(rec, "m=forged")
    for name in IDENTITY:
        assert seen.header_all(name) in ([], [""]), (name, seen.headers)
    assert gateway.wait_log(listener="decisions", route="maybe", decision="allow")


# Contract §3 through each proxy: the answer, and what the client sees of it. nginx restores
# the status Portcullis names in X-Portcullis-Status (and refuses a climb above the root
# itself); Traefik and Envoy pass the 403 on with it. Traefik cleans dot segments first, so a
# climb above the root is decided (and would be forwarded) as the cleaned path.
TRICKS = [
    ("dot-dot into a protected path", "/public/%2e%2e/users/me", {"*": (401, None)}),
    ("doubled slashes", "//users//me", {"*": (401, None)}),
    ("encoded slash", "/public/a%2Fb", {"nginx": (400, None), "*": (403, "400")}),
    ("above the root", "/public/%2e%2e/%2e%2e/x", {"nginx": (400, None), "traefik": (403, "404"), "envoy": (403, "400")}),
]


@pytest.mark.parametrize("name,target,expected", TRICKS, ids=[t[0] for t in TRICKS])
def test_path_tricks_get_the_contracts_answers_and_reach_nothing(edge, name, target, expected):
    proxy, _, rec = edge
    rec.clear()
    status, portcullis_status = expected.get(proxy.name, expected.get("*"))
    resp = request(proxy.port, "GET", target + "?m=trick")
    assert resp.status == status, resp
    assert resp.header("X-Portcullis-Status") == portcullis_status, resp
    assert not upstream_saw(rec, "m=trick"), rec.snapshot()


def test_headers_naming_a_public_path_do_not_open_a_protected_one(edge):
    proxy, _, rec = edge
    rec.clear()
    lies = [("X-Original-URI", "/public/x"), ("X-Original-Method", "GET"), ("X-Original-Host", "api.example"),
            ("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "api.example")]
    resp = request(proxy.port, "GET", "/users/me?m=lies", lies)
    assert resp.status == 401, resp
    assert not upstream_saw(rec, "m=lies")


# -- docker/compose.decisions.yaml: nginx in front, with the documented configuration ---------


def without_leading_comments(text: str) -> str:
    return re.sub(r"\A(#.*\n)+", "", text)


def test_the_compose_files_are_the_documented_configuration_with_container_addresses():
    nginx = replace_all(doc_block("edge-nginx.md", "portcullis.conf"), [
        ("server 127.0.0.1:9902;", "server portcullis:9902;"), ("server 127.0.0.1:9001;", "server upstream:9001;"),
        ("listen 127.0.0.1:8080;", "listen 8080;")])
    assert without_leading_comments((DOCKER / "nginx.decisions.conf").read_text()) == without_leading_comments(nginx)
    portcullis = replace_all(doc_block("edge-nginx.md", "routes.yaml (Portcullis)"), [
        ('listen: "127.0.0.1:9902"', 'listen: "0.0.0.0:9902"'), ('admin_listen: "127.0.0.1:9901"', 'admin_listen: "0.0.0.0:9901"'),
        ('trusted_proxies: ["127.0.0.1/32"]', 'trusted_proxies: ["172.28.0.10/32"]')])
    assert without_leading_comments((DOCKER / "routes.decisions.yaml").read_text()) == without_leading_comments(portcullis)


def test_the_compose_file_runs_portcullis_decision_only_and_trusts_nginx_alone(spawner):
    compose = yaml.safe_load((DOCKER / "compose.decisions.yaml").read_text())
    services = compose["services"]
    assert services["portcullis"]["command"] == ["serve"]  # no --listen: server.listen "" holds
    config = services["portcullis"]["environment"]["PORTCULLIS_CONFIG"]
    assert [v.split(":")[0] for v in services["portcullis"]["volumes"] if v.split(":")[1] == config] == ["./routes.decisions.yaml"]
    assert services["nginx"]["networks"]["edge"]["ipv4_address"] == "172.28.0.10"
    assert any(v.startswith("./nginx.decisions.conf:/etc/nginx/conf.d/") for v in services["nginx"]["volumes"])
    proc = run(["validate", "--config", str(DOCKER / "routes.decisions.yaml")])
    assert proc.returncode == 0, proc.stderr


def time_wait_with(port: int) -> int:
    """TCP connections to or from `port` in TIME_WAIT: each is a connection that was closed."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "06" and port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)):
                count += 1
    return count


@pytest.mark.parametrize("edge", ["nginx"], indirect=True)
def test_nginx_keeps_its_connections_to_the_decision_service_across_refusals(edge):
    # auth_request closes an upstream connection whose answer has a body it did not read; the
    # documented HEAD subrequest has none, so refusals cost no new connection.
    proxy, gateway, _ = edge
    request(proxy.port, "GET", "/users/me")  # a connection to the decision service is pooled
    before = time_wait_with(gateway.port)
    with RawConn(proxy.port) as conn:
        for _ in range(20):
            assert conn.request(b"GET /users/me HTTP/1.1\r\nHost: api.example\r\n\r\n").status == 401
    assert time_wait_with(gateway.port) - before <= 1
