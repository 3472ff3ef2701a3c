"""Test support shipped with the package: a signed-in connector on a sandbox, and a secret scanner.

Like ``httpx.MockTransport`` or ``singer_sdk.testing``, this is what an engine's own tests (and
this project's) use instead of wiring a world by hand::

    from exact_connector.sandbox import Sandbox
    from exact_connector.testing import connect

    sandbox = Sandbox(auto_consent=True)
    with connect(sandbox, tmp_path / "vault") as connected:
        connected.connector.run("read_records", ..., credential=connected.credential_id)

``via="memory"`` runs the sandbox in-process (``httpx.MockTransport``); ``via="loopback"`` serves
it on a loopback port, so every request crosses a real socket. Every secret the sandbox mints is
already registered with the scanner (:mod:`exact_connector.testing.scanner`); the pytest plugin
(:mod:`exact_connector.testing.plugin`) offers it as the ``secret_scanner`` fixture.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector.clock import Clock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.testing.scanner import assert_no_secrets, find_secrets, register_secret
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

__all__ = ["Connected", "assert_no_secrets", "connect", "find_secrets", "register_secret"]

#: The Server URL of an in-process connection: Exact's own host, answered by the sandbox.
EXACT = "https://start.exactonline.nl"


@dataclass
class Connected:
    """A signed-in, Test-Connected, active credential on a sandbox."""

    sandbox: Sandbox
    connector: Connector
    vault: Vault
    credential_id: str
    server_url: str

    @property
    def divisions(self) -> list[int]:
        """The divisions Test Connect found for the credential."""
        return list(self.connector.credentials.get(self.credential_id).allowed_divisions)


@contextlib.contextmanager
def connect(
    sandbox: Sandbox,
    home: str | os.PathLike[str],
    via: Literal["memory", "loopback"] = "memory",
    *,
    clock: Clock | None = None,
    name: str = "sandbox",
) -> Iterator[Connected]:
    """Sign in to ``sandbox`` (which must auto-consent) with a new vault in ``home``.

    The credential is created, authorized, Test-Connected (which must pass) and activated; the
    vault is closed and the loopback server stopped when the block ends.
    """
    clock = clock if clock is not None else sandbox.clock
    vault = Vault.open(Path(home), keys=KeyRing.from_bytes(generate_key()), clock=clock)
    with contextlib.ExitStack() as stack:
        stack.callback(vault.close)
        if via == "loopback":
            server_url = stack.enter_context(serve(sandbox))
            connector = Connector(vault=vault, clock=clock, allow_sandbox=True)
        else:
            server_url = EXACT
            transport = httpx.MockTransport(sandbox)
            connector = Connector(vault=vault, transport=transport, clock=clock)
        credential_id = _sign_in(sandbox, connector, server_url, name)
        yield Connected(sandbox, connector, vault, credential_id, server_url)


def _sign_in(sandbox: Sandbox, connector: Connector, server_url: str, name: str) -> str:
    app = sandbox.demo_app
    credential = connector.credentials.begin(
        {
            "connector_name": name,
            "auth_type": "oauth2_authorization_code",
            "server_url": server_url,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": app.redirect_uris[0],
        }
    )
    state = f"connect-{credential.id}"
    consent = sandbox(httpx.Request("GET", connector.authorization_url(credential, state)))
    codes = parse_qs(urlsplit(consent.headers.get("location", "")).query).get("code")
    if not codes:
        raise ValueError("connect() needs a sandbox made with auto_consent")
    connector.complete_authorization(credential, codes[0], state)
    report = connector.test_connect(credential)
    if not report["ok"]:
        raise AssertionError(f"Test Connect failed on the sandbox: {report}")
    connector.credentials.activate(credential)
    return credential.id
