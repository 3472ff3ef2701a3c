"""list_or_get_endpoint in-process: endpoints named directly, streams, plans, and async twins."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from actions_harness import Bench

from exact_connector.catalog import catalog
from exact_connector.exceptions import RequestTimeout, UnknownEndpoint
from exact_connector.pagination import CURSOR_MAX_LENGTH, Cursor
from exact_connector.urls import MAX_URL_LENGTH

DIVISION = 100001


def test_a_sync_endpoint_named_directly_is_listed_with_all_its_fields(bench: Bench) -> None:
    """Exact refuses bulk and sync lists without $select; every field of the endpoint is selected."""
    result = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        {"division": DIVISION, "endpoint": "sync/CRM/Accounts", "limit": 3},
    )

    assert result["ok"] is True, result
    assert result["data"]["count"] == 3
    assert {"ID", "Name", "Timestamp"} <= set(result["data"]["records"][0])


def test_a_stream_yields_every_record_once(bench: Bench) -> None:
    """Connector.stream walks the whole list (here through the bulk twin), one record at a time."""
    stream = bench.connector.stream(
        bench.credential_id, {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"]}
    )

    ids = [record["ID"] for record in stream]

    assert sorted(ids) == sorted(r["ID"] for r in bench.sb.records(DIVISION, "crm/Accounts"))
    assert len(set(ids)) == len(ids) == 150


def test_a_stream_of_an_endpoint_exact_lacks_raises_unknown_endpoint(bench: Bench) -> None:
    """A stream has no envelope: the typed error is raised to the caller."""
    stream = bench.connector.stream(
        bench.credential_id, {"division": DIVISION, "endpoint": "crm/Nope"}
    )

    with pytest.raises(UnknownEndpoint):
        next(iter(stream))


def test_plan_shows_the_request_with_the_token_masked_and_sends_nothing(bench: Bench) -> None:
    """Dry run: the first request as it would be sent; the transport sees nothing."""
    before = bench.calls
    record = bench.sb.records(DIVISION, "project/TimeTransactions")[0]

    plan = bench.connector.plan(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": DIVISION, "id": record["ID"].upper(), "data": {"Quantity": 2}},
    )

    assert plan["method"] == "PUT" and plan["sent"] is False
    assert plan["url"].endswith(
        f"/api/v1/{DIVISION}/project/TimeTransactions(guid'{record['ID']}')"
    )
    assert plan["headers"]["Authorization"] == "Bearer ********"
    assert plan["json"] == {"Quantity": 2}
    assert bench.calls == before


def test_the_async_twins_give_what_the_sync_core_gives(bench: Bench) -> None:
    """aexecute, aoptions and atest_connect run the same core in a worker thread."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 2}

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            bench.connector.aexecute("list_or_get_endpoint", bench.credential_id, inputs),
            bench.connector.aoptions("divisions", bench.credential_id),
            bench.connector.atest_connect(bench.credential_id),
        )

    executed, divisions, report = asyncio.run(main())

    synced = bench.connector.execute("list_or_get_endpoint", bench.credential_id, inputs)
    assert isinstance(executed, dict) and executed["data"] == synced["data"]
    assert divisions == bench.connector.options("divisions", bench.credential_id)
    assert [option["value"] for option in divisions] == list(bench.divisions)
    assert isinstance(report, dict) and report["ok"] is True


SLOW_LIST = {"division": DIVISION, "endpoint": "project/Projects", "order_by": "Code"}


def test_division_options_are_labelled_with_their_names(bench: Bench) -> None:
    """The division dropdown shows "100001 — <name>" for every division the credential holds."""
    options = bench.connector.options("divisions", bench.credential_id)

    assert [option["value"] for option in options] == list(bench.divisions)
    assert all(option["label"].startswith(f"{option['value']} — ") for option in options)
    assert options[0]["label"].endswith("Sandbox Consultancy B.V.")


def test_a_slow_consumer_does_not_run_a_stream_out_of_time(bench: Bench) -> None:
    """Each page request has its own deadline: minutes spent between pages are the consumer's."""
    seen = 0
    for _ in bench.connector.stream(bench.credential_id, {**SLOW_LIST, "select": ["ID"]}):
        seen += 1
        if seen % 60 == 0:  # one regular page of 60 processed slowly
            bench.clock.advance(300.0)

    assert seen == bench.sb.count(DIVISION, "project/Projects") == 150


def test_a_deadline_for_the_whole_stream_stops_it_when_spent(bench: Bench) -> None:
    """Given deadline_seconds, the stream as a whole must finish in time (RequestTimeout)."""
    stream = bench.connector.stream(
        bench.credential_id, {**SLOW_LIST, "select": ["ID"]}, deadline_seconds=120
    )
    first = [next(stream) for _ in range(60)]
    bench.clock.advance(300.0)

    with pytest.raises(RequestTimeout):
        next(stream)
    assert len(first) == 60


@pytest.mark.parametrize(
    ("first", "then"),
    [pytest.param(10, 100, id="regular-then-bulk"), pytest.param(70, 10, id="bulk-then-regular")],
)
def test_a_cursor_resumes_the_same_list_whatever_the_new_limit(
    bench: Bench, first: int, then: int
) -> None:
    """Issue 11 item 10: a limit across the page size no longer switches the endpoint under it."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"]}
    run = bench.connector.execute

    one = run("list_or_get_endpoint", bench.credential_id, {**inputs, "limit": first})
    cursor = one["data"]["next_cursor"]
    two = run(
        "list_or_get_endpoint", bench.credential_id, {**inputs, "limit": then, "cursor": cursor}
    )

    assert two["ok"] is True, two.get("error")
    read = [r["ID"] for r in one["data"]["records"] + two["data"]["records"]]
    assert len(read) == len(set(read)) == first + then
    assert set(read) <= {r["ID"] for r in bench.sb.records(DIVISION, "crm/Accounts")}


def test_an_edited_cursor_is_refused_and_reads_no_other_rows(bench: Bench) -> None:
    """Issue 11 item 11: a cursor whose position was edited is an input error, nothing sent."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 5}
    cursor = bench.connector.execute("list_or_get_endpoint", bench.credential_id, inputs)["data"][
        "next_cursor"
    ]
    prefix, body, signature = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["s"] += 7
    edited = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    before = bench.calls

    result = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        {**inputs, "cursor": f"{prefix}.{edited.decode().rstrip('=')}.{signature}"},
    )

    assert result["ok"] is False
    assert result["error"]["code"] == "invalid_input"
    assert result["error"]["details"]["errors"][0]["path"] == "$.cursor"
    assert bench.calls == before


def _list(bench: Bench, **inputs: object) -> dict[str, object]:
    return bench.connector.execute(
        "list_or_get_endpoint", bench.credential_id, {"division": DIVISION, **inputs}
    )


@pytest.mark.parametrize(
    ("endpoint", "select"),
    [
        ("purchaseorder/PurchaseOrders", ["PurchaseOrderID", "OrderNumber"]),
        ("salesinvoice/SalesInvoices", ["InvoiceID", "InvoiceNumber", "Timestamp"]),
    ],
)
def test_a_document_list_is_never_read_from_a_sync_twin_holding_one_row_per_line(
    bench: Bench, endpoint: str, select: list[str]
) -> None:
    """Exact's sync twins of orders, invoices and quotations carry a row per line (LineNumber):
    a list of the documents read from them would repeat a document per line and miss one
    without lines, so it stays on an endpoint whose rows are the documents. (Sales orders and
    quotations have a bulk twin with every field their sync twin shares: never sent there.)"""
    before = bench.calls

    result = _list(bench, endpoint=endpoint, select=select, limit=100)

    assert result["ok"] is True, result.get("error")
    paths = {request.url.path for request in bench.sb.requests[before:]}
    assert paths and not any("/sync/" in path for path in paths), paths


def test_a_plain_account_list_may_still_be_read_from_its_sync_twin(bench: Bench) -> None:
    """The line rule leaves twins whose rows are the records alone: crm/Accounts with Timestamp
    (which bulk lacks) is read from sync/CRM/Accounts, 1000 a page."""
    before = bench.calls

    result = _list(bench, endpoint="crm/Accounts", select=["ID", "Timestamp"], limit=100)

    assert result["ok"] is True, result.get("error")
    assert [r.url.path for r in bench.sb.requests[before:]] == [
        f"/api/v1/{DIVISION}/sync/CRM/Accounts"
    ]


def test_a_stream_with_an_id_yields_that_one_record(bench: Bench) -> None:
    """Connector.stream answers an id as execute does: the one record, one call, never the
    whole endpoint."""
    account = bench.sb.records(DIVISION, "crm/Accounts")[0]
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "id": account["ID"]}
    before = bench.calls

    streamed = list(bench.connector.stream(bench.credential_id, inputs))

    executed = bench.connector.execute("list_or_get_endpoint", bench.credential_id, inputs)
    assert streamed == [executed["data"]["record"]]
    assert streamed[0]["ID"] == account["ID"]
    assert bench.calls == before + 2


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param({"endpoint": "system/Divisions"}, id="model-fields"),
        pytest.param(
            {
                "endpoint": "bulk/SalesInvoice/SalesInvoices",
                "select": ["InvoiceID", "SalesInvoiceOrderChargeLines"],
                "limit": 2,
            },
            id="php-lists",
        ),
    ],
)
def test_normalised_records_carry_no_deferred_links(
    bench: Bench, inputs: dict[str, object]
) -> None:
    """raw: false promises plain JSON: a navigation field that is not a collection
    (system/Divisions' Class_01, a php:…[] line list) is dropped like a collection's link."""
    result = _list(bench, **inputs)

    assert result["ok"] is True, result.get("error")
    records = result["data"]["records"]
    assert records
    assert not [
        (name, value)
        for record in records
        for name, value in record.items()
        if isinstance(value, dict) and "__deferred" in value
    ]
    raw = _list(bench, **inputs, raw=True)["data"]["records"]
    assert any(isinstance(v, dict) and "__deferred" in v for r in raw for v in r.values())


def test_a_cursor_given_back_with_another_select_is_an_input_error_at_the_cursor(
    bench: Bench,
) -> None:
    """The list changed, not Exact's link: invalid_input at $.cursor, saying what to do, and
    nothing sent."""
    inputs = {"endpoint": "crm/Accounts", "select": ["ID", "Name"], "limit": 5}
    cursor = _list(bench, **inputs)["data"]["next_cursor"]
    before = bench.calls

    result = _list(bench, **{**inputs, "select": ["ID", "Name", "Code"]}, cursor=cursor)

    assert result["ok"] is False
    error = result["error"]
    assert error["code"] == "invalid_input"
    assert error["details"]["errors"] == [
        {"path": "$.cursor", "code": "cursor", "message": "made for another list"}
    ]
    assert "same select, filter and order_by" in error["hint"]
    assert bench.calls == before


def test_the_cursor_of_a_list_with_a_long_url_can_be_given_back(bench: Bench) -> None:
    """A list URL of some 3,000 characters gives a cursor of over 4,000: it continues the list
    (Exact takes URLs up to 6,000 characters, and the cursor's bound follows from that)."""
    names = [f.name for f in catalog().lookup("crm/Accounts").fields if not f.navigation]
    names.remove("Timestamp")  # read from bulk/CRM/Accounts
    text = " or ".join(f"Name ne 'Nobody number {n:03d}'" for n in range(12))
    inputs = {"endpoint": "crm/Accounts", "select": names, "filter": text, "limit": 100}
    first = _list(bench, **inputs)
    cursor = first["data"]["next_cursor"]
    assert len(cursor) > 4096

    second = _list(bench, **inputs, cursor=cursor)

    assert second["ok"] is True, second.get("error")
    ids = [r["ID"] for r in first["data"]["records"] + second["data"]["records"]]
    assert len(ids) == len(set(ids)) == 150


def test_the_cursor_bound_fits_a_link_as_long_as_exact_allows() -> None:
    """The schema's maxLength and the decoder's bound are one figure, and a cursor for a page
    link of Exact's 6,000 characters stays under it."""
    schema = json.loads(
        (Path(__file__).parents[2] / "schemas/actions/list_or_get_endpoint.input.json").read_text()
    )
    assert schema["properties"]["cursor"]["maxLength"] == CURSOR_MAX_LENGTH
    target = "/api/v1/100001/bulk/CRM/Accounts?" + "x" * (MAX_URL_LENGTH - 40)
    longest = Cursor("bulk/CRM/Accounts", 2_147_483_647, target, 999_999).encode(b"k" * 32)
    assert len(longest) <= CURSOR_MAX_LENGTH
    back = Cursor.decode(
        longest, key=b"k" * 32, endpoints={"bulk/CRM/Accounts"}, division=2_147_483_647
    )
    assert back.target == target
