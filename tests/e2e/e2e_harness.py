"""The end-to-end world: a sandbox on 127.0.0.1, a vault, and a Connector signed in through it.

The connector talks to the sandbox over real sockets (no transport injected), with
``allow_sandbox=True``, exactly as an engine would after a person picked the sandbox URL. Sandbox and
connector share one :class:`ManualClock`, so a test moves time (token expiry, rate windows) by
saying so. Every secret the sandbox hands out or receives passes through :class:`Recorder`, which
registers it with the suite's secret scanner and counts what reached the "server".
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector.cli._callback import browser_get
from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.testing import assert_no_secrets, register_secret
from exact_connector.testing.scanner import register_answer, register_sent
from exact_connector.vault import Credential, Vault
from exact_connector.vault.sealing import KeyRing, generate_key

DIVISION = 100001
UNGRANTED_DIVISION = 999_999
TIME_TRANSACTIONS = "project/TimeTransactions"
MISSING_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
ACTIONS = (
    "create_project_time_transaction",
    "update_project_time_transaction",
    "delete_endpoint_record",
    "list_or_get_endpoint",
)

# -- a sandbox that reports what it saw -------------------------------------------------------------


class Recorder:
    """Wraps the sandbox: registers every secret that passes, counts API and token requests."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.api: list[tuple[str, str]] = []
        self.api_headers: list[httpx.Headers] = []  # of each REST request, in order
        self.token = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        register_sent(body)
        with self._lock:
            if request.url.path.startswith("/api/v1/"):
                self.api.append((request.method, request.url.path))
                self.api_headers.append(request.headers)
            elif request.url.path == "/api/oauth2/token":
                self.token += 1
        response = self.sandbox(request)
        register_answer(request.url.path, response)
        return response

    def reset(self) -> None:
        """Forget what was seen so far (sign-in and Test Connect traffic)."""
        with self._lock:
            self.api.clear()
            self.api_headers.clear()
            self.token = 0

    def api_calls(self, method: str | None = None) -> int:
        """REST requests received (optionally of one method)."""
        with self._lock:
            return sum(1 for seen, _ in self.api if method is None or seen == method)


# -- the world ---------------------------------------------------------------------------------------


@dataclass
class World:
    """One sandbox served on loopback, one vault, one connector, one active credential."""

    clock: ManualClock
    sb: Sandbox
    recorder: Recorder
    base_url: str
    connector: Connector
    credential_id: str

    @property
    def credential(self) -> Credential:
        return self.connector.credentials.get(self.credential_id)

    def run(self, action: str, inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
        """``Connector.execute``; the envelope must survive JSON and leak no secret."""
        result = self.connector.execute(action, self.credential_id, inputs, **options)
        assert_no_secrets(json.dumps(result), "the result envelope")
        return result

    def sign_in(self) -> Credential:
        """The authorization-code flow, the test playing the browser (the sandbox auto-consents)."""
        url = self.connector.authorization_url(self.credential_id, "e2e-state-0001")
        query = parse_qs(urlsplit(consent_redirect(url)).query)
        return self.connector.complete_authorization(
            self.credential_id, query["code"][0], query["state"][0]
        )

    # -- records, read straight from the sandbox (no API call) ---------------------------------------

    def time_transaction(self, index: int = 0) -> dict[str, Any]:
        """A seeded time transaction of the division."""
        return self.sb.records(DIVISION, TIME_TRANSACTIONS)[index]

    def count(self, endpoint: str = TIME_TRANSACTIONS) -> int:
        return self.sb.count(DIVISION, endpoint)

    def lookup_ids(self) -> dict[str, str]:
        """A project, an hour type and an employee of the division (for a new time transaction)."""
        hour_type = next(r for r in self.sb.records(DIVISION, "logistics/Items") if r.get("IsTime"))
        return {
            "Project": self.sb.records(DIVISION, "project/Projects")[0]["ID"],
            "Item": hour_type["ID"],
            "Employee": self.sb.records(DIVISION, "payroll/Employees")[0]["ID"],
        }

    # -- valid inputs for every action ---------------------------------------------------------------

    def run_valid(self, action: str) -> dict[str, Any]:
        """:meth:`run` with :meth:`valid_inputs`."""
        return self.run(action, self.valid_inputs(action))

    def valid_inputs(self, action: str) -> dict[str, Any]:
        """An input each action accepts and Exact (the sandbox) carries out."""
        record = self.time_transaction()
        table: dict[str, dict[str, Any]] = {
            "create_project_time_transaction": {
                "division": DIVISION,
                "data": {**self.lookup_ids(), "Quantity": 1.5, "Notes": "e2e"},
            },
            "update_project_time_transaction": {
                "division": DIVISION,
                "id": record["ID"],
                "data": {"Quantity": 7.25, "Notes": "e2e update"},
            },
            "delete_endpoint_record": {
                "division": DIVISION,
                "endpoint": TIME_TRANSACTIONS,
                "id": record["ID"],
            },
            "list_or_get_endpoint": {
                "division": DIVISION,
                "endpoint": "crm/Accounts",
                "select": ["ID", "Code", "Name"],
                "limit": 5,
            },
        }
        return table[action]

    # -- what other clients of the same app do to the shared budgets and tokens ------------------------

    def other_client(self) -> httpx.Client:
        """Another client of the same app (a second worker or tool) with its own tokens.

        It talks to the sandbox in-process: only the connector's traffic goes through the
        recorder, so the recorder's counts stay the connector's.
        """
        tokens = self.sb.issue_tokens()
        for value in tokens.values():
            register_secret(value)
        return httpx.Client(
            transport=httpx.MockTransport(self.sb),
            base_url="https://start.exactonline.nl",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )

    def spend(self, scope: str) -> None:
        """Another client of the app uses up the division's ``minutely`` or ``daily`` calls."""
        header = {"minutely": "X-RateLimit-Minutely-Remaining", "daily": "X-RateLimit-Remaining"}
        with self.other_client() as other:
            while True:
                answer = other.get(f"/api/v1/{DIVISION}/system/Divisions", params={"$top": "1"})
                assert answer.status_code == 200, answer.text
                if answer.headers[header[scope]] == "0":
                    return
                if answer.headers["X-RateLimit-Minutely-Remaining"] == "0":
                    self.clock.advance(60.0)  # spending the day: carry on in the next minute

    def steal_refresh(self) -> None:
        """Another party redeems the stored refresh token, so the connector's copy is now used."""
        refresh = self.credential.refresh_token
        assert refresh is not None
        app = self.sb.demo_app
        with httpx.Client(transport=httpx.MockTransport(self.recorder)) as other:
            answer = other.post(
                "https://start.exactonline.nl/api/oauth2/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh.get_secret_value(),
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                },
            )
        assert answer.status_code == 200, answer.text

    def close(self) -> None:
        self.connector.vault.close()


@contextlib.contextmanager
def loopback_world(
    home: Path,
    *,
    clock: ManualClock | None = None,
    key: bytes | None = None,
    **sandbox_options: Any,
) -> Iterator[World]:
    """A signed-in, tested, active credential against a sandbox served on 127.0.0.1.

    ``key`` is the vault's master key (a fresh one if not given), for a test that opens the vault
    from another process; ``clock`` the shared clock (for one that should agree with the system's).
    """
    clock = clock or ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True, **sandbox_options)
    recorder = Recorder(sb)
    secret = register_secret(sb.demo_app.client_secret)
    with serve(recorder) as base_url:
        keys = KeyRing.from_bytes(key or generate_key())
        vault = Vault.open(home, keys=keys, clock=clock)
        connector = Connector(vault=vault, clock=clock, allow_sandbox=True)
        credential = connector.credentials.begin(
            {
                "connector_name": "e2e",
                "auth_type": "oauth2_authorization_code",
                "server_url": base_url,
                "client_id": sb.demo_app.client_id,
                "client_secret": secret,
                "redirect_uri": sb.demo_app.redirect_uris[0],
            }
        )
        world = World(clock, sb, recorder, base_url, connector, credential.id)
        try:
            world.sign_in()
            report = connector.test_connect(credential.id)
            assert report["ok"], report
            connector.credentials.activate(credential.id)
            recorder.reset()
            sb.reset_counters()
            yield world
        finally:
            world.close()


def consent_redirect(url: str) -> str:
    """Open the sign-in URL as a browser would and return where consent sends it."""
    status, location = browser_get(url)
    assert status == 302, status
    return str(location)


def assert_error(
    result: dict[str, Any],
    code: str,
    category: str,
    *,
    retryable: bool,
    api_calls: int,
) -> dict[str, Any]:
    """The envelope is a failure with this code, category, retryability and call count."""
    assert result["ok"] is False, result
    assert "data" not in result
    error = result["error"]
    assert (error["code"], error["category"], error["retryable"]) == (code, category, retryable), (
        error
    )
    assert result["meta"]["api_calls"] == api_calls, result["meta"]
    assert error["message"] and error["hint"]
    return dict(error)


def assert_refused(result: dict[str, Any], code: str = "invalid_input") -> dict[str, Any]:
    """A user error found before any request: ``code``, not retryable, zero API calls."""
    return assert_error(result, code, "user", retryable=False, api_calls=0)
