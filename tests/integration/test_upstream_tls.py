"""https:// upstreams (contract §2 `upstreams.*.tls`): the gateway verifies the upstream's
certificate against `ca_file`, presents a client certificate when one is configured, and answers
502 when the TLS handshake fails. The upstream is Python's ssl module on loopback; the
certificates are made here with the OpenSSL CLI."""
import http.server
import json
import ssl
import subprocess
import threading

import pytest
import requests

from harness import Gateway, make_config, upstream


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA that signs a server certificate for 127.0.0.1 and a client certificate, and
    a second, unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.crt"), "-days", "1", "-subj", f"/CN={ca}")

    def issue(name, subject, extensions):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", subject)
        (d / f"{name}.ext").write_text(extensions)
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                "-CAcreateserial", "-days", "1", "-out", str(d / f"{name}.crt"), "-extfile", str(d / f"{name}.ext"))

    issue("server", "/CN=upstream", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    issue("wrong-name", "/CN=elsewhere", "subjectAltName=DNS:elsewhere.test\nextendedKeyUsage=serverAuth\n")
    issue("client", "/CN=portcullis-client", "extendedKeyUsage=clientAuth\n")
    return d


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        body = json.dumps({"path": self.path, "client_cn": subject.get("commonName")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TLSUpstream:
    def __init__(self, pki, certificate="server", require_client_cert=False):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki / f"{certificate}.crt", pki / f"{certificate}.key")
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(pki / "ca.crt")
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def gateway_for(tmp_path, port, **tls):
    options = {}
    if tls:
        options["tls"] = "{ " + ", ".join(f"{key}: {json.dumps(str(value))}" for key, value in tls.items()) + " }"
    config = make_config(
        {"secure": upstream(f"https://127.0.0.1:{port}", **options)},
        """
        - { name: all, match: { path: "/**" }, auth: none, upstream: secure }
        """,
    )
    path = tmp_path / "routes.yaml"
    path.write_text(config)
    return Gateway(path).start()


def through_gateway(tmp_path, pki, paths, certificate="server", require_client_cert=False, **tls):
    """Starts an https upstream and a gateway in front of it, GETs `paths`, returns the answers."""
    with TLSUpstream(pki, certificate, require_client_cert) as server:
        gateway = gateway_for(tmp_path, server.port, **tls)
        try:
            return [requests.get(gateway.url(path), timeout=10) for path in paths]
        finally:
            gateway.stop()


def test_verified_upstream_certificate_is_forwarded_to(tmp_path, pki):
    answers = through_gateway(tmp_path, pki, [f"/over/tls/{n}" for n in range(3)], ca_file=pki / "ca.crt")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[2].json() == {"path": "/over/tls/2", "client_cn": None}


def test_certificate_from_an_unknown_ca_is_502(tmp_path, pki):
    [answer] = through_gateway(tmp_path, pki, ["/x"], ca_file=pki / "other-ca.crt")
    assert answer.status_code == 502
    assert answer.json() == {"detail": "Bad Gateway"}


def test_without_ca_file_the_system_store_refuses_a_private_ca(tmp_path, pki):
    [answer] = through_gateway(tmp_path, pki, ["/x"])
    assert answer.status_code == 502


def test_certificate_for_another_name_is_502(tmp_path, pki):
    [answer] = through_gateway(tmp_path, pki, ["/x"], certificate="wrong-name", ca_file=pki / "ca.crt")
    assert answer.status_code == 502


def test_client_certificate_is_presented_when_configured(tmp_path, pki):
    [answer] = through_gateway(tmp_path, pki, ["/mutual"], require_client_cert=True, ca_file=pki / "ca.crt",
                               client_cert_file=pki / "client.crt", client_key_file=pki / "client.key")
    assert answer.status_code == 200
    assert answer.json() == {"path": "/mutual", "client_cn": "portcullis-client"}


def test_upstream_demanding_a_client_certificate_without_one_is_502(tmp_path, pki):
    [answer] = through_gateway(tmp_path, pki, ["/mutual"], require_client_cert=True, ca_file=pki / "ca.crt")
    assert answer.status_code == 502


def validate(tmp_path, url, tls):
    (tmp_path / "routes.yaml").write_text(make_config(
        {"secure": upstream(url, tls=tls)},
        """
        - { name: all, match: { path: "/**" }, auth: none, upstream: secure }
        """,
    ))
    from harness import run_portcullis
    return run_portcullis(["validate", "--config", str(tmp_path / "routes.yaml")])


def test_unreadable_ca_file_is_a_config_error_with_its_position(tmp_path):
    result = validate(tmp_path, "https://127.0.0.1:9", '{ ca_file: "missing-ca.pem" }')
    assert result.returncode == 2
    lines = (tmp_path / "routes.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "missing-ca.pem" in text)
    column = lines[line - 1].index('"missing-ca.pem"') + 1
    assert f"routes.yaml:{line}:{column}: error:" in result.stderr and "cannot read upstream 'secure' tls.ca_file" in result.stderr, result.stderr


def test_tls_options_on_a_plain_http_upstream_are_refused(tmp_path, pki):
    result = validate(tmp_path, "http://127.0.0.1:9", '{ ca_file: "%s" }' % (pki / "ca.crt"))
    assert result.returncode == 2
    assert "tls applies to https:// upstreams only" in result.stderr, result.stderr
