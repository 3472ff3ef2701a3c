"""The examples run as written: what the README points an engine developer at must work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.e2e
def test_the_engine_example_signs_in_and_chains_the_four_actions(tmp_path: Path) -> None:
    """examples/engine.py, run with no vault key or sandbox switch in the environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EXACT_CONNECTOR_VAULT_KEY", "EXACT_CONNECTOR_ALLOW_SANDBOX")
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "engine.py")],
        capture_output=True,
        text=True,
        env={**env, "EXACT_CONNECTOR_HOME": str(tmp_path / "unused")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["signed in; divisions [100001, 100002, 100003]", "Test Connect: passed"]
    ran = [line.split(":")[0] for line in lines if ": ok (" in line]
    assert ran == [
        "create_project_time_transaction",
        "update_project_time_transaction",
        "list_or_get_endpoint",
        "delete_endpoint_record",
        "delete_endpoint_record",
    ]
    assert ": 3.0 h on " in done.stdout
    assert lines[-1].endswith("a retry finds it already_absent=True")
    assert "Traceback" not in done.stderr
