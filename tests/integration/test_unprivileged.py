"""The gateway serves as an ordinary user (the Docker image runs as `USER portcullis`): nothing
it does per connection may need a privilege. Under root, the test drops to `nobody` with
setpriv; as any other user, the gateway is unprivileged already."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from harness import PORTCULLIS_BIN, free_port, wait_until


def test_an_unprivileged_gateway_answers_requests(spawner):
    up = spawner.echo()
    folder = tempfile.mkdtemp(prefix="portcullis-unprivileged-")
    try:
        os.chmod(folder, 0o755)
        binary = os.path.join(folder, "portcullis")
        shutil.copy(PORTCULLIS_BIN, binary)
        os.chmod(binary, 0o755)
        port, admin = free_port(), free_port()
        config = os.path.join(folder, "routes.yaml")
        with open(config, "w") as f:
            f.write(f"""version: 1
server: {{ listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin}", access_log: "off" }}
upstreams: {{ u: {{ url: "{up.url}" }} }}
routes:
  - {{ name: open, match: {{ path: "/open/**" }}, auth: none, upstream: u }}
""")
        os.chmod(config, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        command = [binary, "serve", "--config", config]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            assert setpriv, "setpriv (util-linux) is needed to drop root for this test"
            command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *command]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def answers():
                try:
                    return requests.get(f"http://127.0.0.1:{port}/open/x", timeout=2).status_code
                except requests.RequestException:
                    return None
            assert wait_until(lambda: answers() == 200 or proc.poll() is not None, timeout=10,
                              message="an answer from the unprivileged gateway")
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            assert answers() == 200
            assert requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=2).status_code == 200
            assert requests.get(f"http://127.0.0.1:{port}/nowhere", timeout=2).status_code == 404
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_store_folder_the_user_cannot_write_is_one_clear_line():
    """A store next to a configuration that the gateway's user may read but not write: the
    gateway says so in one line, naming the user, and exits 2."""
    with tempfile.TemporaryDirectory(prefix="portcullis-store-") as top:
        store_folder_refused(Path(top))


def store_folder_refused(top: Path):
    os.chmod(top, 0o755)
    folder = top / "etc"
    folder.mkdir()
    config = folder / "routes.yaml"
    config.write_text("""version: 1
server: { admin_listen: "", access_log: "off" }
users: []
token_endpoint:
  issuer: "https://gateway.local"
  signing_key: { alg: HS256, kid: k1, secret_env: PORTCULLIS_JWT_SECRET }
  store: "sqlite:data/portcullis.sqlite"
jwt:
  issuers: [ { issuer: "https://gateway.local", algorithms: [HS256], keys: [ { kid: k1, secret_env: PORTCULLIS_JWT_SECRET } ] } ]
upstreams: { u: { url: "http://127.0.0.1:9" } }
routes:
  - { name: open, match: { path: "/open/**" }, auth: none, upstream: u }
""")
    os.chmod(config, 0o644)
    command = [PORTCULLIS_BIN, "serve", "--config", str(config), "--listen", "127.0.0.1:0"]
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *command]
        uid = 65534
    else:
        os.chmod(folder, 0o555)
        uid = os.geteuid()
    env = dict(os.environ, PORTCULLIS_JWT_SECRET="s" * 32)
    result = subprocess.run(command, capture_output=True, text=True, timeout=20, env=env)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{config}:5:3: error: cannot start: token_endpoint.store sqlite:{folder}/data/portcullis.sqlite: "
        f"cannot create the folder {folder}/data: Permission denied (running as uid {uid})"], result.stderr
