"""The connector against Exact's real behaviour (issue 13): JSON asked for, bare arrays and padded
fields read as Exact writes them, its limits refused before sending, its refusals named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import ACTIONS, DIVISION, World, assert_error, assert_refused, loopback_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[World]:
    """A sandbox that answers {"d":[…]} wherever no __next or __count must be carried."""
    with loopback_world(tmp_path / "vault", bare_arrays=True) as made:
        yield made


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[World]:
    """A sandbox that demands a $filter on lists of endpoints with a sync API."""
    with loopback_world(tmp_path / "vault", mandatory_filter=True) as made:
        yield made


def _list(world: World, **inputs: object) -> dict[str, object]:
    return world.run("list_or_get_endpoint", {"division": DIVISION, **inputs})


# -- media types ---------------------------------------------------------------------------------


def test_every_request_asks_for_json_and_every_write_sends_json(world: World) -> None:
    """Without Accept: application/json Exact answers Atom; a write needs a JSON Content-Type."""
    for action in ACTIONS:
        assert world.run_valid(action)["ok"], action

    methods = [method for method, _ in world.recorder.api]
    assert {"GET", "POST", "PUT", "DELETE"} <= set(methods)
    for method, headers in zip(methods, world.recorder.api_headers, strict=True):
        assert headers["accept"] == "application/json", method
        if method in ("POST", "PUT"):
            assert headers["content-type"] == "application/json", method


# -- envelopes and fields as Exact writes them ---------------------------------------------------


def test_a_bare_array_list_is_read(bare: World) -> None:
    """A last page as {"d":[…]} (the recorded logistics/Items form) gives every record."""
    result = _list(bare, endpoint="logistics/Items", filter="IsTime eq 1", select=["ID", "Code"])
    assert result["ok"], result
    data = result["data"]
    assert isinstance(data, dict)
    assert sorted(r["Code"] for r in data["records"]) == [
        "CONS",
        "DEV",
        "PM",
        "SUP",
        "TRAIN",
        "TRAVEL",
    ]
    assert data["next_cursor"] is None


def test_a_bare_array_record_is_read(bare: World) -> None:
    """GET by key answered {"d":[record]} is that one record."""
    record = bare.time_transaction()
    result = _list(bare, endpoint="project/TimeTransactions", id=record["ID"])
    assert result["ok"], result
    data = result["data"]
    assert isinstance(data, dict) and data["record"]["ID"] == record["ID"]


def test_padded_fields_are_returned_as_exact_wrote_them(world: World) -> None:
    """Country "NL " and Language "NL        " are Exact's data: not trimmed, raw or not."""
    for raw in (False, True):
        result = _list(
            world, endpoint="crm/Accounts", select=["Country", "Language"], limit=3, raw=raw
        )
        assert result["ok"], result
        data = result["data"]
        assert isinstance(data, dict)
        assert {(r["Country"], r["Language"]) for r in data["records"]} == {("NL ", "NL        ")}


# -- Exact's limits, refused before sending --------------------------------------------------------


def test_a_filter_that_makes_the_url_too_long_is_refused_unsent(world: World) -> None:
    """1,990 accented letters encode to ~12,000 characters, past Exact's 6,000: $.filter."""
    error = assert_error(
        _list(world, endpoint="crm/Accounts", filter="Name eq '" + "é" * 1990 + "'"),
        "invalid_input",
        "user",
        retryable=False,
        api_calls=0,
    )
    assert error["details"]["errors"][0]["path"] == "$.filter"
    assert "6000" in error["message"]
    assert world.recorder.api_calls() == 0


def test_an_hour_status_exact_does_not_take_is_refused_unsent(world: World) -> None:
    """HourStatus 20 (Final) is read-only: only 1, 2 and 10 are written (API-FACTS §5)."""
    inputs = world.valid_inputs("create_project_time_transaction")
    inputs["data"] = {**inputs["data"], "HourStatus": 20}
    error = assert_refused(world.run("create_project_time_transaction", inputs))
    assert error["details"]["errors"][0]["path"] == "$.data.HourStatus"


def test_a_sync_endpoint_filtered_on_anything_but_timestamp_is_refused_unsent(
    world: World,
) -> None:
    """Sync endpoints take only 'Timestamp gt <n>' (API-FACTS "Sync feed")."""
    error = assert_error(
        _list(world, endpoint="sync/CRM/Accounts", filter="Name eq 'x'"),
        "invalid_input",
        "user",
        retryable=False,
        api_calls=0,
    )
    assert error["details"]["errors"][0]["path"] == "$.filter"
    allowed = _list(world, endpoint="sync/CRM/Accounts", filter="Timestamp gt 1", limit=2)
    assert allowed["ok"], allowed


# -- Exact's refusals, named -----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [5, None], ids=["first-page", "whole-list-through-bulk"])
def test_an_unfiltered_list_exact_refuses_names_the_filter(
    strict: World, limit: int | None
) -> None:
    """Exact's mandatory $filter (KB "API limits"): the error says to add one, at $.filter."""
    inputs: dict[str, object] = {"endpoint": "crm/Accounts", "select": ["ID", "Name"]}
    if limit is not None:
        inputs["limit"] = limit
    error = assert_error(
        _list(strict, **inputs), "exact_rejected", "user", retryable=False, api_calls=1
    )
    assert error["details"]["errors"] == [
        {"path": "$.filter", "code": "filter_required", "message": "add a filter"}
    ]
    assert "filter" in error["hint"].lower()
    filtered = _list(strict, **inputs, filter="Name ne ''")
    assert filtered["ok"], filtered


def test_a_function_endpoint_without_its_parameters_is_exacts_clear_refusal(
    world: World,
) -> None:
    """read/project/HoursByDate needs checkDate, which a list cannot send: Exact's own message."""
    error = assert_error(
        _list(world, endpoint="read/project/HoursByDate"),
        "exact_rejected",
        "user",
        retryable=False,
        api_calls=1,
    )
    assert "checkDate" in error["message"]
