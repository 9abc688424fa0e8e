"""docker/compose.replicas.yaml, checked without a Docker engine (none runs on the build
machines): its configuration is docker/routes.yaml with only the shared store and the
trusted balancer changed, it validates, nginx accepts its configuration, and the whole
arrangement — PostgreSQL, two gateways on routes.replicas.yaml, nginx on nginx.replicas.conf —
works on loopback with only the addresses moved."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from harness import REPO, free_port, wait_until
from pg_support import PostgresServer, postgres_bin
from token_support import JWT_SECRET, PORTCULLIS_BIN, EchoUpstream, Portcullis, base_env, session_from

DOCKER = REPO / "docker"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.replicas.yaml").read_text())


def test_the_replicas_config_is_the_compose_config_with_a_shared_store():
    strip = lambda text: re.sub(r"\A(#.*\n)+", "", text)  # noqa: E731
    single = strip((DOCKER / "routes.yaml").read_text())
    replicas = strip((DOCKER / "routes.replicas.yaml").read_text())
    nginx_ip = compose()["services"]["nginx"]["networks"]["portcullis"]["ipv4_address"]
    for before, after in [
        ("  trusted_proxies: []", f'  trusted_proxies: ["{nginx_ip}/32"]'),
        ('  store: "sqlite:/var/lib/portcullis/portcullis.sqlite"',
         '  store: "postgresql://portcullis@postgres:5432/portcullis?sslmode=disable"\n'
         "  store_password_env: PORTCULLIS_DB_PASSWORD"),
    ]:
        assert single.count(before) == 1, before
        single = single.replace(before, after)
    assert replicas == single


def test_the_compose_file_runs_two_like_gateways_on_one_database():
    services = compose()["services"]
    gateways = [services["portcullis-1"], services["portcullis-2"]]
    assert gateways[0] == gateways[1]
    environment = gateways[0]["environment"]
    # Both secrets come from the operator's environment, the same for every replica.
    assert environment["PORTCULLIS_DB_PASSWORD"] == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert environment["PORTCULLIS_JWT_SECRET"].startswith("${PORTCULLIS_JWT_SECRET:?")
    mounted = {v.split(":")[1]: v.split(":")[0] for v in gateways[0]["volumes"]}
    assert mounted[environment["PORTCULLIS_CONFIG"]] == "./routes.replicas.yaml"
    config = yaml.safe_load((DOCKER / "routes.replicas.yaml").read_text())
    store = config["token_endpoint"]["store"]
    assert re.fullmatch(r"postgresql://portcullis@postgres:5432/portcullis\?sslmode=\w+", store)
    assert config["token_endpoint"]["store_password_env"] == "PORTCULLIS_DB_PASSWORD"
    nginx = services["nginx"]
    assert any(v.startswith("./nginx.replicas.conf:/etc/nginx/nginx.conf") for v in nginx["volumes"])
    assert set(nginx["depends_on"]) == {"portcullis-1", "portcullis-2"}


def test_the_replicas_config_validates():
    proc = subprocess.run(
        [PORTCULLIS_BIN, "validate", "--config", str(DOCKER / "routes.replicas.yaml")], capture_output=True, text=True,
        timeout=30, env=base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET, PORTCULLIS_DB_PASSWORD="not-used-by-validate"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def nginx_conf(folder: Path, upstreams: list[int], listen: int) -> Path:
    """nginx.replicas.conf with the replicas' names and the listen port moved to loopback
    (nginx resolves upstream names when it loads the file)."""
    text = (DOCKER / "nginx.replicas.conf").read_text()
    for number, port in enumerate(upstreams, start=1):
        assert text.count(f"portcullis-{number}:8080") == 1
        text = text.replace(f"portcullis-{number}:8080", f"127.0.0.1:{port}")
    assert text.count("listen 80;") == 1
    path = folder / "nginx.conf"
    path.write_text(text.replace("listen 80;", f"listen 127.0.0.1:{listen};"))
    return path


def nginx_argv(folder: Path, conf: Path) -> list[str]:
    return [NGINX, "-p", str(folder), "-c", str(conf), "-e", "stderr", "-g", f"pid {folder / 'nginx.pid'};"]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test-deps)")
def test_nginx_accepts_the_replicas_conf(tmp_path):
    proc = subprocess.run([*nginx_argv(tmp_path, nginx_conf(tmp_path, [free_port(), free_port()], free_port())), "-t"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


@pytest.mark.skipif(NGINX is None or postgres_bin() is None, reason="nginx and PostgreSQL are needed (make test-deps)")
def test_the_replicas_arrangement_on_loopback():
    pg = PostgresServer()
    echo = EchoUpstream()
    folder = Path(tempfile.mkdtemp(prefix="portcullis-replicas-"))
    folder.chmod(0o755)  # nginx's workers run as another user
    gateways: list[Portcullis] = []
    nginx = None
    try:
        config = (DOCKER / "routes.replicas.yaml").read_text()
        for before, after in [("http://upstream:9001", echo.url), ("@postgres:5432", f"@127.0.0.1:{pg.port}"),
                              ('trusted_proxies: ["172.28.0.10/32"]', 'trusted_proxies: ["127.0.0.1/32"]'),
                              ('admin_listen: "0.0.0.0:9901"', 'admin_listen: ""')]:
            assert config.count(before) == 1, before
            config = config.replace(before, after)
        env = base_env(PORTCULLIS_JWT_SECRET=JWT_SECRET, PORTCULLIS_DB_PASSWORD=pg.password)
        path = folder / "replicas.yaml"
        path.write_text(config)
        for _ in range(2):
            gateways.append(Portcullis(path, env=env))  # each on a port of its own
        ports = [gw.port for gw in gateways]
        listen = free_port()
        conf = nginx_conf(folder, ports, listen)
        nginx = subprocess.Popen([*nginx_argv(folder, conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{listen}"

        def up():
            try:
                return requests.get(base + "/status", timeout=2).status_code == 200
            except requests.ConnectionError:
                assert nginx.poll() is None, nginx.stderr.read()
                return False
        wait_until(up, timeout=15, interval=0.1, message="nginx")

        client = session_from("127.0.0.7")
        body = client.post(base + "/token", data={"username": "johndoe", "password": "secret", "scope": "me items"},
                           timeout=30).json()
        tokens = [body["refresh_token"]]
        for _ in range(4):  # nginx alternates: these rotations go through both replicas
            resp = client.post(base + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens[-1]}, timeout=30)
            assert resp.status_code == 200, resp.text
            tokens.append(resp.json()["refresh_token"])
        replay = client.post(base + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens[0]}, timeout=30)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
        newest = client.post(base + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens[-1]}, timeout=30)
        assert newest.status_code == 400, newest.text

        # Both replicas answered token requests, and saw the client nginx saw, not nginx.
        time.sleep(0.2)
        for gw in gateways:
            lines = [line for line in gw.access_log() if line.get("path") == "/token"]
            assert lines, "a replica got no token request"
            assert {line.get("client") for line in lines} == {"127.0.0.7"}, lines
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for gw in gateways:
            gw.stop()
        echo.stop()
        pg.destroy()
        shutil.rmtree(folder, ignore_errors=True)
