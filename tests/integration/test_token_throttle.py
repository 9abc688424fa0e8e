"""Login throttling and the bounded hashing queue at the token endpoint (contract §6, §2
`login_throttle`, `max_concurrent_hashes`).

Client addresses: all of 127.0.0.0/8 reaches the loopback listener on Linux, so a test can speak
from 127.0.0.x to tell the per-username count from the per-address count."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from harness import wait_until

from token_support import (
    FORM, JOHNDOE_PASSWORD, EchoUpstream, Portcullis, assert_oauth_error, assert_retry_after, assert_token_response,
    base_config, describe, form_body, json_body, session_from, write_config)

MAX_FAILURES = 3


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture
def throttled(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"login_throttle": {"max_failures": MAX_FAILURES, "window": "5m"}})
    cfg["users"].append({"username": "bob", "password_hash": cfg["users"][0]["password_hash"], "scopes": ["me"]})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    yield g
    g.stop()


def attempt(gw, source_ip, username, password, scope="me", headers=None):
    return gw.token(data={"grant_type": "password", "username": username, "password": password, "scope": scope},
                    session=session_from(source_ip), headers=headers)


def assert_throttled(resp, window_s: int = 300) -> int:
    assert resp.status_code == 429, describe(resp)
    delay = assert_retry_after(resp)
    assert delay <= window_s, f"Retry-After {delay} is longer than the {window_s} s window"
    body = json_body(resp)
    assert "access_token" not in body, body
    for field in ("detail", "error", "error_description"):
        assert isinstance(body.get(field), str) and body[field], f"429 body lacks {field}: {describe(resp)}"
    return delay


def test_failures_for_a_user_throttle_the_address_they_came_from(throttled):
    for i in range(MAX_FAILURES):
        resp = attempt(throttled, "127.0.0.10", "johndoe", f"wrong-{i}")
        assert_oauth_error(resp, 400, "invalid_grant", "Incorrect username or password")
    # the right password from the failing address is held back, without running Argon2
    assert_throttled(attempt(throttled, "127.0.0.10", "johndoe", JOHNDOE_PASSWORD))
    # the access log says why, in the words of portcullis_login_failures_total{reason}
    wait_until(lambda: any(line.get("status") == 429 for line in throttled.access_log()), message="the 429's log line")
    assert [line["reason"] for line in throttled.access_log() if line.get("status") == 429] == ["throttled"]


def test_failures_from_other_addresses_never_lock_a_user_out(throttled):
    # an attacker spreads wrong passwords for johndoe over several addresses, each one over the limit
    for source in ("127.0.0.11", "127.0.0.12"):
        for i in range(MAX_FAILURES + 2):
            attempt(throttled, source, "johndoe", f"wrong-{i}")
        assert_throttled(attempt(throttled, source, "johndoe", JOHNDOE_PASSWORD))
    # johndoe, from an address without failures, logs in
    assert_token_response(attempt(throttled, "127.0.0.20", "johndoe", JOHNDOE_PASSWORD), "me")
    assert_token_response(attempt(throttled, "127.0.0.21", "bob", JOHNDOE_PASSWORD), "me")


def test_failures_per_client_address_throttle_that_address(throttled):
    # distinct unknown usernames from one address: only the address count reaches the limit
    for i in range(MAX_FAILURES):
        resp = attempt(throttled, "127.0.0.30", f"ghost-{i}", "whatever")
        assert_oauth_error(resp, 400, "invalid_grant", "Incorrect username or password")
    assert_throttled(attempt(throttled, "127.0.0.30", "bob", JOHNDOE_PASSWORD))
    # X-Forwarded-For from an untrusted peer is no way out
    assert_throttled(attempt(throttled, "127.0.0.30", "bob", JOHNDOE_PASSWORD,
                             headers={"X-Forwarded-For": "203.0.113.77"}))
    # the same user from another address is served
    assert_token_response(attempt(throttled, "127.0.0.31", "bob", JOHNDOE_PASSWORD), "me")


def test_the_throttle_ends_with_its_window(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"login_throttle": {"max_failures": 2, "window": "2s"}})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        for i in range(2):
            assert_oauth_error(attempt(g, "127.0.0.40", "johndoe", f"bad-{i}"), 400, "invalid_grant")
        delay = assert_throttled(attempt(g, "127.0.0.40", "johndoe", JOHNDOE_PASSWORD), window_s=2)
        # honour Retry-After as a client would, then the right password is accepted again
        time.sleep(delay + 0.2)
        assert_token_response(attempt(g, "127.0.0.40", "johndoe", JOHNDOE_PASSWORD), "me")
    finally:
        g.stop()


def test_a_full_hashing_queue_answers_503_with_retry_after(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"max_concurrent_hashes": 1,
                                                "login_throttle": {"max_failures": 1000, "window": "5m"}})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    n = 40
    results: list = [None] * n
    conns = [http.client.HTTPConnection("127.0.0.1", g.port, timeout=60) for _ in range(n)]
    try:
        for c in conns:
            c.connect()
        barrier = threading.Barrier(n)

        def fire(i):
            body = form_body({"grant_type": "password", "username": f"unknown-user-{i}", "password": "nope"})
            try:
                barrier.wait(10)
                conns[i].request("POST", "/token", body=body, headers=FORM)
                r = conns[i].getresponse()
                results[i] = (r.status, r.getheader("Retry-After"), r.read())
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = ("error", repr(e), b"")

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        statuses = [r[0] for r in results]
        assert all(s in (400, 503) for s in statuses), statuses
        busy = [r for r in results if r[0] == 503]
        assert busy, f"no 503 among {n} concurrent logins with max_concurrent_hashes 1: {statuses}"
        for status, retry_after, raw in busy:
            assert retry_after is not None and retry_after.strip().isdigit() and int(retry_after) > 0, retry_after
            assert b"detail" in raw, raw
        # the gateway still answers, and hashing still works
        assert_token_response(g.login(scope="me"), "me")
    finally:
        for c in conns:
            c.close()
        g.stop()


def test_client_secret_guesses_are_throttled_and_the_429_reveals_nothing(echo, tmp_path):
    from token_support import CLIENT_ID, CLIENT_SECRET, basic_header, hash_password

    cfg = base_config(echo.url, token_endpoint={
        "login_throttle": {"max_failures": MAX_FAILURES, "window": "5m"},
        "clients": [{"client_id": CLIENT_ID, "secret_hash": hash_password(CLIENT_SECRET)}],
    })
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        # wrong client secrets from one address: that address reaches the limit
        for i in range(MAX_FAILURES):
            resp = attempt(g, "127.0.0.50", "johndoe", JOHNDOE_PASSWORD,
                           headers={"Authorization": basic_header(CLIENT_ID, f"guess-{i}")})
            assert_oauth_error(resp, 401, "invalid_client")
        # now even the right secret from that address is 429: a guess learns nothing
        right = {"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)}
        assert_throttled(attempt(g, "127.0.0.50", "johndoe", JOHNDOE_PASSWORD, headers=right))
        assert_throttled(attempt(g, "127.0.0.50", "johndoe", JOHNDOE_PASSWORD,
                                 headers={"Authorization": basic_header(CLIENT_ID, "guess-x")}))
        # the client, from an address without failures, is served
        assert_token_response(attempt(g, "127.0.0.60", "johndoe", JOHNDOE_PASSWORD, headers=right), "me")
        # an address throttled by failed logins gets 429 for a right and a wrong secret alike
        for i in range(MAX_FAILURES):
            attempt(g, "127.0.0.70", f"ghost-{i}", "whatever")
        assert_throttled(attempt(g, "127.0.0.70", "johndoe", JOHNDOE_PASSWORD, headers=right))
        # without client credentials, the password grant from a fresh address still works
        assert_token_response(attempt(g, "127.0.0.71", "johndoe", JOHNDOE_PASSWORD), "me")
    finally:
        g.stop()
