"""Outcome unknown end to end: the connection drops after Exact processed the request.

Only a create can end there: its POST is not idempotent, so it is never sent twice and the step
says so. The PUT, DELETE and GET of the other actions are safe to repeat, so for them the family
cannot arise: the nearest real case is the same dropped answer, retried to a definite result.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from e2e_harness import DIVISION, TIME_TRANSACTIONS, World, assert_error

pytestmark = pytest.mark.e2e


def _create_ends_in_outcome_unknown(world: World) -> dict[str, Any]:
    """Run a valid create: outcome_unknown after one POST, and the record was made once."""
    before = world.count()
    error = assert_error(
        world.run_valid("create_project_time_transaction"),
        "outcome_unknown",
        "system",
        retryable=False,
        api_calls=1,
    )
    assert world.count() == before + 1
    assert world.recorder.api_calls("POST") == 1
    return error


def test_a_create_whose_answer_is_lost_is_outcome_unknown_and_not_retried(world: World) -> None:
    """outcome_unknown (system, not retryable); the record exists exactly once."""
    world.sb.faults.add("drop", method="POST", path_contains=TIME_TRANSACTIONS)
    error = _create_ends_in_outcome_unknown(world)

    assert world.sb.counters.records_created[TIME_TRANSACTIONS] == 1
    assert error["details"]["client_request_id"]
    created = [r for r in world.sb.records(DIVISION, TIME_TRANSACTIONS) if r["Notes"] == "e2e"]
    assert len(created) == 1


def test_an_update_whose_answer_is_lost_is_repeated_and_succeeds(world: World) -> None:
    """PUT is idempotent: sent again, then read back; the record holds the new values."""
    world.sb.faults.add("drop", method="PUT", path_contains=TIME_TRANSACTIONS)
    inputs = world.valid_inputs("update_project_time_transaction")

    result = world.run("update_project_time_transaction", inputs)

    assert result["ok"] is True, result
    assert result["data"]["record"]["Quantity"] == 7.25
    assert result["meta"]["api_calls"] == 3
    assert world.recorder.api_calls("PUT") == 2


def test_an_update_whose_read_back_fails_is_reported_as_done_with_its_key(world: World) -> None:
    """The PUT was applied: a read-back that keeps failing leaves the step done (the key and a
    warning), not a failure that says the change did not happen."""
    world.sb.faults.add(
        "error", method="GET", path_contains=TIME_TRANSACTIONS + "(", status=503, times=None
    )
    inputs = world.valid_inputs("update_project_time_transaction")

    result = world.run("update_project_time_transaction", inputs)

    assert result["ok"] is True, result
    assert [w["code"] for w in result["data"]["warnings"]] == ["updated_record_not_read"]
    assert result["data"]["record"] == {"ID": inputs["id"]}
    assert world.sb.record(DIVISION, TIME_TRANSACTIONS, inputs["id"])["Quantity"] == 7.25
    assert world.recorder.api_calls("PUT") == 1


def test_a_delete_whose_answer_is_lost_is_repeated_and_counts_as_done(world: World) -> None:
    """The repeated DELETE finds nothing: the record is gone, which is what was asked."""
    world.sb.faults.add("drop", method="DELETE", path_contains=TIME_TRANSACTIONS)
    inputs = world.valid_inputs("delete_endpoint_record")

    result = world.run("delete_endpoint_record", inputs)

    assert result["ok"] is True, result
    assert result["data"] == {
        "endpoint": TIME_TRANSACTIONS,
        "id": inputs["id"],
        "deleted": True,
        "already_absent": True,
    }
    assert world.sb.record(DIVISION, TIME_TRANSACTIONS, inputs["id"]) is None
    assert result["meta"]["api_calls"] == 2


def test_a_list_whose_answer_is_lost_is_repeated_and_succeeds(world: World) -> None:
    """GET is safe: the page is fetched again and the list is complete."""
    expected = world.run_valid("list_or_get_endpoint")
    world.sb.faults.add("drop", method="GET", path_contains="crm/Accounts")

    result = world.run_valid("list_or_get_endpoint")

    assert result["ok"] is True, result
    assert result["data"]["records"] == expected["data"]["records"]
    assert result["meta"]["api_calls"] == 2


def test_a_create_answered_201_with_a_truncated_body_is_read_back_by_its_location(
    world: World,
) -> None:
    """Issue 11 item 9: a 2xx created the record; its key from Location reads it back, warned."""
    world.sb.faults.add("malformed_json", method="POST", path_contains=TIME_TRANSACTIONS)
    before = world.count()

    result = world.run_valid("create_project_time_transaction")

    assert result["ok"] is True, result
    assert [w["code"] for w in result["data"]["warnings"]] == ["created_answer_unreadable"]
    assert world.count() == before + 1
    assert world.sb.record(DIVISION, TIME_TRANSACTIONS, result["data"]["id"])["Notes"] == "e2e"
    assert world.recorder.api_calls("POST") == 1


def test_a_create_whose_read_back_fails_succeeds_with_its_key_and_is_never_retryable(
    world: World,
) -> None:
    """The record exists once the POST got its 2xx: a failing read-back (503 every time) must not
    turn into a retryable error, which an engine would answer with a second POST."""
    world.sb.faults.add("malformed_json", method="POST", path_contains=TIME_TRANSACTIONS)
    world.sb.faults.add(
        "error", method="GET", path_contains=TIME_TRANSACTIONS + "(", status=503, times=None
    )
    before = world.count()

    result = world.run_valid("create_project_time_transaction")

    assert result["ok"] is True, result
    codes = [w["code"] for w in result["data"]["warnings"]]
    assert codes == ["created_answer_unreadable", "created_record_not_read"]
    assert "transient" in result["data"]["warnings"][1]["message"]
    made = world.sb.record(DIVISION, TIME_TRANSACTIONS, result["data"]["id"])
    assert made is not None and made["Notes"] == "e2e"
    assert result["data"]["record"] == {"ID": made["ID"]}
    assert world.count() == before + 1
    assert world.recorder.api_calls("POST") == 1


def test_a_create_answered_201_with_no_readable_body_or_key_is_outcome_unknown(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a key to read it back by, the outcome is unknown: never a plain failure."""
    world.sb.faults.add("malformed_json", method="POST", path_contains=TIME_TRANSACTIONS)
    answer = world.recorder.sandbox

    def without_location(request: httpx.Request) -> httpx.Response:
        response = answer(request)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "location"]
        return httpx.Response(response.status_code, headers=headers, content=response.read())

    monkeypatch.setattr(world.recorder, "sandbox", without_location)
    _create_ends_in_outcome_unknown(world)
