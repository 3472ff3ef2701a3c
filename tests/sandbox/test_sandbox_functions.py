"""Function endpoints answer from their parameters: one value, or records computed for them."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sandbox_harness import DIVISION

from exact_connector.sandbox import Sandbox

RIGHTS = f"/api/v1/{DIVISION}/users/UserHasRights"
HOURS_BY_DATE = f"/api/v1/{DIVISION}/read/project/HoursByDate"


def _day(epoch_ms_date: str) -> str:
    """``/Date(ms)/`` -> ``2025-06-02``."""
    milliseconds = int(epoch_ms_date.removeprefix("/Date(").removesuffix(")/"))
    return datetime.fromtimestamp(milliseconds / 1000, UTC).date().isoformat()


@pytest.mark.parametrize(
    ("endpoint", "action", "expected"),
    [
        ("Logistics/Items", "GET", True),
        ("crm/Accounts", "delete", True),
        ("payroll/Employees", "POST", False),
        ("crm/Nothing", "GET", False),
    ],
    ids=["kb-example", "action-any-case", "method-not-offered", "unknown-endpoint"],
)
def test_user_has_rights_answers_one_boolean(
    api: httpx.Client, endpoint: str, action: str, expected: bool
) -> None:
    """The KB's rights check answers {"d":{"UserHasRights":…}}: no results, no __next."""
    answer = api.get(RIGHTS, params={"endpoint": f"'{endpoint}'", "action": f"'{action}'"})
    assert answer.status_code == 200
    assert answer.json() == {"d": {"UserHasRights": expected}}


@pytest.mark.parametrize(
    "params",
    [
        {"action": "'GET'"},
        {"endpoint": "Logistics/Items", "action": "'GET'"},
        {"endpoint": "'Logistics/Items'", "action": "'FETCH'"},
    ],
    ids=["missing-endpoint", "unquoted-text", "unknown-action"],
)
def test_user_has_rights_refuses_bad_parameters(api: httpx.Client, params: dict[str, str]) -> None:
    """A missing, unquoted or impossible parameter is a 400 naming what is wrong."""
    answer = api.get(RIGHTS, params=params)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]["value"]
    assert "endpoint" in message or "action" in message or "Edm.String" in message


def test_hours_by_date_lists_the_hours_booked_on_that_date(api: httpx.Client, sb: Sandbox) -> None:
    """checkDate picks the time transactions of one day, as HoursByDate records."""
    bookings = sb.records(DIVISION, "project/TimeTransactions")
    day = _day(bookings[0]["Date"])
    booked = {b["ID"]: b for b in bookings if _day(b["Date"]) == day}
    answer = api.get(HOURS_BY_DATE, params={"checkDate": f"datetime'{day}'"})
    assert answer.status_code == 200, answer.text
    hours = answer.json()["d"]["results"]
    assert {h["EntryId"] for h in hours} == set(booked)
    first = hours[0]
    source = booked[first["EntryId"]]
    assert first["__metadata"]["type"] == "Exact.Web.Api.Models.HoursByDate"
    assert (first["ProjectId"], first["ItemId"], first["ProjectCode"]) == (
        source["Project"],
        source["Item"],
        source["ProjectCode"],
    )
    status = {1: "Draft", 2: "Rejected", 10: "Submitted", 20: "Approved"}[source["HourStatus"]]
    assert first[f"Hours{status}"] == source["Quantity"]


def test_hours_by_date_takes_select_and_filter_like_any_list(
    api: httpx.Client, sb: Sandbox
) -> None:
    """The computed records are a list: $select and $filter apply."""
    day = _day(sb.records(DIVISION, "project/TimeTransactions")[0]["Date"])
    answer = api.get(
        HOURS_BY_DATE,
        params={"checkDate": f"datetime'{day}'", "$select": "EntryId,Date", "$filter": "Id eq 1"},
    )
    records = answer.json()["d"]["results"]
    assert len(records) == 1
    assert set(records[0]) == {"__metadata", "EntryId", "Date"}
    assert _day(records[0]["Date"]) == day


@pytest.mark.parametrize(
    "params",
    [{}, {"checkDate": "'2025-06-02'"}, {"checkDate": "datetime'yesterday'"}],
    ids=["missing", "not-a-datetime-literal", "not-a-date"],
)
def test_hours_by_date_needs_a_check_date(api: httpx.Client, params: dict[str, str]) -> None:
    """Without a usable checkDate there is nothing to compute: 400, not a table."""
    answer = api.get(HOURS_BY_DATE, params=params)
    assert answer.status_code == 400
    assert (
        "checkDate" in answer.json()["error"]["message"]["value"]
        or "DateTime" in (answer.json()["error"]["message"]["value"])
    )
