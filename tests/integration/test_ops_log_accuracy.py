"""The access log and the request metrics tell what happened on the wire: who gave up, who
timed out, what was sent, and, in shadow mode, whose answer the client got."""

from __future__ import annotations

import socket
import time

import pytest

from harness import RawConn, make_config, upstream, wait_until
from ops_support import (
    ENV, LOCAL_TOKEN_ENDPOINT, admin_port_of, fetch_metrics, metric_value, trusted_issuer_and_johndoe,
)

ROUTES = """
- name: open
  match: { path: "/open/**" }
  auth: none
  upstream: main
- name: shadowed
  match: { path: "/shadowed/**" }
  auth: bearer
  mode: dry-run
  upstream: main
"""


@pytest.fixture(scope="module")
def gw(module_spawner):
    up = module_spawner.echo()
    base = make_config(
        {"main": upstream(up.url, timeout="1s")}, ROUTES,
        server={"max_request_body": "1KiB", "access_log": "stdout", "admin_listen": '"127.0.0.1:0"'})
    config = base.replace("routes:\n", trusted_issuer_and_johndoe() + "\n" + LOCAL_TOKEN_ENDPOINT + "\nroutes:\n", 1)
    return module_spawner.gateway(config, env=ENV)


def line_for(gw, path: str) -> dict:
    """The one access-log line of the request for `path` (fails if there are several)."""
    import json

    def found():
        lines = [json.loads(x) for x in list(gw.stdout_lines)]
        return [x for x in lines if x["path"] == path] or None
    lines = wait_until(found, message=f"the log line for {path}")
    time.sleep(0.2)
    lines = found()
    assert len(lines) == 1, lines
    return lines[0]


def requests_counted(gw, **labels) -> float:
    _, samples = fetch_metrics(admin_port_of(gw))
    return metric_value(samples, "portcullis_requests_total", **labels)


def test_an_upload_the_client_gives_up_on_is_no_policy_refusal(gw):
    """Its 400 goes out in case the client still reads (a half-close), as nginx answers; the
    decision stays the route's `allow`, and the reason says the body was cut short."""
    before = requests_counted(gw, route="open", decision="deny")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"POST /open/abandoned HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    line = line_for(gw, "/open/abandoned")
    assert (line["decision"], line["status"], line.get("reason")) == ("allow", 400, "incomplete_body"), line
    assert requests_counted(gw, route="open", decision="deny") == before
    assert requests_counted(gw, route="open", decision="allow", status="400") >= 1


def test_a_client_that_stops_sending_its_body_gets_408_and_no_upstream_error(gw):
    _, samples = fetch_metrics(admin_port_of(gw))
    timeouts = metric_value(samples, "portcullis_upstream_errors_total", kind="timeout")
    with RawConn(gw.port, timeout=10) as conn:
        conn.send(b"POST /open/stalled HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10\r\n\r\nabc")
        resp = conn.read_response("POST")
        assert resp.status == 408, resp
        assert resp.header("connection") == "close"
        assert conn.wait_closed()
    line = line_for(gw, "/open/stalled")
    assert (line["status"], line["reason"]) == (408, "client_body_timeout"), line
    _, samples = fetch_metrics(admin_port_of(gw))
    assert metric_value(samples, "portcullis_upstream_errors_total", kind="timeout") == timeouts


def test_an_upstream_that_is_slow_to_answer_is_still_504(gw):
    with RawConn(gw.port, timeout=10) as conn:
        conn.send(b"POST /open/slow?echo_delay_ms=3000 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc")
        assert conn.read_response("POST").status == 504
    assert line_for(gw, "/open/slow")["reason"] == "upstream_timeout"


def test_a_refusal_to_head_sends_and_logs_no_body(gw):
    with RawConn(gw.port) as conn:
        conn.send(b"HEAD /nowhere HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        resp = conn.read_response("HEAD")
        assert resp.status == 404 and resp.body == b""
        # the connection is still in step: the next answer parses
        conn.send(b"GET /nowhere-either HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert conn.read_response("GET").status == 404
    assert line_for(gw, "/nowhere")["bytes"] == 0
    assert line_for(gw, "/nowhere-either")["bytes"] > 0


def test_the_token_endpoint_keeps_max_request_body_for_chunked_forms(gw):
    form = b"grant_type=password&username=johndoe&password=secret&scope=" + b"me+" * 700
    assert len(form) > 1024
    chunked = b"%x\r\n" % len(form) + form + b"\r\n0\r\n\r\n"
    with RawConn(gw.port) as conn:
        conn.send(b"POST /token HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        assert conn.read_response("POST").status == 413


def test_shadow_mode_never_passes_the_gateways_own_answer_off_as_the_upstreams(gw):
    body = b"a" * 3000
    with RawConn(gw.port) as conn:
        conn.send(b"POST /shadowed/big HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        assert conn.read_response("POST").status == 413
    line = line_for(gw, "/shadowed/big")
    assert (line["decision"], line["status"], line["reason"]) == ("would_deny", 401, "missing_credentials"), line
    assert "upstream_status" not in line, line
    assert (line.get("sent_status"), line.get("sent_reason")) == (413, "body_too_large"), line
    # what the upstream did answer stays upstream_status
    with RawConn(gw.port) as conn:
        conn.send(b"GET /shadowed/fine?echo_status=202 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert conn.read_response("GET").status == 202
    line = line_for(gw, "/shadowed/fine")
    assert (line["decision"], line["upstream_status"]) == ("would_deny", 202), line
    assert "sent_status" not in line and "sent_reason" not in line, line


def test_counters_an_alert_would_watch_exist_before_their_first_event(module_spawner):
    up = module_spawner.echo()
    fresh = module_spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES.split("- name: shadowed")[0],
                                               server={"admin_listen": '"127.0.0.1:0"'}), name="fresh.yaml")
    _, samples = fetch_metrics(admin_port_of(fresh))
    present = {(name, tuple(sorted(labels.items()))) for name, labels, _ in samples}
    for kind in ("bad_gateway", "timeout", "request_body"):
        assert ("portcullis_upstream_errors_total", (("kind", kind),)) in present, kind
    assert ("portcullis_tokens_issued_total", ()) in present
    for log in ("access", "stderr"):
        assert ("portcullis_log_dropped_lines_total", (("log", log),)) in present, log
