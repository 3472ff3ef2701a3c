"""Fixtures for the vault tests: an isolated environment, a key ring and an open vault."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No vault key, home or crash point leaks in from the developer's shell."""
    for name in ("EXACT_CONNECTOR_VAULT_KEY", "EXACT_CONNECTOR_HOME", "EXACT_CONNECTOR_CRASH_AT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A vault directory that does not exist yet."""
    return tmp_path / "home"


@pytest.fixture
def ring() -> KeyRing:
    """A fresh random master key."""
    return KeyRing.from_bytes(os.urandom(32))


@pytest.fixture
def vault(home: Path, ring: KeyRing) -> Iterator[Vault]:
    """An open vault in ``home`` sealed under ``ring``."""
    opened = Vault.open(home, keys=ring)
    yield opened
    opened.close()
