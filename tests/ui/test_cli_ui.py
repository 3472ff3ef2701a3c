"""Specification of the ``exact-connector ui`` command: which workspace it serves, and what it
says when the page is not built. The server itself is replaced by a recorder here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exact_connector.cli import main
from exact_connector.vault import Vault


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the command would serve, instead of serving it."""
    apps: list[Any] = []
    monkeypatch.setattr(
        "exact_connector.ui.server.serve_forever", lambda app, sock: apps.append(app)
    )
    return apps


def test_sandbox_is_the_default_without_a_vault(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """No vault at --home: the sandbox and a temporary vault, and the address is printed."""
    assert main(["ui", "--home", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "sandbox on http://127.0.0.1:" in out
    assert "Open http://127.0.0.1:" in out
    assert len(served) == 1
    assert not (tmp_path / "none").exists()


def test_an_existing_vault_is_served(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """With a vault at --home, that vault is what the page shows."""
    Vault.init(tmp_path / "vault")
    assert main(["ui", "--home", str(tmp_path / "vault")]) == 0
    assert f"vault {tmp_path / 'vault'}, workspace default" in capsys.readouterr().out
    assert len(served) == 1


def test_without_the_page_built_it_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, served: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """No bundle (no Node.js when installed): exit 4 with the npm command, no traceback."""
    monkeypatch.setattr("exact_connector.ui.assets.bundle_dir", lambda: None)
    assert main(["ui", "--sandbox"]) == 4
    err = capsys.readouterr().err
    assert "npm ci && npm run build" in err
    assert "Traceback" not in err
    assert served == []
