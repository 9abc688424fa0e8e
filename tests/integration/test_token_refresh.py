"""Refresh tokens at the built-in token endpoint (contract §6, §9): rotation, reuse detection
revoking the whole family (RFC 9700 §4.14.2), narrowing but never widening the scope, survival
across a restart with the SQLite store, and a user disabled by a SIGHUP reload."""

from __future__ import annotations

import copy

import requests

import pytest

from harness import free_port
from token_support import (
    EchoUpstream, Portcullis, assert_oauth_error, assert_token_response, base_config, check_access_claims,
    describe, echo_headers, johndoe, alice, verify_hs256, wait_until, write_config)


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(echo, tmp_path_factory):
    cfg = base_config(echo.url, token_endpoint={"store": "sqlite:data/portcullis.sqlite"})
    g = Portcullis(write_config(tmp_path_factory.mktemp("token-refresh") / "gateway.yaml", cfg))
    yield g
    g.stop()


def login(gw, scope="me items") -> dict:
    return assert_token_response(gw.login(scope=scope), scope)


def test_refresh_rotates_and_the_new_access_token_works(gw):
    first = login(gw)
    second = assert_token_response(gw.refresh(first["refresh_token"]), "me items")
    assert second["refresh_token"] != first["refresh_token"], "rotation must return a NEW refresh token"
    assert second["access_token"] != first["access_token"]
    tok = verify_hs256(second["access_token"])
    check_access_claims(tok, sub="johndoe", scope="me items")
    assert tok.claims["jti"] != verify_hs256(first["access_token"]).claims["jti"]
    resp = gw.get("/users/me/items/", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]
    # and the rotated token rotates again
    third = assert_token_response(gw.refresh(second["refresh_token"]), "me items")
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_reusing_a_retired_refresh_token_revokes_its_family_only(gw):
    family = login(gw)
    other = login(gw)  # a second, independent family of the same user
    rotated = assert_token_response(gw.refresh(family["refresh_token"]), "me items")

    reuse = gw.refresh(family["refresh_token"])  # retired: reuse detected
    assert_oauth_error(reuse, 400, "invalid_grant")
    newest = gw.refresh(rotated["refresh_token"])  # the family is revoked: its newest token too
    assert_oauth_error(newest, 400, "invalid_grant")

    assert_token_response(gw.refresh(other["refresh_token"]), "me items")  # other family untouched


@pytest.mark.parametrize("token", ["", "not-a-refresh-token", "A" * 43])
def test_an_unknown_refresh_token_is_invalid_grant(gw, token):
    resp = gw.token(data={"grant_type": "refresh_token", "refresh_token": token})
    if token == "":
        assert resp.status_code == 400, describe(resp)
        assert resp.json().get("error") in ("invalid_request", "invalid_grant"), describe(resp)
    else:
        assert_oauth_error(resp, 400, "invalid_grant")


def test_an_access_token_is_not_a_refresh_token(gw):
    body = login(gw)
    assert_oauth_error(gw.refresh(body["access_token"]), 400, "invalid_grant")


def test_refresh_may_narrow_the_scope(gw):
    body = login(gw)
    narrowed = assert_token_response(gw.refresh(body["refresh_token"], scope="me"), "me")
    check_access_claims(verify_hs256(narrowed["access_token"]), sub="johndoe", scope="me")
    resp = gw.get("/users/me/items/", headers={"Authorization": f"Bearer {narrowed['access_token']}"})
    assert resp.status_code == 403, describe(resp)


def test_refresh_may_not_widen_the_scope(gw):
    body = login(gw, scope="me")
    assert_oauth_error(gw.refresh(body["refresh_token"], scope="me items"), 400, "invalid_scope")


def test_refresh_tokens_survive_a_restart_and_only_digests_are_stored(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"store": "sqlite:data/portcullis.sqlite"})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        body = login(g)
        rotated = assert_token_response(g.refresh(body["refresh_token"]), "me items")
        g = g.restart()
        after = assert_token_response(g.refresh(rotated["refresh_token"]), "me items")
        resp = g.get("/users/me/items/", headers={"Authorization": f"Bearer {after['access_token']}"})
        assert echo_headers(resp).get("x-auth-subject") == ["johndoe"]
        # reuse detection survives the restart as well
        assert_oauth_error(g.refresh(body["refresh_token"]), 400, "invalid_grant")
        g.stop()
        files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
        assert files, "the SQLite store wrote nothing under data/"
        for path in files:
            raw = path.read_bytes()
            for t in (body["refresh_token"], rotated["refresh_token"], after["refresh_token"]):
                assert t.encode() not in raw, f"a raw refresh token is stored in {path.name}"
    finally:
        g.stop()


def test_a_user_disabled_by_reload_cannot_refresh(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"store": "sqlite:data/portcullis.sqlite"})
    path = write_config(tmp_path / "gateway.yaml", cfg)
    g = Portcullis(path)
    try:
        body = login(g)
        assert_token_response(g.refresh(body["refresh_token"]), "me items")  # works while enabled
        second = login(g)

        disabled = copy.deepcopy(cfg)
        disabled["users"] = [johndoe(disabled=True), alice()]
        # a route that only the new file has: the sign that the reload took effect
        disabled["routes"].insert(0, {"name": "reloaded", "match": {"path": "/reloaded"}, "auth": "none",
                                      "upstream": "u"})
        write_config(path, disabled)
        g.reload("/reloaded")

        assert_oauth_error(g.refresh(second["refresh_token"]), 400, "invalid_grant")
        # and the access token issued before the reload no longer opens anything (§4)
        resp = g.get("/users/me", headers={"Authorization": f"Bearer {second['access_token']}"})
        assert resp.status_code == 401, describe(resp)
        assert 'error="invalid_token"' in (resp.headers.get("WWW-Authenticate") or ""), describe(resp)
    finally:
        g.stop()


def test_refresh_ttl_zero_disables_refresh_tokens_and_access_ttl_is_honoured(echo, tmp_path):
    cfg = base_config(echo.url, token_endpoint={"refresh_token_ttl": 0, "access_token_ttl": "5m"})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        body = assert_token_response(g.login(scope="me"), "me", ttl=300, refresh=False)
        tok = verify_hs256(body["access_token"])
        check_access_claims(tok, sub="johndoe", scope="me", ttl=300)
        assert tok.claims["exp"] - tok.claims["iat"] > 240, tok.claims
        assert body["expires_in"] > 240, body
        resp = g.token(data={"grant_type": "refresh_token", "refresh_token": "A" * 43})
        assert resp.status_code == 400, describe(resp)
        assert resp.json().get("error") in ("invalid_grant", "unsupported_grant_type"), describe(resp)
    finally:
        g.stop()


def test_a_narrowed_refresh_keeps_the_whole_grant_on_the_new_refresh_token(gw):
    # RFC 6749 §6: the new refresh token has the scope of the one presented; `scope` narrows
    # only the access token.
    body = login(gw)
    narrowed = assert_token_response(gw.refresh(body["refresh_token"], scope="me"), "me")
    again = assert_token_response(gw.refresh(narrowed["refresh_token"]), "me items")
    assert_token_response(gw.refresh(again["refresh_token"], scope="me items"), "me items")


def test_a_scope_taken_from_the_user_is_not_issued_again_on_refresh(echo, tmp_path):
    cfg = base_config(echo.url)
    path = write_config(tmp_path / "gateway.yaml", cfg)
    g = Portcullis(path)
    try:
        body = login(g)
        reduced = copy.deepcopy(cfg)
        reduced["users"] = [johndoe(scopes=["me"]), alice()]
        reduced["routes"].insert(0, {"name": "reloaded", "match": {"path": "/reloaded"}, "auth": "none",
                                     "upstream": "u"})
        write_config(path, reduced)
        g.reload("/reloaded")
        refreshed = assert_token_response(g.refresh(body["refresh_token"]), "me")
        check_access_claims(verify_hs256(refreshed["access_token"]), sub="johndoe", scope="me")
        resp = g.get("/users/me/items/", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
        assert resp.status_code == 403, describe(resp)
        # asking for it by name is refused like at a login
        assert_oauth_error(g.refresh(refreshed["refresh_token"], scope="me items"), 400, "invalid_scope")
    finally:
        g.stop()


@pytest.mark.parametrize("store", ["memory:", "sqlite:data/portcullis.sqlite"])
def test_each_replay_of_a_retired_token_is_one_reuse_and_its_revoked_successor_none(echo, tmp_path, store):
    """Reuse is presenting a token that was already redeemed. Its successor, revoked with the
    family before anyone used it, is refused without being counted or logged as a reuse."""
    admin = free_port()
    cfg = base_config(echo.url, token_endpoint={"store": store}, server={"admin_listen": f"127.0.0.1:{admin}"})
    g = Portcullis(write_config(tmp_path / "gateway.yaml", cfg))
    try:
        first = login(g)
        second = assert_token_response(g.refresh(first["refresh_token"]), "me items")
        for request_id in ("replay-1", "replay-2"):
            replay = g.token(data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                             headers={"X-Request-Id": request_id})
            assert_oauth_error(replay, 400, "invalid_grant")
        assert_oauth_error(g.refresh(second["refresh_token"]), 400, "invalid_grant")

        metrics = requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
        assert 'portcullis_login_failures_total{reason="refresh_reuse"} 2' in metrics.splitlines(), metrics
        def reuse_warnings():
            found = [line for line in g.stderr().splitlines() if "retired refresh token was presented" in line]
            return found if len(found) >= 2 else None
        warnings = wait_until(reuse_warnings, timeout=5, what="two reuse warnings")
        assert len(warnings) == 2, g.stderr()
        for line, request_id in zip(warnings, ("replay-1", "replay-2")):
            assert f"request_id={request_id}" in line and "subject=johndoe" in line, line
        # the access token issued before the reuse stays valid until it expires
        resp = g.get("/users/me/items/", headers={"Authorization": f"Bearer {second['access_token']}"})
        assert resp.status_code == 200, describe(resp)
    finally:
        g.stop()
