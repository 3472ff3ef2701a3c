"""A hydrated form and the action agree: what the form offers or opens on, the action takes."""

from __future__ import annotations

import pytest
from actions_harness import Bench
from jsonschema import Draft202012Validator

from exact_connector import forms
from exact_connector.catalog import catalog

DIVISION = 100001


@pytest.mark.parametrize("endpoint", ["logistics/Incoterms", "documents/DocumentTypes"])
def test_a_record_picked_from_a_number_keyed_endpoint_passes_the_form_and_the_action(
    bench: Bench, endpoint: str
) -> None:
    """Their keys are numbers while the form's id field holds text: the dropdown offers the
    digits, so a picked record satisfies its own field, the form and the action."""
    document = bench.connector.rjsf_form(
        "list_or_get_endpoint",
        credential=bench.credential_id,
        values={"division": DIVISION, "endpoint": endpoint},
    )
    field = document["schema"]["properties"]["id"]
    picked = field["oneOf"][0]["const"]

    assert isinstance(picked, str) and picked.isdigit()
    assert Draft202012Validator(field).is_valid(picked)
    inputs = forms.to_input(
        "list_or_get_endpoint", {"division": DIVISION, "endpoint": endpoint, "id": picked}
    )
    result = bench.connector.execute("list_or_get_endpoint", bench.credential_id, inputs)
    assert result["ok"] is True, result.get("error")
    key = catalog().lookup(endpoint).primary_key
    assert isinstance(key, str)
    assert str(result["data"]["record"][key]) == picked


def test_a_division_given_as_digits_opens_its_form_on_that_division(bench: Bench) -> None:
    """The action takes "100001" as well as 100001; the form's division field holds the
    number, both when an input is opened for editing and as a hydrated default."""
    record = bench.sb.records(DIVISION, "project/TimeTransactions")[0]
    inputs = {
        "division": str(DIVISION),
        "endpoint": "project/TimeTransactions",
        "id": record["ID"],
    }

    opened = forms.to_form_data("delete_endpoint_record", inputs)
    document = bench.connector.rjsf_form(
        "delete_endpoint_record", credential=bench.credential_id, values={"division": "100001"}
    )

    assert opened["division"] == DIVISION
    assert forms.to_input("delete_endpoint_record", opened) == {**inputs, "division": DIVISION}
    division = document["schema"]["properties"]["division"]
    assert division["default"] == DIVISION
    assert Draft202012Validator(division).is_valid(division["default"])


def test_a_listed_time_transactions_dates_can_be_written_back_as_listed(bench: Bench) -> None:
    """A workflow maps one step's output into the next: the dates a list writes (Exact's
    wall-clock time, no offset) pass the update's schema and are stored as they read."""
    listed = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": 1},
    )
    assert listed["ok"] is True, listed.get("error")
    (record,) = listed["data"]["records"]
    day = record["Date"]
    assert isinstance(day, str) and "T" in day and day[-1].isdigit()  # no Z, no offset

    result = bench.connector.execute(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": DIVISION, "id": record["ID"], "data": {"Date": day, "Notes": "moved"}},
    )

    assert result["ok"] is True, result.get("error")
    assert result["data"]["record"]["Date"] == day
    again = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        {"division": DIVISION, "endpoint": "project/TimeTransactions", "id": record["ID"]},
    )
    assert again["data"]["record"]["Date"] == day
    assert again["data"]["record"]["Notes"] == "moved"
