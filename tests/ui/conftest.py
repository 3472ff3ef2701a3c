"""Fixtures for the UI server tests: the app served by uvicorn on loopback in front of a sandbox,
called through httpx as the page calls it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ui_harness import Ui

from exact_connector import redaction
from exact_connector.cli.demo import sandbox_workspace
from exact_connector.ui import UiSettings, create_app
from exact_connector.ui.server import bind, running

# The vault tests' harness tampers a stored record the way those tests do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vault"))


@pytest.fixture
def ui() -> Iterator[Ui]:
    """A fresh sandbox, vault and app for each test (consent is automatic here)."""
    sock = bind()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with sandbox_workspace(f"{origin}/callback", auto_consent=True) as workspace:
        redaction.remember(workspace.app.client_secret)  # the suite's scanner watches it
        settings = UiSettings(
            origin=origin,
            token="test-token-" + "x" * 20,
            sandbox=workspace.credential_form("Sandbox company"),
        )
        app = create_app(workspace.connector, settings)
        with running(app, sock), httpx.Client(base_url=origin) as client:
            yield Ui(client, workspace, origin, settings.token)
    sock.close()
