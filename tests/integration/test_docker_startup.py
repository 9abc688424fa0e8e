"""The container's start-up, run outside Docker (no engine runs on the build machines): the
Dockerfile's ENTRYPOINT + CMD and ENV, the compose file's environment and echo-upstream command,
and the HEALTHCHECK command, against docker/routes.compose.yaml with only its addresses and its
store path moved to loopback and a temporary folder."""
import json
import os
import re
import secrets
import signal
import subprocess

import pytest
import requests
import yaml

from harness import ECHO_UPSTREAM_BIN, PORTCULLIS_BIN, REPO, free_port, wait_until

DOCKER = REPO / "docker"
IMAGE_BINARIES = {"/usr/local/bin/portcullis": PORTCULLIS_BIN, "/usr/local/bin/echo-upstream": ECHO_UPSTREAM_BIN}


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
    """The HEALTHCHECK command's exit status, run by sh as Docker runs it, against `admin_port`."""
    command = instruction("HEALTHCHECK").split(" CMD ", 1)[1].replace("127.0.0.1:9901", f"127.0.0.1:{admin_port}")
    return subprocess.run(["sh", "-c", command], capture_output=True).returncode


def test_compose_config_is_routes_yaml_with_container_addresses():
    example = (REPO / "routes.yaml").read_text().split("\n", 2)[2]
    compose = re.sub(r"\A(#.*\n)+", "", (DOCKER / "routes.compose.yaml").read_text())
    for local, container in [
        ('listen: "127.0.0.1:8080"', 'listen: "0.0.0.0:8080"'),
        ('admin_listen: "127.0.0.1:9901"', 'admin_listen: "0.0.0.0:9901"'),
        ('url: "http://127.0.0.1:9001"', 'url: "http://upstream:9001"'),
        ('store: "sqlite:data/portcullis.sqlite"', 'store: "sqlite:/var/lib/portcullis/portcullis.sqlite"'),
    ]:
        assert example.count(local) == 1, local
        example = example.replace(local, container)
    assert compose == example


@pytest.fixture()
def container_like(tmp_path):
    """Starts echo-upstream and portcullis with the commands and environment of the image and
    the compose file; yields (gateway port, admin port, data folder)."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    public, admin, upstream = free_port(), free_port(), free_port()
    data = tmp_path / "var-lib-portcullis"
    data.mkdir()

    upstream_command = [IMAGE_BINARIES.get(word, word) for word in compose["upstream"]["entrypoint"]]
    upstream_command = [re.sub(r"^0\.0\.0\.0:9001$", f"127.0.0.1:{upstream}", word) for word in upstream_command]
    echo = subprocess.Popen(upstream_command, stdout=subprocess.DEVNULL)

    environment = compose["gateway"]["environment"]
    config_in_container = environment["PORTCULLIS_CONFIG"]
    mounted = [v.split(":")[0] for v in compose["gateway"]["volumes"] if v.split(":")[1] == config_in_container]
    assert mounted == ["./routes.compose.yaml"]
    config = (DOCKER / mounted[0]).read_text()
    config = (config.replace("0.0.0.0:8080", f"127.0.0.1:{public}").replace("0.0.0.0:9901", f"127.0.0.1:{admin}")
              .replace("http://upstream:9001", f"http://127.0.0.1:{upstream}").replace("/var/lib/portcullis", str(data)))
    (tmp_path / "compose.yaml").write_text(config)

    entrypoint = json.loads(instruction("ENTRYPOINT"))
    command = json.loads(instruction("CMD"))
    argv = [IMAGE_BINARIES[entrypoint[0]], *entrypoint[1:], *command]
    argv = [re.sub(r"^0\.0\.0\.0:8080$", f"127.0.0.1:{public}", word) for word in argv]
    image_env = dict(re.findall(r"(\w+)=(\S+)", instruction("ENV")))
    assert image_env.get("PORTCULLIS_CONFIG"), "the image names its default config"
    env = dict(os.environ, PORTCULLIS_CONFIG=str(tmp_path / "compose.yaml"), PORTCULLIS_JWT_SECRET=secrets.token_hex(32))
    gateway = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)

    def answers():
        try:
            return requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return gateway.poll() is not None
    wait_until(answers, timeout=15, message="the gateway's admin listener")
    assert gateway.poll() is None, gateway.stderr.read()
    yield public, admin, data, gateway
    for process in (gateway, echo):
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_image_start_up_serves_and_passes_its_healthcheck(container_like):
    public, admin, data, gateway = container_like
    assert healthcheck(admin) == 0

    assert requests.get(f"http://127.0.0.1:{public}/status", timeout=5).status_code == 200
    token = requests.post(f"http://127.0.0.1:{public}/token", timeout=30,
                          data={"username": "johndoe", "password": "secret", "scope": "me items"})
    assert token.status_code == 200, token.text
    items = requests.get(f"http://127.0.0.1:{public}/users/me/items/", timeout=5,
                         headers={"Authorization": "Bearer " + token.json()["access_token"]})
    assert items.status_code == 200
    assert (data / "portcullis.sqlite").exists()

    gateway.send_signal(signal.SIGTERM)
    assert gateway.wait(timeout=15) == 0


def test_healthcheck_fails_when_the_gateway_is_down(container_like):
    _, admin, _, gateway = container_like
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(timeout=15)
    assert healthcheck(admin) != 0
