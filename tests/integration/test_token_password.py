"""The built-in OAuth2 token endpoint, password grant (contract §6, §2 `users`/`token_endpoint`,
§9): FastAPI's tutorial flow, the access token's shape, scopes, and the endpoint's refusals."""

from __future__ import annotations

import pytest

from token_support import (
    ALICE_PASSWORD, JOHNDOE_HASH, JOHNDOE_PASSWORD, EchoUpstream, Portcullis, alice, form_body,
    assert_oauth_error, assert_token_response, base_config, check_access_claims, describe, echo_headers,
    hash_password, johndoe, json_body, verify_hs256, write_config)

JOSE_NAME = "jösé"
JOSE_PASSWORD = "ñandú:pässwörd"
DECLARED = {"me": "Read information about the current user.", "items": "Read items.", "admin": "Administer."}


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(echo, tmp_path_factory):
    carol = {"username": "carol", "password_hash": JOHNDOE_HASH, "scopes": ["me", "legacy"]}  # legacy: undeclared
    jose = {"username": JOSE_NAME, "password_hash": hash_password(JOSE_PASSWORD), "scopes": ["me"]}
    cfg = base_config(echo.url, users=[johndoe(), alice(), carol, jose],
                      token_endpoint={"scopes": DECLARED, "default_scopes": ["me", "admin"]})
    g = Portcullis(write_config(tmp_path_factory.mktemp("token-password") / "gateway.yaml", cfg))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def johndoe_token(gw) -> str:
    """One form-urlencoded password grant for "me items", shared by the tests that only use it."""
    body = assert_token_response(gw.login(scope="me items"), "me items")
    return body["access_token"]


# ---------------------------------------------------------------------------------------------
# Success


def test_fastapi_multipart_login_without_grant_type(gw):
    """`curl -F username=johndoe -F password=secret -F "scope=me items"` (no grant_type: FastAPI-permissive)."""
    resp = gw.token(files={"username": (None, "johndoe"), "password": (None, JOHNDOE_PASSWORD),
                           "scope": (None, "me items")})
    assert resp.request.headers["Content-Type"].startswith("multipart/form-data; boundary="), resp.request.headers
    body = assert_token_response(resp, "me items")
    tok = verify_hs256(body["access_token"])
    check_access_claims(tok, sub="johndoe", scope="me items")
    assert tok.header.get("alg") == "HS256", tok.header
    assert body["expires_in"] <= tok.claims["exp"] - tok.claims["iat"] + 5, (body, tok.claims)


def test_form_urlencoded_login_issues_distinct_signed_tokens(gw, johndoe_token):
    resp = gw.token(data=[("grant_type", "password"), ("username", "johndoe"), ("password", JOHNDOE_PASSWORD),
                          ("scope", "me items")])
    assert resp.request.headers["Content-Type"] == "application/x-www-form-urlencoded", resp.request.headers
    body = assert_token_response(resp, "me items")
    first, second = verify_hs256(johndoe_token), verify_hs256(body["access_token"])
    check_access_claims(second, sub="johndoe", scope="me items")
    assert first.claims["jti"] != second.claims["jti"], (first.claims, second.claims)
    assert body["access_token"] != johndoe_token


def test_access_token_is_not_accepted_with_another_secret(johndoe_token):
    from joserfc.errors import BadSignatureError
    with pytest.raises(BadSignatureError):
        verify_hs256(johndoe_token, secret="a-different-secret-of-reasonable-length-0123456789")


def test_issued_token_opens_the_items_route(gw, johndoe_token):
    resp = gw.get("/users/me/items/", headers={"Authorization": f"Bearer {johndoe_token}"})
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["path"] == "/users/me/items/"
    h = echo_headers(resp)
    assert h.get("x-auth-subject") == ["johndoe"], h
    assert h.get("x-auth-method") == ["bearer"], h
    assert h.get("x-auth-scopes") == ["me items"], h


def test_token_with_scope_me_is_refused_at_items_but_opens_me(gw):
    body = assert_token_response(gw.login(scope="me"), "me")
    tok = verify_hs256(body["access_token"])
    check_access_claims(tok, sub="johndoe", scope="me")
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    refused = gw.get("/users/me/items/", headers=auth)
    assert refused.status_code == 403, describe(refused)
    assert 'error="insufficient_scope"' in (refused.headers.get("WWW-Authenticate") or ""), describe(refused)
    assert json_body(refused).get("detail") == "Not enough permissions", describe(refused)
    ok = gw.get("/users/me", headers=auth)
    assert ok.status_code == 200, describe(ok)
    assert echo_headers(ok).get("x-auth-subject") == ["johndoe"]


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded; charset=UTF-8",
    "application/x-www-form-urlencoded;charset=utf-8",
    "Application/X-WWW-Form-URLEncoded",
])
def test_form_content_type_parameters_and_case_are_accepted(gw, content_type):
    body = form_body({"grant_type": "password", "username": "johndoe", "password": JOHNDOE_PASSWORD, "scope": "me"})
    assert_token_response(gw.token(data=body, headers={"Content-Type": content_type}), "me")


@pytest.mark.parametrize("kind", ["form", "multipart"])
def test_non_ascii_username_and_password_with_a_colon(gw, kind):
    fields = {"grant_type": "password", "username": JOSE_NAME, "password": JOSE_PASSWORD, "scope": "me"}
    if kind == "form":
        resp = gw.token(data=fields)  # UTF-8, percent-encoded
    else:
        resp = gw.token(files={k: (None, v.encode("utf-8")) for k, v in fields.items()})
    body = assert_token_response(resp, "me")
    check_access_claims(verify_hs256(body["access_token"]), sub=JOSE_NAME, scope="me")


# ---------------------------------------------------------------------------------------------
# Wrong credentials


def test_disabled_user_with_the_right_password_is_inactive(gw):
    resp = gw.login(username="alice", password=ALICE_PASSWORD, scope="me")
    assert resp.status_code == 400, describe(resp)
    assert json_body(resp) == {"error": "invalid_grant", "error_description": "Inactive user",
                               "detail": "Inactive user"}, describe(resp)


def test_disabled_user_with_a_wrong_password_is_not_told_inactive(gw):
    resp = gw.login(username="alice", password="not-alices-password", scope="me")
    assert_oauth_error(resp, 400, "invalid_grant", "Incorrect username or password")


@pytest.mark.parametrize("username,password", [
    ("johndoe", "wrong-password"),
    ("nobody-at-all", JOHNDOE_PASSWORD),
    ("johndoe", ""),
], ids=["wrong-password", "unknown-user", "empty-password"])
def test_wrong_credentials_are_invalid_grant(gw, username, password):
    resp = gw.token(data={"grant_type": "password", "username": username, "password": password})
    assert_oauth_error(resp, 400, "invalid_grant", "Incorrect username or password")


# ---------------------------------------------------------------------------------------------
# Scopes: requested ⊆ user's ⊆ declared


@pytest.mark.parametrize("username,scope", [
    ("johndoe", "me admin"),   # declared, but not one of johndoe's
    ("johndoe", "me write"),   # declared nowhere
    ("carol", "legacy"),       # carol's, but not declared
], ids=["not-the-users", "undeclared", "users-but-undeclared"])
def test_scope_outside_the_allowed_set_is_invalid_scope(gw, username, scope):
    assert_oauth_error(gw.login(username=username, scope=scope), 400, "invalid_scope")


@pytest.mark.parametrize("username", ["johndoe", "carol"])
def test_no_scope_requested_gets_the_default_scopes_the_user_holds(gw, username):
    # default_scopes [me, admin] ∩ johndoe's [me, items] = "me"; ∩ carol's [me, legacy] = "me"
    body = assert_token_response(gw.login(username=username, scope=None), "me")
    check_access_claims(verify_hs256(body["access_token"]), sub=username, scope="me")


# ---------------------------------------------------------------------------------------------
# Malformed requests


@pytest.mark.parametrize("kind", ["form", "multipart"])
def test_a_repeated_parameter_is_invalid_request(gw, kind):
    pairs = [("grant_type", "password"), ("username", "johndoe"), ("password", JOHNDOE_PASSWORD),
             ("username", "johndoe")]
    if kind == "form":
        resp = gw.token(data=pairs)
    else:
        resp = gw.token(files=[(k, (None, v)) for k, v in pairs])
    assert_oauth_error(resp, 400, "invalid_request")


def test_a_repeated_scope_parameter_is_invalid_request(gw):
    resp = gw.token(data=[("username", "johndoe"), ("password", JOHNDOE_PASSWORD), ("scope", "me"),
                          ("scope", "items")])
    assert_oauth_error(resp, 400, "invalid_request")


@pytest.mark.parametrize("content_type,body", [
    ("application/json", b'{"grant_type":"password","username":"johndoe","password":"secret"}'),
    ("text/plain", b"grant_type=password&username=johndoe&password=secret"),
    (None, b"grant_type=password&username=johndoe&password=secret"),
], ids=["json", "text-plain", "no-content-type"])
def test_a_body_that_is_not_a_form_is_invalid_request(gw, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    resp = gw.token(data=body, headers=headers)
    if content_type is None:
        assert "Content-Type" not in resp.request.headers, resp.request.headers
    assert_oauth_error(resp, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["client_credentials", "authorization_code", "urn:example:magic"])
def test_an_unknown_grant_type_is_unsupported(gw, grant_type):
    resp = gw.token(data={"grant_type": grant_type, "username": "johndoe", "password": JOHNDOE_PASSWORD})
    assert_oauth_error(resp, 400, "unsupported_grant_type")


def test_missing_password_is_invalid_request(gw):
    resp = gw.token(data={"grant_type": "password", "username": "johndoe"})
    assert_oauth_error(resp, 400, "invalid_request")


def test_get_on_the_token_path_is_405_allow_post(gw):
    resp = gw.get("/token")
    assert resp.status_code == 405, describe(resp)
    assert resp.headers.get("Allow") == "POST", resp.headers
    assert json_body(resp).get("detail") == "Method Not Allowed", describe(resp)


def test_require_grant_type_refuses_a_form_without_it(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"require_grant_type": True})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        resp = g.token(data={"username": "johndoe", "password": JOHNDOE_PASSWORD, "scope": "me"})
        assert_oauth_error(resp, 400, "invalid_request")
        ok = g.login(scope="me")  # with grant_type=password it still works
        assert_token_response(ok, "me")
    finally:
        g.stop()

