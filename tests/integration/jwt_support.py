"""Shared helpers for the Bearer-JWT integration tests (test_jwt*.py).

Everything here is black-box: it starts the real `portcullis` and `echo-upstream` binaries on
loopback ephemeral ports, mints tokens with joserfc (the independent JOSE implementation) from
keys generated with `cryptography`, and talks HTTP with `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

ROOT = Path(__file__).resolve().parents[2]
PORTCULLIS_BIN = os.environ.get("PORTCULLIS_BIN") or str(ROOT / ".build/debug/portcullis")
ECHO_UPSTREAM_BIN = os.environ.get("ECHO_UPSTREAM_BIN") or str(ROOT / ".build/debug/echo-upstream")
if os.path.isdir(PORTCULLIS_BIN):  # the Makefile passes the bin directory in some setups
    PORTCULLIS_BIN = os.path.join(PORTCULLIS_BIN, "portcullis")
if os.path.isdir(ECHO_UPSTREAM_BIN):
    ECHO_UPSTREAM_BIN = os.path.join(ECHO_UPSTREAM_BIN, "echo-upstream")

REALM = "api"
GATEWAY_ISSUER = "https://gateway.local"
JOHNDOE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
ALICE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$g2/AV1zwopqUntPKJavBFw$BwpRGDCyUHLvHICnwijyX8ROGoiUPwNKZ7915MeYfCE"

USERS_YAML = f"""users:
  - {{ username: johndoe, password_hash: "{JOHNDOE_HASH}", scopes: [me, items] }}
  - {{ username: alice, password_hash: "{ALICE_HASH}", scopes: [me], disabled: true }}
"""

HTTP_TIMEOUT = 5
START_TIMEOUT = 15

# RFC 6750 §3: error_description = *( %x20-21 / %x23-5B / %x5D-7E )
DESC = r'[\x20\x21\x23-\x5B\x5D-\x7E]+'

# Silence joserfc's deprecation notice for "EdDSA" (RFC 9864); the contract names EdDSA.
JOSERFC_WARNINGS = pytest.mark.filterwarnings("ignore:.*RFC 9864")


# ---------------------------------------------------------------------------------------------
# HTTP


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxies, no ~/.netrc replacing our Authorization header
    return s


_SESSION = session()


def get(url: str, headers: dict | None = None, **kw) -> requests.Response:
    return _SESSION.get(url, headers=headers or {}, timeout=HTTP_TIMEOUT, allow_redirects=False, **kw)


class RawResponse:
    """The few attributes of requests.Response that the assertions below use."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status_code = status
        self.header_list = headers
        self.headers = CaseInsensitiveDict()
        for name, value in headers:
            self.headers[name] = value if name not in self.headers else self.headers[name] + ", " + value
        self.content = body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def raw_request(port: int, method: str, path: str, headers: list[tuple[str, str]]) -> RawResponse:
    """Sends the headers exactly as given (repeats allowed), with http.client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return RawResponse(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marker() -> str:
    """A unique query value: lets a test find (or not find) its own requests at the upstream."""
    return "m=" + uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# Upstreams


class RecordingUpstream:
    """A Python HTTP/1.1 upstream that records every request and answers like echo-upstream."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path, _, query = self.path.partition("?")
                record = {
                    "method": self.command,
                    "path": path,
                    "query": query if "?" in self.path else None,
                    "target": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                }
                with upstream.lock:
                    upstream.requests.append(record)
                body = json.dumps(record).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def seen(self, needle: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if needle in r["target"]]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class EchoUpstream:
    """The project's echo-upstream binary."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [ECHO_UPSTREAM_BIN, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        box: dict = {}
        got_line = threading.Event()

        def read():
            box["line"] = self.proc.stdout.readline()
            got_line.set()
            for _ in self.proc.stdout:  # keep draining so the pipe never fills
                pass

        threading.Thread(target=read, daemon=True).start()
        got_line.wait(START_TIMEOUT)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", box.get("line", ""))
        if not m:
            self.stop()
            raise RuntimeError(f"echo-upstream did not start: {box.get('line')!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------
# The gateway


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.pop("PORTCULLIS_CONFIG", None)
    env.update(extra)
    return env


class Gateway:
    """`portcullis serve` on an ephemeral loopback port, with its stderr collected."""

    def __init__(self, config_path: Path, env: dict):
        self.config_path = Path(config_path)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.port: int | None = None
        self.proc = subprocess.Popen(
            [PORTCULLIS_BIN, "serve", "--config", str(self.config_path), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, text=True, errors="replace")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.reader.join(1)
                self.stop()
                raise RuntimeError(
                    f"portcullis did not start (rc={self.proc.returncode}):\n" + "".join(self.lines[-40:]))
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if not self.ready.is_set() and "portcullis listening" in line:
                m = re.search(r"address=\S*?:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self.ready.set()

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, token: str | None = None, scheme: str = "Bearer", headers: dict | None = None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"{scheme} {token}"
        return get(self.url(path), h)

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self):
        stop_process(self.proc)


def write(path: Path, data) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, indent=1)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def run_portcullis(args: list[str], env: dict, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([PORTCULLIS_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# Keys (generated with `cryptography`, imported into joserfc)

ALG_KIND = {
    "HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
    "RS256": "rsa", "RS384": "rsa", "RS512": "rsa",
    "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
    "ES256": "P-256", "ES384": "P-384", "ES512": "P-521",
    "EdDSA": "Ed25519",
}
ALL_ALGS = list(ALG_KIND)
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


class KeyPair:
    """An asymmetric key pair (cryptography object + PEMs + joserfc keys) or an HMAC secret."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "hmac":
            self.secret = secrets.token_hex(32)  # 64 ASCII bytes: long enough for HS512
            self.private = self.public = OctKey.import_key(self.secret.encode())
            self.private_pem = self.public_pem = None
            return
        if kind == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cls = RSAKey
        elif kind in CURVES:
            key = ec.generate_private_key(CURVES[kind]())
            cls = ECKey
        elif kind == "Ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
            cls = OKPKey
        else:
            raise ValueError(kind)
        self.crypto_key = key
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.private = cls.import_key(self.private_pem)
        self.public = cls.import_key(self.public_pem)

    def jwk(self, kid: str, alg: str | None = None) -> dict:
        d = dict(self.public.as_dict(private=False))
        d["kid"] = kid
        d["use"] = "sig"
        if alg:
            d["alg"] = alg
        return d


_KEY_CACHE: dict[str, KeyPair] = {}


def keypair(kind: str, name: str = "") -> KeyPair:
    """A fresh key per (kind, name) for this test session."""
    k = f"{kind}/{name}"
    if k not in _KEY_CACHE:
        _KEY_CACHE[k] = KeyPair(kind)
    return _KEY_CACHE[k]


# ---------------------------------------------------------------------------------------------
# Tokens


def now() -> int:
    return int(time.time())


def claims(sub="johndoe", scope="me items", iss=GATEWAY_ISSUER, aud="api", ttl=300, **extra) -> dict:
    t = now()
    c = {"iss": iss, "sub": sub, "aud": aud, "iat": t, "exp": t + ttl, "jti": uuid.uuid4().hex}
    if scope is not None:
        c["scope"] = scope
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    if aud is None:
        c.pop("aud")
    if iss is None:
        c.pop("iss")
    return c


def mint(key, alg: str, kid: str | None, payload: dict, typ: str | None = "JWT", **header_extra) -> str:
    """A token signed by joserfc."""
    header = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    if typ is not None:
        header["typ"] = typ
    header.update(header_extra)
    k = key.private if isinstance(key, KeyPair) else key
    return jwt.encode(header, payload, k, algorithms=[alg])


def b64u(data) -> str:
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hmac_token(secret: bytes, header: dict, payload: dict, alg: str = "HS256") -> str:
    """Hand-built HMAC JWS, for hostile headers (crit, alg confusion) that a library refuses to make."""
    signing_input = f"{b64u(header)}.{b64u(payload)}"
    digest = HASHES[alg[2:]]
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64u(sig)}"


def unsigned_token(header: dict, payload: dict) -> str:
    return f"{b64u(header)}.{b64u(payload)}."


def decode_part(token: str, index: int) -> dict:
    return json.loads(b64u_decode(token.split(".")[index]))


# ---------------------------------------------------------------------------------------------
# Assertions on refusals (contract §4)


def _body(resp) -> dict:
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", (
        f"refusal Content-Type: {resp.headers.get('Content-Type')!r}")
    try:
        return resp.json()
    except ValueError:
        raise AssertionError(f"refusal body is not JSON: {resp.text!r}")


def describe(resp) -> str:
    return (f"status={resp.status_code} WWW-Authenticate={resp.headers.get('WWW-Authenticate')!r} "
            f"body={resp.text[:300]!r}")


def assert_not_authenticated(resp, scope: str | None):
    expected = f'Bearer realm="{REALM}"' + (f', scope="{scope}"' if scope else "")
    assert resp.status_code == 401, describe(resp)
    assert resp.headers.get("WWW-Authenticate") == expected, describe(resp)
    assert _body(resp).get("detail") == "Not authenticated", describe(resp)


def assert_invalid_request(resp):
    assert resp.status_code == 400, describe(resp)
    challenge = resp.headers.get("WWW-Authenticate") or ""
    m = re.fullmatch(rf'Bearer realm="{REALM}", error="invalid_request", error_description="({DESC})"', challenge)
    assert m, describe(resp)
    body = _body(resp)
    assert body == {"detail": "Not authenticated", "error": "invalid_request", "error_description": m.group(1)}, \
        describe(resp)


def assert_invalid_token(resp, description: str | None = None) -> str:
    assert resp.status_code == 401, describe(resp)
    challenge = resp.headers.get("WWW-Authenticate") or ""
    m = re.fullmatch(
        rf'Bearer realm="{REALM}", error="invalid_token", error_description="({DESC})"', challenge)
    assert m, describe(resp)
    if description is not None:
        assert m.group(1) == description, describe(resp)
    body = _body(resp)
    # contract §9: the body repeats the challenge's error and error_description
    assert body == {"detail": "Could not validate credentials", "error": "invalid_token",
                    "error_description": m.group(1)}, describe(resp)
    return m.group(1)


def assert_insufficient_scope(resp, scope: str, status: int = 403):
    assert resp.status_code == status, describe(resp)
    challenge = resp.headers.get("WWW-Authenticate") or ""
    m = re.fullmatch(
        rf'Bearer realm="{REALM}", error="insufficient_scope", scope="{re.escape(scope)}", '
        rf'error_description="({DESC})"', challenge)
    assert m, describe(resp)
    body = _body(resp)
    assert body == {"detail": "Not enough permissions", "error": "insufficient_scope",
                    "error_description": m.group(1)}, describe(resp)


def upstream_headers(resp) -> dict[str, list[str]]:
    """Header lists (lower-cased names) the upstream saw, from an echo answer."""
    assert resp.status_code == 200, describe(resp)
    out: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
