"""Idle memory: the gateway's resident set once it is listening (the backbone issue asks < 30 MiB)."""

import requests

from harness import make_config, upstream, wait_until

ROUTES = """
- name: public
  match: { path: "/public/**" }
  auth: none
  upstream: main
"""

LIMIT_KIB = 30 * 1024


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


def test_idle_gateway_stays_under_30_mib_and_serves_after_releasing_startup_pages(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, ROUTES))
    # Start-up maps far more code than serving needs; once listening, the gateway unmaps it.
    rss = wait_until(lambda: (lambda kib: kib if kib < LIMIT_KIB else None)(_status_kib(gw.pid, "VmRSS")),
                     timeout=10, message=f"VmRSS under {LIMIT_KIB} KiB")
    # Everything it needs comes back on first use: requests, refusals and unknown paths work.
    with requests.Session() as s:
        for i in range(50):
            r = s.get(gw.url(f"/public/{i}"), timeout=10)
            assert r.status_code == 200 and r.json()["path"] == f"/public/{i}"
        assert s.get(gw.url("/elsewhere"), timeout=10).status_code == 404
    after = _status_kib(gw.pid, "VmRSS")
    assert after < LIMIT_KIB, f"VmRSS {after} KiB after 51 requests (idle: {rss} KiB)"
