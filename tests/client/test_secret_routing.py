"""H3 and the secret scanner: where each secret may travel, and proof the scanner catches leaks."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from client_harness import (
    DIVISION,
    World,
    advance,
    create_account,
    endpoint,
    register_secret,
)

from exact_connector.odata import key_literal
from exact_connector.pagination import Pager
from exact_connector.testconnect import run_test_connect
from exact_connector.testing import scanner

LEAD_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _full_flow(world: World) -> None:
    """Refresh, Test Connect, a three-page list, a create and a delete."""
    advance(world.clock, 590)
    client = world.client()
    assert run_test_connect(client, world.vault).ok
    accounts = endpoint()
    url = client.url(accounts, DIVISION, params={"$select": "ID"})
    assert len(list(Pager(client, accounts, DIVISION, url))) == 150
    created = create_account(client, "H3").json()["d"]
    record = client.url(accounts, DIVISION, key_literal(created["ID"], "Edm.Guid"))
    client.request("DELETE", record, endpoint=accounts, division=DIVISION)


def _carriers(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""), quote_plus(secret))


def _assert_routing(world: World, initial: dict[str, str]) -> None:
    host = world.app.seen[0].url.host
    port = world.app.seen[0].url.port
    refresh = {initial["refresh_token"]} | {v for k, v in world.app.issued if k == "refresh_token"}
    access = {initial["access_token"]} | {v for k, v in world.app.issued if k == "access_token"}
    client_secret = world.sb.demo_app.client_secret
    assert len(refresh) >= 2 and len(access) >= 2, "the flow included a refresh"
    token_posts = 0
    for seen in world.app.seen:
        assert (seen.url.host, seen.url.port) == (host, port)
        url, headers = str(seen.url), " ".join(f"{k}: {v}" for k, v in seen.headers.items())
        body = seen.body.decode("utf-8", "replace")
        is_token_call = seen.method == "POST" and seen.path == "/api/oauth2/token"
        token_posts += is_token_call
        for secret in (client_secret, *refresh):
            for carrier in _carriers(secret):
                assert carrier not in url and carrier not in headers
                if not is_token_call:
                    assert carrier not in body
        if is_token_call:
            assert seen.form["client_secret"] == client_secret
        for token in access:
            assert all(carrier not in url + body for carrier in _carriers(token))
            if seen.path.startswith("/api/oauth2/"):
                assert token not in headers
    assert token_posts == world.sb.counters.token_calls >= 1


def _initial(world: World) -> dict[str, str]:
    credential = world.credential()
    assert credential.access_token is not None and credential.refresh_token is not None
    return {
        "access_token": credential.access_token.get_secret_value(),
        "refresh_token": credential.refresh_token.get_secret_value(),
    }


def test_h3_client_credentials_only_go_to_the_token_endpoint(world: World) -> None:
    """The client secret and refresh tokens only in token POST bodies; access tokens only as bearer."""
    initial = _initial(world)
    _full_flow(world)
    _assert_routing(world, initial)


@pytest.mark.e2e
def test_h3_over_loopback_as_the_server_received_it(wire: World) -> None:
    """The same, asserted on what the loopback sandbox actually received."""
    initial = _initial(wire)
    _full_flow(wire)
    _assert_routing(wire, initial)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v1/100001/crm/Accounts",
        "http://start.exactonline.nl/api/v1/100001/crm/Accounts",
        "https://start.exactonline.nl/api/v1/../oauth2/x",
        "https://start.exactonline.nl/other",
    ],
)
def test_h4_a_foreign_url_handed_to_the_client_is_blocked_before_sending(
    world: World, url: str
) -> None:
    """Defence in depth: request() refuses a URL off the credential's origin; nothing is sent."""
    import httpx

    from exact_connector.exceptions import HostNotAllowed

    with pytest.raises(HostNotAllowed):
        world.client().request("GET", httpx.URL(url), endpoint=endpoint(), division=DIVISION)
    assert world.app.seen == []


# -- the scanner ------------------------------------------------------------------------------------


def test_the_harness_registers_with_the_scanner_that_runs() -> None:
    """register_secret, however it was imported, reaches the package's one scanner registry."""
    secret = register_secret("scanner-probe-Zq9!x/+=")
    assert scanner.find_secrets(f"prefix {secret} suffix") == ["scan…"]
    copy = sys.modules.get("tests.conftest")
    assert copy is None or copy.find_secrets(secret) == ["scan…"]


@pytest.mark.parametrize("form", ["raw", "base64", "hex", "url", "plus"])
def test_the_scanner_finds_a_secret_in_every_form(form: str) -> None:
    """Raw, base64, hex and url-encoded copies of a registered secret are all findings."""
    import base64

    secret = register_secret("leak-check Zq9/+=&?é")
    encoded = {
        "raw": secret,
        "base64": base64.b64encode(secret.encode()).decode(),
        "hex": secret.encode().hex(),
        "url": quote(secret, safe=""),
        "plus": quote_plus(secret),
    }[form]
    with pytest.raises(AssertionError, match="leaked into log records"):
        scanner.assert_no_secrets(f"Authorization: {encoded}", "log records")


def test_the_scanner_collector_catches_a_logged_secret() -> None:
    """A record formatted by the scanner's own handler, holding a secret, fails the scan."""
    secret = register_secret("logged-secret-Xy7#")
    collector = scanner.LogCollector()
    collector.emit(logging.makeLogRecord({"name": "engine", "msg": "got %s", "args": (secret,)}))
    with pytest.raises(AssertionError):
        scanner.assert_no_secrets("\n".join(collector.texts), "log records")


def _run_leaking_suite(directory: Path) -> subprocess.CompletedProcess[str]:
    """Run a copy of the suite's conftest over one leaking and one clean test."""
    (directory / "conftest.py").write_text(LEAD_CONFTEST.read_text("utf-8"), "utf-8")
    (directory / "test_leak.py").write_text(
        textwrap.dedent(
            """
            import logging
            from conftest import register_secret

            def test_leaks():
                logging.getLogger("engine").debug("got %s", register_secret("s3cr3t-token-1"))

            def test_clean():
                register_secret("s3cr3t-token-2")
                logging.getLogger("engine").debug("nothing to see")
            """
        ),
        "utf-8",
    )
    return subprocess.run(  # our own interpreter on our own files
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=120,
        check=False,
    )


def test_the_autouse_scanner_fails_a_test_that_logs_a_secret(tmp_path: Path) -> None:
    """End to end: a copy of the suite's conftest fails (only) the test that logs a secret."""
    result = _run_leaking_suite(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "2 passed, 1 error" in result.stdout  # the leaking test errors at teardown
    assert "ERROR test_leak.py::test_leaks - AssertionError: secret(s) ['s3cr…']" in result.stdout
    assert "test_clean" not in result.stdout


def test_a_scanner_failure_report_does_not_print_the_secret(tmp_path: Path) -> None:
    """The failure names a prefix of the secret, never the secret itself."""
    result = _run_leaking_suite(tmp_path)
    assert result.returncode == 1
    assert "s3cr3t-token-1" not in result.stdout
