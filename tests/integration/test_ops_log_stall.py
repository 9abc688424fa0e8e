"""A log reader that stops reading must cost log lines, never requests or a clean shutdown.

The gateway's stderr and its `access_log: stdout` go to pipes that these tests fill and then
never read, as when a log shipper hangs. Requests, the admin listener and SIGTERM must keep
working, and /metrics counts what was dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time

from harness import PORTCULLIS_BIN, free_port, make_config, upstream, wait_until
from ops_support import fetch_metrics, http_get, metric_value

F_SETPIPE_SZ = 1031

ROUTES = """
- name: open
  match: { path: "/open/**" }
  auth: none
  upstream: main
"""


def small_pipe() -> tuple[int, int]:
    """A pipe whose buffer holds one page, so that a few log lines fill it."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    return read_end, write_end


def start_serving(config_path, port: int, stdout, stderr) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PORTCULLIS_BIN, "serve", "--config", str(config_path), "--listen", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)

    def accepts():
        assert proc.poll() is None, f"portcullis exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, timeout=10, message="the gateway to accept connections")
    return proc


def pipelined(port: int, path: str, count: int, batch: int = 100) -> list[int]:
    """Sends `count` GETs over one keep-alive connection, `batch` at a time; returns the statuses.
    A gateway stuck on its log would leave the socket silent and time out here."""
    statuses: list[int] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for start in range(0, count, batch):
            n = min(batch, count - start)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode() * n)
            for _ in range(n):
                status_line = reader.readline()
                assert status_line.startswith(b"HTTP/1.1 "), f"bad status line {status_line!r}"
                statuses.append(int(status_line.split()[1]))
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                reader.read(length)
    return statuses


def stop_within(proc: subprocess.Popen, seconds: float) -> float:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"SIGTERM did not stop the gateway within {seconds} s while its log reader stalled")
    return time.monotonic() - sent


@contextlib.contextmanager
def gateway_with_stalled(stream: str, tmp_path, upstream_url: str, access_log: str):
    """A gateway whose `stream` ("stdout" or "stderr") is a one-page pipe that nobody reads;
    yields (port, admin port, the pipe's read end)."""
    port, admin = free_port(), free_port()
    config = tmp_path / "routes.yaml"
    config.write_text(make_config(
        {"main": upstream(upstream_url)}, ROUTES,
        server={"admin_listen": f'"127.0.0.1:{admin}"', "access_log": access_log, "shutdown_grace": "1s"}))
    read_end, write_end = small_pipe()
    stalled = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: write_end}
    proc = start_serving(config, port, stalled["stdout"], stalled["stderr"])
    os.close(write_end)
    try:
        yield port, admin, read_end
        # Shutdown waits at most shutdown_grace for connections and 2 s for the logs, then exits.
        stop_within(proc, 1 + 2 + 4)
        assert proc.returncode == 0, f"exit status {proc.returncode}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(read_end)


def test_a_stalled_stderr_reader_drops_lines_and_the_gateway_keeps_serving(tmp_path):
    # The upstream refuses connections, so every request logs an "upstream failed" warning.
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway_with_stalled("stderr", tmp_path, dead, '"off"') as (port, admin, read_end):
        # About 200 bytes a warning: 8,000 of them are more than the pipe and the gateway's
        # 1 MiB buffer hold together.
        statuses = pipelined(port, "/open/x", 8000)
        assert set(statuses) == {502}, f"statuses {sorted(set(statuses))}"
        assert http_get(admin, "/healthz")[0] == 200
        _, samples = fetch_metrics(admin)
        dropped = metric_value(samples, "portcullis_log_dropped_lines_total", log="stderr")
        assert dropped > 0, "8,000 warnings into a stalled pipe, and none counted as dropped"
        assert metric_value(samples, "portcullis_log_dropped_lines_total", log="access") == 0
        # What did reach the pipe is whole lines of the log, not a torn mix.
        os.set_blocking(read_end, False)
        head = os.read(read_end, 4096)
        assert b"upstream failed" in head or b"portcullis listening" in head, head[:300]
        assert b"\x00" not in head


def test_a_stalled_access_log_reader_does_not_hold_shutdown(tmp_path, spawner):
    echo = spawner.echo()
    with gateway_with_stalled("stdout", tmp_path, echo.url, "stdout") as (port, admin, read_end):
        # 2,000 lines of about 250 bytes: far more than the 4 KiB pipe takes.
        statuses = pipelined(port, "/open/x", 2000)
        assert set(statuses) == {200}, f"statuses {sorted(set(statuses))}"
        wait_until(lambda: http_get(admin, "/healthz")[0] == 200, timeout=5, message="/healthz")
        # The lines that did go out are JSON lines.
        os.set_blocking(read_end, False)
        first = os.read(read_end, 4096).split(b"\n")[0]
        assert first.startswith(b'{"time":'), first[:200]
