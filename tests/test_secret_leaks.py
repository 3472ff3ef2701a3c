"""Secrets that reached people and engines (a review reproduced each; each test failed on the
code before): a PostgreSQL password holding an unencoded ``/`` (libpq then reads part of it as the
port and the database), a vault key list split at the wrong ``:``, an access token echoed by a
server or gateway in an error answer, and the database URL inherited by the sign-in's browser."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exact_connector._postgres import describe_url
from exact_connector.cli import connect as cli_connect
from exact_connector.exceptions import ExactConnectorError
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.testing import EXACT, _sign_in
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

# A password with an unencoded "/" (README of check_url's hint: it should be %2F). libpq's URL
# parser reads "vault" as the host and "Pa55" as the port, so nothing is resolved over the network
# (the port is not a number: getaddrinfo fails on the service name before any host lookup).
PASSWORD = "Pa55/w0rd-Xyz-7Q"
URL = f"postgresql://vault:{PASSWORD}@db.internal.example/vault"


def test_describe_url_never_repeats_a_password_holding_a_slash() -> None:
    assert PASSWORD not in describe_url(URL)


def test_vault_open_error_message_never_holds_the_postgres_password(tmp_path: Path) -> None:
    ring = KeyRing.from_bytes(generate_key())
    with pytest.raises(ExactConnectorError) as caught:
        Vault.open(tmp_path / "home", database_url=URL, keys=ring, busy_timeout=0.5)
    error = caught.value
    shown = " ".join([str(error), repr(error), repr(error.to_dict())])
    assert PASSWORD not in shown, "the PostgreSQL password is in the vault error's message"


def _credentials_list(home: Path, **env: str) -> str:
    """``exact-connector --home HOME credentials list --json`` with ``env`` set, expected to fail:
    what it printed, stdout and stderr."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    argv = ["--home", str(home), "credentials", "list", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "exact_connector", *argv],
        capture_output=True,
        text=True,
        env={**environment, **env},
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_cli_stderr_never_holds_the_postgres_password(tmp_path: Path) -> None:
    key = base64.b64encode(generate_key()).decode()
    printed = _credentials_list(
        tmp_path / "home", EXACT_CONNECTOR_DATABASE_URL=URL, EXACT_CONNECTOR_VAULT_KEY=key
    )
    assert PASSWORD not in printed, "the PostgreSQL password is on the CLI output"


def test_vault_key_env_with_colon_separated_keys_never_echoes_a_key(tmp_path: Path) -> None:
    """EXACT_CONNECTOR_VAULT_KEY="NEW:OLD" (colon-separated like PATH) put the NEW key,
    base64, verbatim into the error message as a 'master key id'."""
    first = base64.b64encode(generate_key()).decode()
    second = base64.b64encode(generate_key()).decode()
    with pytest.raises(ExactConnectorError) as caught:
        KeyRing.parse(f"{first}:{second}", source="EXACT_CONNECTOR_VAULT_KEY")
    error = caught.value
    shown = " ".join([str(error), repr(error), repr(error.to_dict())])
    assert first not in shown, "a vault master key is in the error message"


def test_cli_stderr_never_holds_the_vault_key(tmp_path: Path) -> None:
    first = base64.b64encode(generate_key()).decode()
    second = base64.b64encode(generate_key()).decode()
    printed = _credentials_list(tmp_path / "home", EXACT_CONNECTOR_VAULT_KEY=f"{first}:{second}")
    assert first not in printed, "the vault key is on the CLI output"


def test_test_connect_report_never_holds_the_postgres_password_of_the_rate_governor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite vault, the rate governor on PostgreSQL (EXACT_CONNECTOR_DATABASE_URL): the Test
    Connect report an engine or the UI shows names the governor's database with its password."""
    sandbox = Sandbox(auto_consent=True)
    vault = Vault.open(tmp_path / "v", keys=KeyRing.from_bytes(generate_key()), database_url="")
    monkeypatch.setenv("EXACT_CONNECTOR_DATABASE_URL", URL)
    connector = Connector(vault=vault, transport=httpx.MockTransport(sandbox))
    app = sandbox.demo_app
    cred = connector.credentials.begin(
        {
            "connector_name": "pg",
            "auth_type": "oauth2_authorization_code",
            "server_url": "https://start.exactonline.nl",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": app.redirect_uris[0],
        }
    )
    state = "s-" + cred.id
    location = sandbox(httpx.Request("GET", connector.authorization_url(cred, state)))
    code = parse_qs(urlsplit(location.headers["location"]).query)["code"][0]
    connector.complete_authorization(cred, code, state)
    report = connector.test_connect(cred.id)
    connector.close()
    vault.close()
    assert PASSWORD not in json.dumps(report), (
        "the PostgreSQL password is in the Test Connect report"
    )


def test_open_browser_child_environment_never_holds_the_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, str] = {}

    def fake_open(url: str) -> bool:  # webbrowser.open starts the browser with os.environ
        seen.update(os.environ)
        return True

    monkeypatch.setenv("EXACT_CONNECTOR_DATABASE_URL", URL)
    monkeypatch.setenv("EXACT_CONNECTOR_VAULT_KEY", "not-used-here")
    monkeypatch.setattr(webbrowser, "open", fake_open)
    cli_connect.open_browser("https://start.exactonline.nl/api/oauth2/auth?client_id=x")
    assert "EXACT_CONNECTOR_VAULT_KEY" not in seen  # the key is taken out (J9) ...
    assert not any(PASSWORD in value for value in seen.values()), (
        "the browser process inherits the PostgreSQL password"  # ... the database URL is not
    )


def _signed_in(
    tmp_path: Path, handler: Callable[[httpx.Request], httpx.Response]
) -> tuple[Connector, str, str, dict[str, bool]]:
    sandbox = Sandbox(auto_consent=True, clock=None)
    echo = {"on": False}

    def transport(request: httpx.Request) -> httpx.Response:
        if echo["on"] and request.url.path.startswith("/api/v1/"):
            return handler(request)
        return sandbox(request)

    vault = Vault.open(tmp_path / "v", keys=KeyRing.from_bytes(generate_key()))
    connector = Connector(vault=vault, transport=httpx.MockTransport(transport))
    cred = _sign_in(sandbox, connector, EXACT, "echo")
    access = connector.credentials.get(cred).access_token
    assert access is not None
    return connector, cred, access.get_secret_value(), echo


def _echo_body(request: httpx.Request) -> httpx.Response:
    # A gateway in front of the API answering 400 with the request it refused, headers included.
    said = f"Request rejected: Authorization: {request.headers['authorization']}"
    return httpx.Response(400, json={"error": {"code": "", "message": {"lang": "", "value": said}}})


def _echo_reason(request: httpx.Request) -> httpx.Response:
    return httpx.Response(403, headers={"Reason": request.headers["authorization"]})


def test_execute_envelope_never_holds_a_bearer_token_echoed_in_the_answer(tmp_path: Path) -> None:
    connector, cid, token, echo = _signed_in(tmp_path, _echo_body)
    echo["on"] = True
    result = connector.execute(
        "list_or_get_endpoint", cid, {"division": 100001, "endpoint": "crm/Accounts", "limit": 1}
    )
    assert not result["ok"]
    text = json.dumps(result, default=str)
    assert token not in text, "the access token is in the ActionResult error envelope"


def test_test_connect_report_never_holds_a_bearer_token_echoed_in_the_answer(
    tmp_path: Path,
) -> None:
    connector, cid, token, echo = _signed_in(tmp_path, _echo_body)
    echo["on"] = True
    report = connector.test_connect(cid)
    assert not report["ok"]
    assert token not in json.dumps(report, default=str), "the access token is in the report"


def test_a_reason_header_echo_never_reaches_error_details(tmp_path: Path) -> None:
    connector, cid, token, echo = _signed_in(tmp_path, _echo_reason)
    echo["on"] = True
    result = connector.execute(
        "list_or_get_endpoint", cid, {"division": 100001, "endpoint": "crm/Accounts", "limit": 1}
    )
    assert not result["ok"]
    assert token not in json.dumps(result, default=str), "the access token is in error.details"
