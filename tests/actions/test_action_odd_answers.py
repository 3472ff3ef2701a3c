"""The write actions on answers Exact should not send, and on keys as a person types them.

An answer nested deeper than JSON readers go, a ``Location`` that is no URL, or a refusal whose
body cannot be read is an envelope (the create's record made, the update's applied: a warning),
never a traceback out of ``execute``; a delete names its record as create and update do; a value
outside a list of allowed values is told which values are allowed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from actions_harness import Bench, signed_in_bench, time_inputs

TT = "project/TimeTransactions"
Tamper = Callable[[httpx.Request, httpx.Response], httpx.Response]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A bench of its own (the module's is shared): these tests change its transport."""
    with signed_in_bench(tmp_path / "vault") as made:
        yield made


@pytest.fixture
def tamper(bench: Bench) -> Callable[[Tamper], None]:
    """Route the connector's requests through the sandbox, then through ``change``."""

    def install(change: Tamper) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return change(request, bench.sandbox(request))

        bench.connector.transport = httpx.MockTransport(handler)

    return install


DEEP = b"[" * 100_000 + b"]" * 100_000


def _nested_too_deep(method: str, status: int) -> Tamper:
    """``method`` on the time transactions answered with ``status`` and a body too deep to read."""

    def change(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.method == method and TT.lower() in request.url.path.lower():
            return httpx.Response(
                status, headers={"Content-Type": "application/json"}, content=DEEP
            )
        return response

    return change


def _deep(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    if request.method == "POST" and TT.lower() in request.url.path.lower():
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=DEEP)
    return response


def test_a_created_answer_nested_too_deep_is_read_back_by_its_location(
    bench: Bench, tamper: Callable[[Tamper], None]
) -> None:
    tamper(_deep)
    inputs = time_inputs(bench)
    before = len(bench.sb.records(inputs["division"], TT))
    result = bench.connector.execute("create_project_time_transaction", bench.credential_id, inputs)
    # The record was created (Exact answered 201 with a Location); the step must say so, as it
    # does for a truncated body, instead of raising RecursionError out of execute().
    assert len(bench.sb.records(inputs["division"], TT)) == before + 1
    assert result["ok"] is True, result
    assert result["data"]["warnings"][0]["code"] == "created_answer_unreadable"


def _truncated_with_bad_location(
    request: httpx.Request, response: httpx.Response
) -> httpx.Response:
    if request.method == "POST" and TT.lower() in request.url.path.lower():
        return httpx.Response(
            201,
            headers={
                "Content-Type": "application/json",
                "Location": "https://[start.exactonline.nl/x",
            },
            content=b'{"d":{"ID":"',
        )
    return response


def test_a_created_answer_with_a_malformed_location_is_an_envelope_not_a_traceback(
    bench: Bench, tamper: Callable[[Tamper], None]
) -> None:
    tamper(_truncated_with_bad_location)
    result = bench.connector.execute(
        "create_project_time_transaction", bench.credential_id, time_inputs(bench)
    )
    assert result["ok"] is False
    assert result["error"]["code"] == "outcome_unknown"


def test_an_updated_records_read_back_nested_too_deep_is_a_warning(
    bench: Bench, tamper: Callable[[Tamper], None]
) -> None:
    division = bench.divisions[0]
    record = bench.sb.records(division, TT)[0]
    tamper(_nested_too_deep("GET", 200))
    result = bench.connector.execute(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": division, "id": record["ID"], "data": {"Quantity": 4}},
    )
    assert bench.sb.records(division, TT)[0]["Quantity"] == 4  # the PUT was applied
    assert result["ok"] is True, result
    assert result["data"]["warnings"][0]["code"] == "updated_record_not_read"


def test_a_refused_delete_whose_error_body_nests_too_deep_is_an_envelope(
    bench: Bench, tamper: Callable[[Tamper], None]
) -> None:
    division = bench.divisions[0]
    record = bench.sb.records(division, TT)[0]
    tamper(_nested_too_deep("DELETE", 400))
    result = bench.connector.execute(
        "delete_endpoint_record",
        bench.credential_id,
        {"division": division, "endpoint": TT, "id": record["ID"]},
    )
    assert result["ok"] is False
    assert result["error"]["code"] == "exact_rejected"


@pytest.mark.parametrize("written", ["upper", "braces", "urn", "no_hyphens"])
def test_delete_returns_the_canonical_id_as_create_and_update_do(
    bench: Bench, caplog: pytest.LogCaptureFixture, written: str
) -> None:
    division = bench.divisions[0]
    key = bench.sb.records(division, TT)[0]["ID"]
    given = {
        "upper": key.upper(),
        "braces": "{" + key.upper() + "}",
        "urn": "urn:uuid:" + key,
        "no_hyphens": key.replace("-", ""),
    }[written]
    updated = bench.connector.execute(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": division, "id": given, "data": {"Quantity": 2}},
    )
    assert updated["data"]["id"] == key  # update answers with the canonical key
    with caplog.at_level(logging.INFO, logger="exact_connector.audit"):
        deleted = bench.connector.execute(
            "delete_endpoint_record",
            bench.credential_id,
            {"division": division, "endpoint": TT, "id": given},
        )
    assert deleted["ok"] is True
    assert deleted["data"]["id"] == key, "the next step gets an id that matches no other output"
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "exact_connector.audit"
    ]
    assert lines[-1]["id"] == key, "the audit line names the record differently from its create"


def test_a_status_exact_reads_but_does_not_write_says_which_statuses_can_be_written(
    bench: Bench,
) -> None:
    division = bench.divisions[0]
    # Approved hours read back with HourStatus 20 (Final); a person copies it into an update.
    record = bench.sb.records(division, TT)[0]
    result = bench.connector.execute(
        "update_project_time_transaction",
        bench.credential_id,
        {"division": division, "id": record["ID"], "data": {"HourStatus": 20}},
    )
    assert result["ok"] is False
    [error] = result["error"]["details"]["errors"]
    assert error["path"] == "$.data.HourStatus"
    message = error["message"]
    assert message == "must be one of 1 (Draft), 2 (Rejected), 10 (Submitted)"
