"""Fixtures for the end-to-end tests: a signed-in loopback world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import World, loopback_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A sandbox on 127.0.0.1 and a connector with an active credential for it."""
    with loopback_world(tmp_path / "vault") as made:
        yield made
