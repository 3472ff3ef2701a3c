"""The raw-httpx walkthrough example runs to the end against the sandbox on loopback."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "raw_httpx_walkthrough.py"


def test_the_example_uses_no_connector_code() -> None:
    """It imports httpx, the standard library and the sandbox, nothing else of ours."""
    ours = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            ours.add(node.module)
        elif isinstance(node, ast.Import):
            ours.update(alias.name for alias in node.names)
    assert {name for name in ours if name.startswith("exact_connector")} == {
        "exact_connector.sandbox"
    }
    assert {name.split(".")[0] for name in ours} <= {
        "__future__",
        "secrets",
        "sys",
        "urllib",
        "httpx",
        "exact_connector",
    }


@pytest.mark.e2e
def test_the_walkthrough_exits_0_and_reports_each_step() -> None:
    """Authorize, Atom without Accept JSON, page, create/update/delete, early refresh and reuse
    refused, a 429 at call 61."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = [
        "authorized: code exchanged, expires_in='600'",
        "accept: without Accept: application/json the answer is Atom XML; with it, JSON",
        "listed: 150 time transactions in 3 pages via __next",
        "created: ",
        "updated: Quantity 3.0",
        "deleted: 204",
        "early refresh rejected: 400 access_denied (Reason: TooEarlyToRefreshTokens",
        "refreshed after 571 s",
        "token reuse rejected: 401 unauthorized_client: Old refresh token used.",
        "rate limit: 60 calls in a minute accepted, then 429",
        "walkthrough complete",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), f"missing {start!r} in {lines}"
    assert lines[-1] == "walkthrough complete"
