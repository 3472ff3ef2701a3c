"""Each action succeeds end to end over loopback, and Exact's (the sandbox's) state shows it."""

from __future__ import annotations

import pytest
from e2e_harness import DIVISION, TIME_TRANSACTIONS, World

pytestmark = pytest.mark.e2e


def test_create_posts_one_time_transaction_and_returns_it_normalised(world: World) -> None:
    """create_project_time_transaction: one POST, the record exists once, ISO dates come back."""
    before = world.count()
    inputs = world.valid_inputs("create_project_time_transaction")
    inputs["data"]["Date"] = "2026-01-01T00:00:00Z"

    result = world.run("create_project_time_transaction", inputs)

    assert result["ok"] is True, result
    assert result["data"]["created"] is True
    record = result["data"]["record"]
    assert result["data"]["id"] == record["ID"]
    assert record["Quantity"] == 1.5
    assert record["Project"] == inputs["data"]["Project"]
    assert record["Date"] == "2026-01-01T00:00:00"
    assert "__metadata" not in record
    assert world.count() == before + 1
    stored = world.sb.record(DIVISION, TIME_TRANSACTIONS, record["ID"])
    assert stored is not None and stored["Notes"] == "e2e"
    assert result["meta"]["api_calls"] == 1 == world.recorder.api_calls("POST")
    assert result["meta"]["rate_limit"]["minute_limit"] == 60


def test_update_puts_the_fields_and_reads_the_record_back(world: World) -> None:
    """update_project_time_transaction: PUT then GET; the output is the re-read record."""
    inputs = world.valid_inputs("update_project_time_transaction")

    result = world.run("update_project_time_transaction", inputs)

    assert result["ok"] is True, result
    assert result["data"]["id"] == inputs["id"]
    assert result["data"]["updated"] is True
    assert result["data"]["record"]["Quantity"] == 7.25
    stored = world.sb.record(DIVISION, TIME_TRANSACTIONS, inputs["id"])
    assert stored is not None and stored["Notes"] == "e2e update"
    assert result["meta"]["api_calls"] == 2
    assert (world.recorder.api_calls("PUT"), world.recorder.api_calls("GET")) == (1, 1)


def test_delete_removes_the_record(world: World) -> None:
    """delete_endpoint_record: one DELETE; the record is gone from Exact."""
    inputs = world.valid_inputs("delete_endpoint_record")
    before = world.count()

    result = world.run("delete_endpoint_record", inputs)

    assert result == {**result, "ok": True}
    assert result["data"] == {"endpoint": TIME_TRANSACTIONS, "id": inputs["id"], "deleted": True}
    assert world.sb.record(DIVISION, TIME_TRANSACTIONS, inputs["id"]) is None
    assert world.count() == before - 1
    assert result["meta"]["api_calls"] == 1 == world.recorder.api_calls("DELETE")


def test_list_returns_a_page_and_a_cursor_that_continues_it(world: World) -> None:
    """list_or_get_endpoint: a limit stops early with next_cursor; the cursor resumes exactly."""
    first = world.run_valid("list_or_get_endpoint")
    both = world.run(
        "list_or_get_endpoint", {**world.valid_inputs("list_or_get_endpoint"), "limit": 10}
    )
    assert first["ok"] and both["ok"], (first, both)
    cursor = first["data"]["next_cursor"]
    assert isinstance(cursor, str) and first["data"]["count"] == 5

    rest = world.run(
        "list_or_get_endpoint",
        {**world.valid_inputs("list_or_get_endpoint"), "cursor": cursor},
    )

    assert rest["ok"] is True, rest
    assert first["data"]["records"] + rest["data"]["records"] == both["data"]["records"]
    assert set(first["data"]["records"][0]) == {"ID", "Code", "Name"}
    assert [r["meta"]["api_calls"] for r in (first, both, rest)] == [1, 1, 1]


def test_get_by_key_returns_the_one_record(world: World) -> None:
    """list_or_get_endpoint with an id: that record, as the sandbox holds it."""
    account = world.sb.records(DIVISION, "crm/Accounts")[3]

    result = world.run(
        "list_or_get_endpoint",
        {"division": DIVISION, "endpoint": "crm/Accounts", "id": account["ID"].upper()},
    )

    assert result["ok"] is True, result
    assert result["data"]["record"]["ID"] == account["ID"]
    assert result["data"]["record"]["Name"] == account["Name"]
    assert result["meta"]["api_calls"] == 1


def test_a_large_list_pages_through_the_bulk_twin(world: World) -> None:
    """A list longer than one regular page uses bulk/CRM/Accounts: 150 rows in one call."""
    result = world.run(
        "list_or_get_endpoint",
        {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID", "Name"], "limit": 500},
    )

    assert result["ok"] is True, result
    assert result["data"]["count"] == world.sb.count(DIVISION, "crm/Accounts") == 150
    assert result["data"]["next_cursor"] is None
    assert result["meta"]["api_calls"] == 1
    assert world.recorder.api[-1] == ("GET", f"/api/v1/{DIVISION}/bulk/CRM/Accounts")


def test_a_typed_endpoint_outside_the_catalog_is_sent_as_typed(world: World) -> None:
    """A GET by key on an endpoint the catalog lacks is sent as typed (the key rendered as GUID)."""
    result = world.run(
        "list_or_get_endpoint",
        {"division": DIVISION, "endpoint": "crm/Nope", "id": world.time_transaction()["ID"]},
    )

    # The sandbox knows no crm/Nope either: the call was made, and the 404 names the record.
    assert result["error"]["code"] == "not_found"
    assert world.recorder.api[-1][1].startswith(f"/api/v1/{DIVISION}/crm/Nope(guid'")
