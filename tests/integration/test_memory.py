"""Idle memory: the gateway's resident set once it is listening (the backbone issue asks < 30 MiB)."""

import requests

from harness import PUBLIC_AND_ADMIN_ROUTES, make_config, upstream, vm_rss_kib, wait_until

LIMIT_KIB = 30 * 1024


def test_idle_gateway_stays_under_30_mib_and_serves_after_releasing_startup_pages(echo, spawner):
    gw = spawner.gateway(make_config({"main": upstream(echo.url)}, PUBLIC_AND_ADMIN_ROUTES))
    # Start-up maps far more code than serving needs; once listening, the gateway unmaps it.
    wait_until(lambda: vm_rss_kib(gw.pid) < LIMIT_KIB, timeout=10, message=f"VmRSS under {LIMIT_KIB} KiB")
    rss = vm_rss_kib(gw.pid)
    # Everything it needs comes back on first use: requests, refusals and unknown paths work.
    with requests.Session() as s:
        for i in range(50):
            r = s.get(gw.url(f"/public/{i}"), timeout=10)
            assert r.status_code == 200 and r.json()["path"] == f"/public/{i}"
        assert s.get(gw.url("/admin/x"), timeout=10).status_code == 401
        assert s.get(gw.url("/elsewhere"), timeout=10).status_code == 404
    after = vm_rss_kib(gw.pid)
    assert after < LIMIT_KIB, f"VmRSS {after} KiB after 52 requests (idle: {rss} KiB)"
