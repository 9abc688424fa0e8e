"""Several replicas on one PostgreSQL store (contract §12), against a real PostgreSQL server
(pg_support.PostgresServer) and real gateway processes:

- the refresh-token contract, run alike against the memory, SQLite and PostgreSQL stores;
- two replicas on one database: a family rotated on one is reuse on the other, concurrent
  redemptions of one token have exactly one winner, revocation and the login throttle count
  across replicas;
- the database stopped under a running gateway, and a gateway started while it is down;
- what the database holds (digests, never tokens or passwords), config errors, a schema from a
  newer gateway, and TLS per sslmode.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time

import pytest
import requests

from harness import wait_until
from pg_support import PostgresServer, postgres_bin
from token_support import (
    JOHNDOE_PASSWORD, JWT_SECRET, PORTCULLIS_BIN, TOKEN_TIMEOUT, EchoUpstream, Portcullis, assert_oauth_error,
    assert_retry_after, assert_token_response, base_config, base_env, describe, plain_session, session_from,
    write_config)

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed (make test-deps)")

PASSWORD_ENV = "PORTCULLIS_TEST_DB_PASSWORD"
MAX_FAILURES = 3
STATUS_ROUTE = {"name": "status", "match": {"path": "/status"}, "auth": "none", "upstream": "u"}
UNAVAILABLE = {"detail": "Service Unavailable"}

# Every token the gateways hand out here: none of them may appear in the database.
ISSUED: list[str] = []


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


def config(echo, store: str, *, password_env: bool = True, **token_endpoint) -> dict:
    te = {"store": store, "login_throttle": {"max_failures": MAX_FAILURES, "window": "5m"}, **token_endpoint}
    if password_env:
        te["store_password_env"] = PASSWORD_ENV
    return base_config(echo.url, token_endpoint=te, server={"admin_listen": "127.0.0.1:0"}, extra_routes=[STATUS_ROUTE])


def env(pg) -> dict:
    return base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET, **{PASSWORD_ENV: pg.password})


def start(path, cfg: dict, pg) -> Portcullis:
    return Portcullis(write_config(path, cfg), env=env(pg))


def admin_url(gw: Portcullis, path: str) -> str:
    found = wait_until(lambda: re.search(r"address=\S*?:(\d+).*admin listening", gw.stderr()), timeout=10,
                       message="the admin listener")
    return f"http://127.0.0.1:{found.group(1)}{path}"


def login(gw: Portcullis, **kw) -> dict:
    body = assert_token_response(gw.login(**kw), "me items")
    ISSUED.extend([body["access_token"], body["refresh_token"]])
    return body


def refreshed(gw: Portcullis, token: str) -> dict:
    body = assert_token_response(gw.refresh(token), "me items")
    ISSUED.extend([body["access_token"], body["refresh_token"]])
    return body


def revoke(gw: Portcullis, data, session: requests.Session | None = None) -> requests.Response:
    return (session or gw.http).post(gw.url("/token/revoke"), data=data, timeout=TOKEN_TIMEOUT, allow_redirects=False)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def assert_unavailable(resp):
    assert resp.status_code == 503, describe(resp)
    assert resp.json() == UNAVAILABLE, describe(resp)
    assert_retry_after(resp)
    assert "access_token" not in resp.text


# ---------------------------------------------------------------------------------------------
# One contract, three stores


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgresql"])
def store_gateway(request, pg, echo, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"store-{request.param}")
    store = {"memory": "memory:", "sqlite": "sqlite:data/tokens.sqlite", "postgresql": pg.url()}[request.param]
    gw = start(folder / "gateway.yaml", config(echo, store, password_env=request.param == "postgresql"), pg)
    yield gw
    gw.stop()


def rotation_retires_and_reuse_revokes_the_family(gw):
    first = login(gw)
    other = login(gw)  # an independent family
    second = refreshed(gw, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    third = refreshed(gw, second["refresh_token"])
    assert_oauth_error(gw.refresh(first["refresh_token"]), 400, "invalid_grant")  # retired: reuse
    assert_oauth_error(gw.refresh(third["refresh_token"]), 400, "invalid_grant")  # the family is revoked
    refreshed(gw, other["refresh_token"])  # the other family is untouched


def unknown_tokens_are_invalid_grant(gw):
    for token in ("A" * 43, login(gw)["access_token"]):
        assert_oauth_error(gw.refresh(token), 400, "invalid_grant")


def revocation_ends_the_family(gw):
    first = login(gw)
    second = refreshed(gw, first["refresh_token"])
    resp = revoke(gw, {"token": second["refresh_token"], "token_type_hint": "refresh_token"})
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Cache-Control") == "no-store"
    assert_oauth_error(gw.refresh(second["refresh_token"]), 400, "invalid_grant")
    # Revoking again, or through a retired token of the family, changes nothing and says nothing.
    assert revoke(gw, {"token": first["refresh_token"]}).status_code == 200


def revocation_answers_200_for_unknown_tokens(gw):
    body = login(gw)
    for data in ({"token": "not-a-token"}, {"token": body["access_token"], "token_type_hint": "access_token"}):
        resp = revoke(gw, data)
        assert resp.status_code == 200, describe(resp)
    # An access token is not stored: it stays valid until it expires.
    resp = gw.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert resp.status_code == 200, describe(resp)
    refreshed(gw, body["refresh_token"])


def revocation_needs_a_token_and_post(gw):
    assert_oauth_error(revoke(gw, {"token_type_hint": "refresh_token"}), 400, "invalid_request")
    resp = gw.get("/token/revoke")
    assert resp.status_code == 405 and resp.headers.get("Allow") == "POST", describe(resp)


CONTRACT = [rotation_retires_and_reuse_revokes_the_family, unknown_tokens_are_invalid_grant, revocation_ends_the_family,
            revocation_answers_200_for_unknown_tokens, revocation_needs_a_token_and_post]


@pytest.mark.parametrize("scenario", CONTRACT, ids=[f.__name__ for f in CONTRACT])
def test_the_store_contract(store_gateway, scenario):
    scenario(store_gateway)


# ---------------------------------------------------------------------------------------------
# Two replicas, one database


@pytest.fixture(scope="module")
def replicas(pg, echo, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("replicas") / "gateway.yaml", config(echo, pg.url()))
    a = Portcullis(path, env=env(pg))
    b = Portcullis(path, env=env(pg))
    yield a, b
    a.stop()
    b.stop()


def test_a_family_rotated_on_one_replica_is_reuse_on_the_other(replicas, pg):
    a, b = replicas
    first = login(a)
    second = refreshed(b, first["refresh_token"])
    assert_oauth_error(a.refresh(first["refresh_token"]), 400, "invalid_grant")  # replayed on the first
    for gw in (b, a):  # revoked for both
        assert_oauth_error(gw.refresh(second["refresh_token"]), 400, "invalid_grant")
    rows = pg.psql(f"SELECT encode(digest, 'hex'), state FROM refresh_tokens WHERE family = "
                   f"(SELECT family FROM refresh_tokens WHERE digest = decode('{digest(first['refresh_token'])}', 'hex'))",
                   pg.database)
    states = dict(line.split("|") for line in rows.split())
    # the replayed token stays retired (each replay counts as the reuse it is); its active
    # successor is revoked
    assert states == {digest(first["refresh_token"]): "1", digest(second["refresh_token"]): "2"}, rows


def test_concurrent_redemptions_of_one_token_have_exactly_one_winner(replicas):
    a, b = replicas
    sessions = {id(gw): [plain_session(), plain_session()] for gw in (a, b)}
    for gw in (a, b):
        for s in sessions[id(gw)]:  # open the connections before the race
            assert s.get(gw.url("/status"), timeout=TOKEN_TIMEOUT).status_code == 200
    for round_ in range(30):
        # Two replicas, or (every third round) two connections to the same one.
        pair = (a, a) if round_ % 3 == 2 else (a, b) if round_ % 2 else (b, a)
        token = login(a)["refresh_token"]
        barrier = threading.Barrier(2)
        results: list = [None, None]

        def redeem(i):
            gw = pair[i]
            s = sessions[id(gw)][i]
            barrier.wait()
            results[i] = s.post(gw.url("/token"), data={"grant_type": "refresh_token", "refresh_token": token},
                                timeout=TOKEN_TIMEOUT)

        threads = [threading.Thread(target=redeem, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if r.status_code == 200]
        losers = [r for r in results if r.status_code != 200]
        assert len(winners) == 1, f"round {round_}: " + " / ".join(describe(r) for r in results)
        assert_oauth_error(losers[0], 400, "invalid_grant")
        new = winners[0].json()
        ISSUED.extend([new["access_token"], new["refresh_token"]])
        # The loser was reuse: the family is revoked, the winner's new token with it.
        assert_oauth_error(pair[0].refresh(new["refresh_token"]), 400, "invalid_grant")


def test_revocation_on_one_replica_holds_on_the_other(replicas):
    a, b = replicas
    body = login(a)
    assert revoke(b, {"token": body["refresh_token"]}).status_code == 200
    assert_oauth_error(a.refresh(body["refresh_token"]), 400, "invalid_grant")


def test_failed_logins_on_every_replica_count_together(replicas, pg):
    a, b = replicas

    def attempt(gw, ip, password):
        return gw.token(data={"grant_type": "password", "username": "johndoe", "password": password, "scope": "me"},
                        session=session_from(ip))

    for i in range(MAX_FAILURES - 1):
        assert_oauth_error(attempt(a, "127.0.0.31", f"wrong-{i}"), 400, "invalid_grant")
    assert_oauth_error(attempt(b, "127.0.0.31", "wrong-b"), 400, "invalid_grant")
    # Each replica learns the other's failures within a fraction of a second; then the right
    # password from that address is held back on both.
    for gw in (a, b):
        held = []  # a Response is falsy unless 2xx, so it is kept here rather than returned
        wait_until(lambda: held.append(attempt(gw, "127.0.0.31", JOHNDOE_PASSWORD)) or held[-1].status_code == 429,
                   timeout=10, interval=0.2, message="the shared throttle")
        assert_retry_after(held[-1])
        for resp in held[:-1]:
            ISSUED.extend([resp.json()["access_token"], resp.json()["refresh_token"]])
    ok = attempt(b, "127.0.0.32", JOHNDOE_PASSWORD)  # another address is not held back
    assert ok.status_code == 200, describe(ok)
    ISSUED.extend([ok.json()["access_token"], ok.json()["refresh_token"]])
    counted = pg.psql("SELECT count(*) FROM login_failures WHERE address = '127.0.0.31'", pg.database)
    assert int(counted) == MAX_FAILURES


# ---------------------------------------------------------------------------------------------
# Outages


def test_the_database_stopped_under_a_running_gateway(pg, echo, tmp_path):
    gw = start(tmp_path / "gateway.yaml", config(echo, pg.url()), pg)
    try:
        before = login(gw)
        pg.stop()
        try:
            assert_unavailable(gw.login())
            assert_unavailable(gw.refresh(before["refresh_token"]))
            assert_unavailable(revoke(gw, {"token": before["refresh_token"]}))
            # Every other route keeps working, and the proxy stays ready.
            assert gw.get("/status").status_code == 200
            me = gw.get("/users/me", headers={"Authorization": f"Bearer {before['access_token']}"})
            assert me.status_code == 200, describe(me)
            assert requests.get(admin_url(gw, "/readyz"), timeout=5).status_code == 200
            metrics = requests.get(admin_url(gw, "/metrics"), timeout=5).text
            for operation in ("issue", "redeem", "revoke"):
                value = re.search(rf'portcullis_store_errors_total{{operation="{operation}"}} (\d+)', metrics)
                assert value and int(value.group(1)) >= 1, metrics
        finally:
            pg.start()
        # The next request succeeds, without a restart; the family from before the outage
        # was not consumed by the refresh that was answered 503.
        login(gw)
        refreshed(gw, before["refresh_token"])
        # Log lines go through a writer thread: they may follow the answer by a moment.
        log = wait_until(lambda: "token store reachable again" in gw.stderr() and gw.stderr(), message="the log")
        assert "token store unreachable" in log and pg.password not in log, log
    finally:
        gw.stop()


def test_a_gateway_started_while_the_database_is_down(pg, echo, tmp_path):
    pg.stop()
    try:
        gw = start(tmp_path / "gateway.yaml", config(echo, pg.url()), pg)
    except Exception:
        pg.start()
        raise
    try:
        log = wait_until(lambda: "token store unreachable" in gw.stderr() and gw.stderr(), message="the start-up log")
        assert "store=postgresql://portcullis@127.0.0.1" in log and pg.password not in log, log
        assert_unavailable(gw.login())
        assert gw.get("/status").status_code == 200
        pg.start()
        login(gw)
    finally:
        gw.stop()
        if pg.proc.poll() is not None:
            pg.start()


# ---------------------------------------------------------------------------------------------
# Configuration, schema, TLS


def validate(path, extra_env=None) -> subprocess.CompletedProcess:
    return subprocess.run([PORTCULLIS_BIN, "validate", "--config", str(path)], capture_output=True, text=True, timeout=30,
                          env=base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET, **(extra_env or {})))


def place_of(path, needle: str) -> str:
    """`FILE:LINE:COL` of the first occurrence of `needle` in the file."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return f"{path}:{number}:{line.index(needle) + 1}"
    raise AssertionError(f"{needle} not in {path}")


def test_a_password_in_the_url_is_a_config_error_that_does_not_echo_it(echo, tmp_path):
    secret = "hunter2-" + "x" * 8
    url = f"postgresql://portcullis:{secret}@127.0.0.1:5432/portcullis"
    path = write_config(tmp_path / "gateway.yaml", config(echo, url))
    for argv in (["validate"], ["serve", "--listen", "127.0.0.1:0"]):
        proc = subprocess.run([PORTCULLIS_BIN, *argv, "--config", str(path)], capture_output=True, text=True, timeout=30,
                              env=base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET, **{PASSWORD_ENV: "pw"}))
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2, output
        assert f"{place_of(path, json.dumps(url))}: error:" in output, output  # the value's own place
        assert "store_password_env" in output and secret not in output, output


@pytest.mark.parametrize("store,extra,problem", [
    ("postgresql://portcullis@127.0.0.1:1/portcullis?sslmode=bogus", {}, "sslmode"),
    ("postgresql://127.0.0.1:5432/portcullis", {}, "user"),
    ("postgresql://portcullis@127.0.0.1:5432/", {}, "database"),
    ("postgresql://portcullis@127.0.0.1:99999/portcullis", {}, "port"),
    ("postgresql://portcullis@127.0.0.1:5432/portcullis?password=x", {}, "store_password_env"),
    ("postgresql://portcullis@127.0.0.1:5432/portcullis", {"store_password_env": "PORTCULLIS_TEST_UNSET"}, "not set"),
    ("sqlite:data/x.sqlite", {"store_password_env": PASSWORD_ENV}, "postgresql"),
    ("postgresql://portcullis@127.0.0.1:5432/portcullis?sslmode=verify-full&sslrootcert=missing-ca.pem", {}, "sslrootcert"),
    ("postgresql://portcullis@127.0.0.1:5432/portcullis?sslmode=require&sslrootcert=ca.pem", {}, "sslrootcert"),
])
def test_store_settings_are_checked_where_they_are_written(echo, tmp_path, store, extra, problem):
    cfg = config(echo, store)
    cfg["token_endpoint"].update(extra)
    path = write_config(tmp_path / "gateway.yaml", cfg)
    proc = validate(path, {PASSWORD_ENV: "pw"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: error: .*{problem}", proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_validate_checks_the_url_without_connecting(echo, tmp_path):
    # Nothing listens on port 1: validate must not care.
    path = write_config(tmp_path / "gateway.yaml", config(echo, "postgresql://portcullis@127.0.0.1:1/portcullis?sslmode=verify-full"))
    started = time.monotonic()
    proc = validate(path, {PASSWORD_ENV: "pw"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 10


def test_a_schema_from_a_newer_gateway_stops_serve(pg, echo, tmp_path):
    pg.psql("CREATE DATABASE portcullis_newer OWNER portcullis")
    pg.psql("CREATE TABLE schema_version (version integer NOT NULL); INSERT INTO schema_version VALUES (2);"
            "ALTER TABLE schema_version OWNER TO portcullis", "portcullis_newer")
    path = write_config(tmp_path / "gateway.yaml", config(echo, pg.url("portcullis_newer")))
    proc = subprocess.run([PORTCULLIS_BIN, "serve", "--config", str(path), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30, env=env(pg))
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:" in proc.stderr and "version 2" in proc.stderr and "newer" in proc.stderr, proc.stderr
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'refresh_tokens'", "portcullis_newer").strip() == "0"


def test_a_role_without_create_rights_uses_tables_made_for_it(pg, echo, tmp_path):
    pg.psql("CREATE DATABASE portcullis_dml OWNER portcullis")
    owner = start(tmp_path / "owner.yaml", config(echo, pg.url("portcullis_dml")), pg)  # creates the schema
    owner.stop()
    pg.psql(f"CREATE ROLE portcullis_app LOGIN PASSWORD '{pg.password}'")
    pg.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO portcullis_app", "portcullis_dml")
    url = pg.url("portcullis_dml").replace("portcullis@", "portcullis_app@")
    gw = start(tmp_path / "app.yaml", config(echo, url), pg)
    try:
        refreshed(gw, login(gw)["refresh_token"])
        assert "token store unreachable" not in gw.stderr()
    finally:
        gw.stop()


@pytest.mark.parametrize("sslmode,rootcert,works", [
    ("require", False, True),
    ("verify-full", False, False),  # the server's certificate is not in the system's trust store
    ("verify-full", True, True),
])
def test_tls_follows_sslmode(pg, echo, tmp_path, sslmode, rootcert, works):
    database = "portcullis_tls"
    if not pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'").strip():
        pg.psql(f"CREATE DATABASE {database} OWNER portcullis")
    params = {"sslrootcert": str(pg.ca)} if rootcert else {}
    gw = start(tmp_path / "gateway.yaml", config(echo, pg.url(database, sslmode=sslmode, **params)), pg)
    try:
        if works:
            login(gw)
            encrypted = pg.psql("SELECT DISTINCT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                                f"WHERE datname = '{database}' AND application_name = 'portcullis'")
            assert encrypted.split() == ["t"], encrypted
        else:
            assert_unavailable(gw.login())
            wait_until(lambda: "token store unreachable" in gw.stderr(), message="the log")
    finally:
        gw.stop()


# ---------------------------------------------------------------------------------------------
# Last: what the database holds


def test_the_database_holds_digests_never_tokens_or_passwords(pg, replicas):
    a, b = replicas
    for _ in range(3):  # tokens of its own, when the tests before it did not run
        refreshed(b, login(a)["refresh_token"])
    dump = pg.dump()
    for token in ISSUED:
        assert token not in dump
    for secret in (pg.password, JWT_SECRET, JOHNDOE_PASSWORD, "wrong-b"):
        assert secret not in dump
    # What is there instead: the SHA-256 of each refresh token the PostgreSQL gateways issued.
    stored = set(re.findall(r"\\\\x([0-9a-f]{64})", dump))
    refresh_tokens = [t for t in ISSUED if "." not in t]
    assert sum(digest(t) in stored for t in refresh_tokens) >= 6
