"""HTTP Basic routes against local users with Argon2id hashes (contract §2 `users`, §4, §5, §9):
FastAPI's `curl -u johndoe:secret`, the Basic challenge and its details, RFC 7617 UTF-8
credentials, and routes that take Bearer or Basic."""

from __future__ import annotations

import copy

import pytest

from jwt_support import claims, hmac_token
from token_support import (
    ALICE_PASSWORD, JOHNDOE_PASSWORD, JWT_SECRET, REALM, EchoUpstream, Portcullis, alice, base_config, basic_header,
    challenges, describe, echo_headers, hash_password, johndoe, json_body, write_config)

BASIC_CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
BEARER_CHALLENGE = f'Bearer realm="{REALM}"'
JOSE_NAME = "jösé"
JOSE_PASSWORD = "ñandú-pw"
COLON_NAME = "colon"
COLON_PASSWORD = "a:b::c:"


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(echo, tmp_path_factory):
    users = [johndoe(), alice(),
             {"username": JOSE_NAME, "password_hash": hash_password(JOSE_PASSWORD), "scopes": ["me"]},
             {"username": COLON_NAME, "password_hash": hash_password(COLON_PASSWORD), "scopes": ["items"]}]
    cfg = base_config(echo.url, users=users)
    g = Portcullis(write_config(tmp_path_factory.mktemp("basic") / "gateway.yaml", cfg))
    yield g
    g.stop()


def basic_get(gw, path, username, password, **headers):
    return gw.get(path, headers={"Authorization": basic_header(username, password), **headers})


def assert_basic_refusal(resp, detail: str):
    assert resp.status_code == 401, describe(resp)
    assert challenges(resp) == [BASIC_CHALLENGE], describe(resp)
    assert json_body(resp) == {"detail": detail}, describe(resp)


def assert_both_challenges(resp):
    lines = challenges(resp)
    ok = (sorted(lines) == sorted([BEARER_CHALLENGE, BASIC_CHALLENGE])
          or lines in ([f"{BEARER_CHALLENGE}, {BASIC_CHALLENGE}"], [f"{BASIC_CHALLENGE}, {BEARER_CHALLENGE}"]))
    assert ok, f"expected a Bearer and a Basic challenge, got {lines!r}: {describe(resp)}"


# ---------------------------------------------------------------------------------------------


def test_curl_u_johndoe_secret_is_forwarded_with_identity_and_without_authorization(gw):
    resp = basic_get(gw, "/basic/profile?x=1", "johndoe", JOHNDOE_PASSWORD)
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["path"] == "/basic/profile"
    h = echo_headers(resp)
    assert h.get("x-auth-subject") == ["johndoe"], h
    assert h.get("x-auth-method") == ["basic"], h
    assert h.get("x-auth-scopes") == ["me items"], h
    assert "authorization" not in h, f"the Basic credentials were forwarded upstream: {h}"


def test_cached_credentials_keep_working_and_client_identity_headers_are_replaced(gw):
    for _ in range(3):
        resp = basic_get(gw, "/basic/again", "johndoe", JOHNDOE_PASSWORD,
                         **{"X-Auth-Subject": "root", "X-Auth-Method": "none", "X-Auth-Scopes": "admin"})
        h = echo_headers(resp)
        assert h.get("x-auth-subject") == ["johndoe"], h
        assert h.get("x-auth-method") == ["basic"], h
        assert h.get("x-auth-scopes") == ["me items"], h


def test_scheme_name_is_case_insensitive(gw):
    token = basic_header("johndoe", JOHNDOE_PASSWORD).split(" ", 1)[1]
    resp = gw.get("/basic/lower", headers={"Authorization": f"basic {token}"})
    assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]


def test_wrong_password_is_401_incorrect(gw):
    assert_basic_refusal(basic_get(gw, "/basic/x", "johndoe", "not-the-password"), "Incorrect username or password")


def test_unknown_user_is_401_incorrect(gw):
    assert_basic_refusal(basic_get(gw, "/basic/x", "mallory", JOHNDOE_PASSWORD), "Incorrect username or password")


def test_no_credentials_is_401_not_authenticated(gw):
    assert_basic_refusal(gw.get("/basic/x"), "Not authenticated")


def test_a_bearer_token_does_not_open_a_basic_route(gw):
    token = hmac_token(JWT_SECRET.encode(), {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims())
    resp = gw.get("/basic/x", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, describe(resp)
    assert challenges(resp) == [BASIC_CHALLENGE], describe(resp)


def test_disabled_user_with_the_right_password_is_401_inactive(gw):
    resp = basic_get(gw, "/basic/x", "alice", ALICE_PASSWORD)
    assert resp.status_code == 401, describe(resp)
    assert json_body(resp) == {"detail": "Inactive user"}, describe(resp)


def test_non_ascii_username_and_password_in_utf8(gw):
    resp = basic_get(gw, "/basic/jose", JOSE_NAME, JOSE_PASSWORD)
    assert resp.status_code == 200, describe(resp)
    h = echo_headers(resp)
    assert h.get("x-auth-method") == ["basic"], h
    # the subject travels as the username's UTF-8 bytes (the echo decodes header bytes as UTF-8)
    assert h.get("x-auth-subject") == [JOSE_NAME], h
    assert h.get("x-auth-scopes") == ["me"], h
    assert_basic_refusal(basic_get(gw, "/basic/jose", JOSE_NAME, "ñandú-PW"), "Incorrect username or password")


def test_password_containing_colons(gw):
    resp = basic_get(gw, "/basic/colon", COLON_NAME, COLON_PASSWORD)
    assert resp.status_code == 200, describe(resp)
    h = echo_headers(resp)
    assert h.get("x-auth-subject") == [COLON_NAME], h
    assert h.get("x-auth-scopes") == ["items"], h
    # the part after the first colon is all password: a prefix of it is wrong
    assert_basic_refusal(basic_get(gw, "/basic/colon", COLON_NAME, "a:b"), "Incorrect username or password")


# ---------------------------------------------------------------------------------------------
# auth: [bearer, basic]


def test_either_route_without_credentials_carries_both_challenges(gw):
    resp = gw.get("/either/x")
    assert resp.status_code == 401, describe(resp)
    assert_both_challenges(resp)
    assert json_body(resp).get("detail") == "Not authenticated", describe(resp)


def test_either_route_with_a_wrong_password_carries_both_challenges(gw):
    resp = basic_get(gw, "/either/x", "johndoe", "wrong")
    assert resp.status_code == 401, describe(resp)
    assert_both_challenges(resp)
    assert json_body(resp).get("detail") == "Incorrect username or password", describe(resp)


def test_either_route_takes_basic(gw):
    h = echo_headers(basic_get(gw, "/either/b", "johndoe", JOHNDOE_PASSWORD))
    assert h.get("x-auth-subject") == ["johndoe"] and h.get("x-auth-method") == ["basic"], h
    assert "authorization" not in h, h


def test_either_route_takes_bearer(gw):
    token = hmac_token(JWT_SECRET.encode(), {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(scope="me"))
    h = echo_headers(gw.get("/either/t", headers={"Authorization": f"Bearer {token}"}))
    assert h.get("x-auth-subject") == ["johndoe"] and h.get("x-auth-method") == ["bearer"], h
    assert h.get("x-auth-scopes") == ["me"], h


# ---------------------------------------------------------------------------------------------
# A reload changes what a remembered password is worth


def test_reload_with_a_new_password_hash_or_disabled_user_beats_the_credential_cache(echo, tmp_path):
    new_password = "n3w-" + JOSE_PASSWORD
    users = [johndoe(), alice(), {"username": COLON_NAME, "password_hash": hash_password(COLON_PASSWORD),
                                  "scopes": ["items"]}]
    cfg = base_config(echo.url, users=users)
    path = write_config(tmp_path / "gateway.yaml", cfg)
    g = Portcullis(path)
    try:
        # both passwords verified once, so both are remembered
        assert echo_headers(basic_get(g, "/basic/a", "johndoe", JOHNDOE_PASSWORD)).get("x-auth-subject") == ["johndoe"]
        assert echo_headers(basic_get(g, "/basic/a", COLON_NAME, COLON_PASSWORD)).get("x-auth-subject") == [COLON_NAME]

        changed = copy.deepcopy(cfg)
        changed["users"] = [johndoe(password_hash=hash_password(new_password)), alice(),
                            {"username": COLON_NAME, "password_hash": users[2]["password_hash"], "scopes": ["items"],
                             "disabled": True}]
        changed["routes"].insert(0, {"name": "reloaded", "match": {"path": "/reloaded"}, "auth": "none",
                                     "upstream": "u"})
        write_config(path, changed)
        g.reload("/reloaded")

        assert_basic_refusal(basic_get(g, "/basic/a", "johndoe", JOHNDOE_PASSWORD), "Incorrect username or password")
        assert echo_headers(basic_get(g, "/basic/a", "johndoe", new_password)).get("x-auth-subject") == ["johndoe"]
        resp = basic_get(g, "/basic/a", COLON_NAME, COLON_PASSWORD)
        assert resp.status_code == 401, describe(resp)
        assert json_body(resp) == {"detail": "Inactive user"}, describe(resp)
    finally:
        g.stop()


def test_basic_user_lacking_a_scope_gets_a_challenge_when_the_status_is_401(echo, tmp_path):
    """insufficient_scope_status: 401 with Basic credentials: every 401 carries a challenge
    (RFC 9110 §15.5.2), the route's own; with the default 403 there is none."""
    extra = [{"name": "either-items", "match": {"path": "/either-items/**"}, "auth": ["bearer", "basic"],
              "scopes": ["items"], "upstream": "u"},
             {"name": "basic-items", "match": {"path": "/basic-items/**"}, "auth": "basic", "scopes": ["items"],
              "upstream": "u"}]
    users = [johndoe(), {"username": JOSE_NAME, "password_hash": hash_password(JOSE_PASSWORD), "scopes": ["me"]}]
    for status in (401, 403):
        cfg = base_config(echo.url, users=users, extra_routes=extra, server={"insufficient_scope_status": status})
        g = Portcullis(write_config(tmp_path / f"gateway-{status}.yaml", cfg))
        try:
            resp = basic_get(g, "/basic-items/x", JOSE_NAME, JOSE_PASSWORD)
            assert resp.status_code == status, describe(resp)
            assert json_body(resp) == {"detail": "Not enough permissions"}, describe(resp)
            if status == 401:
                assert challenges(resp) == [BASIC_CHALLENGE], describe(resp)
                either = basic_get(g, "/either-items/x", JOSE_NAME, JOSE_PASSWORD)
                assert either.status_code == 401, describe(either)
                lines = challenges(either)
                assert sorted(lines) == sorted([f'{BEARER_CHALLENGE}, scope="items"', BASIC_CHALLENGE]), describe(either)
            else:
                assert challenges(resp) == [], describe(resp)
        finally:
            g.stop()


def test_the_subject_is_the_configured_name_however_the_client_spells_it(gw):
    # "jösé" in NFD (o + combining diaeresis) names the same user as the configured NFC form:
    # the upstream must see the configured bytes, not a second spelling of the same account.
    import unicodedata

    decomposed = unicodedata.normalize("NFD", JOSE_NAME)
    assert decomposed != JOSE_NAME
    resp = basic_get(gw, "/basic/nfd", decomposed, JOSE_PASSWORD)
    if resp.status_code == 200:
        # the echo decodes header bytes as UTF-8
        assert echo_headers(resp).get("x-auth-subject") == [JOSE_NAME], echo_headers(resp)
    else:
        assert resp.status_code == 401, describe(resp)


def test_password_checks_in_flight_survive_reloads(echo, tmp_path):
    """A request waiting for Argon2 is decided again under the configuration it arrived with,
    however many reloads happen meanwhile (before: 500 after the second reload)."""
    import signal
    import threading
    import time

    cfg = base_config(echo.url, token_endpoint={"max_concurrent_hashes": 1})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        results = []

        def login(n):
            results.append(basic_get(g, f"/basic/r{n}", "johndoe", JOHNDOE_PASSWORD).status_code)

        # Four checks queue behind each other on one hashing thread; reloads land between them.
        threads = [threading.Thread(target=login, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for _ in range(5):
            time.sleep(0.12)
            g.proc.send_signal(signal.SIGHUP)
        for t in threads:
            t.join(30)
        assert results == [200] * 4, results
    finally:
        g.stop()
