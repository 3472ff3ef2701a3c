"""Fixtures for the browser tests: one Chromium for the module, the form host built, and a
signed-in connector on a sandbox served on 127.0.0.1.

``EXACT_CONNECTOR_SKIP_BROWSER=1`` (or ``-m "not browser"``) skips them on a machine without
Chromium; otherwise a missing Chromium or npm fails them, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from browser_harness import CHROMIUM, CHROMIUM_FLAGS, World, build_bundle
from playwright.sync_api import Browser, sync_playwright

from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

# The vault tests' harness tampers a stored record the way those tests do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vault"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is a browser test; the developer's switch skips them all."""
    skip = os.environ.get("EXACT_CONNECTOR_SKIP_BROWSER") == "1"
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if skip:
                item.add_marker(pytest.mark.skip(reason="EXACT_CONNECTOR_SKIP_BROWSER=1"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, one for the module; the form host built for it.

    Not session-wide: Playwright's sync API holds an event loop on the main thread while it
    runs, and other modules' tests call ``asyncio.run``.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: apt-get install chromium (or set "
            "EXACT_CONNECTOR_SKIP_BROWSER=1 to skip the browser tests on this machine)"
        )
    try:
        build_bundle()
    except RuntimeError as error:
        pytest.fail(str(error))
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, scanner: ModuleType) -> Iterator[World]:
    """One sandbox and one vault for the session; the sandbox and connector share a clock."""
    clock = ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True)
    scanner.register_secret(sb.demo_app.client_secret)
    home = tmp_path_factory.mktemp("browser") / "vault"
    with serve(sb) as base_url:
        vault = Vault.open(home, keys=KeyRing.from_bytes(generate_key()), clock=clock)
        connector = Connector(vault=vault, clock=clock, allow_sandbox=True)
        made = World(sb, base_url, connector, "")
        app = sb.demo_app
        credential = connector.credentials.begin(
            {
                "connector_name": "browser tests",
                "auth_type": "oauth2_authorization_code",
                "server_url": base_url,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
            }
        )
        made.sign_in(credential.id, scanner)
        made.credential = credential.id
        try:
            yield made
        finally:
            vault.close()
