"""Fixtures: real echo-upstream / portcullis processes on loopback ephemeral ports.

Every process started here is stopped (SIGTERM, then SIGKILL) at teardown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from harness import ECHO_UPSTREAM_BIN, PORTCULLIS_BIN, EchoUpstream, Gateway
from recorder import Recorder


def pytest_report_header(config):
    return [f"portcullis: {PORTCULLIS_BIN}", f"echo-upstream: {ECHO_UPSTREAM_BIN}"]


def pytest_sessionstart(session):
    for path in (PORTCULLIS_BIN, ECHO_UPSTREAM_BIN):
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"binary not found or not executable: {path}")


class Spawner:
    """Starts gateways, echo upstreams and recorders in one folder; stops them all at the end."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.things = []
        self.counter = 0

    def write(self, text: str, name: str | None = None) -> Path:
        self.counter += 1
        path = self.folder / (name or f"gateway-{self.counter}.yaml")
        path.write_text(text)
        return path

    def gateway(self, config_text: str, extra_args=None, env=None, name=None) -> Gateway:
        gw = Gateway(self.write(config_text, name), extra_args=extra_args, env=env)
        self.things.append(gw)
        return gw.start()

    def echo(self, unix_path: str | None = None) -> EchoUpstream:
        up = EchoUpstream(unix_path)
        self.things.append(up)
        return up.start()

    def recorder(self) -> Recorder:
        rec = Recorder()
        self.things.append(rec)
        return rec

    def stop_all(self):
        for thing in reversed(self.things):
            try:
                thing.stop()
            except Exception:  # noqa: BLE001 - teardown must reach every process
                pass


@pytest.fixture(scope="session")
def session_spawner(tmp_path_factory):
    spawner = Spawner(tmp_path_factory.mktemp("session"))
    yield spawner
    spawner.stop_all()


@pytest.fixture(scope="session")
def echo(session_spawner) -> EchoUpstream:
    """One echo-upstream shared by tests that do not count its connections."""
    return session_spawner.echo()


@pytest.fixture(scope="module")
def module_spawner(tmp_path_factory, request):
    spawner = Spawner(tmp_path_factory.mktemp(request.module.__name__))
    yield spawner
    spawner.stop_all()


@pytest.fixture(scope="module")
def rec(module_spawner):
    """A recording upstream for the module's tests (recorder.py)."""
    return module_spawner.recorder()


@pytest.fixture
def spawner(tmp_path):
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.stop_all()


@pytest.fixture
def short_tmp():
    """A short directory under /tmp (Unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="pcit-", dir="/tmp") as d:
        yield d
