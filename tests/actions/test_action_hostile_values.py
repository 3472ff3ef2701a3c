"""Hostile values anywhere in every action's input (issue 11, "Done when"): an envelope, never an
exception; an unsendable value is refused as input with nothing sent; a corner value is sent or
refused, never reported as a system fault.
"""

from __future__ import annotations

from typing import Any

import pytest
from actions_harness import Bench
from hostile_values import CORNERS, UNSENDABLE, WHERE, place
from hostile_values import SETTINGS as HOSTILE_SETTINGS
from hypothesis import given, settings
from hypothesis import strategies as st

TIME_TRANSACTIONS = "project/TimeTransactions"
MISSING = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
HOUR = 3601.0  # past the governor's error-budget hour: every example starts with a clean budget
SETTINGS = settings(HOSTILE_SETTINGS, max_examples=60)


def _valid(bench: Bench, action: str) -> dict[str, Any]:
    division = bench.divisions[0]
    if action == "create_project_time_transaction":
        project = bench.sb.records(division, "project/Projects")[0]["ID"]
        item = next(r["ID"] for r in bench.sb.records(division, "logistics/Items") if r["IsTime"])
        data = {"Project": project, "Item": item, "Quantity": 1, "Date": "2024-05-01T09:00:00Z"}
        return {"division": division, "data": {**data, "Notes": "hostile"}}
    if action == "update_project_time_transaction":
        record = bench.sb.records(division, TIME_TRANSACTIONS)[0]["ID"]
        return {"division": division, "id": record, "data": {"Quantity": 2, "Notes": "hostile"}}
    if action == "delete_endpoint_record":
        return {"division": division, "endpoint": TIME_TRANSACTIONS, "id": MISSING}
    return {"division": division, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 2}


def _execute(bench: Bench, action: str, inputs: dict[str, Any]) -> tuple[dict[str, Any], int]:
    bench.clock.advance(HOUR)
    before = bench.calls
    result = bench.connector.execute(action, bench.credential_id, inputs)
    assert result["action"] == action and isinstance(result["ok"], bool)
    return result, bench.calls - before


ACTIONS = [
    "create_project_time_transaction",
    "update_project_time_transaction",
    "delete_endpoint_record",
    "list_or_get_endpoint",
]


@pytest.mark.parametrize("action", ACTIONS)
@SETTINGS
@given(where=WHERE, key=st.text(max_size=6), value=UNSENDABLE)
def test_an_unsendable_value_anywhere_is_refused_as_input_and_nothing_is_sent(
    bench: Bench, action: str, where: str, key: str, value: Any
) -> None:
    """Surrogates, 33 to 10,000 levels, NaN, 1,025-bit numbers: invalid_input, zero requests."""
    result, sent = _execute(bench, action, place(_valid(bench, action), where, key, value))

    assert result["ok"] is False
    assert result["error"]["code"] == "invalid_input", result["error"]
    assert result["error"]["details"]["errors"][0]["path"].startswith("$")
    assert sent == 0 and result["meta"]["api_calls"] == 0


@pytest.mark.parametrize("action", ACTIONS)
@SETTINGS
@given(where=WHERE, key=st.text(max_size=6), value=CORNERS)
def test_a_corner_value_anywhere_is_sent_or_refused_never_a_fault(
    bench: Bench, action: str, where: str, key: str, value: Any
) -> None:
    """RFC 3339 corners, leap seconds, strings of megabytes: an envelope in the user or config
    family at worst; refused as input means nothing was sent."""
    result, sent = _execute(bench, action, place(_valid(bench, action), where, key, value))

    if not result["ok"]:
        assert result["error"]["category"] in ("user", "config"), result["error"]
        if result["error"]["code"] == "invalid_input":
            assert sent == 0
