"""The in-process bench for the action tests: one signed-in connector on a sandbox.

The connector's transport is the sandbox itself (``httpx.MockTransport``) behind a counter, so a
test can prove that an input was refused before anything reached the network. The sandbox runs
without limits and on a :class:`ManualClock`; the connector's own rate governor stays on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def root_conftest(config: pytest.Config) -> ModuleType:
    """The lead's conftest module as pytest loaded it: its secret set is the one scanned."""
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "").resolve() == _ROOT_CONFTEST:
            return plugin  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded; the secret scanner would be silent")


class Counting:
    """The sandbox behind a counter of every request that reached it (API and OAuth)."""

    def __init__(self, sandbox: Sandbox, scanner: ModuleType) -> None:
        self.sandbox = sandbox
        self.scanner = scanner
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls += 1
        response = self.sandbox(request)
        if request.url.path == "/api/oauth2/token":
            for name in ("access_token", "refresh_token"):
                self.scanner.register_secret(response.json().get(name) or "")
        return response


@dataclass
class Bench:
    """A signed-in, active credential on an in-process sandbox."""

    clock: ManualClock
    sb: Sandbox
    transport: Counting
    connector: Connector
    credential_id: str

    @property
    def divisions(self) -> list[int]:
        return list(self.connector.credentials.get(self.credential_id).allowed_divisions)


@contextlib.contextmanager
def signed_in_bench(home: Path, config: pytest.Config) -> Iterator[Bench]:
    """A sandbox without limits, a vault in ``home``, and an active credential signed in."""
    scanner = root_conftest(config)
    clock = ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True, limits=False)
    counting = Counting(sb, scanner)
    vault = Vault.open(home, keys=KeyRing.from_bytes(generate_key()), clock=clock)
    connector = Connector(
        vault=vault, transport=httpx.MockTransport(counting), clock=clock, allow_sandbox=False
    )
    app = sb.demo_app
    credential = connector.credentials.begin(
        {
            "connector_name": "properties",
            "auth_type": "oauth2_authorization_code",
            "server_url": "https://start.exactonline.nl",
            "client_id": app.client_id,
            "client_secret": scanner.register_secret(app.client_secret),
            "redirect_uri": app.redirect_uris[0],
        }
    )
    consent = sb(httpx.Request("GET", connector.authorization_url(credential, "prop-state-1")))
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    connector.complete_authorization(credential, scanner.register_secret(code), "prop-state-1")
    assert connector.test_connect(credential)["ok"]
    connector.credentials.activate(credential)
    try:
        yield Bench(clock, sb, counting, connector, credential.id)
    finally:
        vault.close()
