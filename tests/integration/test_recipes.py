"""Every recipe of docs/recipes.md is a configuration that validates and a case file that
passes: the blocks are read from the page itself, so the documentation cannot drift from what
was tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import REPO, run_portcullis

PAGE = REPO / "docs" / "recipes.md"
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```yaml\n(.*?)```", re.S)
PROVIDERS = ["keycloak", "auth0", "entra", "okta", "google"]


def blocks() -> dict[str, str]:
    return {name: body for name, body in BLOCK.findall(PAGE.read_text())}


def test_the_page_has_a_recipe_per_provider():
    found = blocks()
    for provider in PROVIDERS:
        assert f"{provider}.yaml" in found and f"{provider}-cases.yaml" in found, sorted(found)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_recipe(provider, tmp_path: Path):
    found = blocks()
    config = tmp_path / f"{provider}.yaml"
    cases = tmp_path / f"{provider}-cases.yaml"
    config.write_text(found[f"{provider}.yaml"])
    cases.write_text(found[f"{provider}-cases.yaml"])
    valid = run_portcullis(["validate", "--config", str(config)])
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "warning" not in valid.stderr, valid.stderr
    out = run_portcullis(["test", "--config", str(config), str(cases)])
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    passed = int(summary.split()[0])
    assert summary == f"{passed} passed, 0 failed" and passed >= 2, summary
    # each recipe refuses something: a policy that forwards everything would pass nothing here
    assert re.search(r"403", found[f"{provider}-cases.yaml"]), provider
