"""The engine API as an engine developer meets it: what a step returns, and when it may run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from actions_harness import Bench, signed_in_bench, time_inputs

from exact_connector import Connector, Credential
from exact_connector.exceptions import CredentialPending, InputError, VaultKeyError
from exact_connector.manifest import load_manifest

TIME_TRANSACTIONS = "project/TimeTransactions"


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A bench of its own: these tests add credentials and delete records."""
    with signed_in_bench(tmp_path / "vault") as made:
        yield made


def _begin(bench: Bench, scanner: ModuleType, name: str) -> Credential:
    app = bench.sb.demo_app
    return bench.connector.credentials.begin(
        {
            "connector_name": name,
            "auth_type": "oauth2_authorization_code",
            "server_url": "https://start.exactonline.nl",
            "client_id": app.client_id,
            "client_secret": scanner.register_secret(app.client_secret),
            "redirect_uri": app.redirect_uris[0],
        }
    )


def _sign_in(bench: Bench, scanner: ModuleType, credential: Credential) -> Credential:
    url = bench.connector.authorization_url(credential, "contract-state-1")
    consent = bench.sb(httpx.Request("GET", url))
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    return bench.connector.complete_authorization(
        credential, scanner.register_secret(code), "contract-state-1"
    )


def test_sign_in_stores_the_divisions(bench: Bench, scanner: ModuleType) -> None:
    """After complete_authorization the divisions are known: no Test Connect needed first."""
    credential = _sign_in(bench, scanner, _begin(bench, scanner, "fresh"))
    assert credential.allowed_divisions == tuple(bench.sb.divisions)
    assert credential.default_division in credential.allowed_divisions
    options = bench.connector.options("divisions", credential)
    assert [o["value"] for o in options] == list(bench.sb.divisions)


def test_a_pending_credential_runs_no_action(bench: Bench, scanner: ModuleType) -> None:
    """Signed in but never activated: execute answers credential_not_active and sends nothing."""
    credential = _sign_in(bench, scanner, _begin(bench, scanner, "unconfirmed"))
    assert credential.status == "pending"
    before = bench.calls
    inputs = {"division": bench.divisions[0], "endpoint": "crm/Accounts", "limit": 1}

    result = bench.connector.execute("list_or_get_endpoint", credential, inputs)

    assert result["ok"] is False
    assert result["error"]["code"] == "credential_not_active"
    assert result["error"]["category"] == "config"
    assert "exact-connector" not in result["error"]["hint"]  # library hints name no CLI command
    assert bench.calls == before
    bench.connector.credentials.activate(credential)
    assert bench.connector.execute("list_or_get_endpoint", credential, inputs)["ok"] is True


def test_adding_a_pending_name_again_says_to_finish_its_sign_in(
    bench: Bench, scanner: ModuleType
) -> None:
    """An aborted sign-in left the name pending: the error is credential_pending, not a dead end."""
    _begin(bench, scanner, "aborted")
    with pytest.raises(CredentialPending) as caught:
        _begin(bench, scanner, "aborted")
    assert caught.value.code == "credential_pending"
    assert "re-authorize" in caught.value.hint


def test_every_write_returns_its_id_at_the_top(bench: Bench) -> None:
    """create, update and delete each return ``id``, so steps chain without per-action code."""
    execute = bench.connector.execute
    created = execute("create_project_time_transaction", bench.credential_id, time_inputs(bench))
    assert created["ok"], created
    new_id = created["data"]["id"]
    assert created["data"]["created"] is True
    assert created["data"]["record"]["ID"] == new_id
    division = bench.divisions[0]
    updated = execute(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": division, "id": new_id, "data": {"Quantity": 2}},
    )
    deleted = execute(
        "delete_endpoint_record",
        bench.credential_id,
        {"division": division, "endpoint": TIME_TRANSACTIONS, "id": new_id},
    )
    assert updated["data"]["id"] == deleted["data"]["id"] == new_id
    assert deleted["data"] == {"id": new_id, "endpoint": TIME_TRANSACTIONS, "deleted": True}


def test_a_second_delete_succeeds_as_already_absent(bench: Bench) -> None:
    """The action is declared idempotent: a retried delete of a gone record is a success."""
    division = bench.divisions[0]
    record = bench.sb.records(division, TIME_TRANSACTIONS)[0]
    inputs = {"division": division, "endpoint": TIME_TRANSACTIONS, "id": record["ID"]}
    first = bench.connector.execute("delete_endpoint_record", bench.credential_id, inputs)
    second = bench.connector.execute("delete_endpoint_record", bench.credential_id, inputs)
    assert first["ok"] and "already_absent" not in first["data"]
    assert second["ok"] is True
    assert second["data"]["already_absent"] is True
    assert load_manifest().action("delete_endpoint_record").idempotent is True


def test_actions_are_listed_in_the_products_order() -> None:
    """The manifest lists the actions as the product does, not alphabetically."""
    assert [a.id for a in load_manifest().actions] == [
        "create_project_time_transaction",
        "update_project_time_transaction",
        "delete_endpoint_record",
        "list_or_get_endpoint",
    ]


def test_an_unfilled_division_placeholder_is_an_input_error(bench: Bench) -> None:
    """``records?…&division={division}`` without a division never falls back to the default."""
    with pytest.raises(InputError) as caught:
        bench.connector.options(
            "records?endpoint={endpoint}&division={division}",
            bench.credential_id,
            endpoint="crm/Accounts",
        )
    assert caught.value.errors[0]["path"] == "$.division"
    chosen = bench.connector.options(
        "records?endpoint={endpoint}&division={division}",
        bench.credential_id,
        endpoint="crm/Accounts",
        division=bench.divisions[1],
    )
    accounts = {r["ID"] for r in bench.sb.records(bench.divisions[1], "crm/Accounts")}
    assert chosen and {o["value"] for o in chosen} <= accounts


def test_open_with_create_makes_the_vault_and_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Connector.open(create=True)`` needs no CLI step first; without it a keyless home fails."""
    monkeypatch.delenv("EXACT_CONNECTOR_VAULT_KEY", raising=False)
    with pytest.raises(VaultKeyError):
        Connector.open(tmp_path / "none")
    connector = Connector.open(tmp_path / "new", create=True, allow_sandbox=True)
    try:
        assert connector.allow_sandbox is True
        assert connector.credentials.list() == []
        assert (tmp_path / "new").is_dir()
    finally:
        connector.vault.close()
    again = Connector.open(tmp_path / "new")  # the key file it wrote opens it again
    again.vault.close()


class _Gate(httpx.BaseTransport):
    """The sandbox, holding the first page of a list until released: a step caught mid-list."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.started = threading.Event()
        self.release = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "crm/Accounts" in str(request.url) and not self.started.is_set():
            self.started.set()
            self.release.wait(10)
        return self.inner.handle_request(request)


def test_closing_the_connector_lets_a_running_step_finish(tmp_path: Path) -> None:
    """An engine shutting down (or recycling the plugin) closes the Connector while a worker's
    step runs. The step's next call used to meet a closed client, and execute raised
    RuntimeError instead of returning an envelope; the step now ends on the connections it
    started on, which close when it is done. Later steps open new ones."""
    with signed_in_bench(tmp_path / "vault") as bench:
        gate = _Gate(httpx.MockTransport(bench.sb))
        connector = Connector(vault=bench.vault, transport=gate, clock=bench.clock)
        inputs = {
            "division": bench.divisions[0],
            "endpoint": "crm/Accounts",
            "limit": 150,  # three pages of 60
            "filter": "Name ne 'zz'",  # a filtered list reads the paged REST API
        }
        outcome: dict[str, Any] = {}

        def step() -> None:
            try:
                outcome["result"] = connector.execute(
                    "list_or_get_endpoint", bench.credential_id, inputs
                )
            except BaseException as error:  # what the engine's worker would meet
                outcome["raised"] = error

        worker = threading.Thread(target=step)
        worker.start()
        assert gate.started.wait(10)
        connector.close()
        gate.release.set()
        worker.join(10)
        assert "raised" not in outcome, repr(outcome.get("raised"))
        assert outcome["result"]["ok"] is True, outcome["result"]
        assert len(outcome["result"]["data"]["records"]) == 150
        again = connector.execute(
            "list_or_get_endpoint", bench.credential_id, {**inputs, "limit": 5}
        )
        assert again["ok"] is True
        connector.close()
