"""deploy/systemd/portcullis.service: `systemd-analyze verify` accepts it without a word (no
systemd needs to run: the unit is verified from a copy that names the built binary), its
hardening rates as OK, and its commands do what they say: ExecStartPre validates, ExecStart
serves, ExecReload reloads the configuration with SIGHUP, and KillSignal stops the gateway
cleanly within TimeoutStopSec."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from harness import PORTCULLIS_BIN, REPO, free_port, wait_until

UNIT = REPO / "deploy" / "systemd" / "portcullis.service"
INSTALLED = "/usr/local/bin/portcullis"  # `make install`'s PREFIX/bin

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian's systemd)")


def service() -> dict[str, list[str]]:
    """The [Service] section: key -> every value given, in order."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def local_unit(tmp_path: Path) -> Path:
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED, os.path.abspath(PORTCULLIS_BIN)))
    return copy


def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path):
    unit = local_unit(tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_the_hardening_rates_ok(tmp_path):
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(local_unit(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for portcullis\.service: ([\d.]+) (\w+)", result.stdout + result.stderr)
    assert level and float(level.group(1)) <= 2.0, result.stdout[-3000:] + result.stderr


def test_the_unit_runs_as_a_dynamic_user_that_writes_only_its_state_directory():
    unit = service()
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["portcullis"] and unit["ProtectSystem"] == ["strict"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["KillSignal"] == ["SIGTERM"]


def test_the_unit_commands_validate_serve_reload_and_stop(tmp_path):
    unit = service()
    public, admin = free_port(), free_port()
    config = tmp_path / "routes.yaml"
    config.write_text(f"""version: 1
server: {{ listen: "127.0.0.1:{public}", admin_listen: "127.0.0.1:{admin}", shutdown_grace: 10s }}
upstreams: {{ u: {{ url: "http://127.0.0.1:9" }} }}
routes:
  - {{ name: open, match: {{ path: "/open/**" }}, auth: none, upstream: u }}
""")

    def command(key):
        (line,) = unit[key]
        words = shlex.split(line.replace("/etc/portcullis/routes.yaml", str(config)))
        return [PORTCULLIS_BIN if word == INSTALLED else word for word in words]

    assert subprocess.run(command("ExecStartPre"), capture_output=True, timeout=30).returncode == 0
    gateway = subprocess.Popen(command("ExecStart"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def metrics():
            try:
                return requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=1).text
            except requests.ConnectionError:
                return None
        wait_until(metrics, timeout=15, message="the gateway started by ExecStart")

        reload = [word.replace("$MAINPID", str(gateway.pid)) for word in command("ExecReload")]
        assert subprocess.run(reload, timeout=10).returncode == 0
        wait_until(lambda: 'portcullis_config_reloads_total{result="success"} 1' in metrics(), timeout=10,
                   message="the reload ExecReload asked for")

        gateway.send_signal(getattr(signal, unit["KillSignal"][0]))
        assert gateway.wait(timeout=int(unit["TimeoutStopSec"][0])) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(timeout=10)
