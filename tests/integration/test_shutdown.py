"""Area 11: SIGTERM lets in-flight requests finish, stops accepting, exits 0."""

import signal
import socket
import threading
import time

import requests

from harness import make_config, upstream, wait_until

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""


def established_to(port: int) -> bool:
    """True when some loopback TCP connection to `port` is ESTABLISHED (from /proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    remote, state = fields[2], fields[3]
                    if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            continue
    return False


def start_slow_request(gw, delay_ms: int):
    result = {}

    def run():
        try:
            r = requests.get(gw.url(f"/public/slow?echo_delay_ms={delay_ms}"), timeout=15)
            result["status"] = r.status_code
            result["body"] = r.json() if r.status_code == 200 else r.text
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            result["error"] = exc
        result["done_at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_sigterm_lets_inflight_request_finish_then_exits_0(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES, server={"shutdown_grace": "10s"}))
    t, result = start_slow_request(gw, 1500)
    # the request is in flight once the gateway holds a connection to the upstream
    wait_until(lambda: established_to(up.port), timeout=5, message="the gateway to connect upstream")
    sent_at = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    rc = gw.proc.wait(timeout=15)
    t.join(timeout=15)
    assert "error" not in result, result
    assert result["status"] == 200
    assert result["body"]["path"] == "/public/slow"
    assert result["done_at"] - sent_at > 0.5, "the response did not wait for the slow upstream"
    assert rc == 0, "\n".join(gw.stderr_lines)


def test_sigterm_stops_accepting_new_connections(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES, server={"shutdown_grace": "10s"}))
    t, result = start_slow_request(gw, 2500)
    wait_until(lambda: established_to(up.port), timeout=5, message="the gateway to connect upstream")
    gw.proc.send_signal(signal.SIGTERM)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", gw.port), timeout=0.5).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_until(refused, timeout=2.0, message="the listener to close after SIGTERM")
    assert "done_at" not in result, "the in-flight request finished before the listener closed"
    t.join(timeout=15)
    assert result.get("status") == 200, result
    assert gw.proc.wait(timeout=15) == 0


def test_shutdown_grace_bounds_the_wait(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url, timeout="30s")}, ROUTES, server={"shutdown_grace": "1s"}))
    t, result = start_slow_request(gw, 8000)
    wait_until(lambda: established_to(up.port), timeout=5, message="the gateway to connect upstream")
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    rc = gw.proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed < 4, f"exited {elapsed:.1f}s after SIGTERM with shutdown_grace 1s"
    assert rc == 0
    t.join(timeout=10)
    assert result.get("status") != 200, result


def test_idle_gateway_exits_0_on_sigterm_and_sigint(spawner, echo):
    for sig in (signal.SIGTERM, signal.SIGINT):
        gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
        with requests.Session() as s:  # an idle keep-alive connection must not hold shutdown up
            assert s.get(gw.url("/public/x"), timeout=10).status_code == 200
            t0 = time.monotonic()
            gw.proc.send_signal(sig)
            assert gw.proc.wait(timeout=10) == 0
            assert time.monotonic() - t0 < 3
