"""Fixtures for the trigger tests: a fresh signed-in connector on an in-process sandbox per test.

Triggers keep state (checkpoints, the sandbox's row versions), so each test gets its own bench.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "actions"))

from actions_harness import Bench, signed_in_bench


@pytest.fixture
def bench(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[Bench]:
    """One sandbox (no limits, manual clock), vault and signed-in connector."""
    with signed_in_bench(tmp_path / "vault", pytestconfig) as made:
        yield made
