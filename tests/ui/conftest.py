"""Fixtures for the UI server tests: the app served by uvicorn on loopback in front of a sandbox,
called through httpx as the page calls it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from exact_connector import redaction
from exact_connector.cli._callback import browser_get
from exact_connector.cli.demo import SandboxWorkspace, sandbox_workspace
from exact_connector.ui import UiSettings, create_app
from exact_connector.ui.guard import CSRF_HEADER
from exact_connector.ui.server import bind, running


class Ui:
    """The app under test, the sandbox behind it, and the page's token."""

    def __init__(
        self, client: httpx.Client, workspace: SandboxWorkspace, origin: str, token: str
    ) -> None:
        self.client = client
        self.workspace = workspace
        self.origin = origin
        self.token = token

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, json=body, headers={CSRF_HEADER: self.token})

    def sign_in(self, authorize_url: str) -> str:
        """Play the person's browser through the sandbox's consent; the page it lands on."""
        status, location = browser_get(authorize_url)
        assert status == 302, status
        back = urlsplit(str(location))
        assert f"{back.scheme}://{back.netloc}" == self.origin
        answer = self.client.get(f"{back.path}?{back.query}", follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"])

    def add(self, name: str) -> dict[str, Any]:
        """A credential stored and signed in through the page's API; its description."""
        form = self.client.get("/api/forms/credentials").json()
        added = self.post(
            "/api/credentials", {"formData": {**form["formData"], "connector_name": name}}
        )
        assert added.status_code == 200, added.text
        self.sign_in(added.json()["authorize_url"])
        return dict(added.json()["credential"])


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
