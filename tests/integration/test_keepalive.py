"""Area 4: connections to the upstream are reused (keep-alive pool); client keep-alive works."""

import os

import requests

from harness import RawConn, get_bytes, make_config, upstream, vm_rss_kib

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""


def test_sequential_requests_on_one_session_reuse_one_upstream_connection(spawner):
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES))
    seen = []
    with requests.Session() as s:
        for i in range(20):
            r = s.get(gw.url(f"/public/{i}"), timeout=10)
            assert r.status_code == 200
            assert r.json()["path"] == f"/public/{i}"
            seen.append(int(r.headers["X-Echo-Connection"]))
            assert r.json()["connection"] == seen[-1]
    distinct = set(seen)
    assert len(distinct) < 20
    assert len(distinct) <= 2, f"20 sequential requests used upstream connections {seen}"


def test_separate_client_connections_share_the_upstream_pools(spawner):
    # One pool per event loop: the client connections land on the loops in turn, and each
    # loop's pool reuses its upstream connection.
    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES))
    loops = sum(1 for name in _threads(gw.pid) if name.startswith("NIO-ELT"))
    seen = []
    for i in range(10):
        with requests.Session() as s:  # a new client connection each time
            r = s.get(gw.url(f"/public/{i}"), timeout=10, headers={"Connection": "close"})
            assert r.status_code == 200
            seen.append(int(r.headers["X-Echo-Connection"]))
    assert len(set(seen)) <= max(2, loops), f"10 requests from 10 client connections used upstream connections {seen}"


def test_many_requests_on_one_client_connection(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    with RawConn(gw.port) as conn:
        for i in range(20):
            r = conn.request(get_bytes(f"/public/ka/{i}"))
            assert r.status == 200
            assert r.json()["path"] == f"/public/ka/{i}"
        # HTTP/1.0 without keep-alive: answered, then closed by the gateway
        conn.send(b"GET /public/ten HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        r = conn.read_response()
        assert r.status == 200
        assert r.json()["path"] == "/public/ten"
        assert conn.wait_closed(3), "HTTP/1.0 request without keep-alive: connection not closed"


def test_connection_close_is_honoured(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    with RawConn(gw.port) as conn:
        r = conn.request(get_bytes("/public/bye", extra=b"Connection: close\r\n"))
        assert r.status == 200
        assert conn.wait_closed(3)


class ForgetfulUpstream:
    """Answers with keep-alive and then closes each connection after `idle` seconds without a
    request, as many servers do, without saying so in the response."""

    def __init__(self, idle: float):
        import socket
        import threading

        self.idle = idle
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn, number):
        import socket

        buffer = b""
        with conn:
            while True:
                conn.settimeout(self.idle)
                try:
                    chunk = conn.recv(65536)
                except (socket.timeout, OSError):
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    body = b'{"connection": %d}' % number
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))

    def close(self):
        self.listener.close()


def test_pooled_connections_the_upstream_closed_are_replaced(spawner):
    import time

    up = ForgetfulUpstream(idle=0.05)
    try:
        gw = spawner.gateway(make_config({"main": upstream(f"http://127.0.0.1:{up.port}")}, ROUTES))
        import os

        def open_descriptors():
            return len(os.listdir(f"/proc/{gw.pid}/fd"))

        answers = []
        with requests.Session() as s:
            for i in range(12):
                answers.append(s.get(gw.url(f"/public/{i}"), timeout=10))
                if i == 0:
                    descriptors = open_descriptors()
                time.sleep(0.15)  # long enough for the upstream to have closed the pooled connection
            burst = [s.get(gw.url("/public/burst"), timeout=10) for _ in range(5)]
            # Dead pooled sockets are closed, not kept.
            assert open_descriptors() <= descriptors + 2
    finally:
        up.close()
    assert [a.status_code for a in answers + burst] == [200] * 17
    # Each pause cost the pooled connection; the burst reuses one.
    assert len({a.json()["connection"] for a in answers}) == 12
    assert len({a.json()["connection"] for a in burst}) == 1


def _threads(pid: int) -> dict[str, list[int]]:
    """Thread name → scheduling policies (field 41 of /proc/PID/task/TID/stat) of a process."""
    threads: dict[str, list[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
        threads.setdefault(name, []).append(int(fields[41 - 3]))
    return threads


def test_upstream_threads_batch_and_event_loops_keep_the_default_policy(echo, spawner):
    # One curl thread per event loop, `curl-1` for loop #1 and so on. They run under
    # SCHED_BATCH (3) so that their wake-ups do not preempt an event loop in the middle of its
    # work; the event loops stay SCHED_OTHER (0), latency first.
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    assert requests.get(gw.url("/public/x"), timeout=10).status_code == 200
    threads = _threads(gw.pid)
    loops = [policy for name, policies in threads.items() if name.startswith("NIO-ELT") for policy in policies]
    assert loops and set(loops) == {0}, threads
    curl = {name: policies for name, policies in threads.items() if name.startswith("curl-")}
    assert curl == {f"curl-{index}": [3] for index in range(1, len(loops) + 1)}, sorted(threads.items())


def test_connections_on_every_event_loop_reach_the_upstream(echo, spawner):
    # Connections are spread over the event loops in turn, and each loop's exchanges go through
    # its own curl thread and connection pool: as many keep-alive clients as loops, each with a
    # few requests, all answered, over at least one upstream connection per loop that served.
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    loops = sum(1 for name in _threads(gw.pid) if name.startswith("NIO-ELT"))
    sessions = [requests.Session() for _ in range(max(2, loops))]
    try:
        answers = [s.get(gw.url(f"/public/{i}"), timeout=10) for _ in range(3) for i, s in enumerate(sessions)]
    finally:
        for s in sessions:
            s.close()
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert len({a.json()["connection"] for a in answers}) >= min(loops, len(sessions))


def test_a_client_that_half_closes_after_its_request_gets_the_answer(echo, spawner):
    """`printf 'GET … \\r\\n\\r\\n' | nc host port` shuts down its sending side after the request:
    the request is still answered in full, then the gateway closes."""
    import socket

    from harness import read_until_closed

    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    for request in (get_bytes("/public/half"), get_bytes("/public/half", extra=b"Connection: close\r\n")):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            data = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 200 "), data
        assert b'"path":"/public/half"' in data, data
    # an idle connection that half-closes is simply closed
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b""


def test_pipelined_requests_before_a_half_close_are_all_answered_in_order(echo, spawner):
    """A client may pipeline several requests and then shut down its sending side: each one is
    answered, in order, and only then does the gateway close (RFC 9112 §9.6)."""
    import socket

    from harness import read_until_closed

    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    paths = [f"/public/p{i}" for i in range(4)]
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"".join(get_bytes(p) for p in paths))
        s.shutdown(socket.SHUT_WR)
        data = read_until_closed(s)
    assert data.count(b"HTTP/1.1 200 ") == len(paths), data
    positions = [data.find(f'"path":"{p}"'.encode()) for p in paths]
    assert -1 not in positions and positions == sorted(positions), data
    # a request cut short by the half-close is refused after the complete ones are answered
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(get_bytes("/public/whole") + b"GET /public/cut HTTP/1.1\r\nHo")
        s.shutdown(socket.SHUT_WR)
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 ") and b'"path":"/public/whole"' in data, data
    assert b"HTTP/1.1 400 " in data and b"/public/cut" not in data, data


def test_a_client_that_pipelines_and_never_reads_cannot_fill_memory(spawner):
    """Answers a client does not read stay bounded: new requests wait while the connection is
    not writable. Before, one connection pushed the gateway past 700 MB in ten seconds."""
    import socket
    import threading
    import time

    up = spawner.echo()
    gw = spawner.gateway(make_config({"main": upstream(up.url)}, ROUTES))
    before = vm_rss_kib(gw.proc.pid)
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    request = b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"
    batch = request * 10_000

    def flood():
        try:
            for _ in range(100):
                sock.sendall(batch)
        except OSError:
            pass

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    time.sleep(5)
    grown = vm_rss_kib(gw.proc.pid) - before
    sock.close()
    t.join(10)
    assert grown < 64 << 10, f"the gateway grew by {grown} KiB while the client read nothing"
    # and it still answers others (the deadline is generous: on a loaded two-core machine the
    # event loop may still be draining the closed flood's last reads when this one arrives)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as other:
        other.sendall(b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert other.recv(12) == b"HTTP/1.1 200"
