"""Each benchmark runs in its smoke mode and prints its table, so the scripts cannot rot.

The figures themselves are not asserted: speed is measured by running the scripts in full.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "list_bench.py",
            [
                "stream/raw overhead",
                "stream_raw/raw overhead",
                "stream, raw: true",
                "raw httpx + json",
                "calls",
            ],
        ),
        ("instructions.py", ["instructions per unit", "get", "standard", "bulk"]),
        ("sandbox_bench.py", ["pages/s", "in-process", "loopback"]),
        ("vault_bench.py", ["get + update_tokens", "rotate_key"]),
        ("postgres_bench.py", ["8-thread st/s", "sqlite", "postgres"]),
        (
            "step_bench.py",
            ["warm steps", "8 threads", "cli --version / python -c pass", "governor:"],
        ),
        ("trigger_bench.py", ["idle poll", "changes handed over", "Idle daily cost"]),
        ("ui_bench.py", ["page load, cold", "Vault shown, cold", "step form hydrated"]),
    ],
)
def test_the_benchmark_runs_in_smoke_mode(script: str, expected: list[str]) -> None:
    """--smoke exits 0 and prints the table's headings."""
    if script == "postgres_bench.py" and os.environ.get("EXACT_CONNECTOR_SKIP_POSTGRES") == "1":
        pytest.skip("EXACT_CONNECTOR_SKIP_POSTGRES=1: the benchmark starts a PostgreSQL server")
    if script == "ui_bench.py" and os.environ.get("EXACT_CONNECTOR_SKIP_BROWSER") == "1":
        pytest.skip("EXACT_CONNECTOR_SKIP_BROWSER=1: the ui benchmark drives Chromium")
    result = _run(script, "--smoke")
    for heading in expected:
        assert heading in result.stdout
    assert "Traceback" not in result.stderr


def test_list_bench_across_processes_prints_each_ratio_and_the_median() -> None:
    """--processes 2: one line per list, way and transport, two ratios and their median."""
    args = ["--pages", "standard", "--transport", "in-process", "--ways", "stream,raw"]
    result = _run("list_bench.py", "--smoke", *args, "--processes", "2")
    assert "in 2 processes (PYTHONHASHSEED 0 to 1)" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if "stream/raw:" in line]
    assert line.startswith("standard (60 a page), in-process, stream/raw: ")
    ratios, median = line.split(": ")[1].split("; median ")
    values = [float(value) for value in ratios.split(", ")]
    assert len(values) == 2 and all(value > 0 for value in values)
    assert float(median) == pytest.approx(sum(values) / 2, abs=0.01)


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The benchmark run by our own interpreter; it must exit 0."""
    result = subprocess.run(  # our own interpreter on our own scripts
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result
