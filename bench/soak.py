#!/usr/bin/env python3
"""`make soak`: the gateway under mixed load for SOAK_SECONDS (default 600), while it is
reloaded, its issuer rotates keys and its upstream restarts.

- wrk (bench/soak.lua, one connection per thread so each answer is matched to its request)
  sends Bearer requests (RS256 tokens of a jwks_url issuer), requests without or with a bad
  token, public requests, Basic requests, 64 KiB uploads and 256 KiB streamed downloads, and
  checks every answer against what the policy allows for it.
- A Python thread runs the token endpoint: password grants, then chains of refresh grants;
  every retired refresh token is presented again once and must be refused.
- The driver sends SIGHUP every 10 s, alternating a valid and an invalid configuration; rotates
  the issuer's JWKS (a new kid) every minute and mints the load's tokens with the new key; and
  restarts the upstream once, at the middle of the run.

Pass: every answer is one the policy allows (502/504 only while the upstream is down), the
gateway never exits, its descriptor count does not grow, its RSS at the end is within 15% of
its RSS after the first minute, and no refresh token was usable twice. Prints the figures and
exits 1 on a failure.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
PORTCULLIS = os.environ["PORTCULLIS_BIN"]
ECHO = os.environ["ECHO_UPSTREAM_BIN"]
ISSUER = "https://soak.idp"
JOHNDOE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KeySet:
    """The issuer's keys: a new RSA key (and kid) at every rotation; the set keeps the last two."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotations = 0
        self.rotate()

    def rotate(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self.lock:
            self.rotations += 1
            self.keys = (self.keys + [(f"k{self.rotations}", key)])[-2:]

    def document(self) -> bytes:
        with self.lock:
            keys = list(self.keys)
        out = []
        for kid, key in keys:
            numbers = key.public_key().public_numbers()
            out.append({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                        "n": b64u(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                        "e": b64u(numbers.e.to_bytes(3, "big"))})
        return json.dumps({"keys": out}).encode()

    def mint(self, sub: str, scope: str) -> str:
        with self.lock:
            kid, key = self.keys[-1]
        now = int(time.time())
        header = b64u(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
        payload = b64u(json.dumps({"iss": ISSUER, "sub": sub, "aud": "api", "iat": now, "exp": now + 3600,
                                   "scope": scope}).encode())
        signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{b64u(signature)}"


def serve_jwks(keyset: KeySet) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = keyset.document()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def config(port: int, upstream: int, jwks_port: int, store: str, valid: bool) -> str:
    text = f"""version: 1
server:
  listen: "127.0.0.1:{port}"
  admin_listen: ""
  access_log: "off"
  max_request_body: 1MiB
jwt:
  issuers:
    - issuer: "{ISSUER}"
      audiences: [api]
      algorithms: [RS256]
      jwks_url: "http://127.0.0.1:{jwks_port}/jwks.json"
      jwks_refresh: 20s
    - issuer: "https://soak.gateway"
      audiences: [api]
      algorithms: [HS256]
      keys: [{{ kid: g1, secret_env: PORTCULLIS_JWT_SECRET }}]
users:
  - {{ username: johndoe, password_hash: "{JOHNDOE_HASH}", scopes: [items] }}
token_endpoint:
  path: /token
  issuer: "https://soak.gateway"
  audience: api
  signing_key: {{ alg: HS256, kid: g1, secret_env: PORTCULLIS_JWT_SECRET }}
  store: "{store}"
  login_throttle: {{ max_failures: 1000000, window: 1m }}
upstreams:
  echo: {{ url: "http://127.0.0.1:{upstream}", timeout: 10s }}
routes:
  - {{ name: api, match: {{ path: "/api/**" }}, scopes: [items], upstream: echo }}
  - {{ name: public, match: {{ path: "/public/**" }}, auth: none, upstream: echo }}
  - {{ name: basic, match: {{ path: "/basic/**" }}, auth: basic, upstream: echo }}
"""
    # The invalid file has a typo a reload must refuse, keeping the running configuration.
    return text if valid else text.replace("scopes: [items], upstream", "scopez: [items], upstream")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Refresher(threading.Thread):
    """Password grants, then refresh chains; each retired token is presented once more."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/token"
        self.stop = stop
        self.logins = self.refreshes = self.replays_refused = 0
        self.problems: list[str] = []

    def post(self, fields: dict) -> tuple[int, dict]:
        data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in fields.items()).encode()
        request = urllib.request.Request(self.url, data=data,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError:
            return 0, {}

    def run(self):
        while not self.stop.is_set():
            status, body = self.post({"grant_type": "password", "username": "johndoe", "password": "secret"})
            if status != 200:
                if status not in (0, 503):
                    self.problems.append(f"password grant answered {status}: {body}")
                time.sleep(1)
                continue
            self.logins += 1
            token = body["refresh_token"]
            for _ in range(5):
                status, body = self.post({"grant_type": "refresh_token", "refresh_token": token})
                if status != 200:
                    self.problems.append(f"refresh answered {status}: {body}")
                    break
                self.refreshes += 1
                retired, token = token, body["refresh_token"]
                status, _ = self.post({"grant_type": "refresh_token", "refresh_token": retired})
                if status == 200:
                    self.problems.append("a retired refresh token was accepted a second time")
                else:
                    self.replays_refused += 1
                    break  # the family is revoked now: start again with a login


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="portcullis-soak-")
    env = dict(os.environ, PORTCULLIS_JWT_SECRET="soak-" + "s" * 40)
    keyset = KeySet()
    _, jwks_port = serve_jwks(keyset)
    upstream_port, port = free_port(), free_port()
    echo = subprocess.Popen([ECHO, "--listen", f"127.0.0.1:{upstream_port}"], stdout=subprocess.DEVNULL)
    wait_port(upstream_port)
    store = f"sqlite:{workdir}/store.sqlite"
    path = os.path.join(workdir, "routes.yaml")
    with open(path, "w") as f:
        f.write(config(port, upstream_port, jwks_port, store, True))
    log = open(os.path.join(workdir, "gateway.log"), "w")
    gateway = subprocess.Popen([PORTCULLIS, "serve", "--config", path], env=env, stdout=log, stderr=log)
    wait_port(port)
    tokens = os.path.join(workdir, "tokens.txt")

    def write_tokens():
        with open(tokens + ".tmp", "w") as f:
            f.write("\n".join(keyset.mint(f"user{i}", "items") for i in range(20)) + "\n")
        os.replace(tokens + ".tmp", tokens)

    write_tokens()
    report = os.path.join(workdir, "wrk.txt")
    wrk = subprocess.Popen(
        ["wrk", "-t8", "-c8", f"-d{SECONDS}s", "--timeout", "15s", "-s", os.path.join(os.path.dirname(__file__), "soak.lua"),
         f"http://127.0.0.1:{port}"],
        env=dict(env, SOAK_TOKENS=tokens, SOAK_REPORT=report), stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    refresher = Refresher(port, stop)
    refresher.start()

    start = time.time()
    fds: list[int] = []
    rss_first_minute = None
    restart_at = start + SECONDS / 2
    restarted = False
    down = (0.0, 0.0)
    reloads = 0
    next_reload, next_rotation = start + 10, start + 60
    failures: list[str] = []
    while time.time() - start < SECONDS:
        time.sleep(1)
        now = time.time()
        if gateway.poll() is not None:
            failures.append(f"the gateway exited with {gateway.returncode}")
            break
        fds.append(fd_count(gateway.pid))
        if rss_first_minute is None and now - start >= 60:
            rss_first_minute = rss_kib(gateway.pid)
        if now >= next_reload:
            reloads += 1
            with open(path, "w") as f:
                f.write(config(port, upstream_port, jwks_port, store, reloads % 2 == 0))
            gateway.send_signal(signal.SIGHUP)
            next_reload += 10
        if now >= next_rotation:
            keyset.rotate()
            time.sleep(0.2)
            write_tokens()
            next_rotation += 60
        if not restarted and now >= restart_at:
            restarted = True
            down_start = time.time()
            echo.terminate()
            echo.wait(10)
            time.sleep(2)
            echo = subprocess.Popen([ECHO, "--listen", f"127.0.0.1:{upstream_port}"], stdout=subprocess.DEVNULL)
            wait_port(upstream_port)
            down = (down_start, time.time())
    out, _ = wrk.communicate(timeout=SECONDS + 60)
    stop.set()
    refresher.join(60)
    rss_end = rss_kib(gateway.pid) if gateway.poll() is None else 0
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(30)
    echo.terminate()

    kinds, statuses = {}, {}
    with open(report) as f:
        for line in f:
            parts = line.split()
            if parts[0] == "kind":
                kinds[parts[1]] = (int(parts[2]), int(parts[3]))
            elif parts[0] == "status":
                statuses[int(parts[1])] = int(parts[2])
    total = sum(n for n, _ in kinds.values())
    wrong = sum(bad for _, bad in kinds.values())
    gateway_errors = statuses.get(502, 0) + statuses.get(504, 0)
    unexpected = wrong - gateway_errors
    print(f"soak: {SECONDS} s, {total} requests through wrk, {reloads} reloads (half invalid), "
          f"{keyset.rotations - 1} key rotations, upstream down {down[1] - down[0]:.1f} s")
    for name, (n, bad) in sorted(kinds.items()):
        print(f"  {name:<8} {n:>9} answers, {bad} not allowed by the policy")
    print(f"  statuses: {dict(sorted(statuses.items()))}")
    print(f"  token endpoint: {refresher.logins} logins, {refresher.refreshes} refreshes, "
          f"{refresher.replays_refused} replays of retired tokens refused")
    print(f"  descriptors: first {fds[0] if fds else '-'}, max {max(fds) if fds else '-'}, last {fds[-1] if fds else '-'}")
    print(f"  RSS: after the first minute {rss_first_minute} KiB, at the end {rss_end} KiB")
    if unexpected > 0:
        failures.append(f"{unexpected} answers the policy does not allow (besides {gateway_errors} 502/504)")
    if gateway_errors > 0 and not restarted:
        failures.append(f"{gateway_errors} 502/504 without an upstream restart")
    if fds and max(fds[len(fds) // 2:]) > fds[len(fds) // 4] + 16:
        failures.append(f"descriptors grew from {fds[len(fds) // 4]} to {max(fds[len(fds) // 2:])}")
    if rss_first_minute and rss_end > rss_first_minute * 1.15:
        failures.append(f"RSS grew from {rss_first_minute} to {rss_end} KiB (more than 15%)")
    failures += refresher.problems[:10]
    if refresher.replays_refused == 0:
        failures.append("no refresh chain completed")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("soak passed" if not failures else f"soak failed ({len(failures)} problems); logs in {workdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
