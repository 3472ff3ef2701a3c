"""Specification of the one transform between RJSF form data and action input (forms.to_input,
forms.to_form_data)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from exact_connector import forms
from exact_connector.datamanager import data_manager_schema
from exact_connector.exceptions import InputError

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
OTHER = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
CREATE = "create_project_time_transaction"
UPDATE = "update_project_time_transaction"
CODE_FLOW = {
    "connector_name": "Exact (production)",
    "auth_type": "oauth2_authorization_code",
    "server_url": "https://start.exactonline.nl",
    "client_id": GUID,
    "client_secret": "s3cr3t-value",
    "redirect_uri": "https://engine.example.com/oauth/callback",
}


def errors_of(name: str, form_data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as caught:
        forms.to_input(name, form_data)
    return [(error["path"], error["code"]) for error in caught.value.errors]


def test_create_rows_become_fields() -> None:
    """Fixed fields stay, each row adds its field, a datetime-local value gets seconds and Z."""
    form_data = {
        "division": 100001,
        "data": {
            "Project": GUID,
            "Item": OTHER,
            "Quantity": 2.5,
            "fields": [
                {"field": "Notes", "Notes": "Workshop"},
                {"field": "StartTime", "StartTime": "2024-05-01T09:30"},
                {"field": "HourStatus", "HourStatus": 10},
            ],
        },
    }
    assert forms.to_input(CREATE, form_data) == {
        "division": 100001,
        "data": {
            "Project": GUID,
            "Item": OTHER,
            "Quantity": 2.5,
            "Notes": "Workshop",
            "StartTime": "2024-05-01T09:30:00",
            "HourStatus": 10,
        },
    }


def test_a_field_chosen_twice_is_reported_at_the_later_row() -> None:
    """Duplicates name the row to remove and the one kept."""
    rows = [{"field": "Notes", "Notes": "a"}, {"field": "Quantity", "Quantity": 1}]
    rows.append({"field": "Notes", "Notes": "b"})
    with pytest.raises(InputError) as caught:
        forms.to_input(UPDATE, {"division": 1, "id": GUID, "data": {"fields": rows}})
    (error,) = caught.value.errors
    assert (error["path"], error["code"]) == ("$.data.fields[2].field", "duplicate")
    assert "$.data.fields[0]" in error["message"]


@pytest.mark.parametrize(
    ("form_data", "expected"),
    [
        ({"division": 1, "id": GUID, "data": {"fields": []}}, [("$.data.fields", "minItems")]),
        (
            {"division": 1, "id": GUID, "data": {"fields": [{"field": "Notes"}]}},
            [("$.data.fields[0].Notes", "required")],
        ),
        (
            {"division": 1, "id": GUID, "data": {"fields": [{"field": "Nope", "Nope": 1}]}},
            [("$.data.fields[0].field", "oneOf")],
        ),
        (
            {"division": 1, "id": GUID, "data": {"fields": [{"field": "Date", "Date": "x"}]}},
            [("$.data.fields[0].Date", "pattern")],
        ),
        (
            {"division": "1", "id": GUID, "data": {"fields": []}},
            [
                ("$.data.fields", "minItems"),
                ("$.division", "type"),
            ],
        ),
        (
            {
                "division": 1,
                "id": GUID,
                "data": {"fields": [{"field": "Notes", "Notes": "x"}]},
                "x": 1,
            },
            [
                ("$.x", "additionalProperties"),
            ],
        ),
    ],
    ids=["no-rows", "row-without-value", "unknown-field", "bad-date", "string-division", "extra"],
)
def test_bad_form_data_is_reported_at_its_form_path(
    form_data: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Every problem comes back at once, each at its path in the form data."""
    assert errors_of(UPDATE, form_data) == expected


def test_error_messages_never_echo_the_value() -> None:
    """A bad value appears in no message (secrets are typed into forms)."""
    with pytest.raises(InputError) as caught:
        forms.to_input("credentials", {**CODE_FLOW, "client_secret": "SECRET VALUE\x00"})
    assert "SECRET VALUE" not in json.dumps(caught.value.to_dict())


def test_hidden_credential_field_is_left_out() -> None:
    """A value left in a field the auth type hides is not sent."""
    form_data = {
        **CODE_FLOW,
        "auth_type": "oauth2_refresh_token",
        "refresh_token": "Gcp7!IAAAA",
    }
    result = forms.to_input("credentials", form_data)
    assert "redirect_uri" not in result and result["refresh_token"] == "Gcp7!IAAAA"
    assert forms.validate("credentials", result) == []


def test_unknown_credential_field_is_an_error() -> None:
    """The credential form (conditional fields, so an open schema) still refuses strangers."""
    assert errors_of("credentials", {**CODE_FLOW, "password": "x"}) == [("$.password", "unknown")]


def test_empty_optional_list_values_are_left_out() -> None:
    """What RJSF submits for a minimal list, {division, endpoint, select: [], raw}, is valid input."""
    form_data = {"division": 100001, "endpoint": "crm/Accounts", "select": [], "raw": False}
    result = forms.to_input("list_or_get_endpoint", form_data)
    assert result == {"division": 100001, "endpoint": "crm/Accounts", "raw": False}
    assert forms.validate("list_or_get_endpoint", result) == []


def test_to_form_data_refuses_invalid_input() -> None:
    """Editing starts from valid input; anything else is an input error with paths."""
    with pytest.raises(InputError) as caught:
        forms.to_form_data(UPDATE, {"division": 1, "id": GUID, "data": {}})
    assert caught.value.errors[0]["path"] == "$.data"


# --- the round trip ---------------------------------------------------------------------------------

_DATE_TIMES = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format,
    st.integers(1990, 2099),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_BY_TYPE = {
    "uuid": st.uuids().map(str),
    "date-time": _DATE_TIMES,
    "number": st.floats(-1e6, 1e6, allow_nan=False),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "string": _TEXT,
}


def _value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    return _BY_TYPE[prop.get("format", prop["type"])]


def _data(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid Data Manager value: the required fields on create, then any other fields."""
    props = data_manager_schema()["$defs"]["fields"]["properties"]
    required = ["Project", "Item", "Quantity"] if name == CREATE else []
    optional = [n for n in props if n not in required]
    chosen = st.lists(st.sampled_from(optional), unique=True, min_size=0 if required else 1)
    return chosen.flatmap(
        lambda names: st.fixed_dictionaries({n: _value(props[n]) for n in [*required, *names]})
    )


@pytest.mark.parametrize("name", [CREATE, UPDATE])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(name: str, data: st.DataObject) -> None:
    """to_input(to_form_data(x)) == x, and the form data fits the emitted RJSF schema."""
    inputs: dict[str, Any] = {"division": 100001, "data": data.draw(_data(name))}
    if name == UPDATE:
        inputs["id"] = GUID
    assert forms.validate(name, inputs) == []
    form_data = forms.to_form_data(name, inputs)
    schema = forms.rjsf(name)["schema"]
    assert not list(
        Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(form_data)
    )
    assert forms.to_input(name, form_data) == inputs


@pytest.mark.parametrize(
    "written", ["2024-02-30T09:00", "2024-05-01T24:00", "2024-05-01T09:00:60", "0000-01-01T00:00"]
)
def test_a_date_time_that_does_not_exist_is_refused_at_its_row(written: str) -> None:
    """The datetime-local pattern checks digits only: 30 February is refused at the row the
    person typed it in, not later by the action at a path the form does not have."""
    form_data = {
        "division": 100001,
        "data": {
            "Project": GUID,
            "Item": OTHER,
            "Quantity": 1,
            "fields": [{"field": "Date", "Date": written}],
        },
    }

    assert errors_of(CREATE, form_data) == [("$.data.fields[0].Date", "format")]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2024-05-01T09:00:00.123456Z", "2024-05-01T09:00:00.123"),
        ("2024-05-01t09:00:00z", "2024-05-01T09:00:00"),
        ("2024-05-01T09:00:00+02:00", "2024-05-01T09:00:00"),
        ("2024-05-01T09:00:00.500-05:00", "2024-05-01T09:00:00.500"),
        ("2024-05-01T09:00:00", "2024-05-01T09:00:00"),
        ("2024-05-01T09:00", "2024-05-01T09:00:00"),
        ("2024-05-01", "2024-05-01T00:00:00"),
    ],
)
def test_any_date_time_the_action_takes_opens_in_its_form_and_submits_again(
    given: str, shown: str
) -> None:
    """to_form_data writes the wall-clock time the action sends, as the datetime-local field
    holds it (milliseconds at most, upper-case T), so the opened form submits the same time,
    in Exact's own form (no offset)."""
    inputs = {"division": 100001, "id": GUID, "data": {"Date": given}}

    opened = forms.to_form_data(UPDATE, inputs)

    assert opened["data"]["fields"] == [{"field": "Date", "Date": shown}]
    assert forms.to_input(UPDATE, opened)["data"]["Date"] == shown
