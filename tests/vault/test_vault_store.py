"""The store seam: SQL stays in the SQLite backend, and its compare-and-swap is exact."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from vault_harness import add_credential

import exact_connector.vault
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing
from exact_connector.vault.sqlite import SQLiteStore

PACKAGE = Path(exact_connector.vault.__file__).parent
NEUTRAL = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "sqlite.py")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return names


@pytest.mark.parametrize("module", NEUTRAL)
def test_only_the_sqlite_backend_imports_sqlite(module: str) -> None:
    """Every vault module but ``sqlite.py`` is backend-neutral: no sqlite3, no SQLite plumbing."""
    forbidden = {"sqlite3", "exact_connector._sqlite", "exact_connector.vault.sqlite"}
    if module == "__init__.py":
        forbidden.discard("exact_connector.vault.sqlite")  # Vault.open picks the default backend
    assert _imported_modules(PACKAGE / module) & forbidden == set()


def test_the_facade_opens_sqlite_but_speaks_only_to_the_protocol(home: Path, ring: KeyRing) -> None:
    """``Vault.open`` picks the SQLite store; everything else goes through the store seam."""
    with Vault.open(home, keys=ring) as vault:
        assert isinstance(vault._store, SQLiteStore)
    source = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert "execute(" not in source and "SELECT" not in source


def test_swap_writes_only_at_the_expected_version(vault: Vault) -> None:
    """A stale version swaps nothing and says so; the current one replaces the row."""
    credential = add_credential(vault, "a")
    store = vault._store
    with store.write("test") as session:
        row = dict(session.credential(credential.id) or {})
        stale = {**row, "version": row["version"] + 1, "status_reason": "stale"}
        assert session.swap_credential(stale, row["version"] - 1) is False
        assert session.credential(credential.id) == row
        fresh = {**row, "version": row["version"] + 1, "status_reason": "fresh"}
        assert session.swap_credential(fresh, row["version"]) is True
    assert vault.get(credential.id).status_reason == "fresh"
    assert vault.get(credential.id).version == credential.version + 1
