"""Connection deadlines (contract §2 server.idle_timeout and server.request_header_timeout): a
connection silent between requests closes after idle_timeout, a request head that takes longer
than request_header_timeout to arrive (slow loris) closes it, and neither cuts a running
exchange or a connection that keeps sending requests."""
import time

import pytest

from harness import RawConn, make_config, upstream

H = b"Host: gw.test\r\n"


@pytest.fixture(scope="module")
def gw(module_spawner):
    echo = module_spawner.echo()
    return module_spawner.gateway(make_config(
        {"main": upstream(echo.url)},
        """
        - { name: all, match: { path: "/**" }, auth: none, upstream: main }
        """,
        server={"idle_timeout": "1200ms", "request_header_timeout": "800ms"},
    ))


@pytest.mark.parametrize("requests_first", [1, 0], ids=["after-a-request", "never-sent-anything"])
def test_silent_connection_closes_after_idle_timeout(gw, requests_first):
    with RawConn(gw.port) as conn:
        for _ in range(requests_first):
            assert conn.request(b"GET /one HTTP/1.1\r\n" + H + b"\r\n").status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=4)
        waited = time.monotonic() - started
    assert 1.0 <= waited <= 2.5, waited


def test_requests_spaced_within_the_idle_timeout_keep_the_connection(gw):
    with RawConn(gw.port) as conn:
        # 8 requests 400 ms apart: 3.2 s in all, well past both timeouts.
        for n in range(8):
            assert conn.request(b"GET /keep/%d HTTP/1.1\r\n" % n + H + b"\r\n").status == 200
            time.sleep(0.4)
        assert conn.request(b"GET /still HTTP/1.1\r\n" + H + b"\r\n").json()["path"] == "/still"


def test_slow_loris_head_is_cut_at_the_header_timeout(gw):
    with RawConn(gw.port) as conn:
        started = time.monotonic()
        conn.send(b"GET /slow HTTP/1.1\r\n")
        closed = False
        # One header byte every 100 ms: each byte is progress, none extends the deadline.
        for byte in (b"X-Trickle: " + b"a" * 40):
            try:
                conn.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        closed = closed or conn.wait_closed(timeout=3)
        waited = time.monotonic() - started
    assert closed
    assert 0.6 <= waited <= 2.0, waited


def test_a_head_completed_in_time_is_served(gw):
    with RawConn(gw.port) as conn:
        conn.send(b"GET /parts HTTP/1.1\r\n")
        time.sleep(0.4)
        conn.send(H + b"\r\n")
        answer = conn.read_response()
    assert answer.status == 200 and answer.json()["path"] == "/parts"


def test_a_running_exchange_outlasts_both_timeouts(gw):
    with RawConn(gw.port) as conn:
        answer = conn.request(b"GET /long?echo_delay_ms=2000 HTTP/1.1\r\n" + H + b"\r\n")
        assert answer.status == 200
        # The idle deadline starts again once the response is out.
        assert conn.request(b"GET /after HTTP/1.1\r\n" + H + b"\r\n").status == 200


def test_the_admin_listener_has_the_same_deadlines(module_spawner):
    """A partial head or a silent connection on the admin port closes like on the public one."""
    import socket

    from harness import free_port, wait_until

    echo = module_spawner.echo()
    admin_port = free_port()
    gateway = module_spawner.gateway(make_config(
        {"main": upstream(echo.url)},
        """
        - { name: all, match: { path: "/**" }, auth: none, upstream: main }
        """,
        server={"idle_timeout": "1200ms", "request_header_timeout": "800ms", "admin_listen": f"127.0.0.1:{admin_port}"},
    ))
    # The admin port is bound just after the public one, whose log line the spawner waits for.
    wait_until(lambda: any(
        "admin listening" in line for line in gateway.stderr_lines + gateway.stdout_lines
    ), message="the admin listener")
    for opening in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
        with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
            started = time.monotonic()
            s.sendall(opening)
            assert s.recv(100) == b"", "the admin listener answered a partial head"
            waited = time.monotonic() - started
        assert waited <= 2.5, waited
    # a served request keeps the connection until idle_timeout
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(100) == b""
        assert 0.8 <= time.monotonic() - started <= 3.0


def test_closes_by_each_deadline_are_counted(module_spawner):
    """A slow-loris head never becomes a request, so no access-log line shows it: the counter
    portcullis_connection_timeouts_total{kind} does."""
    from ops_support import admin_port_of, fetch_metrics, metric_value

    echo = module_spawner.echo()
    gw = module_spawner.gateway(make_config(
        {"main": upstream(echo.url)},
        """
        - { name: all, match: { path: "/**" }, auth: none, upstream: main }
        """,
        server={"idle_timeout": "1s", "request_header_timeout": "600ms", "admin_listen": '"127.0.0.1:0"'},
    ), name="counted.yaml")
    admin = admin_port_of(gw)

    def counted():
        _, samples = fetch_metrics(admin)
        return tuple(metric_value(samples, "portcullis_connection_timeouts_total", kind=k) for k in ("request_header", "idle"))

    assert counted() == (0, 0)
    with RawConn(gw.port) as conn:
        conn.send(b"GET /partial HTTP/1.1\r\n" + H)
        assert conn.wait_closed(timeout=4)
    assert counted() == (1, 0)
    with RawConn(gw.port) as conn:
        assert conn.request(b"GET /one HTTP/1.1\r\n" + H + b"\r\n").status == 200
        assert conn.wait_closed(timeout=4)
    assert counted() == (1, 1)
