"""The connector against Exact's real behaviour (issue 13): JSON asked for, bare arrays and padded
fields read as Exact writes them, its limits refused before sending, its refusals named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_harness import ACTIONS, DIVISION, World, assert_error, assert_refused, loopback_world

from exact_connector.clock import ManualClock
from exact_connector.exceptions import InputError
from exact_connector.pagination import Cursor, cursor_key
from exact_connector.sandbox import Sandbox
from exact_connector.testing import connect

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
def test_an_unfiltered_list_exact_refuses_is_read_from_the_sync_twin(
    strict: World, limit: int | None
) -> None:
    """Exact's mandatory $filter (KB "API limits", set per app) refuses a plain list of a
    regular or bulk endpoint with a sync API: the list is read from the sync twin, which takes
    none, after that one refused call; the next plain list of the endpoint goes there at once."""
    inputs: dict[str, object] = {"endpoint": "crm/Accounts", "select": ["ID", "Name"]}
    if limit is not None:
        inputs["limit"] = limit
    everyone = sorted(r["ID"] for r in strict.sb.records(DIVISION, "crm/Accounts"))

    first = _list(strict, **inputs)
    again = _list(strict, **inputs)

    for result, calls in ((first, 2), (again, 1)):
        assert result["ok"], result
        data = result["data"]
        assert isinstance(data, dict)
        ids = [record["ID"] for record in data["records"]]
        assert len(ids) == (limit or len(everyone)) and set(ids) <= set(everyone)
        assert set(data["records"][0]) == {"ID", "Name"}
        assert result["meta"]["api_calls"] == calls
    paths = [path.split(f"/{DIVISION}/")[1] for _, path in strict.recorder.api[-3:]]
    refused = "crm/Accounts" if limit is not None else "bulk/CRM/Accounts"
    assert paths == [refused, "sync/CRM/Accounts", "sync/CRM/Accounts"]


def test_a_list_read_from_the_sync_twin_continues_past_a_record_changed_meanwhile(
    strict: World,
) -> None:
    """A sync feed is in row-version order, and a changed record moves to its end. A cursor
    that said "so many rows into this page" then skipped a record nobody had seen; it now
    continues after the last row version handed out. The changed record comes again, with its
    change, and the row version read for the cursor is never handed out."""
    everyone = {r["ID"] for r in strict.sb.records(DIVISION, "crm/Accounts")}
    inputs: dict[str, object] = {"endpoint": "crm/Accounts", "select": ["ID", "Name"], "limit": 50}
    token = strict.sb.issue_tokens()["access_token"]
    records: list[dict[str, object]] = []
    while True:
        result = _list(strict, **inputs)
        assert result["ok"], result
        data = result["data"]
        assert isinstance(data, dict)
        if not records:  # a person renames an account the workflow already has
            changed = data["records"][0]["ID"]
            answer = httpx.put(
                f"{strict.base_url}/api/v1/{DIVISION}/crm/Accounts(guid'{changed}')",
                json={"Name": "Renamed B.V."},
                headers={"Authorization": f"Bearer {token}"},
                trust_env=False,
            )
            assert answer.status_code == 204, answer.text
        records += data["records"]
        if not data.get("next_cursor"):
            break
        inputs["cursor"] = data["next_cursor"]

    ids = [record["ID"] for record in records]
    assert set(ids) == everyone
    assert [record["Name"] for record in records if record["ID"] == changed][-1] == "Renamed B.V."
    assert len(ids) == len(everyone) + 1  # only the changed one comes twice
    assert all(set(record) == {"ID", "Name"} for record in records)


def test_a_cursor_of_a_list_in_key_order_ignores_a_selected_timestamp(world: World) -> None:
    """project/Projects is in key order; with Timestamp selected and the key not, the cursor on
    the list's last page once took its token from the Timestamp (1000122L), which Exact refuses
    for a Guid key: every retry then counted toward its error limit. Now it counts rows."""
    inputs: dict[str, object] = {
        "endpoint": "project/Projects",
        "select": ["Code", "Timestamp"],
        "filter": "Type eq 2",
    }
    every = _list(world, **inputs)["data"]["records"]
    first = _list(world, **inputs, limit=5)
    assert first["ok"], first
    cursor = first["data"]["next_cursor"]

    resumed = _list(world, **inputs, limit=5, cursor=cursor)

    assert resumed["ok"], resumed
    assert resumed["data"]["records"] == every[5:10]


def test_a_sync_list_cursor_made_before_row_version_cursors_still_resumes(strict: World) -> None:
    """A cursor made by the connector before it read Timestamp for sync cursors names a select
    without it: it resumes (by page and offset, as it was made), not "another list"."""
    credential = strict.credential
    key = cursor_key(credential.client_secret, credential.id)
    page = f"/api/v1/{DIVISION}/sync/CRM/Accounts?%24select=ID%2CName"
    older = Cursor("sync/CRM/Accounts", DIVISION, page, 10).encode(key)
    every = _list(strict, endpoint="sync/CRM/Accounts", select=["ID", "Name"])
    for endpoint in ("sync/CRM/Accounts", "crm/Accounts"):
        inputs = {"endpoint": endpoint, "select": ["ID", "Name"], "limit": 10, "cursor": older}
        resumed = _list(strict, **inputs)
        assert resumed["ok"], resumed
        assert resumed["data"]["records"] == every["data"]["records"][10:20]


def test_a_stream_exact_refuses_for_want_of_a_filter_is_read_from_the_sync_twin(
    strict: World,
) -> None:
    """Connector.stream (no envelope) reads the same records the same way, each once."""
    stream = strict.connector.stream(
        strict.credential_id,
        {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID", "Code"]},
    )

    codes = [record["Code"] for record in stream]

    assert sorted(codes) == sorted(r["Code"] for r in strict.sb.records(DIVISION, "crm/Accounts"))
    assert len(set(codes)) == len(codes)
    assert [path.split(f"/{DIVISION}/")[1] for _, path in strict.recorder.api[-2:]] == [
        "bulk/CRM/Accounts",
        "sync/CRM/Accounts",
    ]


def test_dropdowns_exact_refuses_for_want_of_a_filter_are_read_from_the_sync_twin(
    strict: World,
) -> None:
    """The Data Manager's account and project lists are unfiltered (until a search): refused
    once, they are read from the sync twin and sorted as asked; the next load goes there at
    once, and a search (a filter) goes to the endpoint itself."""
    options = strict.connector.options
    start = len(strict.recorder.api)

    accounts = options("accounts", strict.credential_id, division=DIVISION)
    again = options("accounts", strict.credential_id, division=DIVISION)
    searched = options("accounts", strict.credential_id, division=DIVISION, search="a")
    projects = options("projects", strict.credential_id, division=DIVISION)

    name_of = {
        r["ID"]: r["Name"].strip().casefold() for r in strict.sb.records(DIVISION, "crm/Accounts")
    }
    assert [name_of[o["value"]] for o in accounts] == sorted(name_of.values())[: len(accounts)]
    assert again == accounts and len(accounts) == 60 and searched and projects
    paths = [path.split(f"/{DIVISION}/")[1] for _, path in strict.recorder.api[start:]]
    assert paths == [
        "crm/Accounts",
        "sync/CRM/Accounts",
        "sync/CRM/Accounts",
        "crm/Accounts",
        "project/Projects",
        "sync/Project/Projects",
    ]


def test_a_record_picker_search_looks_into_every_text_label(world: World) -> None:
    """An option reads "Code — Name": a word of the name finds it (the search looked into the
    Code alone); labels of Exact's php:string type are text too; a search longer than a URL
    can carry is refused at $.search, not at a filter the form does not have."""
    options = world.connector.options
    first = options("records", world.credential_id, endpoint="crm/Accounts", division=DIVISION)[0]
    word = first["label"].split(" — ")[1].split()[0]

    found = options(
        "records", world.credential_id, endpoint="crm/Accounts", division=DIVISION, search=word
    )
    reports = options(
        "records",
        world.credential_id,
        endpoint="expensemanagement/ExpenseReports",
        division=DIVISION,
        search="x",
    )
    with pytest.raises(InputError) as refused:
        options(
            "records",
            world.credential_id,
            endpoint="crm/Accounts",
            division=DIVISION,
            search="'" * 1500,
        )

    assert first["value"] in [option["value"] for option in found]
    assert all(word.casefold() in option["label"].casefold() for option in found)
    assert reports
    assert refused.value.errors[0]["path"] == "$.search"


def _large_strict_sandbox() -> Sandbox:
    """A sandbox that demands a filter, with more accounts (1,200) than a sync page holds."""
    return Sandbox(
        clock=ManualClock(),
        auto_consent=True,
        limits=False,
        mandatory_filter=True,
        rows_per_endpoint={"crm/Accounts": 1200},
    )


def test_a_record_picker_search_narrows_and_finds_the_newest_where_exact_demands_a_filter(
    tmp_path: Path,
) -> None:
    """The page's "Narrow a list" offers the record picker, whose search used to be ignored.
    It now narrows to records whose first text label (here the account's Code) contains it,
    newest first; where Exact demands a filter, the search is one, so the account changed just
    now is found even in a division larger than the sync page the unsearched list reads."""
    sandbox = _large_strict_sandbox()
    with connect(sandbox, tmp_path / "vault", name="large") as made:
        accounts = sandbox.records(DIVISION, "crm/Accounts")
        newest = accounts[-1]
        wanted = newest["Code"].strip()
        token = sandbox.issue_tokens()["access_token"]
        answer = sandbox(
            httpx.Request(
                "PUT",
                f"https://start.exactonline.nl/api/v1/{DIVISION}/crm/Accounts(guid'{newest['ID']}')",
                json={"Name": "Changed just now B.V."},
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        assert answer.status_code == 204, answer.text
        unsearched = made.connector.options(
            "records", made.credential_id, endpoint="crm/Accounts", division=DIVISION
        )
        searched = made.connector.options(
            "records", made.credential_id, endpoint="crm/Accounts", division=DIVISION, search=wanted
        )

    assert newest["ID"] not in [option["value"] for option in unsearched]  # the oldest page
    assert searched and searched[0]["value"] == newest["ID"]
    codes = {r["ID"]: r["Code"] for r in accounts}
    assert all(wanted in codes[option["value"]] for option in searched)


def test_a_dropdown_exact_refuses_reads_one_sync_page_of_a_large_division(
    tmp_path: Path,
) -> None:
    """With more rows than a sync page holds (1,000), the fallback offers what the first page
    has, sorted; it does not walk on to the second page (the pager's cap of one page)."""
    sandbox = _large_strict_sandbox()
    with connect(sandbox, tmp_path / "vault", name="large") as made:
        accounts = made.connector.options("accounts", made.credential_id, division=DIVISION)
        picked = made.connector.options(
            "records", made.credential_id, endpoint="crm/Accounts", division=DIVISION
        )

    assert len(accounts) == len(picked) == 60
    labels = [option["label"] for option in accounts]
    assert labels == sorted(labels, key=lambda label: label.split(" — ")[-1].casefold())


def test_an_unfiltered_ordered_list_exact_refuses_names_the_filter(strict: World) -> None:
    """A sync twin cannot order, so an ordered plain list Exact refuses stays refused: the
    error says to add a filter, at $.filter, and one does it."""
    inputs: dict[str, object] = {"endpoint": "crm/Accounts", "order_by": "Name", "limit": 5}
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
