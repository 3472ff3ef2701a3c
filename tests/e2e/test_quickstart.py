"""The README's Quick start works as written, from a fresh clone, and the demo it runs is whole."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_harness import assert_no_secrets

from exact_connector.cli import main

REPO = Path(__file__).resolve().parents[2]
STEPS = ["Sandbox", "Vault", "Sign-in", "Test Connect", "Create", "List", "Get", "Update", "Delete"]
_FENCE = re.compile(r"^```(?:sh|bash|shell)?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def quick_start_block(readme: str) -> str:
    """The first fenced block of the README's ``## Quick start`` section."""
    section = readme.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    match = _FENCE.search(section)
    assert match is not None, "the Quick start section has no fenced block"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to clone the repository")
def test_the_quick_start_runs_verbatim_from_a_fresh_clone(tmp_path: Path) -> None:
    """git clone, then the README's first block under bash -euo pipefail: exit 0, every step."""
    clone = tmp_path / "exact-connector"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    block = quick_start_block((clone / "README.md").read_text("utf-8"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXACT_CONNECTOR_", "PYTHON", "PIP_")) and key != "VIRTUAL_ENV"
    }
    env |= {"HOME": str(tmp_path / "home"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shown = re.findall(r"^\s*\d+\. (\S+(?: \S+)?)\s{2,}", done.stdout, re.MULTILINE)
    assert [step.strip() for step in shown] == STEPS, done.stdout
    assert "Done in" in done.stdout
    assert_no_secrets(done.stdout + done.stderr, "the quick start's output")


def test_the_quick_start_block_is_the_demo() -> None:
    """The block the slow test runs installs the package and ends with the demo command."""
    block = quick_start_block((REPO / "README.md").read_text("utf-8"))

    assert block.rstrip().splitlines()[-1] == "exact-connector demo"
    assert "pip install ." in block


@pytest.mark.e2e
def test_the_demo_reports_every_step_ok_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``exact-connector demo --json`` in-process: exit 0, all nine steps ok, calls counted."""
    code = main(["demo", "--json"])

    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert [step["step"] for step in report["steps"]] == STEPS
    assert all(step["ok"] for step in report["steps"])
    # 3 lookups + create 1 + list 1 + get 1 + update 2 + delete 1 + the read that proves it 1
    assert report["api_calls"] == 10
    checks = report["steps"][3]["detail"]["report"]["checks"]
    assert [check["name"] for check in checks if check["ok"]] == [
        "token",
        "user",
        "divisions",
        "rate_limit",
        "refresh_token_age",
    ]
    created, updated = (
        report["steps"][4]["detail"]["record"],
        report["steps"][7]["detail"]["record"],
    )
    assert (created["Quantity"], updated["Quantity"]) == (2.5, 4.0)
    assert created["ID"] == updated["ID"]
    assert_no_secrets(out + err, "the demo's output")
