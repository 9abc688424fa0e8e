"""The README (and every page of docs/) shows what its commands print.

Each ```sh block with `$ ` prompts is run, in the order of the page, by one bash against a real
gateway: the example routes.yaml (its ports moved to free ones, and moved back in the output)
in front of the echo upstream, as `make run` starts them, in a folder with the example files,
the Makefile, a fresh .dev-jwt-secret and `portcullis` on PATH. What a command prints (standard
output and error) must be the lines under it. In the expected text, `…` stands for anything:
alone on a line, for any number of lines; within a line, for any run of characters on that
line (tokens, request ids, times, versions).

A ```yaml block right after `<!-- file: NAME -->` is written to NAME before the commands run.
Each line of a ```text block right after `<!-- gateway log -->` must match a line the gateway
wrote to standard error by the end of the page.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import PORTCULLIS_BIN, REPO, EchoUpstream, Gateway, free_port

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
FILE_MARK = re.compile(r"<!-- file: (\S+) -->\n```yaml\n(.*?)^```$", re.M | re.S)
LOG_MARK = re.compile(r"<!-- gateway log -->\n```text\n(.*?)^```$", re.M | re.S)
# The example's addresses, as routes.yaml and the pages spell them.
PUBLIC, ADMIN, UPSTREAM = "127.0.0.1:8080", "127.0.0.1:9901", "127.0.0.1:9001"


def examples(text: str) -> list[tuple[str, str]]:
    """[(command, expected output)] of the page's shell blocks with prompts, in order."""
    found = []
    for language, body in FENCE.findall(text):
        if language != "sh" or not body.startswith("$ "):
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def pattern(expected: str) -> re.Pattern:
    """`expected` as a regular expression, `…` being the placeholder."""
    parts = []
    for line in expected.splitlines():
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*?".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def matches(expected: str, actual: str) -> bool:
    return pattern(expected).fullmatch(actual) is not None


def test_the_placeholder_stands_for_lines_alone_and_characters_within_one():
    assert matches("a\n…\nz\n", "a\nb\nc\nz\n") and matches("a\n…\nz\n", "a\nz\n")
    assert matches('{"t":"…","n":1}\n', '{"t":"xyz","n":1}\n')
    assert not matches('{"t":"…","n":1}\n', '{"t":"x\n","n":1}\n')
    assert not matches("18 passed\n", "16 passed\n")


class Workspace:
    """A folder laid out like a fresh clone after `make run`, and the gateway of `make run`."""

    def __init__(self, folder: Path):
        self.folder = folder
        bin_folder = folder / ".bin"
        bin_folder.mkdir()
        (bin_folder / "portcullis").symlink_to(os.path.abspath(PORTCULLIS_BIN))
        for name in ("routes.yaml", "policy-tests.yaml", "Makefile"):
            shutil.copy(REPO / name, folder / name)
        self.secret = secrets.token_hex(32)
        (folder / ".dev-jwt-secret").write_text(self.secret)
        self.ports = {PUBLIC: f"127.0.0.1:{free_port()}", ADMIN: f"127.0.0.1:{free_port()}"}
        self.env = {"PATH": f"{bin_folder}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(folder),
                    "LANG": "C.UTF-8", "PORTCULLIS_BIN": os.path.abspath(PORTCULLIS_BIN), "TERM": "dumb"}
        self.upstream: EchoUpstream | None = None
        self.gateway: Gateway | None = None

    def start(self):
        self.upstream = EchoUpstream().start()
        self.ports[UPSTREAM] = f"127.0.0.1:{self.upstream.port}"
        config = self.folder / "routes.yaml"
        text = config.read_text()
        for example, real in self.ports.items():
            assert text.count(example) == 1, example
            text = text.replace(example, real)
        # the same number of lines: every FILE:LINE the pages show stays true
        config.write_text(text)
        self.gateway = Gateway(config, env={"PORTCULLIS_JWT_SECRET": self.secret}).start()
        self.ports[PUBLIC] = f"127.0.0.1:{self.gateway.port}"
        return self

    def stop(self):
        for process in (self.gateway, self.upstream):
            if process is not None:
                process.stop()

    def run(self, commands: list[str]) -> list[str]:
        """Runs the commands in one bash, in the workspace; returns what each printed."""
        marker = f"--- {secrets.token_hex(8)} ---"
        script = ""
        for command in commands:
            for example, real in self.ports.items():
                command = command.replace(example, real)
            script += f"printf '%s\\n' '{marker}'\n{command} 2>&1\n"
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                                cwd=self.folder, env=self.env)
        output = result.stdout.replace("\r\n", "\n")
        for example, real in self.ports.items():
            output = output.replace(real, example)
        chunks = output.split(marker + "\n")
        assert len(chunks) == len(commands) + 1, result.stdout + result.stderr
        return [chunk if not chunk or chunk.endswith("\n") else chunk + "\n" for chunk in chunks[1:]]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_command_prints_what_the_page_shows(page, tmp_path):
    text = page.read_text()
    found = examples(text)
    if not found:
        pytest.skip("no shell examples with prompts")
    workspace = Workspace(tmp_path)
    for name, body in FILE_MARK.findall(text):
        (tmp_path / name).write_text(body)
    try:
        workspace.start()
        outputs = workspace.run([command for command, _ in found])
        log = "\n".join(workspace.gateway.stderr_lines) + "\n"
    finally:
        workspace.stop()
    mismatches = [f"$ {command}\n--- the page shows:\n{expected}--- it prints:\n{actual}"
                  for (command, expected), actual in zip(found, outputs) if not matches(expected, actual)]
    assert not mismatches, "\n\n".join(mismatches)
    for block in LOG_MARK.findall(text):
        for line in block.splitlines():
            assert any(matches(line + "\n", logged + "\n") for logged in log.splitlines()), f"{line}\nnot in\n{log}"


def test_the_readme_shows_the_two_commands_of_the_quick_start():
    quick_start = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [body for _, body in FENCE.findall(quick_start)]
    assert blocks[0].split("#")[0].split() == ["make", "run"], blocks[0]
    assert blocks[1].startswith("$ curl "), blocks[1]
    # `make run` installs and starts what that curl needs
    dry = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True)
    assert "curl" in dry.stdout and "echo-upstream --listen 127.0.0.1:9001" in dry.stdout, dry.stdout
