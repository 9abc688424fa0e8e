"""API-key routes (contract §2 `api_keys`, §4, §5, §9): keys in a header (SHA-256 digest), in the
query (Argon2id hash) and in a cookie, each accepted only at its own location."""

from __future__ import annotations

import copy
import secrets

import pytest

from token_support import (
    REALM, EchoUpstream, Portcullis, base_config, challenges, describe, echo_headers, hash_password, json_body,
    sha256_key_hash, write_config)

HEADER_KEY = "hk_" + secrets.token_urlsafe(24)
QUERY_KEY = "qk_" + secrets.token_urlsafe(24)
COOKIE_KEY = "ck_" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def echo():
    up = EchoUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(echo, tmp_path_factory):
    keys = [
        {"name": "ci-bot", "key_hash": sha256_key_hash(HEADER_KEY), "scopes": ["items"], "in": "header",
         "param": "X-API-Key"},
        {"name": "q-bot", "key_hash": hash_password(QUERY_KEY), "scopes": ["items"], "in": "query",
         "param": "api_key"},
        {"name": "c-bot", "key_hash": sha256_key_hash(COOKIE_KEY), "scopes": ["items", "me"], "in": "cookie",
         "param": "session_key"},
    ]
    cfg = base_config(echo.url, api_keys=keys)
    g = Portcullis(write_config(tmp_path_factory.mktemp("apikey") / "gateway.yaml", cfg))
    yield g
    g.stop()


def assert_apikey_refusal(resp):
    assert resp.status_code == 401, describe(resp)
    assert challenges(resp) == ["APIKey"], describe(resp)
    assert json_body(resp) == {"detail": "Not authenticated"}, describe(resp)


def assert_identity(resp, name: str, scopes: str) -> dict:
    h = echo_headers(resp)
    assert h.get("x-auth-subject") == [name], h
    assert h.get("x-auth-method") == ["api_key"], h
    assert h.get("x-auth-scopes") == [scopes], h
    return h


# ---------------------------------------------------------------------------------------------


def test_header_key_is_accepted_and_not_forwarded(gw):
    resp = gw.get("/keys/report", headers={"X-API-Key": HEADER_KEY})
    h = assert_identity(resp, "ci-bot", "items")
    assert resp.json()["path"] == "/keys/report"
    assert "x-api-key" not in h, f"the header key was forwarded upstream: {h}"
    assert HEADER_KEY not in resp.text


def test_white_space_around_a_header_key_is_not_part_of_it(gw):
    """RFC 9110 §5.5: a field value excludes leading and trailing white space."""
    assert_identity(gw.get("/keys/report", headers={"X-API-Key": HEADER_KEY + "  \t"}), "ci-bot", "items")


def test_header_name_is_case_insensitive(gw):
    assert_identity(gw.get("/keys/ci", headers={"x-api-key": HEADER_KEY}), "ci-bot", "items")


def test_query_key_with_an_argon2_hash_is_accepted(gw):
    resp = gw.get("/keys/report", params={"api_key": QUERY_KEY, "page": "2"})
    assert_identity(resp, "q-bot", "items")
    # and again (a remembered verification must give the same answer)
    assert_identity(gw.get("/keys/report", params={"api_key": QUERY_KEY}), "q-bot", "items")


def test_cookie_key_is_accepted(gw):
    resp = gw.get("/keys/report", headers={"Cookie": f"theme=dark; session_key={COOKIE_KEY}; lang=en"})
    assert_identity(resp, "c-bot", "items me")


def test_no_key_is_401_apikey(gw):
    assert_apikey_refusal(gw.get("/keys/report"))


@pytest.mark.parametrize("where", ["header", "query", "cookie"])
def test_a_wrong_key_is_401_apikey(gw, where):
    wrong = "wk_" + secrets.token_urlsafe(24)
    if where == "header":
        resp = gw.get("/keys/report", headers={"X-API-Key": wrong})
    elif where == "query":
        resp = gw.get("/keys/report", params={"api_key": wrong})
    else:
        resp = gw.get("/keys/report", headers={"Cookie": f"session_key={wrong}"})
    assert_apikey_refusal(resp)


@pytest.mark.parametrize("case", [
    "header-key-as-query-param",
    "header-key-in-the-query-keys-param",
    "header-key-as-cookie",
    "query-key-as-header",
    "query-key-in-the-header-keys-header",
    "cookie-key-as-header",
    "cookie-key-in-the-query",
])
def test_a_key_is_only_accepted_at_its_own_location(gw, case):
    headers, params = {}, {}
    if case == "header-key-as-query-param":
        params["X-API-Key"] = HEADER_KEY
    elif case == "header-key-in-the-query-keys-param":
        params["api_key"] = HEADER_KEY
    elif case == "header-key-as-cookie":
        headers["Cookie"] = f"X-API-Key={HEADER_KEY}"
    elif case == "query-key-as-header":
        headers["api_key"] = QUERY_KEY
    elif case == "query-key-in-the-header-keys-header":
        headers["X-API-Key"] = QUERY_KEY
    elif case == "cookie-key-as-header":
        headers["X-API-Key"] = COOKIE_KEY
    elif case == "cookie-key-in-the-query":
        params["session_key"] = COOKIE_KEY
    assert_apikey_refusal(gw.get("/keys/report", headers=headers, params=params))


def test_an_api_key_does_not_open_a_bearer_route(gw):
    resp = gw.get("/users/me", headers={"X-API-Key": HEADER_KEY})
    assert resp.status_code == 401, describe(resp)
    assert challenges(resp) == [f'Bearer realm="{REALM}", scope="me"'], describe(resp)


def test_reload_replacing_the_keys_beats_the_verification_cache(echo, tmp_path):
    old_query, new_query = "oq_" + secrets.token_urlsafe(24), "nq_" + secrets.token_urlsafe(24)
    old_header, new_header = "oh_" + secrets.token_urlsafe(24), "nh_" + secrets.token_urlsafe(24)

    def keys(q, h):
        return [{"name": "q-bot", "key_hash": hash_password(q), "scopes": ["items"], "in": "query", "param": "api_key"},
                {"name": "ci-bot", "key_hash": sha256_key_hash(h), "scopes": ["items"], "in": "header",
                 "param": "X-API-Key"}]

    cfg = base_config(echo.url, api_keys=keys(old_query, old_header))
    path = write_config(tmp_path / "gateway.yaml", cfg)
    g = Portcullis(path)
    try:
        assert_identity(g.get("/keys/a", params={"api_key": old_query}), "q-bot", "items")  # now remembered
        assert_identity(g.get("/keys/a", headers={"X-API-Key": old_header}), "ci-bot", "items")

        changed = copy.deepcopy(cfg)
        changed["api_keys"] = keys(new_query, new_header)
        changed["routes"].insert(0, {"name": "reloaded", "match": {"path": "/reloaded"}, "auth": "none",
                                     "upstream": "u"})
        write_config(path, changed)
        g.reload("/reloaded")

        assert_apikey_refusal(g.get("/keys/a", params={"api_key": old_query}))
        assert_apikey_refusal(g.get("/keys/a", headers={"X-API-Key": old_header}))
        assert_identity(g.get("/keys/a", params={"api_key": new_query}), "q-bot", "items")
        assert_identity(g.get("/keys/a", headers={"X-API-Key": new_header}), "ci-bot", "items")
    finally:
        g.stop()


def test_a_key_given_twice_with_different_values_is_refused(gw):
    """The gateway would check one value and the upstream might read the other (PHP and most
    cookie jars take the last): differing repeats are refused, identical ones are one key."""
    import http.client

    def raw(path, headers):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        try:
            conn.putrequest("GET", path)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    for other in ("someone-else", HEADER_KEY + "x"):
        assert raw("/keys/h", [("X-API-Key", HEADER_KEY), ("X-API-Key", other)])[0] == 401
    assert raw("/keys/h", [("X-API-Key", HEADER_KEY), ("X-API-Key", HEADER_KEY)])[0] == 200
    assert_apikey_refusal(gw.get(f"/keys/q?api_key={QUERY_KEY}&api_key=attacker"))
    assert_apikey_refusal(gw.get("/keys/c", headers={"Cookie": f"session_key={COOKIE_KEY}; session_key=other"}))
    assert raw("/keys/c", [("Cookie", f"session_key={COOKIE_KEY}"), ("Cookie", "session_key=other")])[0] == 401
    # white space and double quotes around a cookie value are not part of it (RFC 6265 §4.1.1)
    assert_identity(gw.get("/keys/c", headers={"Cookie": f'theme=dark;  session_key="{COOKIE_KEY}" '}), "c-bot", "items me")
