"""docs/metrics.md lists every series /metrics exports, with exactly its labels; the `reason`
label takes its values from a fixed list that the page, the code and the sources agree on; and
the Grafana dashboard only queries documented series and labels."""

from __future__ import annotations

import json
import re

import requests

from harness import REPO, free_port, wait_until
from token_support import JWT_SECRET, Portcullis, base_config, write_config

PAGE = REPO / "docs" / "metrics.md"
DASHBOARD = REPO / "deploy" / "grafana" / "portcullis.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def documented() -> dict[str, set[str]]:
    """metric name -> its labels, from the page's table."""
    table = {}
    for line in PAGE.read_text().splitlines():
        m = re.match(r"\| `(portcullis_\w+)` \| (\w+) \|([^|]*)\|", line)
        if m:
            table[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(3)))
    assert table, "no metrics table in docs/metrics.md"
    return table


def documented_reasons() -> set[str]:
    section = PAGE.read_text().split("## Reasons", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", section)) - {"reason", "portcullis_requests_total"}


REASON_SWIFT = REPO / "Sources" / "PortcullisCore" / "Decision" / "Reason.swift"


def coded_reasons() -> set[str]:
    """The cases of the closed `Reason` enum, as the access log writes them."""
    body = REASON_SWIFT.read_text().split("package enum Reason:", 1)[1].split("\n}\n", 1)[0]
    found = set()
    for m in re.finditer(r"^    case `?(\w+)`?(?: = \"([a-z_]+)\")?$", body, re.M):
        found.add(m.group(2) or m.group(1))
    return found


def reasons_in_sources() -> set[str]:
    """The reasons the sources make: `.caseName` after `reason:` or `outcome:`, and the token
    rejections' and OAuth errors' own."""
    cases = {}
    body = REASON_SWIFT.read_text().split("package enum Reason:", 1)[1].split("\n}\n", 1)[0]
    for m in re.finditer(r"^    case `?(\w+)`?(?: = \"([a-z_]+)\")?$", body, re.M):
        cases[m.group(1)] = m.group(2) or m.group(1)
    found = set()
    for path in (REPO / "Sources").rglob("*.swift"):
        if path.name in ("Reason.swift", "JWKSFetcher.swift", "RemoteKeySet.swift"):
            continue
        text = path.read_text()
        for name in re.findall(r"\.(\w+)\b", text):
            if name in cases and re.search(
                r"(reason|outcome|error|logReason|log): [^\n]*\.%s\b|return \.%s\b|\(\.\w+, \.%s\)" % (name, name, name), text
            ):
                found.add(cases[name])
    return found


def test_the_reason_list_is_the_same_in_the_page_and_the_code():
    page, code, sources = documented_reasons(), coded_reasons(), reasons_in_sources()
    assert page == code, f"only in docs/metrics.md: {sorted(page - code)}; only in the code: {sorted(code - page)}"
    assert code <= sources, f"reasons no source makes any more: {sorted(code - sources)}"


def samples(text: str):
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        yield m.group(1), labels, float(m.group(3))


def base_name(name: str, table) -> str:
    if name in table:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in table:
            return name[: -len(suffix)]
    return name


def test_every_exported_series_is_documented_with_its_labels(echo, tmp_path):
    table = documented()
    admin = free_port()
    cfg = base_config(echo.url, server={"admin_listen": f"127.0.0.1:{admin}", "access_log": "off"})
    cfg["jwt"]["issuers"].append({"issuer": "https://idp.example", "algorithms": ["RS256"],
                                  "jwks_url": "http://127.0.0.1:9/jwks.json"})
    cfg["routes"].insert(0, {"name": "open", "match": {"path": "/open/**"}, "auth": "none", "upstream": "u"})
    gateway = Portcullis(write_config(tmp_path / "gateway.yaml", cfg), env={"PORTCULLIS_JWT_SECRET": JWT_SECRET})
    try:
        assert gateway.get("/open/x").status_code == 200
        assert gateway.get("/users/me").status_code == 401
        assert gateway.get("/nowhere").status_code == 404
        assert gateway.login().status_code == 200
        assert gateway.login(password="wrong").status_code == 400

        def scraped():
            text = requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
            return text if "portcullis_jwks_refreshes_total" in text else None
        text = wait_until(scraped, timeout=10, message="a failed key set fetch to be counted")
    finally:
        gateway.stop()

    seen = {}
    for name, labels, _ in samples(text):
        metric = base_name(name, table)
        assert metric in table, f"{name} is exported but not in docs/metrics.md"
        assert set(labels) - {"le"} == table[metric], f"{name}{labels}: documented labels {sorted(table[metric])}"
        seen.setdefault(metric, []).append(labels)
    # The decision service's series exist once the decision listener has answered.
    only_with_decisions = {"portcullis_decisions_total", "portcullis_decision_duration_seconds"}
    assert set(seen) | only_with_decisions == set(table), f"documented but not exported: {sorted(set(table) - set(seen))}"

    requests_total = seen["portcullis_requests_total"]
    assert {"route": "open", "decision": "allow", "status": "200", "reason": "-"} in requests_total, requests_total
    assert {"route": "me", "decision": "deny", "status": "401", "reason": "missing_credentials"} in requests_total
    assert {"route": "-", "decision": "deny", "status": "404", "reason": "no_route"} in requests_total
    assert {"route": "token_endpoint", "decision": "allow", "status": "200", "reason": "issued"} in requests_total
    assert {"route": "token_endpoint", "decision": "deny", "status": "400", "reason": "invalid_grant"} in requests_total
    assert {labels["reason"] for labels in requests_total} <= coded_reasons() | {"-"}
    # only a route that reached an upstream has an upstream-latency series
    assert {labels["route"] for labels in seen["portcullis_upstream_duration_seconds"]} == {"open"}


def test_the_dashboard_queries_documented_series_and_labels():
    table = documented()
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    for wanted in ("Requests by route and decision", "Refusals by reason", "Request latency p50 / p99",
                   "Upstream errors", "JWKS refreshes", "Logins", "Throttled logins"):
        assert wanted in titles, titles
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            names = {base_name(n, table) for n in re.findall(r"\bportcullis_\w+", expr)}
            assert names and names <= set(table), (panel["title"], expr)
            queried |= names
            labels = set().union(*(table[n] for n in names)) | {"le", "instance"}
            used = set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)\s*\"", expr))
            for group in re.findall(r"by \(([^)]*)\)", expr):
                used |= {label.strip() for label in group.split(",")}
            assert used <= labels, (panel["title"], sorted(used - labels))
            for legend_label in re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")):
                assert legend_label in used, (panel["title"], legend_label)
    assert queried == set(table), f"no panel shows {sorted(set(table) - queried)}"
