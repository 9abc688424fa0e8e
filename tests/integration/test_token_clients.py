"""Client authentication at the token endpoint (contract §6, §9), a real OAuth2 client library
(Authlib) doing the password grant and a refresh, and the access log of token requests (§8, §9)."""

from __future__ import annotations

import base64
import secrets

import pytest
from authlib.integrations.requests_client import OAuth2Session

from token_support import (
    CLIENT_ID, CLIENT_SECRET, JOHNDOE_PASSWORD, REALM, EchoUpstream, Portcullis, alice, assert_oauth_error,
    assert_token_response, base_config, basic_header, check_access_claims, describe, echo_headers, hash_password,
    johndoe, verify_hs256, wait_until, write_config)

LOGGER_PASSWORD = "Lg-" + secrets.token_hex(12)
OTHER_CLIENT, OTHER_SECRET = "other-app", "0ther-s3cret"


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(echo, tmp_path_factory):
    logger = {"username": "logger", "password_hash": hash_password(LOGGER_PASSWORD), "scopes": ["me", "items"]}
    cfg = base_config(echo.url, users=[johndoe(), alice(), logger], token_endpoint={
        "clients": [{"client_id": CLIENT_ID, "secret_hash": hash_password(CLIENT_SECRET)},
                    {"client_id": OTHER_CLIENT, "secret_hash": hash_password(OTHER_SECRET)}],
        "require_client_auth": False,
    })
    g = Portcullis(write_config(tmp_path_factory.mktemp("token-clients") / "gateway.yaml", cfg))
    yield g
    g.stop()


def password_form(scope="me items", **extra) -> dict:
    d = {"grant_type": "password", "username": "johndoe", "password": JOHNDOE_PASSWORD, "scope": scope}
    d.update(extra)
    return d


def assert_basic_client_challenge(resp):
    challenge = resp.headers.get("WWW-Authenticate") or ""
    assert challenge.startswith("Basic "), describe(resp)
    assert f'realm="{REALM}"' in challenge, describe(resp)


# ---------------------------------------------------------------------------------------------


def test_client_authenticated_with_basic_gets_client_id_in_the_token(gw):
    resp = gw.token(data=password_form(), headers={"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)})
    body = assert_token_response(resp, "me items")
    check_access_claims(verify_hs256(body["access_token"]), sub="johndoe", scope="me items", client_id=CLIENT_ID)


def test_client_authenticated_with_form_fields_gets_client_id_in_the_token(gw):
    resp = gw.token(data=password_form(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    body = assert_token_response(resp, "me items")
    check_access_claims(verify_hs256(body["access_token"]), sub="johndoe", scope="me items", client_id=CLIENT_ID)


def test_no_client_authentication_is_allowed_and_no_client_id_claim(gw):
    body = assert_token_response(gw.token(data=password_form(scope="me")), "me")
    check_access_claims(verify_hs256(body["access_token"]), sub="johndoe", scope="me", client_id=None)


@pytest.mark.parametrize("client_id,secret", [(CLIENT_ID, "wrong-secret"), ("no-such-app", CLIENT_SECRET)],
                         ids=["wrong-secret", "unknown-client"])
def test_failed_basic_client_auth_is_401_invalid_client_with_a_basic_challenge(gw, client_id, secret):
    resp = gw.token(data=password_form(), headers={"Authorization": basic_header(client_id, secret)})
    assert_oauth_error(resp, 401, "invalid_client")
    assert_basic_client_challenge(resp)
    assert "access_token" not in resp.text


def test_failed_form_client_auth_is_401_invalid_client(gw):
    resp = gw.token(data=password_form(client_id=CLIENT_ID, client_secret="wrong-secret"))
    assert_oauth_error(resp, 401, "invalid_client")
    assert "access_token" not in resp.text


def test_refresh_token_of_a_client_keeps_its_client_id(gw):
    auth = {"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)}
    first = assert_token_response(gw.token(data=password_form(), headers=auth), "me items")
    resp = gw.token(data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, headers=auth)
    body = assert_token_response(resp, "me items")
    check_access_claims(verify_hs256(body["access_token"]), sub="johndoe", scope="me items", client_id=CLIENT_ID)


def test_a_refresh_token_issued_to_one_client_is_refused_to_another(gw):
    # RFC 6749 §6 / §10.4: the refresh token is bound to the client it was issued to
    auth = {"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)}
    first = assert_token_response(gw.token(data=password_form(), headers=auth), "me items")
    other = {"Authorization": basic_header(OTHER_CLIENT, OTHER_SECRET)}
    resp = gw.token(data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, headers=other)
    assert_oauth_error(resp, 400, "invalid_grant")


def test_require_client_auth_refuses_a_request_without_client(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={
        "clients": [{"client_id": CLIENT_ID, "secret_hash": hash_password(CLIENT_SECRET)}],
        "require_client_auth": True,
    })
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        assert_oauth_error(g.token(data=password_form(scope="me")), 401, "invalid_client")
        ok = g.token(data=password_form(scope="me"), headers={"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)})
        body = assert_token_response(ok, "me")
        check_access_claims(verify_hs256(body["access_token"]), sub="johndoe", scope="me", client_id=CLIENT_ID)
    finally:
        g.stop()


# ---------------------------------------------------------------------------------------------
# A real OAuth2 client library


def test_authlib_password_grant_refresh_and_resource_access(gw):
    client = OAuth2Session(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scope="me items",
                           token_endpoint_auth_method="client_secret_basic")
    client.trust_env = False
    try:
        token = client.fetch_token(gw.url("/token"), grant_type="password", username="johndoe",
                                   password=JOHNDOE_PASSWORD, timeout=30)
        assert token["token_type"] == "bearer"
        assert token["scope"] == "me items"
        assert token.get("refresh_token")
        check_access_claims(verify_hs256(token["access_token"]), sub="johndoe", scope="me items",
                            client_id=CLIENT_ID)

        resp = client.get(gw.url("/users/me/items/"), timeout=10)
        assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]

        old_refresh = token["refresh_token"]
        new = client.refresh_token(gw.url("/token"), refresh_token=old_refresh, timeout=30)
        assert new["access_token"] != token["access_token"]
        assert new.get("refresh_token") and new["refresh_token"] != old_refresh
        assert client.token["access_token"] == new["access_token"]
        resp = client.get(gw.url("/users/me"), timeout=10)
        assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# The access log


def test_access_log_has_one_line_per_token_request_and_no_secrets(gw):
    auth = {"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)}
    wrong_password = "Wr-" + secrets.token_hex(12)
    ok = gw.token(data=password_form(username="logger", password=LOGGER_PASSWORD), headers=auth)
    body = assert_token_response(ok, "me items")
    refreshed = gw.token(data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, headers=auth)
    body2 = assert_token_response(refreshed, "me items")
    bad = gw.token(data=password_form(username="logger", password=wrong_password))
    assert_oauth_error(bad, 400, "invalid_grant")
    bad_client = gw.token(data=password_form(username="logger", password=LOGGER_PASSWORD, client_id=CLIENT_ID,
                                             client_secret=CLIENT_SECRET + "x"))
    assert_oauth_error(bad_client, 401, "invalid_client")

    responses = [ok, refreshed, bad, bad_client]
    ids = [r.headers.get("X-Request-Id") for r in responses]
    assert all(ids) and len(set(ids)) == len(ids), ids

    def lines_for_all():
        log = gw.access_log()
        found = {i: [e for e in log if e.get("request_id") == i] for i in ids}
        return found if all(found.values()) else None

    found = wait_until(lines_for_all, timeout=20, what="access-log lines of the token requests")
    for rid, resp in zip(ids, responses):
        entries = found[rid]
        assert len(entries) == 1, entries
        entry = entries[0]
        assert entry.get("method") == "POST" and entry.get("path") == "/token", entry
        assert entry.get("status") == resp.status_code, entry

    text = gw.stdout() + gw.stderr()
    forbidden = {
        "password": LOGGER_PASSWORD,
        "wrong password": wrong_password,
        "client secret": CLIENT_SECRET,
        "Basic credentials": auth["Authorization"].split()[1],
        "access token": body["access_token"],
        "access token signature": body["access_token"].rsplit(".", 1)[1],
        "refresh token": body["refresh_token"],
        "rotated access token": body2["access_token"],
        "rotated refresh token": body2["refresh_token"],
    }
    for what, value in forbidden.items():
        assert value not in text, f"the {what} appears in the gateway's output"
    assert base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode() not in text


def test_a_client_id_without_a_secret_is_invalid_client(gw):
    for client_id in (CLIENT_ID, "no-such-app"):
        resp = gw.token(data=password_form(client_id=client_id))
        assert_oauth_error(resp, 401, "invalid_client")
        assert "access_token" not in resp.text


def test_basic_client_credentials_with_another_client_id_in_the_form_are_refused(gw):
    resp = gw.token(data=password_form(client_id=OTHER_CLIENT), headers={"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)})
    assert_oauth_error(resp, 400, "invalid_request")
    same = gw.token(data=password_form(client_id=CLIENT_ID), headers={"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)})
    assert_token_response(same, "me items")


def test_a_refresh_token_issued_without_a_client_is_refused_to_a_client(gw):
    # it was not issued to that client (RFC 6749 §6), and taking it would mint a token claiming it
    first = assert_token_response(gw.token(data=password_form()), "me items")
    auth = {"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)}
    resp = gw.token(data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, headers=auth)
    assert_oauth_error(resp, 400, "invalid_grant")


def test_error_descriptions_never_echo_characters_rfc_6749_forbids(gw):
    # RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E only
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        gw.token(data=password_form(scope='me"\\\u00e9\x01')),  # an undefined scope, quoted back
        gw.token(data=b"username=x&password=y&a%22%0A=1&a%22%0A=2", headers=form),  # a repeated parameter
    ]
    for resp in answers:
        body = resp.json()
        assert resp.status_code == 400 and body.get("error") in ("invalid_scope", "invalid_request"), describe(resp)
        description = body["error_description"]
        assert description and all(c in " !" or "#" <= c <= "[" or "]" <= c <= "~" for c in description), description
    long = gw.token(data=password_form(scope="x" * 3000))
    assert long.status_code == 400 and len(long.json()["error_description"]) < 400, describe(long)
