"""The UI server tests' view of the app: the page's calls through httpx, and the person's
browser played through the sandbox's consent.

A module of its own, not the conftest, so that the tests import ``Ui`` by a name no other
directory's conftest shares (``pytest tests/ui tests/browser`` loads both conftests up front).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from exact_connector.cli._callback import browser_get
from exact_connector.cli.demo import SandboxWorkspace
from exact_connector.ui.guard import CSRF_HEADER


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
