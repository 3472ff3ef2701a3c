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

    def consent(self, authorize_url: str) -> str:
        """Play the person's browser through the sandbox's consent; the callback address it is
        sent back to (path and query), not visited yet."""
        status, location = browser_get(authorize_url)
        assert status == 302, status
        back = urlsplit(str(location))
        assert f"{back.scheme}://{back.netloc}" == self.origin
        return f"{back.path}?{back.query}"

    def sign_in(self, authorize_url: str) -> str:
        """Consent and come back to the callback; the page it lands on."""
        answer = self.client.get(self.consent(authorize_url), follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"])

    def begin(self, name: str) -> dict[str, Any]:
        """A credential stored through the page's API, its sign-in not started: the answer."""
        form = self.client.get("/api/forms/credentials").json()
        added = self.post(
            "/api/credentials", {"formData": {**form["formData"], "connector_name": name}}
        )
        assert added.status_code == 200, added.text
        return dict(added.json())

    def add(self, name: str) -> dict[str, Any]:
        """A credential stored and signed in through the page's API; its description."""
        added = self.begin(name)
        self.sign_in(added["authorize_url"])
        return dict(added["credential"])

    def deny(self, name: str) -> dict[str, Any]:
        """A credential stored, then its consent denied (Exact's error redirect to the
        callback); its description as the Vault page reads it then."""
        state = self.begin(name)["authorize_url"].split("state=")[1].split("&")[0]
        self.client.get(f"/callback?error=access_denied&state={state}", follow_redirects=False)
        (credential,) = self.client.get("/api/state").json()["credentials"]
        return dict(credential)
