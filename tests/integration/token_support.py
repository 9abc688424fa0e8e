"""Shared helpers for the token-endpoint, Basic-route and API-key integration tests
(test_token_*.py, test_basic_*.py, test_apikey_*.py).

Black-box only: the real `portcullis` and `echo-upstream` binaries on loopback ephemeral ports,
HTTP with `requests` (and `http.client` where a test needs control over the connection), JWTs
checked with joserfc. Configurations are written as JSON, which is YAML too.

Unlike jwt_support.Gateway, the gateway here keeps its standard output (the access log, JSON
lines) as well as its standard error, can be sent SIGHUP, and can be restarted on the same file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from joserfc import jwt
from joserfc.jwk import OctKey

from jwt_support import (  # noqa: F401 - re-exported for the test modules
    ALICE_HASH, DESC, GATEWAY_ISSUER, HTTP_TIMEOUT, JOHNDOE_HASH, PORTCULLIS_BIN, REALM, START_TIMEOUT,
    EchoUpstream, base_env, describe, stop_process, wait_until, write)

JOHNDOE_PASSWORD = "secret"
ALICE_PASSWORD = "secretalice"
CLIENT_ID = "app"
CLIENT_SECRET = "s3cret"

# A fresh HMAC secret for this test session (64 ASCII bytes; the key is the raw bytes, §9).
JWT_SECRET = secrets.token_hex(32)

# Requests that may wait for Argon2 (token requests, Basic and Argon2 API keys) on a slow, shared
# machine: 64 MiB per hash behind a bounded queue. A hang still fails, only later.
TOKEN_TIMEOUT = 30
RELOAD_TIMEOUT = 20


# ---------------------------------------------------------------------------------------------
# Hashes


@functools.lru_cache(maxsize=None)
def hash_password(password: str) -> str:
    """An Argon2id PHC string from `portcullis hash-password --password-stdin` (cached)."""
    proc = subprocess.run([PORTCULLIS_BIN, "hash-password", "--password-stdin"], input=(password + "\n").encode(),
                          capture_output=True, timeout=30, env=base_env())
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    phc = proc.stdout.decode().strip()
    assert phc.startswith("$argon2id$v=19$"), phc
    return phc


def sha256_key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Configuration


def johndoe(**extra) -> dict:
    u = {"username": "johndoe", "password_hash": JOHNDOE_HASH, "scopes": ["me", "items"], "full_name": "John Doe"}
    u.update(extra)
    return u


def alice(**extra) -> dict:
    u = {"username": "alice", "password_hash": ALICE_HASH, "scopes": ["me"], "disabled": True}
    u.update(extra)
    return u


def base_config(upstream_url: str, *, users=None, api_keys=None, token_endpoint: dict | None = None,
                signing_key: dict | None = None, verify_keys: dict | None = None, extra_routes=(),
                server: dict | None = None) -> dict:
    """The gateway configuration of these tests as a dict (an in-memory refresh-token store and a
    login throttle high enough not to interfere, unless overridden); `token_endpoint` entries
    override the defaults; `signing_key`/`verify_keys` replace the HS256 key of the issuer."""
    signing_key = signing_key or {"alg": "HS256", "kid": "k1", "secret_env": "PORTCULLIS_JWT_SECRET"}
    issuer = {"issuer": GATEWAY_ISSUER, "audiences": ["api"]}
    issuer.update(verify_keys or {"algorithms": ["HS256"],
                                  "keys": [{"kid": "k1", "secret_env": "PORTCULLIS_JWT_SECRET"}]})
    te = {
        "path": "/token",
        "issuer": GATEWAY_ISSUER,
        "audience": "api",
        "signing_key": signing_key,
        "access_token_ttl": "30m",
        "refresh_token_ttl": "14d",
        "scopes": {"me": "Read information about the current user.", "items": "Read items."},
        "default_scopes": [],
        "require_grant_type": False,
        "clients": [],
        "require_client_auth": False,
        "store": "memory:",
        "login_throttle": {"max_failures": 1000, "window": "5m"},
        "max_concurrent_hashes": 2,
    }
    te.update(token_endpoint or {})
    cfg = {
        "version": 1,
        "server": {"admin_listen": "", "realm": REALM, **(server or {})},
        "jwt": {"issuers": [issuer]},
        "users": users if users is not None else [johndoe(), alice()],
        "token_endpoint": te,
        "upstreams": {"u": {"url": upstream_url}},
        "routes": [
            *extra_routes,
            {"name": "items", "match": {"path": "/users/me/items/**"}, "auth": "bearer", "scopes": ["me", "items"],
             "upstream": "u"},
            {"name": "me", "match": {"path": "/users/me"}, "auth": "bearer", "scopes": ["me"], "upstream": "u"},
            {"name": "basic", "match": {"path": "/basic/**"}, "auth": "basic", "upstream": "u"},
            {"name": "keys", "match": {"path": "/keys/**"}, "auth": "api_key", "upstream": "u"},
            {"name": "either", "match": {"path": "/either/**"}, "auth": ["bearer", "basic"], "upstream": "u"},
        ],
    }
    if api_keys is not None:
        cfg["api_keys"] = api_keys
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    """JSON is YAML: the gateway reads it as its YAML configuration."""
    return write(path, json.dumps(cfg, indent=1, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------
# The gateway


class Portcullis:
    """`portcullis serve --listen 127.0.0.1:0`, with stdout (access log) and stderr collected."""

    def __init__(self, config_path: Path, env: dict | None = None):
        self.config_path = Path(config_path)
        self.env = env if env is not None else base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET)
        self.err_lines: list[str] = []
        self.out_lines: list[str] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.port: int | None = None
        self.proc = subprocess.Popen(
            [PORTCULLIS_BIN, "serve", "--config", str(self.config_path), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, text=True, encoding="utf-8", errors="replace")
        self.readers = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._read_out, daemon=True)]
        for t in self.readers:
            t.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.readers[0].join(1)
                self.stop()
                raise RuntimeError(f"portcullis did not start (rc={self.proc.returncode}):\n" + self.stderr()[-4000:])
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = plain_session()

    def _read_err(self):
        for line in self.proc.stderr:
            with self.lock:
                self.err_lines.append(line)
            if not self.ready.is_set() and "portcullis listening" in line:
                m = re.search(r"address=\S*?:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self.ready.set()

    def _read_out(self):
        for line in self.proc.stdout:
            with self.lock:
                self.out_lines.append(line)

    def url(self, path: str) -> str:
        return self.base + path

    def stderr(self) -> str:
        with self.lock:
            return "".join(self.err_lines)

    def stdout(self) -> str:
        with self.lock:
            return "".join(self.out_lines)

    def access_log(self) -> list[dict]:
        out = []
        for line in self.stdout().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def reload(self, path_probe: str = "/reloaded"):
        """SIGHUP, then polls until `path_probe` (a route only the new file has) stops being 404."""
        assert self.get(path_probe, timeout=HTTP_TIMEOUT).status_code == 404, "probe route exists before the reload"
        self.sighup()
        wait_until(lambda: self.get(path_probe, timeout=HTTP_TIMEOUT).status_code == 200, timeout=RELOAD_TIMEOUT,
                   what=f"the SIGHUP reload (route {path_probe})")

    def stop(self):
        stop_process(self.proc)

    def restart(self) -> "Portcullis":
        """Stops this process and starts a new one on the same configuration file."""
        self.stop()
        assert self.proc.returncode == 0, f"portcullis exited with {self.proc.returncode} on SIGTERM"
        return Portcullis(self.config_path, self.env)

    # -- requests ---------------------------------------------------------------------------

    def get(self, path: str, headers: dict | None = None, **kw) -> requests.Response:
        kw.setdefault("timeout", TOKEN_TIMEOUT)
        return self.http.get(self.url(path), headers=headers or {}, allow_redirects=False, **kw)

    def token(self, data=None, files=None, headers=None, session: requests.Session | None = None,
              **kw) -> requests.Response:
        """POST to /token; `data` is form-urlencoded (dict, list of pairs, or raw bytes/str)."""
        s = session or self.http
        return s.post(self.url("/token"), data=data, files=files, headers=headers or {}, timeout=TOKEN_TIMEOUT,
                      allow_redirects=False, **kw)

    def login(self, username="johndoe", password=JOHNDOE_PASSWORD, scope: str | None = "me items", **extra):
        data = {"grant_type": "password", "username": username, "password": password}
        if scope is not None:
            data["scope"] = scope
        data.update(extra)
        return self.token(data=data)

    def refresh(self, refresh_token: str, scope: str | None = None):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope is not None:
            data["scope"] = scope
        return self.token(data=data)


def plain_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxies, no ~/.netrc replacing our Authorization header
    return s


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen loopback address (127.0.0.0/8 is all ours on Linux)."""

    def __init__(self, source_ip: str):
        self.source_ip = source_ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source_ip, 0)
        return super().init_poolmanager(*args, **kwargs)


def session_from(source_ip: str) -> requests.Session:
    s = plain_session()
    s.mount("http://", SourceAddressAdapter(source_ip))
    return s


def basic_header(username: str, password: str) -> str:
    """RFC 7617 with UTF-8 (requests' own auth= would encode str as Latin-1)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")


def form_body(pairs) -> bytes:
    return urllib.parse.urlencode(pairs).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# ---------------------------------------------------------------------------------------------
# Assertions


def json_body(resp) -> dict:
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    assert ctype == "application/json", f"Content-Type {resp.headers.get('Content-Type')!r}: {describe(resp)}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"body is not JSON: {describe(resp)}")
    assert isinstance(body, dict), describe(resp)
    return body


def assert_oauth_error(resp, status: int, error: str, description: str | None = None) -> dict:
    """RFC 6749 §5.2 error in the contract's shape (§4, §6): detail, error, error_description."""
    assert resp.status_code == status, describe(resp)
    body = json_body(resp)
    assert body.get("error") == error, describe(resp)
    for field in ("detail", "error_description"):
        assert isinstance(body.get(field), str) and body[field], f"missing {field}: {describe(resp)}"
    assert re.fullmatch(DESC, body["error_description"]), f"error_description characters: {describe(resp)}"
    if description is not None:
        assert body["error_description"] == description, describe(resp)
        assert body["detail"] == description, describe(resp)
    return body


def assert_retry_after(resp):
    value = resp.headers.get("Retry-After")
    assert value is not None and re.fullmatch(r"[1-9][0-9]*", value.strip()), (
        f"Retry-After must be a positive delay in seconds: {describe(resp)} Retry-After={value!r}")
    return int(value)


def assert_token_response(resp, scope: str, ttl: int = 1800, refresh: bool = True) -> dict:
    assert resp.status_code == 200, describe(resp)
    body = json_body(resp)
    assert resp.headers.get("Cache-Control") == "no-store", resp.headers
    assert resp.headers.get("Pragma") == "no-cache", resp.headers
    assert isinstance(body.get("access_token"), str) and body["access_token"], body
    assert body.get("token_type") == "bearer", body
    assert type(body.get("expires_in")) is int and 0 < body["expires_in"] <= ttl, body
    assert body.get("scope") == scope, body
    if refresh:
        assert isinstance(body.get("refresh_token"), str) and len(body["refresh_token"]) >= 20, body
        assert body["refresh_token"] != body["access_token"], body
    else:
        assert "refresh_token" not in body, body
    return body


def verify_hs256(token: str, secret: str = JWT_SECRET):
    """Verifies the signature with joserfc; returns the decoded token (header, claims)."""
    return jwt.decode(token, OctKey.import_key(secret.encode()), algorithms=["HS256"])


def check_access_claims(tok, sub: str, scope: str, ttl: int = 1800, kid: str = "k1", client_id: str | None = None):
    header, c = tok.header, tok.claims
    assert header.get("typ") == "at+jwt", header
    assert header.get("kid") == kid, header
    assert c.get("iss") == GATEWAY_ISSUER, c
    assert c.get("sub") == sub, c
    aud = c.get("aud")
    assert aud == "api" or (isinstance(aud, list) and "api" in aud), c
    now = time.time()
    assert isinstance(c.get("iat"), int) and abs(c["iat"] - now) < 120, c
    assert isinstance(c.get("exp"), int) and 0 < c["exp"] - c["iat"] <= ttl and c["exp"] > now, c
    assert isinstance(c.get("jti"), str) and c["jti"], c
    assert c.get("scope") == scope, c
    if client_id is None:
        assert "client_id" not in c, c
    else:
        assert c.get("client_id") == client_id, c


def echo_headers(resp) -> dict[str, list[str]]:
    """Header lists (lower-cased names) the echo upstream saw."""
    assert resp.status_code == 200, describe(resp)
    out: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def challenges(resp) -> list[str]:
    """All WWW-Authenticate field lines, as sent (several headers are not joined here)."""
    raw = getattr(resp, "raw", None)
    if raw is not None and getattr(raw, "headers", None) is not None and hasattr(raw.headers, "getlist"):
        return raw.headers.getlist("WWW-Authenticate")
    value = resp.headers.get("WWW-Authenticate")
    return [value] if value else []

