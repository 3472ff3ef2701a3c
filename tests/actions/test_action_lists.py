"""list_or_get_endpoint in-process: endpoints named directly, streams, plans, and async twins."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from actions_harness import Bench

from exact_connector.exceptions import RequestTimeout, UnknownEndpoint

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
