"""Values that pass a schema but could not be sent are refused as input, at their path, unsent.

Regression tests for issue 11 (items 3, 4, 5, 15 and 16): date-time corners, lone surrogates,
deep nesting, dry runs and wrong-type credential references used to escape ``execute`` as
``ValueError``, ``UnicodeEncodeError`` or ``RecursionError``, or to be reported as a vault fault.
"""

from __future__ import annotations

from typing import Any

import pytest
from actions_harness import Bench

from exact_connector.exceptions import InputError

TIME_TRANSACTIONS = "project/TimeTransactions"
OWN = object()  # the bench's own credential


def _time_entry(bench: Bench, **fields: Any) -> dict[str, Any]:
    division = bench.divisions[0]
    project = bench.sb.records(division, "project/Projects")[0]["ID"]
    item = next(r["ID"] for r in bench.sb.records(division, "logistics/Items") if r["IsTime"])
    return {"division": division, "data": {"Project": project, "Item": item, **fields}}


def _refused_unsent(bench: Bench, action: str, inputs: Any, ref: Any = OWN) -> dict[str, Any]:
    before = bench.calls
    result = bench.connector.execute(action, bench.credential_id if ref is OWN else ref, inputs)
    assert result["ok"] is False, result
    assert result["error"]["code"] == "invalid_input", result["error"]
    assert bench.calls == before, "a refused input reached the network"
    return dict(result["error"])


def _nested(depth: int) -> Any:
    value: Any = "Code"
    for _ in range(depth):
        value = [value]
    return value


# -- item 3: date-times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        pytest.param("2024-06-30t10:15:00z", "2024-06-30T10:15:00", id="lower-case-t-and-z"),
        pytest.param("2024-06-30T10:15:00.5+02:00", "2024-06-30T10:15:00.500", id="fraction"),
        pytest.param("2024-06-30T10:15:00.123456789-23:59", "2024-06-30T10:15:00.123", id="ns"),
        pytest.param("2024-06-30T10:15:00", "2024-06-30T10:15:00", id="exacts-own-form"),
        pytest.param("2024-06-30T10:15", "2024-06-30T10:15:00", id="minutes"),
        pytest.param("2024-06-30", "2024-06-30T00:00:00", id="a-day"),
    ],
)
def test_every_date_time_the_schema_accepts_is_sent_as_its_wall_clock_time(
    bench: Bench, written: str, stored: str
) -> None:
    """RFC 3339 in either letter case, any fraction, any offset, and Exact's own form without
    one (as a day, or minutes, too): created at the wall-clock time written, not a ValueError."""
    result = bench.connector.execute(
        "create_project_time_transaction",
        bench.credential_id,
        _time_entry(bench, Quantity=1, Date=written),
    )

    assert result["ok"], result.get("error")
    assert result["data"]["record"]["Date"].startswith(stored)


def test_a_leap_second_is_refused_at_its_path_before_sending(bench: Bench) -> None:
    """23:59:60 is RFC 3339 but no Exact field can hold it: an input error at $.data.Date."""
    inputs = _time_entry(bench, Quantity=1, Date="2024-06-30T23:59:60Z")

    error = _refused_unsent(bench, "create_project_time_transaction", inputs)

    ((path, code, message),) = [tuple(e.values()) for e in error["details"]["errors"]]
    assert (path, code) == ("$.data.Date", "format")
    assert "must be a date and time that exist, such as 2024-05-01T09:00:00" in message


# -- item 4: lone surrogates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "inputs", "path"),
    [
        pytest.param(
            "create_project_time_transaction", {"Notes": "a\ud800b"}, "$.data.Notes", id="field"
        ),
        pytest.param(
            "list_or_get_endpoint",
            {"endpoint": "crm/Accounts", "filter": "Name eq '\udcff'"},
            "$.filter",
            id="filter",
        ),
        pytest.param(
            "list_or_get_endpoint", {"endpoint": "crm/Accounts", "\ud800": 1}, "$", id="key"
        ),
        pytest.param(
            "delete_endpoint_record",
            {"endpoint": "crm/Accounts", "id": "\udfff"},
            "$.id",
            id="id",
        ),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_input_is_an_input_error_at_its_path(
    bench: Bench, action: str, inputs: dict[str, Any], path: str
) -> None:
    """Text with no UTF-8 form is refused with its path, never a UnicodeEncodeError."""
    if action == "create_project_time_transaction":
        full = _time_entry(bench, Quantity=1, **inputs)
    else:
        full = {"division": bench.divisions[0], **inputs}

    error = _refused_unsent(bench, action, full)

    assert error["details"]["errors"][0]["path"] == path
    assert error["details"]["errors"][0]["code"] == "encoding"


def test_a_lone_surrogate_in_an_options_search_is_an_input_error(bench: Bench) -> None:
    """``options(search=…)`` is input too: refused at $.search before any request."""
    before = bench.calls

    with pytest.raises(InputError) as raised:
        bench.connector.options("projects", bench.credential_id, search="\ud800")

    assert raised.value.errors[0]["path"] == "$.search"
    assert bench.calls == before


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("\ud800", id="surrogate"),
        pytest.param({"id": "x"}, id="dict"),
        pytest.param(42, id="number"),
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
    ],
)
def test_a_credential_reference_that_is_not_text_is_an_input_error(bench: Bench, ref: Any) -> None:
    """Items 4 and 16: a wrong-type reference is invalid input at $.credential, not vault_io."""
    inputs = {"division": bench.divisions[0], "endpoint": "crm/Accounts"}

    error = _refused_unsent(bench, "list_or_get_endpoint", inputs, ref)

    assert error["details"]["errors"][0]["path"] == "$.credential"
    assert "Free disk space" not in error["hint"]


# -- item 5: depth -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [300, 5_000, 10_000])
def test_deep_nesting_is_refused_at_its_path_before_validation(bench: Bench, depth: int) -> None:
    """A ``select`` thousands of lists deep: an input error naming where, not RecursionError."""
    inputs = {"division": bench.divisions[0], "endpoint": "crm/Accounts", "select": _nested(depth)}

    error = _refused_unsent(bench, "list_or_get_endpoint", inputs)

    (problem,) = error["details"]["errors"]
    assert problem["code"] == "depth"
    assert problem["path"].startswith("$.select[0][0]")


def test_deep_form_values_are_refused_before_options_are_resolved(bench: Bench) -> None:
    """``form_spec(values=…)`` is input as well: depth is bounded before anything reads it."""
    with pytest.raises(InputError) as raised:
        bench.connector.form_spec("list_or_get_endpoint", values={"endpoint": _nested(5_000)})

    assert raised.value.errors[0]["code"] == "depth"


# -- item 15: the dry run checks what the run checks ---------------------------------------------


def test_a_body_the_run_refuses_is_refused_by_the_dry_run_too(bench: Bench) -> None:
    """Notes of 4 million euro signs (12 MB as UTF-8): both refuse it at $.data, nothing sent."""
    inputs = _time_entry(bench, Quantity=1, Notes="€" * 4_000_000)

    run = _refused_unsent(bench, "create_project_time_transaction", inputs)
    with pytest.raises(InputError) as planned:
        bench.connector.plan("create_project_time_transaction", bench.credential_id, inputs)

    assert planned.value.errors == run["details"]["errors"]
    assert run["details"]["errors"][0]["code"] == "size"
