#!/usr/bin/env python3
"""Portcullis refresh-grant benchmark: throughput and latency of `POST /token` with
`grant_type=refresh_token` on the SQLite and the PostgreSQL store, with one gateway and with two
gateways (replicas) on the same store.

Each client logs in once (a password grant: Argon2, not measured), then redeems a chain of
refresh tokens for a fixed time, each with the token the previous answer returned. With two
replicas a client alternates between them, so every family rotated on one replica is redeemed
on the other. The PostgreSQL server is Debian's `postgresql`, started for the run in a
temporary folder on a free loopback port, with fsync on (its defaults for durability).

Every scenario runs with 8 clients, which keep the machine busy (throughput), and with 1 client,
whose latency is that of one refresh on an otherwise idle gateway and store.

Usage: PORTCULLIS_BIN=… python3 bench/refresh.py [--duration 10] [--clients 8,1] [--rounds 1]
"""
import argparse
import glob
import http.client
import json
import math
import os
import platform
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
PASSWORD_ENV = "PORTCULLIS_BENCH_DB_PASSWORD"
USERNAME, PASSWORD = "johndoe", "secret"
# Argon2id of "secret" at the contract's cost (m=64 MiB, t=3, p=4), as in bench.py.
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TARGET_MS = 2.0  # a refresh must not cost more than this much p50 over SQLite on loopback


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{read_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}:\n{read_tail(log)}")


def read_tail(path, size=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-size:]
    except OSError:
        return ""


def cpu_ticks(pids):
    """utime+stime of these processes and all their threads, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def machine_busy_ticks():
    """Busy time of the whole machine (user, nice, system, irq, softirq, steal), in ticks."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def children(pid):
    """Direct children of `pid` (PostgreSQL's backends and helpers under the postmaster)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(path.split("/")[2]))
        except (OSError, ValueError):
            pass
    return out


def filesystem(path):
    """The type of the filesystem that holds `path`, from /proc/mounts (longest mount point)."""
    best, kind = "", "unknown filesystem"
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            mount = fields[1]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def fdatasync_ms(folder, rounds=30):
    """The median time of an 8 KiB write followed by fdatasync in `folder`: what one durable
    commit costs at least on this disk."""
    path = os.path.join(folder, "fsync-probe")
    block = os.urandom(8192)
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(rounds):
            t0 = time.perf_counter()
            os.pwrite(fd, block, (i % 4) * 8192)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2] * 1000


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bin():
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[-3]))
    return os.path.dirname(found[-1]) if found else None


class Postgres:
    """One PostgreSQL cluster in `folder`, on a free loopback port, with fsync on.

    PostgreSQL refuses to run as root: under root the server runs as the `postgres` user. It is
    stopped by its PID (SIGINT: fast shutdown)."""

    def __init__(self, folder, bindir):
        self.bin = bindir
        self.folder = folder
        self.data = os.path.join(folder, "data")
        self.log = os.path.join(folder, "postgres.log")
        self.port = free_port()
        self.role = "portcullis"
        self.password = "pg-" + secrets.token_hex(12)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc = None
        self.databases = 0
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._as_owner(["initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                        "--auth-local=trust", "--auth-host=scram-sha-256"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            # The defaults, written out: every commit is flushed to disk before it is acknowledged.
            conf.write("\n# portcullis refresh benchmark\nfsync = on\nsynchronous_commit = on\n"
                       "full_page_writes = on\nmax_connections = 60\n")
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.folder,
             "-c", "listen_addresses=127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, user=self.user, group=self.user, cwd=self.folder)
        log.close()
        deadline = time.time() + 60
        while not self._accepts():
            if time.time() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections:\n" + read_tail(self.log))
            time.sleep(0.05)
        self.psql(f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.password}'")
        self.version = subprocess.run([os.path.join(self.bin, "postgres"), "--version"], capture_output=True,
                                      text=True).stdout.strip().replace("postgres (PostgreSQL) ", "")

    def _as_owner(self, argv):
        command = [os.path.join(self.bin, argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=self.folder)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def _accepts(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n" + read_tail(self.log))
        return subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", self.folder, "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def psql(self, sql, database="postgres"):
        proc = subprocess.run(
            [os.path.join(self.bin, "psql"), "-h", self.folder, "-p", str(self.port), "-U", "postgres", "-d", database,
             "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"psql: {proc.stderr}")
        return proc.stdout

    def new_database(self):
        """An empty database for one scenario; the gateway creates its schema there."""
        self.databases += 1
        name = f"refresh_{self.databases}"
        self.psql(f"CREATE DATABASE {name} OWNER {self.role}")
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{name}?sslmode=disable"

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the load ------------------------------------------------------------------------------------


class Client(threading.Thread):
    """One client: a login, then refreshes until `end`, alternating over `ports`. Latencies of
    refreshes started in [measure_from, end) are kept."""

    def __init__(self, index, ports, ready, clock):
        super().__init__(daemon=True)
        self.index = index
        self.ports = ports
        self.ready = ready
        self.clock = clock  # {"measure_from": t, "end": t}, filled in once every client logged in
        self.conns = {}
        self.latencies = []
        self.errors = {}
        self.failure = None
        self.logged_in = threading.Event()  # set once the login answered, whatever it said

    def conn(self, port):
        if port not in self.conns:
            self.conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        return self.conns[port]

    def post(self, port, fields):
        """One keep-alive POST to the token endpoint: (status, body)."""
        conn = self.conn(port)
        try:
            conn.request("POST", "/token", body=urllib.parse.urlencode(fields), headers=FORM)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            del self.conns[port]
            return type(error).__name__, b""

    def login(self, port):
        status, body = self.post(port, {"grant_type": "password", "username": USERNAME, "password": PASSWORD,
                                        "scope": "items"})
        if status != 200:
            raise RuntimeError(f"login answered {status}: {body[:300]!r}")
        return json.loads(body)["refresh_token"]

    def run(self):
        try:
            token = self.login(self.ports[self.index % len(self.ports)])
        except Exception as error:  # reported by the main thread
            self.failure = error
            return
        finally:
            self.logged_in.set()
        self.ready.wait()
        measure_from, end = self.clock["measure_from"], self.clock["end"]
        turn = self.index
        while True:
            started = time.perf_counter()
            if started >= end:
                break
            port = self.ports[turn % len(self.ports)]
            turn += 1
            status, body = self.post(port, {"grant_type": "refresh_token", "refresh_token": token})
            finished = time.perf_counter()
            if status == 200:
                token = json.loads(body)["refresh_token"]
                if started >= measure_from:
                    self.latencies.append(finished - started)
                continue
            if started >= measure_from:
                key = str(status)
                self.errors[key] = self.errors.get(key, 0) + 1
            if status == 400:  # the family is gone (reuse or revocation): a new login starts another
                try:
                    token = self.login(port)
                except Exception as error:
                    self.failure = error
                    return
            else:  # 503 or a broken connection: the token was not used; try it again shortly
                time.sleep(0.05)
        for conn in self.conns.values():
            conn.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="portcullis-refresh-")
        self.procs = []
        self.postgres = None
        self.pg_folder = None
        self.env = dict(os.environ, PORTCULLIS_JWT_SECRET=SECRET)
        self.results = {}  # (scenario name, clients) -> list of rows, one per round

    def cleanup(self):
        for proc in self.procs:
            self.stop(proc)
        if self.postgres is not None:
            self.postgres.stop()
        for folder in (self.tmp, self.pg_folder):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def config(self, name, store):
        """The gateway's configuration: the token endpoint on `store`, HS256 access tokens, one
        user, no access log. The route is never requested; a configuration needs one."""
        password_env = f"\n  store_password_env: {PASSWORD_ENV}" if store.startswith("postgresql:") else ""
        path = os.path.join(self.tmp, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(f"""version: 1
server: {{ admin_listen: "", access_log: "off" }}
jwt:
  issuers:
    - issuer: "https://bench.local"
      audiences: ["api"]
      algorithms: [HS256]
      keys: [ {{ kid: k1, secret_env: PORTCULLIS_JWT_SECRET }} ]
users:
  - username: {USERNAME}
    password_hash: "{PASSWORD_HASH}"
    scopes: [items]
token_endpoint:
  issuer: "https://bench.local"
  audience: api
  signing_key: {{ alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }}
  scopes: {{ items: "Read items." }}
  store: "{store}"{password_env}
upstreams:
  unused: {{ url: "http://127.0.0.1:9" }}
routes:
  - {{ name: items, match: {{ path: "/items" }}, auth: bearer, scopes: [items], upstream: unused }}
""")
        return path

    def gateway(self, config, name):
        port = free_port()
        log = os.path.join(self.tmp, f"{name}.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen([os.environ["PORTCULLIS_BIN"], "serve", "--config", config,
                                     "--listen", f"127.0.0.1:{port}"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out, env=self.env)
        self.procs.append(proc)
        wait_port(port, proc, log)
        return port, proc

    def scenario(self, store_kind, replicas, n_clients, round_no):
        name = f"{store_kind}, {replicas} replica{'s' if replicas > 1 else ''}"
        tag = f"{store_kind}-{replicas}-{n_clients}-{round_no}"
        if store_kind == "sqlite":
            store = "sqlite:" + os.path.join(self.tmp, "sqlite", f"{tag}.sqlite")
            db_pids = lambda: []  # noqa: E731 - the store runs inside the gateways
        else:
            store = self.postgres.new_database()
            db_pids = self.postgres.pids
        config = self.config(tag, store)
        self.env[PASSWORD_ENV] = self.postgres.password if self.postgres else ""
        gateways = [self.gateway(config, f"{tag}-gw{i}") for i in range(replicas)]
        ports = [port for port, _ in gateways]
        gw_pids = [proc.pid for _, proc in gateways]

        ready = threading.Event()
        clock = {}
        clients = [Client(i, ports, ready, clock) for i in range(n_clients)]
        for client in clients:
            client.start()
        # Logins (Argon2) are done before the clock starts.
        for client in clients:
            if not client.logged_in.wait(timeout=120):
                raise RuntimeError(f"{name}: a login took more than 120 s")
        failures = [c.failure for c in clients if c.failure]
        if failures:
            ready.set()
            raise RuntimeError(f"{name}: {failures[0]}\n" + read_tail(os.path.join(self.tmp, f"{tag}-gw0.log")))
        now = time.perf_counter()
        clock["measure_from"] = now + self.args.warmup
        clock["end"] = clock["measure_from"] + self.args.duration
        ready.set()
        time.sleep(max(0.0, clock["measure_from"] - time.perf_counter()))
        own = [os.getpid()]
        before = (cpu_ticks(gw_pids), cpu_ticks(db_pids()), cpu_ticks(own), machine_busy_ticks(), time.perf_counter())
        time.sleep(max(0.0, clock["end"] - time.perf_counter()))
        after = (cpu_ticks(gw_pids), cpu_ticks(db_pids()), cpu_ticks(own), machine_busy_ticks(), time.perf_counter())
        for client in clients:
            client.join(timeout=60)
        for _, proc in gateways:
            self.stop(proc)
        fsync = fdatasync_ms(self.tmp)
        failures = [c.failure for c in clients if c.failure]
        if failures:
            raise RuntimeError(f"{name}: {failures[0]}\n" + read_tail(os.path.join(self.tmp, f"{tag}-gw0.log")))

        latencies = sorted(x * 1000 for c in clients for x in c.latencies)
        errors = {}
        for c in clients:
            for key, count in c.errors.items():
                errors[key] = errors.get(key, 0) + count
        count = len(latencies)
        elapsed = after[4] - before[4]
        tick_us = 1_000_000 / CLK_TCK
        gw_cpu, db_cpu, own_cpu = (after[i] - before[i] for i in range(3))
        other = (after[3] - before[3]) - gw_cpu - db_cpu - own_cpu
        row = {
            "name": name, "clients": n_clients, "round": round_no, "count": count, "rps": count / self.args.duration,
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "gw_us": gw_cpu * tick_us / max(1, count), "db_us": db_cpu * tick_us / max(1, count),
            "client_us": own_cpu * tick_us / max(1, count),
            "other": 100.0 * other / CLK_TCK / elapsed, "fsync": fsync, "errors": errors,
        }
        self.results.setdefault((name, n_clients), []).append(row)
        print(f"  {name}, {n_clients} client{'s' if n_clients > 1 else ''} (round {round_no}): "
              f"{row['rps']:.0f} refreshes/s, p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms, "
              f"gateway CPU {row['gw_us']:.0f} µs/refresh"
              + (f", errors {errors}" if errors else ""), file=sys.stderr)

    def run(self):
        stores = [s.strip() for s in self.args.stores.split(",") if s.strip()]
        if "postgresql" in stores:
            bindir = postgres_bin()
            if bindir is None:
                print("WARNING: PostgreSQL is not installed (Debian package postgresql; make bench-deps installs it):"
                      " only SQLite is measured", file=sys.stderr)
                stores.remove("postgresql")
            else:
                # A folder of its own: the server's user must be able to reach it.
                self.pg_folder = tempfile.mkdtemp(prefix="portcullis-refresh-pg-")
                self.postgres = Postgres(self.pg_folder, bindir)
        os.makedirs(os.path.join(self.tmp, "sqlite"))
        print(f"refresh grants: {self.client_counts()} clients, {self.args.warmup:g} s warm-up + "
              f"{self.args.duration:g} s per scenario, {self.args.rounds} round(s)", file=sys.stderr)
        for round_no in range(1, self.args.rounds + 1):
            for n_clients in self.args.clients:
                for store_kind in stores:
                    for replicas in (1, 2):
                        self.scenario(store_kind, replicas, n_clients, round_no)
        self.report()

    def client_counts(self):
        return " and ".join(str(n) for n in self.args.clients)

    def header(self):
        binary = os.path.realpath(os.environ["PORTCULLIS_BIN"])
        parts = binary.split(os.sep)
        build = "release build" if "release" in parts else (
            "DEBUG BUILD (not the release binary: compare with care)" if "debug" in parts else f"binary {binary}")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        lines = [f"refresh grants ({build}{', commit ' + commit if commit else ''}): {self.client_counts()} clients "
                 f"(Python threads, keep-alive), each a chain of refreshes; {self.args.warmup:g} s warm-up, then "
                 f"{self.args.duration:g} s measured per scenario; {self.args.rounds} round(s)"]
        lines.append(f"stores: SQLite WAL, synchronous = FULL; "
                     + (f"PostgreSQL {self.postgres.version} on 127.0.0.1 without TLS, fsync on, synchronous_commit on"
                        if self.postgres else "PostgreSQL not measured")
                     + f"; both in {tempfile.gettempdir()} ({filesystem(self.tmp)})")
        lines.append(f"machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; no CPU "
                     f"pinning; two replicas split each client's refreshes between them")
        return lines

    def report(self):
        rows = []
        for (name, _), runs in self.results.items():
            ordered = sorted(runs, key=lambda r: r["p50"])
            row = dict(ordered[(len(ordered) - 1) // 2])  # the median round (the lower middle one)
            notes = []
            if len(runs) > 1:
                notes.append(f"round {row['round']} of {len(runs)}, p50 {ordered[0]['p50']:.2f}-{ordered[-1]['p50']:.2f}")
            if row["errors"]:
                notes.append("errors " + ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) + "!")
            if row["other"] >= 10:
                notes.append("busy machine!")
            row["note"] = "; ".join(notes)
            rows.append(row)
        bases = {r["clients"]: r for r in rows if r["name"] == "sqlite, 1 replica"}
        lines = self.header() + [""]
        lines.append(f"{'scenario':<24} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'Δp50 ms':>8} {'gw CPU µs':>10} "
                     f"{'db CPU µs':>10} {'client µs':>10} {'other CPU':>10} {'fsync ms':>9}  note")
        for row in rows:
            base = bases.get(row["clients"])
            delta = f"{row['p50'] - base['p50']:+.2f}" if base and row is not base else "-"
            db = f"{row['db_us']:.0f}" if row["name"].startswith("postgresql") else "-"
            lines.append(f"{row['name']:<24} {row['clients']:>7} {row['rps']:>7.0f} {row['p50']:>7.2f} {row['p99']:>7.2f} {delta:>8} "
                         f"{row['gw_us']:>10.0f} {db:>10} {row['client_us']:>10.0f} {row['other']:>9.0f}% {row['fsync']:>9.2f}  "
                         f"{row['note']}")
        lines.append("")
        lines.append("Δp50: against sqlite, 1 replica, with as many clients; CPU columns: per refresh, the gateways' (all replicas), "
                     "PostgreSQL's (all its processes), this client's; other CPU: the rest of the machine, % of a core; "
                     "fsync: an 8 KiB write + fdatasync on the stores' disk right after the scenario, median of 30")
        verdicts = []
        for row in rows:
            base = bases.get(row["clients"])
            if base and row["name"].startswith("postgresql"):
                delta = row["p50"] - base["p50"]
                verdicts.append(f"{row['name']}, {row['clients']} client{'s' if row['clients'] > 1 else ''} "
                                f"{delta:+.2f} ms ({'met' if delta <= TARGET_MS else 'MISSED'})")
        if verdicts:
            lines.append(f"target, a refresh costs at most {TARGET_MS:g} ms of p50 over SQLite on loopback: "
                         + ", ".join(verdicts))
        text = "\n".join(lines)
        print(text)
        results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
        os.makedirs(results, exist_ok=True)
        with open(os.path.join(results, "latest.txt"), "a") as f:
            f.write("\n" + text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of refreshes before the measured ones")
    parser.add_argument("--clients", type=lambda v: [int(n) for n in v.split(",")], default=[8, 1],
                        help="comma-separated numbers of concurrent clients, each a refresh chain; every scenario "
                             "runs with each")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every scenario, interleaved; the table shows each one's median-p50 round")
    parser.add_argument("--stores", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = parser.parse_args()
    if not os.environ.get("PORTCULLIS_BIN"):
        sys.exit("PORTCULLIS_BIN must name the release binary (make bench sets it)")
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
