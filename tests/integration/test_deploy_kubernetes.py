"""deploy/kubernetes: every manifest validates against the Kubernetes schema (kubernetes-validate,
offline), checkov finds no security misconfiguration in them or in docker/, the pieces agree
with each other and with the image, and the ConfigMap's configuration is one the gateway takes
and answers its probes with."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from harness import PORTCULLIS_BIN, REPO, free_port, wait_until

KUBERNETES = REPO / "deploy" / "kubernetes"
TOOLS = Path(sys.executable).parent
# The PostgreSQL store is configured for the replicas; a binary without it is checked with an
# in-memory store in its place.
STORE_PASSWORD_ENV = "PORTCULLIS_STORE_PASSWORD"


def manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> dict[str, dict]:
    """kind/name -> resource, from every manifest."""
    found = {}
    for path in manifests():
        for doc in yaml.safe_load_all(path.read_text()):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{name} comes from tests/requirements.txt"
    return str(path)


def test_every_manifest_validates_against_the_kubernetes_schema():
    result = subprocess.run([tool("kubernetes-validate"), "--strict", *map(str, manifests())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout + result.stderr and "ERROR" not in result.stdout + result.stderr, result.stdout
    assert result.stdout.count(" passed for resource ") == len(resources())


def test_checkov_finds_no_misconfiguration_in_deploy_and_docker():
    # No API key, no downloads: checkov runs its built-in checks only, and a proxy that
    # nothing listens on stops any request it would still try.
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
    env.pop("BC_API_KEY", None)
    for folder, framework in (("deploy", "kubernetes"), ("docker", "dockerfile")):
        result = subprocess.run(
            [tool("checkov"), "--directory", str(REPO / folder), "--framework", framework, "--skip-download",
             "--compact", "--quiet", "--output", "json"],
            capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        report = json.loads(result.stdout)
        summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
        assert summary["failed"] == 0 and summary["passed"] > 10 and summary["parsing_errors"] == 0, summary


def test_kustomization_lists_every_manifest_but_the_secrets():
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in manifests() if p.name != "secrets.yaml")


def test_the_pod_template_carries_the_checksum_of_the_configmap():
    deployment = resources()["Deployment/portcullis"]
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["portcullis.dev/config-sha256"]
    expected = hashlib.sha256((KUBERNETES / "configmap.yaml").read_bytes()).hexdigest()
    assert annotation == expected, "configmap.yaml changed: run `make kubernetes-checksum`"


def config_text() -> str:
    return resources()["ConfigMap/portcullis-config"]["data"]["routes.yaml"]


def container() -> dict:
    (only,) = resources()["Deployment/portcullis"]["spec"]["template"]["spec"]["containers"]
    return only


def test_the_deployment_runs_two_hardened_replicas_with_probes_on_the_admin_port():
    found = resources()
    deployment = found["Deployment/portcullis"]
    pod = deployment["spec"]["template"]["spec"]
    main = container()
    config = yaml.safe_load(config_text())
    assert deployment["spec"]["replicas"] == 2

    image_user = re.search(r"^USER (\d+):(\d+)$", (REPO / "docker" / "Dockerfile").read_text(), re.M)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_user.group(1)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    assert pod["automountServiceAccountToken"] is False

    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert config["server"]["admin_listen"] == f"0.0.0.0:{ports['admin']}"
    assert main["args"][-1] == f"0.0.0.0:{ports['http']}"
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    # the gateway drains within shutdown_grace after the preStop pause, before the kill
    grace = int(config["server"]["shutdown_grace"].rstrip("s"))
    assert pod["terminationGracePeriodSeconds"] > grace + main["lifecycle"]["preStop"]["sleep"]["seconds"]

    service = found["Service/portcullis"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"], found["PodDisruptionBudget/portcullis"]["spec"]["selector"]["matchLabels"],
                     found["NetworkPolicy/portcullis"]["spec"]["podSelector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert found["PodDisruptionBudget/portcullis"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    allowed = {p["port"] for rule in found["NetworkPolicy/portcullis"]["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(ports.values())


def test_the_mounts_and_secrets_are_the_ones_the_configuration_names():
    found = resources()
    pod = found["Deployment/portcullis"]["spec"]["template"]["spec"]
    main = container()
    config = yaml.safe_load(config_text())
    env = {e["name"]: e for e in main["env"]}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env["PORTCULLIS_CONFIG"]["value"] == mounts["config"] + "/routes.yaml"
    assert volumes["config"]["configMap"]["name"] == "portcullis-config"
    for name, volume in volumes.items():
        if "secret" in volume:
            secret = found[f"Secret/{volume['secret']['secretName']}"]
            for key in secret["stringData"]:
                assert f"{mounts[name]}/{key}" in config_text(), f"{mounts[name]}/{key} is mounted but not used"
    password = env[config["token_endpoint"]["store_password_env"]]["valueFrom"]["secretKeyRef"]
    assert password["key"] in found[f"Secret/{password['name']}"]["stringData"]
    assert config["token_endpoint"]["store"].startswith("postgresql://")
    assert all(m["mountPath"] == "/tmp" or m.get("readOnly") for m in main["volumeMounts"])


# What a deployer puts in the Secret portcullis-users: here, the example's johndoe.
USERS = """users:
  - username: johndoe
    password_hash: "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
    scopes: [me, items]
"""


def local_copy(tmp_path: Path, text: str, public: int, admin: int) -> Path:
    """The ConfigMap's configuration with the files of secrets.yaml, filled in as a deployer
    would, under `tmp_path`, and its listeners on loopback."""
    found = resources()
    filled = {"jwt-secret": "k" * 64, "users.yaml": USERS}
    for secret, folder in (("portcullis-keys", "keys"), ("portcullis-users", "users")):
        (tmp_path / folder).mkdir()
        for key in found[f"Secret/{secret}"]["stringData"]:
            (tmp_path / folder / key).write_text(filled[key])
    text = (text.replace("/etc/portcullis/", f"{tmp_path}/").replace("0.0.0.0:8080", f"127.0.0.1:{public}")
            .replace("0.0.0.0:9901", f"127.0.0.1:{admin}"))
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def without_postgresql(path: Path, stderr: str) -> bool:
    """Falls back to an in-memory store when the only objections are to the PostgreSQL store."""
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    if not errors or not all("store" in line for line in errors):
        return False
    text = path.read_text()
    text = re.sub(r'^( +)store: "postgresql://[^"]*"\n', r'\1store: "memory:"\n', text, flags=re.M)
    text = re.sub(r"^ +store_password_env: \w+\n", "", text, flags=re.M)
    path.write_text(text)
    return True


def test_the_configuration_is_valid_and_answers_the_probes(tmp_path):
    public, admin = free_port(), free_port()
    path = local_copy(tmp_path, config_text(), public, admin)
    env = dict(os.environ, **{STORE_PASSWORD_ENV: "unused"})
    result = subprocess.run([PORTCULLIS_BIN, "validate", "--config", str(path)], capture_output=True, text=True, env=env)
    if result.returncode != 0 and without_postgresql(path, result.stderr):
        result = subprocess.run([PORTCULLIS_BIN, "validate", "--config", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr

    gateway = subprocess.Popen([PORTCULLIS_BIN, "serve", "--config", str(path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return gateway.poll() is not None
        wait_until(healthy, timeout=15, message="the liveness probe's path")
        assert gateway.poll() is None, gateway.stderr.read()
        assert requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=5).status_code == 200
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)


@pytest.mark.parametrize("key", ["jwt-secret", "password"])
def test_the_committed_secrets_are_empty(key):
    values = [s["stringData"][key] for s in resources().values() if s["kind"] == "Secret" and key in s["stringData"]]
    assert values == [""], "secrets.yaml must not carry a real secret"
