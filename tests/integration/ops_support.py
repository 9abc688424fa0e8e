"""Helpers for the dry-run (test_dryrun_*.py) and operations (test_ops_*.py) integration tests.

Black-box only: the real `portcullis` binary (check / test / serve) against the real
`echo-upstream`, on loopback ephemeral ports. Processes are started through the Spawner
fixtures of conftest.py, which stop every one of them at teardown.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import secrets
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from harness import RawConn, RawResponse, free_port, run_portcullis, wait_until
from jwt_support import hmac_token

# ---------------------------------------------------------------------------------------------
# Secrets and identities (generated per test session; never written into a config file)

JWT_SECRET = secrets.token_hex(24)  # 48 ASCII bytes, the raw HMAC key (contract §9)
ENV = {"PORTCULLIS_JWT_SECRET": JWT_SECRET}
ISSUER = "https://gateway.test"
AUDIENCE = "api"
REALM = "gw"

# FastAPI's tutorial user: password "secret".
JOHNDOE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
# alice (disabled), password "secretalice".
ALICE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$g2/AV1zwopqUntPKJavBFw$BwpRGDCyUHLvHICnwijyX8ROGoiUPwNKZ7915MeYfCE"

API_KEY = "ak_" + secrets.token_hex(20)
API_KEY_SHA = "sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest()


def q(value: str) -> str:
    """A YAML double-quoted scalar."""
    return json.dumps(value)


# The gateway's own token endpoint, signing with the session secret (no trailing newline).
LOCAL_TOKEN_ENDPOINT = f"""token_endpoint:
  issuer: {q(ISSUER)}
  audience: {AUDIENCE}
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
  store: "memory:\""""


# ---------------------------------------------------------------------------------------------
# Tokens (HS256 with the session secret, built independently of the gateway)



def trusted_issuer_and_johndoe(leeway: str | None = None) -> str:
    """The `jwt` section these tests trust (one HS256 issuer) and `users:` opening with johndoe;
    a caller's config may go on with more users."""
    lines = "jwt:\n" + (f"  leeway: {leeway}\n" if leeway else "")
    return lines + f"""  issuers:
    - issuer: {q(ISSUER)}
      audiences: [{q(AUDIENCE)}]
      algorithms: [HS256]
      keys:
        - {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
users:
  - username: johndoe
    password_hash: {q(JOHNDOE_HASH)}
    scopes: [me, items]"""


def token(sub="johndoe", scope: str | None = "me items", *, iss=ISSUER, aud=AUDIENCE, ttl=600,
          kid="k1", alg="HS256", secret: str | None = None, header_extra: dict | None = None,
          **claims) -> str:
    t = int(time.time())
    payload = {"iss": iss, "sub": sub, "aud": aud, "iat": t, "exp": t + ttl, "jti": uuid.uuid4().hex}
    if scope is not None:
        payload["scope"] = scope
    for k, v in claims.items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    for k in ("iss", "aud", "sub"):
        if payload.get(k) is None:
            payload.pop(k, None)
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    header.update(header_extra or {})
    return hmac_token((secret or JWT_SECRET).encode(), header, payload, alg=alg)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# Running the CLI


def run(args: list[str], env: dict | None = None, timeout=20):
    merged = dict(ENV)
    merged.update(env or {})
    return run_portcullis(args, timeout=timeout, env=merged)


def check_json(config: Path, method: str, target: str, args: list[str] | None = None):
    """`portcullis check --json`: returns (exit code, parsed JSON or None, CompletedProcess)."""
    proc = run(["check", "--config", str(config), "--json", *(args or []), method, target])
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    return proc.returncode, data, proc


def mint_cli(config: Path, sub: str, scope: str) -> str:
    """A token from `portcullis token` (the configured signing key)."""
    proc = run(["token", "--config", str(config), "--sub", sub, "--scope", scope])
    assert proc.returncode == 0, f"portcullis token failed: rc={proc.returncode} {proc.stderr}"
    tok = proc.stdout.strip()
    assert tok.count(".") == 2, f"portcullis token printed {proc.stdout!r}"
    return tok


# ---------------------------------------------------------------------------------------------
# Raw HTTP (no client-side normalization of the target, repeated headers allowed)


def send(port: int, method: str, target: str, headers: list[tuple[str, str]] | None = None,
         host: str = "gw.test", body: bytes = b"", timeout=10.0) -> RawResponse:
    headers = list(headers or [])
    lines = [f"{method} {target} HTTP/1.1"]
    if not any(k.lower() == "host" for k, _ in headers):
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with RawConn(port, timeout=timeout) as conn:
        return conn.request(data, method)


def challenge_of(resp: RawResponse) -> str | None:
    values = resp.header_all("WWW-Authenticate")
    return ", ".join(values) if values else None


def http_get(port: int, path: str, timeout=5.0) -> tuple[int, str]:
    resp = send(port, "GET", path, host=f"127.0.0.1:{port}", timeout=timeout)
    return resp.status, resp.body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Gateway helpers (the harness.Gateway objects that conftest's Spawner returns)


def admin_port_of(gw, timeout=5.0) -> int:
    """The admin listener's port, from the gateway's `admin listening` log line."""
    def find():
        for line in list(gw.stderr_lines):
            if "admin listening" in line:
                m = re.search(r"address=127\.0\.0\.1:(\d+)", line)
                if m:
                    return int(m.group(1))
        return None
    return wait_until(find, timeout=timeout, message="the admin listening line")


def access_log(gw) -> list[dict]:
    """Every stdout line of the gateway, parsed as JSON (fails on a line that is not)."""
    out = []
    for line in list(gw.stdout_lines):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"access log line is not JSON: {line!r}")
        assert isinstance(obj, dict), f"access log line is not a JSON object: {line!r}"
        out.append(obj)
    return out


def wait_log_lines(gw, n: int, timeout=5.0) -> list[dict]:
    wait_until(lambda: len(gw.stdout_lines) >= n, timeout=timeout,
               message=f"{n} access-log lines (have {len(gw.stdout_lines)})")
    return access_log(gw)


def sighup(gw):
    gw.proc.send_signal(signal.SIGHUP)


# ---------------------------------------------------------------------------------------------
# Prometheus text


_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'                                 # name
    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'            # first label
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?)?\})?'    # more labels
    r' (-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|[+-]?Inf|NaN))'
    r'( -?[0-9]+)?$'                                               # optional timestamp
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    """Parses Prometheus text exposition; raises on any line that is not a comment or a sample."""
    samples = []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "" or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"/metrics line {n} is not `name{{labels}} value`: {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_value(samples, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for n, lab, v in samples:
        if n == name and all(lab.get(k) == str(val) for k, val in labels.items()):
            total += v
    return total


def fetch_metrics(admin_port: int) -> tuple[str, list]:
    status, text = http_get(admin_port, "/metrics")
    assert status == 200, f"/metrics answered {status}: {text[:300]}"
    return text, parse_metrics(text)


# ---------------------------------------------------------------------------------------------
# A JWKS server (Python http.server) that can be started on a chosen port


class JWKSServer:
    def __init__(self, port: int, jwks: dict):
        body = json.dumps(jwks).encode()
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


__all__ = [
    "ALICE_HASH", "API_KEY", "API_KEY_SHA", "AUDIENCE", "ENV", "ISSUER", "JOHNDOE_HASH", "JWKSServer",
    "JWT_SECRET", "REALM", "access_log", "admin_port_of", "basic", "challenge_of", "check_json",
    "fetch_metrics", "free_port", "http_get", "metric_value", "mint_cli", "parse_metrics",
    "port_is_closed", "q", "run", "send", "sighup", "token", "wait_log_lines", "wait_until",
]
