"""Fixtures for the vault tests: an isolated environment, a key ring and an open vault.

Every test that takes ``vault`` (or ``open_vault``) runs on both backends: the SQLite file and a
PostgreSQL schema of its own. A test that also names ``home`` itself reaches into the SQLite file
(raw rows, file modes, lock files), so it runs on SQLite only, unless it names ``backend`` too;
so does one marked ``sqlite_only``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pg_server
import pytest

from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing

OpenVault = Callable[..., Vault]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    own = set(inspect.signature(metafunc.function).parameters)
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
    both = not sqlite_only and ("backend" in own or "home" not in own)
    metafunc.parametrize("backend", ["sqlite", "postgres"] if both else ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No vault key, home, database or crash point leaks in from the developer's shell."""
    for name in (
        "EXACT_CONNECTOR_VAULT_KEY",
        "EXACT_CONNECTOR_HOME",
        "EXACT_CONNECTOR_CRASH_AT",
        "EXACT_CONNECTOR_DATABASE_URL",
    ):
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
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres`` (parametrised by ``pytest_generate_tests``)."""
    name: str = getattr(request, "param", "sqlite")
    if name == "postgres" and pg_server.skip_requested():
        pytest.skip(pg_server.SKIP_REASON)
    return name


@pytest.fixture
def open_vault(
    backend: str, home: Path, ring: KeyRing, request: pytest.FixtureRequest
) -> Iterator[OpenVault]:
    """Open the test's vault (again): the SQLite file in ``home`` or the test's own schema."""
    schema = pg_server.fresh_schema()

    def on_postgres(**options: Any) -> Vault:
        from exact_connector.vault.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        store = {"busy_timeout": options.pop("busy_timeout", 5.0), "schema": schema}
        return Vault.on_store(
            lambda init: PostgresStore.open(url, init, **store), home=home, **options
        )

    with contextlib.ExitStack() as opened:  # every vault the test opened is closed after it

        def open_(**options: Any) -> Vault:
            options.setdefault("keys", ring)
            vault = Vault.open(home, **options) if backend == "sqlite" else on_postgres(**options)
            return opened.enter_context(vault)

        yield open_


@pytest.fixture
def vault(open_vault: OpenVault) -> Vault:
    """An open vault sealed under ``ring``, on each backend."""
    return open_vault()
