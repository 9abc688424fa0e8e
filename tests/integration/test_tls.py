"""TLS termination (contract §8): a self-signed certificate made here with the OpenSSL CLI."""
import os
import re
import subprocess
import threading
import time

import pytest
import requests

BIN = os.environ.get("PORTCULLIS_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/portcullis"))
ECHO = os.environ.get("ECHO_UPSTREAM_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/echo-upstream"))


@pytest.fixture()
def tls_gateway(tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt"), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    echo = subprocess.Popen([ECHO, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    upstream = echo.stdout.readline().strip().rsplit(":", 1)[1]
    (tmp_path / "routes.yaml").write_text(f"""version: 1
server: {{ admin_listen: "", access_log: "off", tls: {{ cert_file: tls.crt, key_file: tls.key }} }}
upstreams: {{ u: {{ url: "http://127.0.0.1:{upstream}" }} }}
routes:
  - {{ name: open, match: {{ path: "/**" }}, auth: none, upstream: u }}
""")
    gateway = subprocess.Popen([BIN, "serve", "--config", str(tmp_path / "routes.yaml"), "--listen", "127.0.0.1:0"],
                               stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 15
    while port is None and time.time() < deadline:
        match = re.search(r"address=127\.0\.0\.1:(\d+)", gateway.stderr.readline())
        if match:
            port = int(match.group(1))
    threading.Thread(target=lambda: [None for _ in gateway.stderr], daemon=True).start()
    assert port, "the gateway did not start"
    yield port, tmp_path / "tls.crt"
    for process in (gateway, echo):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_serves_https_with_the_configured_certificate(tls_gateway):
    port, certificate = tls_gateway
    answer = requests.get(f"https://127.0.0.1:{port}/hello", verify=str(certificate), timeout=5)
    assert answer.status_code == 200
    forwarded = dict((name.lower(), value) for name, value in answer.json()["headers"])
    assert forwarded["x-forwarded-proto"] == "https"


def test_refuses_tls_older_than_1_2(tls_gateway):
    port, certificate = tls_gateway
    result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--tlsv1.1", "--tls-max", "1.1",
                             "--cacert", str(certificate), f"https://127.0.0.1:{port}/hello"], capture_output=True, text=True)
    assert result.stdout == "000"


def test_plain_http_to_the_tls_port_gets_no_http_answer(tls_gateway):
    port, _ = tls_gateway
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/hello", timeout=5)


def test_an_unreadable_certificate_is_a_config_error(tmp_path):
    (tmp_path / "routes.yaml").write_text("""version: 1
server: { admin_listen: "", tls: { cert_file: missing.crt, key_file: missing.key } }
upstreams: { u: { url: "http://127.0.0.1:9" } }
routes:
  - { name: open, match: { path: "/**" }, auth: none, upstream: u }
""")
    result = subprocess.run([BIN, "validate", "--config", str(tmp_path / "routes.yaml")], capture_output=True, text=True)
    assert result.returncode == 2
    assert re.search(r"routes\.yaml:2:\d+: error: cannot read server\.tls\.cert_file", result.stderr), result.stderr


def _pair(folder, name):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt"), "-days", "1",
         "-subj", f"/CN={name}"], check=True, capture_output=True)


@pytest.mark.parametrize("cert,key,problem", [
    ("a.crt", "b.key", r"routes\.yaml:2:\d+: error: server\.tls key: the key does not belong to the certificate"),
    ("notpem.crt", "a.key", r"routes\.yaml:2:\d+: error: server\.tls certificate: no PEM certificate in it"),
    ("a.crt", "random.key", r"routes\.yaml:2:\d+: error: server\.tls key: not a PEM private key"),
])
def test_a_certificate_and_key_that_do_not_make_a_pair_are_a_config_error(tmp_path, cert, key, problem):
    """Once a start-up failure without a position (exit 1), and `validate` said valid."""
    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    (tmp_path / "notpem.crt").write_text("not a certificate\n")
    (tmp_path / "random.key").write_bytes(os.urandom(300))
    (tmp_path / "routes.yaml").write_text(f"""version: 1
server: {{ admin_listen: "", tls: {{ cert_file: {cert}, key_file: {key} }} }}
upstreams: {{ u: {{ url: "http://127.0.0.1:9" }} }}
routes:
  - {{ name: open, match: {{ path: "/**" }}, auth: none, upstream: u }}
""")
    for command in (["validate"], ["serve", "--listen", "127.0.0.1:0"]):
        result = subprocess.run([BIN, *command, "--config", str(tmp_path / "routes.yaml")],
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 2, (command, result.stderr)
        assert re.search(problem, result.stderr), (command, result.stderr)
