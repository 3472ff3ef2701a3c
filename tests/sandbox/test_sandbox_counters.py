"""Counters, the event log and the store helpers tests use to look behind the API."""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from sandbox_harness import DIVISION, client_for, refresh_call

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox, serve


def test_requests_are_counted_by_endpoint_id_and_status(api: httpx.Client, sb: Sandbox) -> None:
    """Canonical endpoint ids (any URL case), OAuth endpoints too."""
    api.get(f"/api/v1/{DIVISION}/crm/accounts", params={"$top": "1"})
    api.get(f"/api/v1/{DIVISION}/crm/Accounts(guid'00000000-0000-0000-0000-000000000000')")
    refresh_call(api, sb, "nope")
    assert sb.counters.requests == {
        ("crm/Accounts", 200): 1,
        ("crm/Accounts", 404): 1,
        ("oauth2/token", 400): 1,
    }
    assert sb.counters.calls("crm/accounts") == 2
    assert sb.counters.calls(status=400) == 1
    assert sb.counters.token_calls == 1


def test_reset_counters_zeroes_everything_in_place(api: httpx.Client, sb: Sandbox) -> None:
    """A reference taken before the reset sees the reset."""
    counters = sb.counters
    api.get("/api/v1/current/Me")
    sb.reset_counters()
    assert counters.calls() == 0 and counters.events == [] and sb.events == []
    api.get("/api/v1/current/Me")
    assert counters.calls("current/Me", 200) == 1


def test_401s_are_logged_with_the_token_they_carried(sb: Sandbox, clock: ManualClock) -> None:
    """An expired token's call shows up as "unauthorized" with its grant id."""
    tokens = sb.issue_tokens()
    clock.advance(600)
    with client_for(sb, tokens["access_token"]) as api:
        api.get("/api/v1/current/Me")
    assert [(e.kind, e.detail, e.ref) for e in sb.events][-1] == (
        "unauthorized",
        "GET current/Me",
        "G1-1",
    )


def test_the_error_budget_is_visible_per_scope(api: httpx.Client, sb: Sandbox) -> None:
    """ErrorBudget.errors() tells how close an endpoint is to its block."""
    for _ in range(3):
        api.get(f"/api/v1/{DIVISION}/crm/Accounts(guid'00000000-0000-0000-0000-000000000000')")
    assert sb.error_budget.errors((sb.demo_app.client_id, DIVISION, "crm/Accounts")) == 3


def test_records_shows_stored_records_in_exact_json(sb: Sandbox) -> None:
    """records() lists every record with Exact's values (dates /Date(ms)/), no __metadata."""
    records = sb.records(DIVISION, "project/TimeTransactions")
    assert len(records) == 150 == sb.count(DIVISION, "project/TimeTransactions")
    first = records[0]
    assert "__metadata" not in first
    assert re.fullmatch(r"/Date\(\d+\)/", first["Date"])
    assert sb.record(DIVISION, "project/TimeTransactions", first["ID"]) == first
    assert sb.record(DIVISION, "project/TimeTransactions", "nope") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"divisions": []}, "divisions"),
        ({"divisions": [0]}, "divisions"),
        ({"rows": -1}, "rows"),
        ({"rows_per_endpoint": {"crm/Accounts": 10**9}}, "rows"),
        ({"apps": []}, "app"),
        ({"auto_consent": [42]}, "auto_consent"),
    ],
    ids=["no-divisions", "zero-division", "negative-rows", "huge-table", "no-apps", "consent"],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    """A misconfigured sandbox fails at construction, naming the setting."""
    with pytest.raises(ValueError, match=message):
        Sandbox(**kwargs)  # type: ignore[arg-type]


def test_issue_tokens_only_grants_known_divisions(sb: Sandbox) -> None:
    """The helper refuses divisions the sandbox does not have."""
    with pytest.raises(ValueError, match="subset"):
        sb.issue_tokens(divisions=[42])


@pytest.mark.e2e
def test_concurrent_clients_are_counted_exactly(sb: Sandbox) -> None:
    """8 threads x 7 calls over loopback: every call answered, counted and rate-limited once."""
    tokens = sb.issue_tokens()
    results: list[int] = []
    lock = threading.Lock()

    def worker(base_url: str) -> None:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ) as api:
            for _ in range(7):
                status = api.get(
                    f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}
                ).status_code
                with lock:
                    results.append(status)

    with serve(sb) as base_url:
        threads = [threading.Thread(target=worker, args=(base_url,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with client_for(sb, tokens["access_token"]) as api:
            last = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"})
    assert results == [200] * 56
    assert sb.counters.calls("crm/Accounts", 200) == 57
    assert last.headers["x-ratelimit-minutely-remaining"] == "3"
