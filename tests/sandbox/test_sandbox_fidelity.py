"""The sandbox against API-FACTS, where a review found it answering otherwise: a cost
transaction's deletion logged without its entity type, a webhook callback URL that is not https,
a subscription read back without its user. Each test failed on the code before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

HOST = "https://start.exactonline.nl"
DIVISION = 100001


def _client(sb: Sandbox, token: str) -> httpx.Client:
    return httpx.Client(
        transport=httpx.MockTransport(sb),
        base_url=HOST,
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sb(clock: ManualClock) -> Sandbox:
    # Small tables keep it cheap.
    return Sandbox(seed=1, clock=clock, rows=20)


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    with _client(sb, sb.issue_tokens()["access_token"]) as client:
        yield client


def _ids(api: httpx.Client, endpoint: str, select: str = "ID") -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/{DIVISION}/{endpoint}", params={"$select": select})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["d"]["results"])


def _sync(api: httpx.Client, endpoint: str, select: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, str] | None = {"$select": select, "$filter": "Timestamp gt 1"}
    url = f"/api/v1/{DIVISION}/{endpoint}"
    while True:
        answer = api.get(url, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()["d"]
        rows.extend(body["results"])
        if "__next" not in body:
            return rows
        url, params = body["__next"], None


# -- 1. sync/Project/TimeCostTransactions holds no cost transactions -------------------------------


def test_deleting_a_cost_transaction_logs_entity_type_14(api: httpx.Client) -> None:
    """API-FACTS "Sync feed": "Deletions: `sync/Deleted` (`Timestamp, DeletedBy, DeletedDate,
    Division, EntityKey, EntityType, ID`; EntityType codes, e.g. 2 Accounts, 14
    TimeCostTransactions, 21 Projects)".

    A cost transaction is a TimeCostTransaction, but the sandbox logs its deletion with EntityType
    null (only project/TimeTransactions is mapped to 14)."""
    key = _ids(api, "project/CostTransactions")[0]["ID"]
    gone = api.delete(f"/api/v1/{DIVISION}/project/CostTransactions(guid'{key}')")
    assert gone.status_code == 204, gone.text
    deleted = _sync(api, "sync/Deleted", "EntityKey,EntityType")
    row = next(r for r in deleted if r["EntityKey"] == key)
    assert row["EntityType"] == 14


# -- 2. the mandatory $filter is off by default ---------------------------------------------------


@pytest.fixture
def hooked(clock: ManualClock) -> Sandbox:
    # Every callback answers 200, so only the sandbox's own URL checks decide.
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    return Sandbox(seed=1, clock=clock, rows=5, webhook_transport=transport)


@pytest.mark.parametrize("callback", ["http://hooks.example/exact", "ftp://hooks.example/exact"])
def test_webhook_callback_must_be_https(hooked: Sandbox, callback: str) -> None:
    """API-FACTS "Webhooks": "Callback URLs must be https (pionect.nl/using-webhooks-from-exact)."

    The sandbox creates a subscription for any URL its validation POST reaches (201 here for
    plain http and even ftp on a public host name); only the real-HTTP transport's failure
    refuses non-http schemes by accident."""
    with _client(hooked, hooked.issue_tokens()["access_token"]) as api:
        answer = api.post(
            f"/api/v1/{DIVISION}/webhooks/WebhookSubscriptions",
            json={"CallbackURL": callback, "Topic": "Accounts"},
        )
    assert answer.status_code == 400, (answer.status_code, answer.text)


def test_webhook_subscription_reads_back_its_user(hooked: Sandbox) -> None:
    """API-FACTS "Webhooks": "read-back fields `ID, ClientID, Created, Creator, CreatorFullName,
    Description, Division, UserID`; per division and user".

    The sandbox fills ClientID and Creator but leaves UserID null."""
    with _client(hooked, hooked.issue_tokens()["access_token"]) as api:
        me = api.get("/api/v1/current/Me", params={"$select": "UserID"}).json()["d"]["results"][0]
        answer = api.post(
            f"/api/v1/{DIVISION}/webhooks/WebhookSubscriptions",
            json={"CallbackURL": "https://hooks.example/exact", "Topic": "Accounts"},
            headers={"Prefer": "return=representation"},
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["d"]["UserID"] == me["UserID"]


# -- 5. read/sync/Sync/SyncTimestamp ----------------------------------------------------------
