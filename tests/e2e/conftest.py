"""Fixtures for the end-to-end tests: the secret scanner bound, and a signed-in loopback world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import World, bind_scanner, loopback_world

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.fixture(autouse=True)
def _scanner(pytestconfig: pytest.Config) -> None:
    """Bind the lead's conftest module as pytest loaded it: its secret set is the one scanned."""
    for plugin in pytestconfig.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "").resolve() == _ROOT_CONFTEST:
            bind_scanner(plugin)
            return
    raise RuntimeError("tests/conftest.py is not loaded; the secret scanner would be silent")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A sandbox on 127.0.0.1 and a connector with an active credential for it."""
    with loopback_world(tmp_path / "vault") as made:
        yield made
