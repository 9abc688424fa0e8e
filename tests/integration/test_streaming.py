"""Area 2: a 50 MiB response streams through the gateway with backpressure (bounded memory)."""

import threading
import time

import requests

from harness import make_config, upstream, vm_rss_kib

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""

TOTAL = 52_428_800  # 50 MiB
CHUNK = 64 * 1024


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.peak = max(self.peak, vm_rss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self.stop_event.wait(0.01)


def test_50mib_response_streams_with_bounded_memory(spawner):
    up = spawner.echo()  # a private upstream so nothing else runs through this gateway
    gw = spawner.gateway(make_config({"main": upstream(up.url, timeout="60s")}, ROUTES))

    # Warm up the forwarding path (libcurl handles, buffers, pools) so the idle value is fair.
    for _ in range(3):
        assert requests.get(gw.url(f"/public/warm?echo_bytes={4 * CHUNK}"), timeout=10).status_code == 200
    idle = vm_rss_kib(gw.pid)

    sampler = RssSampler(gw.pid)
    sampler.start()
    received = 0
    all_x = True
    try:
        with requests.get(gw.url(f"/public/big?echo_bytes={TOTAL}"), stream=True, timeout=30) as r:
            assert r.status_code == 200
            assert r.headers.get("Content-Length") in (None, str(TOTAL))
            it = r.raw.stream(CHUNK, decode_content=False)
            # Read slowly at first: a gateway that does not apply backpressure would pull the
            # whole 50 MiB from the fast local upstream into memory during this pause.
            first = next(it)
            received += len(first)
            all_x &= first == b"x" * len(first)
            slow_until = time.monotonic() + 1.5
            while time.monotonic() < slow_until:
                chunk = next(it)
                received += len(chunk)
                all_x &= chunk.count(b"x") == len(chunk)
                time.sleep(0.1)
            for chunk in it:
                received += len(chunk)
                all_x &= chunk.count(b"x") == len(chunk)
    finally:
        sampler.stop_event.set()
        sampler.join(timeout=5)

    assert received == TOTAL
    assert all_x, "body bytes were altered"
    assert sampler.samples > 10
    growth_mib = (sampler.peak - idle) / 1024
    print(f"RSS idle={idle}KiB peak={sampler.peak}KiB growth={growth_mib:.1f}MiB samples={sampler.samples}")
    assert growth_mib < 25, f"gateway RSS grew by {growth_mib:.1f} MiB while streaming 50 MiB (idle {idle} KiB, peak {sampler.peak} KiB)"
    # the gateway is still healthy afterwards
    assert requests.get(gw.url("/public/after"), timeout=10).status_code == 200
