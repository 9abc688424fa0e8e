"""One login throttle for every password and Argon2 API key (contract §9): failed Basic
credentials and API keys count with the token endpoint's failures, per client address, and the
address behind a trusted proxy is the client's own, taken from X-Forwarded-For.

All of 127.0.0.0/8 reaches the loopback listener on Linux, so a test speaks from 127.0.0.x."""

from __future__ import annotations

import re
import urllib.request

import pytest

from harness import free_port
from token_support import (
    JOHNDOE_PASSWORD, EchoUpstream, Portcullis, assert_oauth_error, assert_retry_after, assert_token_response, base_config,
    basic_header, describe, hash_password, json_body, session_from, write_config)

MAX_FAILURES = 3
API_KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


def start(echo, tmp_path, **server):
    cfg = base_config(
        echo.url, token_endpoint={"login_throttle": {"max_failures": MAX_FAILURES, "window": "5m"}},
        api_keys=[{"name": "robot", "key_hash": hash_password(API_KEY), "scopes": [], "in": "header",
                   "param": "X-API-Key"}],
        server={"admin_listen": f"127.0.0.1:{free_port()}", **server})
    return Portcullis(write_config(tmp_path / "gateway.yaml", cfg))


@pytest.fixture
def gw(echo, tmp_path):
    g = start(echo, tmp_path)
    yield g
    g.stop()


@pytest.fixture
def behind_proxy(echo, tmp_path):
    g = start(echo, tmp_path, trusted_proxies=["127.0.0.1/32"])
    yield g
    g.stop()


def get_from(gw, source, path, headers):
    return session_from(source).get(gw.url(path), headers=headers, allow_redirects=False, timeout=30)


def basic(gw, source, username, password, headers=None):
    return get_from(gw, source, "/basic/x", {"Authorization": basic_header(username, password), **(headers or {})})


def api_key(gw, source, key):
    return get_from(gw, source, "/keys/x", {"X-API-Key": key})


def login(gw, source, username, password, headers=None):
    return gw.token(data={"grant_type": "password", "username": username, "password": password, "scope": "me"},
                    session=session_from(source), headers=headers)


def assert_429(resp):
    assert resp.status_code == 429, describe(resp)
    assert_retry_after(resp)
    assert "detail" in json_body(resp), describe(resp)


def login_failures(gw) -> dict[str, float]:
    with open(gw.config_path) as f:
        port = int(re.search(r'"admin_listen": "127\.0\.0\.1:(\d+)"', f.read()).group(1))
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = {}
    for m in re.finditer(r'^portcullis_login_failures_total\{reason="([^"]+)"\} (\S+)$', text, re.M):
        found[m.group(1)] = float(m.group(2))
    return found


def test_basic_guesses_are_throttled_and_counted(gw):
    for i in range(MAX_FAILURES):
        assert basic(gw, "127.0.0.10", "johndoe", f"wrong-{i}").status_code == 401
    # the right password from the guessing address is held back, on Basic and at /token alike
    assert_429(basic(gw, "127.0.0.10", "johndoe", JOHNDOE_PASSWORD))
    assert login(gw, "127.0.0.10", "johndoe", JOHNDOE_PASSWORD).status_code == 429
    # from another address, both work
    assert basic(gw, "127.0.0.11", "johndoe", JOHNDOE_PASSWORD).status_code == 200
    assert_token_response(login(gw, "127.0.0.11", "johndoe", JOHNDOE_PASSWORD), "me")
    failures = login_failures(gw)
    assert failures.get("bad_credentials", 0) == MAX_FAILURES, failures
    assert failures.get("throttled", 0) >= 2, failures
    lines = [line for line in gw.access_log() if line.get("status") == 429 and line.get("route") == "basic"]
    assert [line["reason"] for line in lines] == ["throttled"], gw.access_log()


def test_failures_at_the_token_endpoint_hold_back_basic_guesses(gw):
    for i in range(MAX_FAILURES):
        assert_oauth_error(login(gw, "127.0.0.20", "johndoe", f"wrong-{i}"), 400, "invalid_grant")
    assert_429(basic(gw, "127.0.0.20", "johndoe", JOHNDOE_PASSWORD))
    assert_429(basic(gw, "127.0.0.20", "johndoe", "another-guess"))


def test_argon2_api_key_guesses_are_throttled(gw):
    for i in range(MAX_FAILURES):
        assert api_key(gw, "127.0.0.30", f"guess-{i}").status_code == 401
    assert_429(api_key(gw, "127.0.0.30", API_KEY))
    assert api_key(gw, "127.0.0.31", API_KEY).status_code == 200
    assert login_failures(gw).get("bad_api_key", 0) == MAX_FAILURES


def test_nobody_can_lock_a_named_user_out(gw):
    for source in ("127.0.0.40", "127.0.0.41", "127.0.0.42"):
        for i in range(MAX_FAILURES + 3):
            basic(gw, source, "johndoe", f"wrong-{i}")
            login(gw, source, "johndoe", f"wrong-{i}")
    assert basic(gw, "127.0.0.43", "johndoe", JOHNDOE_PASSWORD).status_code == 200
    assert_token_response(login(gw, "127.0.0.43", "johndoe", JOHNDOE_PASSWORD), "me")


def test_behind_a_trusted_proxy_each_client_is_counted_apart(behind_proxy):
    attacker = {"X-Forwarded-For": "10.0.0.66"}
    for i in range(MAX_FAILURES):
        assert_oauth_error(login(behind_proxy, "127.0.0.1", "johndoe", f"wrong-{i}", headers=attacker), 400,
                           "invalid_grant")
    assert login(behind_proxy, "127.0.0.1", "johndoe", JOHNDOE_PASSWORD, headers=attacker).status_code == 429
    # other clients of the same proxy are not affected
    others = {"X-Forwarded-For": "10.0.0.77"}
    assert_token_response(login(behind_proxy, "127.0.0.1", "johndoe", JOHNDOE_PASSWORD, headers=others), "me")
    assert basic(behind_proxy, "127.0.0.1", "johndoe", JOHNDOE_PASSWORD, headers=others).status_code == 200
    # a client that prepends another address to its own is still itself: the rightmost
    # entry that is not a trusted proxy is the client
    spoofed = {"X-Forwarded-For": "10.0.0.77, 10.0.0.66"}
    assert login(behind_proxy, "127.0.0.1", "johndoe", JOHNDOE_PASSWORD, headers=spoofed).status_code == 429
    # and the access log names the client, not the proxy
    clients = {line.get("client") for line in behind_proxy.access_log() if line.get("route") == "token_endpoint"}
    assert {"10.0.0.66", "10.0.0.77"} <= clients, clients
    assert "127.0.0.1" not in clients, clients


def test_an_untrusted_peer_cannot_choose_its_address(gw):
    for i in range(MAX_FAILURES):
        login(gw, "127.0.0.50", "johndoe", f"wrong-{i}", headers={"X-Forwarded-For": f"10.1.1.{i}"})
    assert login(gw, "127.0.0.50", "johndoe", JOHNDOE_PASSWORD, headers={"X-Forwarded-For": "10.1.1.99"}).status_code == 429
    clients = {line.get("client") for line in gw.access_log() if line.get("route") == "token_endpoint"}
    assert clients == {"127.0.0.50"}, clients
