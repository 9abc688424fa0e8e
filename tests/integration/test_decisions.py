"""The decision service's listener, asked directly (contract §11): who may ask, which request
each `request_from` mode decides (and that it ignores the other modes' headers), the answers
(200 with every identity header, 401/403 as serve sends them, every other status as 403 with
X-Portcullis-Status), shadow mode, CORS preflights, password and API-key checks and the login
throttle, an unknown kid fetched on demand, one access-log line and one metric per decision,
routes without upstream on the public listener, and `check --listener decisions` agreeing with
the service. The edge proxies themselves are in test_decisions_edges.py."""

from __future__ import annotations

import pytest
import requests

from edge_support import DecisionGateway, doc_block, request
from harness import RawConn
from ops_support import (
    ENV, JOHNDOE_HASH, LOCAL_TOKEN_ENDPOINT, REALM, basic, check_json, q, run, token, trusted_issuer_and_johndoe)
from jwt_support import JOSERFC_WARNINGS, claims as jwt_claims, mint, keypair
from test_jwt_jwks_url import ISSUER as REMOTE_ISSUER, JWKSServer

pytestmark = JOSERFC_WARNINGS

IDENTITY = ["X-Auth-Subject", "X-Auth-Scopes", "X-Auth-Method", "X-Auth-Roles", "X-Auth-Email"]


def config_text(upstream_url: str, request_from: str = "original", extra_decisions: str = "", public: bool = True) -> str:
    # The public listener's address comes from `serve --listen`; without one, decisions only.
    return f"""version: 1
server:
{"" if public else '  listen: ""' + chr(10)}  admin_listen: "127.0.0.1:0"
  realm: "{REALM}"
  claim_headers: {{ X-Auth-Email: email }}
decisions:
  listen: "127.0.0.1:0"
  request_from: {request_from}
  trusted_proxies: ["127.0.0.1/32"]
{extra_decisions}{trusted_issuer_and_johndoe()}
api_keys:
  - {{ name: argon-bot, key_hash: {q(JOHNDOE_HASH)}, scopes: [items], in: header, param: X-API-Key }}
{LOCAL_TOKEN_ENDPOINT}
  login_throttle: {{ max_failures: 2, window: 1m }}
upstreams:
  rec: {{ url: {q(upstream_url)} }}
routes:
  - {{ name: public, match: {{ path: "/public/**" }}, auth: none, upstream: rec }}
  - {{ name: decided, match: {{ path: "/decided/**" }}, auth: bearer, scopes: [me] }}
  - {{ name: maybe, match: {{ path: "/maybe/**" }}, auth: optional }}
  - {{ name: me, match: {{ path: /users/me, methods: [GET] }}, auth: bearer, scopes: [me] }}
  - {{ name: basic, match: {{ path: "/basic/**" }}, auth: basic }}
  - {{ name: keyed, match: {{ path: "/keyed/**" }}, auth: api_key }}
  - {{ name: shadow, match: {{ path: "/shadow/**" }}, auth: bearer, scopes: [admin], mode: dry-run }}
  - name: web
    match: {{ path: "/web/**" }}
    auth: bearer
    cors: {{ allow_origins: ["https://app.example"], allow_methods: [GET, POST], allow_headers: [Authorization] }}
"""


@pytest.fixture(scope="module")
def gw(module_spawner, rec):
    path = module_spawner.write(config_text(rec.url), "decisions.yaml")
    gateway = DecisionGateway(path, env=ENV, public=True)
    module_spawner.things.append(gateway)
    gateway.start()
    gateway.config = path
    return gateway


def ask(gw, method: str, uri: str, headers=(), source=None):
    """A decision request as nginx's auth_request sends it."""
    described = [("X-Original-Method", method), ("X-Original-URI", uri), ("X-Original-Host", "api.example")]
    return request(gw.port, "GET", "/", described + list(headers), source=source, host="portcullis:9902")


def identity(resp) -> dict:
    return {name: resp.header_all(name) for name in IDENTITY}


# -- who may ask ------------------------------------------------------------------------------


def test_an_untrusted_peer_gets_403_and_nothing_is_decided(gw):
    resp = ask(gw, "GET", "/users/me", [("Authorization", "Bearer " + token()), ("X-Request-Id", "untrusted-1")],
               source="127.0.0.2")
    assert resp.status == 403, resp
    assert resp.json() == {"detail": "Forbidden"}
    assert resp.header("X-Auth-Subject") is None
    [line] = gw.wait_log(request_id="untrusted-1")
    assert line["reason"] == "untrusted_peer" and line["route"] is None and line["client"] == "127.0.0.2"


# -- answers ----------------------------------------------------------------------------------


def test_an_allowed_request_is_200_with_every_identity_header(gw):
    resp = ask(gw, "GET", "/users/me", [("Authorization", "Bearer " + token(email="jd@example.com"))])
    assert resp.status == 200, resp
    assert resp.body == b""
    assert identity(resp) == {"X-Auth-Subject": ["johndoe"], "X-Auth-Scopes": ["me items"], "X-Auth-Method": ["bearer"],
                              "X-Auth-Roles": [""], "X-Auth-Email": ["jd@example.com"]}
    assert resp.header("X-Portcullis-Route") == "me"
    assert resp.header("X-Request-Id")


def test_an_anonymous_request_gets_every_identity_header_empty(gw):
    resp = ask(gw, "GET", "/maybe/x", [("X-Auth-Subject", "root"), ("X-Auth-Email", "root@example.com")])
    assert resp.status == 200, resp
    assert identity(resp) == {name: [""] for name in IDENTITY}
    assert resp.header("X-Portcullis-Route") == "maybe"


def test_401_and_403_are_sent_as_serve_sends_them(gw):
    missing = ask(gw, "GET", "/users/me")
    assert missing.status == 401
    assert missing.header_all("WWW-Authenticate") == [f'Bearer realm="{REALM}", scope="me"']
    assert missing.json() == {"detail": "Not authenticated"}
    assert missing.header("X-Portcullis-Status") is None
    scope = ask(gw, "GET", "/decided/x", [("Authorization", "Bearer " + token(scope="items"))])
    assert scope.status == 403
    assert 'error="insufficient_scope", scope="me"' in scope.header("WWW-Authenticate")
    assert scope.json()["detail"] == "Not enough permissions"


OTHER_STATUSES = [
    ("no route", "GET", "/nowhere", 404, {"detail": "Not Found"}),
    ("method", "DELETE", "/users/me", 405, {"detail": "Method Not Allowed"}),
    ("encoded slash", "GET", "/public/a%2Fb", 400, None),
    ("above the root", "GET", "/public/../../x", 400, None),
    ("token endpoint", "POST", "/token", 404, {"detail": "Not Found"}),
]


@pytest.mark.parametrize("name,method,uri,status,body", OTHER_STATUSES, ids=[c[0] for c in OTHER_STATUSES])
def test_other_statuses_go_out_as_403_with_x_portcullis_status(gw, name, method, uri, status, body):
    resp = ask(gw, method, uri)
    assert resp.status == 403, resp
    assert resp.header("X-Portcullis-Status") == str(status)
    assert resp.header("Content-Type") == "application/json"
    if body:
        assert resp.json() == body
    if status == 405:
        assert resp.header("Allow") == "GET, HEAD"


def test_a_decision_request_without_its_description_is_400_sent_as_403(gw):
    resp = request(gw.port, "GET", "/users/me", [("X-Original-Method", "GET"), ("X-Forwarded-Uri", "/public/x")])
    assert resp.status == 403, resp
    assert resp.header("X-Portcullis-Status") == "400"


def test_shadow_mode_answers_200_and_logs_would_deny(gw):
    resp = ask(gw, "GET", "/shadow/x", [("Authorization", "Bearer " + token(scope="me")), ("X-Request-Id", "shadow-1")])
    assert resp.status == 200, resp
    assert resp.header("X-Auth-Subject") == "johndoe"  # valid credentials, lacking a scope
    [line] = gw.wait_log(request_id="shadow-1")
    assert (line["decision"], line["status"], line["sent_status"], line["listener"]) == ("would_deny", 403, 200, "decisions")


def test_a_cors_preflight_is_200_with_the_cors_headers_and_no_identity(gw):
    resp = ask(gw, "OPTIONS", "/web/x", [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
    assert resp.status == 200, resp
    assert resp.header("Access-Control-Allow-Origin") == "https://app.example"
    assert resp.header("Access-Control-Allow-Methods") == "GET, POST"
    assert resp.header("Vary") == "Origin"
    assert all(resp.header(name) is None for name in IDENTITY)


# -- credentials that take work: Argon2 on the hashing pool, keys fetched on demand ------------


def test_basic_and_argon2_api_keys_are_checked_as_on_the_proxy(gw):
    good = ask(gw, "GET", "/basic/x", [("Authorization", basic("johndoe", "secret"))])
    assert good.status == 200, good
    assert (good.header("X-Auth-Subject"), good.header("X-Auth-Method")) == ("johndoe", "basic")
    wrong = ask(gw, "GET", "/basic/x", [("Authorization", basic("johndoe", "wrong")), ("X-Forwarded-For", "10.7.7.7")])
    assert wrong.status == 401, wrong
    assert wrong.json() == {"detail": "Incorrect username or password"}
    assert wrong.header("WWW-Authenticate") == f'Basic realm="{REALM}", charset="UTF-8"'
    key = ask(gw, "GET", "/keyed/x", [("X-API-Key", "secret")])
    assert key.status == 200, key
    assert (key.header("X-Auth-Subject"), key.header("X-Auth-Method")) == ("argon-bot", "api_key")


def test_failed_passwords_are_throttled_per_client_address_behind_the_proxy(gw):
    def attempt(password, client):
        return ask(gw, "GET", "/basic/x", [("Authorization", basic("johndoe", password)), ("X-Forwarded-For", client),
                                           ("X-Request-Id", f"throttle-{client}-{password}")])

    assert attempt("wrong1", "10.9.9.9").status == 401
    assert attempt("wrong2", "10.9.9.9").status == 401
    held = attempt("wrong3", "10.9.9.9")
    assert held.status == 403, held
    assert held.header("X-Portcullis-Status") == "429"
    assert int(held.header("Retry-After")) > 0
    assert attempt("secret", "10.9.9.8").status == 200
    [line] = gw.wait_log(request_id="throttle-10.9.9.9-wrong3")
    assert line["client"] == "10.9.9.9" and line["status"] == 429 and line["sent_status"] == 403


def test_an_unknown_kid_is_fetched_on_demand_and_decided_again(spawner):
    idp = JWKSServer()
    try:
        idp.serve("a")
        config = f"""version: 1
server: {{ listen: "", admin_listen: "", realm: "{REALM}" }}
decisions: {{ listen: "127.0.0.1:0", request_from: original }}
jwt:
  issuers:
    - {{ issuer: {q(REMOTE_ISSUER)}, audiences: [api], algorithms: [ES256], jwks_url: {q(idp.url)} }}
routes:
  - {{ name: remote, match: {{ path: "/remote/**" }}, auth: bearer }}
"""
        gateway = DecisionGateway(spawner.write(config, "jwks.yaml"), env=ENV)
        spawner.things.append(gateway)
        gateway.start()

        def with_kid(kid):
            signed = mint(keypair("P-256", f"jwks-{kid}"), "ES256", kid, jwt_claims(iss=REMOTE_ISSUER, sub=f"svc-{kid}"))
            return ask(gateway, "GET", "/remote/x", [("Authorization", "Bearer " + signed)])

        from harness import wait_until
        wait_until(lambda: with_kid("a").status == 200, timeout=5, message="the first key set")
        idp.serve("a", "b")  # rotated: kid b is only in the set fetched from now on
        before = idp.count
        resp = with_kid("b")
        assert resp.status == 200, resp
        assert resp.header("X-Auth-Subject") == "svc-b"
        assert idp.count == before + 1
    finally:
        idp.stop()


# -- the public listener, logs, metrics, modes -----------------------------------------------


def test_a_route_without_upstream_is_404_on_the_public_listener_after_matching(gw, rec):
    rec.clear()
    resp = request(gw.public_port, "GET", "/decided/x?m=public", [("Authorization", "Bearer " + token())])
    assert resp.status == 404, resp
    assert resp.json() == {"detail": "Not Found"}
    assert not [r for r in rec.snapshot() if "m=public" in r.target]
    assert request(gw.public_port, "GET", "/public/x").status == 200
    [line] = gw.wait_log(route="decided", reason="decision_service_only")
    assert "listener" not in line


def test_every_decision_is_one_access_log_line_and_counted_in_metrics(gw):
    ask(gw, "GET", "/users/me", [("X-Request-Id", "counted-1")])
    [line] = gw.wait_log(request_id="counted-1")
    assert line["listener"] == "decisions"
    assert (line["method"], line["path"], line["route"], line["decision"], line["status"]) == ("GET", "/users/me", "me", "deny", 401)
    ask(gw, "GET", "/shadow/x", [("X-Request-Id", "counted-2")])
    gw.wait_log(request_id="counted-2")
    metrics = requests.get(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5).text
    assert 'portcullis_decisions_total{route="me",decision="deny",status="401"}' in metrics
    assert 'portcullis_decisions_total{route="shadow",decision="would_deny",status="401"}' in metrics
    assert 'portcullis_decision_duration_seconds_count{route="me"}' in metrics
    ready = requests.get(f"http://127.0.0.1:{gw.admin_port}/readyz", timeout=5)
    assert ready.status_code == 200


# -- the connection: answers in order, requests the decoder cannot read -----------------------


def decision_bytes(uri: str, headers=(), version: str = "1.1", method: str = "GET") -> bytes:
    fields = [("Host", "portcullis:9902"), ("X-Original-Method", "GET"), ("X-Original-URI", uri),
              ("X-Original-Host", "api.example")] + list(headers)
    return (f"{method} /auth HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode()


def test_pipelined_decisions_are_answered_in_order_while_one_waits_for_argon2(gw):
    # The first waits for a password check off the event loop; the two behind it are decided
    # at once, and are answered after it all the same.
    with RawConn(gw.port) as conn:
        conn.send(decision_bytes("/basic/x", [("Authorization", basic("johndoe", "secret")), ("X-Request-Id", "order-1")])
                  + decision_bytes("/public/x", [("X-Request-Id", "order-2")])
                  + decision_bytes("/decided/x", [("X-Request-Id", "order-3")]))
        answers = [conn.read_response() for _ in range(3)]
        assert [(a.status, a.header("X-Request-Id")) for a in answers] == [(200, "order-1"), (200, "order-2"), (401, "order-3")]
        assert answers[0].header("X-Auth-Subject") == "johndoe" and answers[1].header("X-Portcullis-Route") == "public"
        # The connection goes on.
        again = conn.request(decision_bytes("/public/y", [("X-Request-Id", "order-4")]))
        assert (again.status, again.header("X-Request-Id")) == (200, "order-4")


def test_a_request_the_decoder_cannot_read_is_400_sent_as_403_and_ends_the_connection(gw):
    with RawConn(gw.port) as conn:
        conn.send(decision_bytes("/public/x", [("X-Request-Id", "framing-1")])
                  + b"GET /auth HTTP/1.1\r\nHost: portcullis\r\nX-Request-Id: framing-2\r\nNo colon here\r\n\r\n")
        first = conn.read_response()
        assert (first.status, first.header("X-Request-Id")) == (200, "framing-1"), first
        refused = conn.read_response()
        assert refused.status == 403, refused
        assert refused.header("X-Portcullis-Status") == "400"
        assert refused.header("Connection") == "close"
        assert refused.json() == {"detail": "Bad Request"}
        assert conn.wait_closed()
    lines = gw.wait_log(reason="bad_framing")
    assert any(line["status"] == 400 and line["sent_status"] == 403 and line["listener"] == "decisions" for line in lines)


def test_a_decision_request_with_too_many_header_bytes_is_431_sent_as_403(gw):
    with RawConn(gw.port) as conn:
        conn.send(decision_bytes("/public/x", [("X-Padding", "p" * 90_000)]))
        refused = conn.read_response()
        assert refused.status == 403, refused
        assert refused.header("X-Portcullis-Status") == "431"
        assert refused.json() == {"detail": "Request Header Fields Too Large"}
        assert conn.wait_closed()


def test_http10_keep_alive_and_head_are_answered_as_asked(gw):
    with RawConn(gw.port) as conn:
        kept = conn.request(decision_bytes("/public/x", [("Connection", "keep-alive")], version="1.0"))
        assert kept.status == 200 and kept.header("Connection") == "keep-alive", kept
        # HEAD: the refusal's head, its Content-Length, and no body (the next answer follows).
        conn.send(decision_bytes("/decided/x", method="HEAD") + decision_bytes("/public/y", [("Connection", "close")]))
        head = conn.read_response("HEAD")
        assert head.status == 401 and head.body == b"" and int(head.header("Content-Length")) > 0, head
        last = conn.read_response()
        assert last.status == 200 and last.header("Connection") == "close"
        assert conn.wait_closed()


def describe(mode: str, method: str, uri: str) -> tuple[str, str, list]:
    """The check request by which an edge proxy in `mode` asks about `method uri`."""
    if mode == "original":
        return "GET", "/", [("X-Original-Method", method), ("X-Original-URI", uri), ("X-Original-Host", "api.example")]
    if mode == "forwarded":
        return "GET", "/", [("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri), ("X-Forwarded-Host", "api.example"),
                            ("X-Forwarded-Proto", "https")]
    return method, "/check" + uri, []


MODES = ["original", "forwarded", "target"]


@pytest.fixture(scope="module")
def modes(module_spawner, rec):
    gateways = {}
    for mode in MODES:
        extra = "  path_prefix: /check\n" if mode == "target" else ""
        gateway = DecisionGateway(module_spawner.write(config_text(rec.url, mode, extra, public=False), f"mode-{mode}.yaml"), env=ENV)
        module_spawner.things.append(gateway)
        gateways[mode] = gateway.start()
    return gateways


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_reads_its_own_headers_and_ignores_the_others(modes, mode):
    gateway = modes[mode]

    def others(uri):
        return [field for other in MODES if other not in (mode, "target") for field in describe(other, "GET", uri)[2]]

    method, target, own = describe(mode, "GET", "/users/me")
    protected = request(gateway.port, method, target, own + others("/public/x"))
    assert protected.status == 401, protected
    method, target, own = describe(mode, "GET", "/public/x")
    public = request(gateway.port, method, target, own + others("/users/me"))
    assert public.status == 200, public
    assert public.header("X-Portcullis-Route") == "public"
    if mode != "target":
        described_elsewhere = request(gateway.port, "GET", "/users/me", others("/public/x"))
        assert described_elsewhere.status == 403, described_elsewhere
        assert described_elsewhere.header("X-Portcullis-Status") == "400"


def test_target_mode_refuses_a_path_outside_its_prefix(modes):
    resp = request(modes["target"].port, "GET", "/checkout/public/x")
    assert resp.status == 403 and resp.header("X-Portcullis-Status") == "400", resp


# -- the dry run decides as the service does --------------------------------------------------

AGREEMENT = [
    ("anonymous", "GET", "/maybe/x", []),
    ("bearer", "GET", "/users/me", [("Authorization", "Bearer " + token(email="a@example.com"))]),
    ("no token", "GET", "/users/me", []),
    ("no route", "GET", "/nowhere", []),
    ("method", "POST", "/users/me", []),
    ("shadow", "GET", "/shadow/x", [("Authorization", "Bearer " + token(scope="me"))]),
    ("preflight", "OPTIONS", "/web/x", [("Origin", "https://app.example"), ("Access-Control-Request-Method", "GET")]),
    ("basic", "GET", "/basic/x", [("Authorization", basic("johndoe", "secret"))]),
]


@pytest.mark.parametrize("name,method,uri,headers", AGREEMENT, ids=[c[0] for c in AGREEMENT])
def test_check_listener_decisions_prints_the_services_answer(gw, name, method, uri, headers):
    fields = headers + [("X-Request-Id", f"agree-{name.replace(' ', '-')}")]
    args = ["--listener", "decisions", "-H", "Host: api.example"]
    for field, value in fields:
        args += ["-H", f"{field}: {value}"]
    _, data, proc = check_json(gw.config, method, uri, args)
    assert data is not None, proc.stdout + proc.stderr
    answer = data["decision_service"]
    resp = ask(gw, method, uri, fields)
    assert resp.status == answer["status"], (resp, answer)
    sent = [(k, v) for k, v in resp.headers if k not in ("Content-Type", "Content-Length", "Connection")]
    assert sent == [tuple(pair) for pair in answer["headers"]]
    assert resp.body == (b"" if answer["body"] is None else resp.body)


# -- configuration ----------------------------------------------------------------------------


def test_a_decision_only_gateway_listens_for_decisions_only(spawner):
    config = f"""version: 1
server: {{ listen: "", admin_listen: "" }}
decisions: {{ listen: "127.0.0.1:0", request_from: original }}
routes:
  - {{ name: open, match: {{ path: "/**" }}, auth: none }}
"""
    gateway = DecisionGateway(spawner.write(config, "only.yaml"))
    spawner.things.append(gateway)
    gateway.start()
    assert not any("portcullis listening" in line for line in gateway.stderr_lines)
    assert ask(gateway, "GET", "/anything").status == 200


BROKEN = [
    ("route without upstream", "routes:\n  - { name: a, match: { path: /a }, auth: none }\n", "upstreams: {}\n",
     "3:5: error: route 'a' is missing the required key 'upstream'"),
    ("no request_from", "decisions: { listen: \"127.0.0.1:9902\" }\nroutes: []\n", "",
     "2:12: error: decisions is missing the required key 'request_from'"),
    ("prefix with original", "decisions: { request_from: original, path_prefix: /x }\nroutes: []\n", "",
     "2:51: error: decisions.path_prefix applies to request_from: target only"),
    ("nothing listens", "server: { listen: \"\" }\nroutes: []\n", "upstreams: {}\n",
     "2:19: error: server.listen is \"\", and no decisions.listen is set"),
]


@pytest.mark.parametrize("name,body,upstreams,expected", BROKEN, ids=[c[0] for c in BROKEN])
def test_validate_reports_decision_settings_at_their_place(spawner, name, body, upstreams, expected):
    path = spawner.write("version: 1\n" + body + upstreams, "broken.yaml")
    proc = run(["validate", "--config", str(path)])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{path}:{expected}" in proc.stderr, proc.stderr


@pytest.mark.parametrize("doc", ["edge-nginx.md", "edge-traefik.md", "edge-envoy.md"])
def test_the_documented_portcullis_configurations_are_valid(spawner, doc):
    path = spawner.write(doc_block(doc, "routes.yaml (Portcullis)"), "documented.yaml")
    proc = run(["validate", "--config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
