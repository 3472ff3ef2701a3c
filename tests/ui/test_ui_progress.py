"""The step runner's progress: a run asked for as NDJSON streams its calls and pages while they
happen, then the same answer the plain JSON call gives."""

from __future__ import annotations

import json
from typing import Any

from ui_harness import Ui

from exact_connector.ui.guard import CSRF_HEADER
from exact_connector.ui.stream import MEDIA_TYPE

DIVISION = 100001
ROWS = 150  # the sandbox's time transactions in the division: three pages of 60


def _active(ui: Ui) -> str:
    added = ui.add("Acme")
    ui.post(f"/api/credentials/{added['id']}/activate")
    return str(added["id"])


def _stream(ui: Ui, action: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of one streamed run, each parsed as it arrived."""
    headers = {CSRF_HEADER: ui.token, "Accept": MEDIA_TYPE}
    with ui.client.stream("POST", f"/api/run/{action}", json=body, headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(MEDIA_TYPE)
        return [json.loads(line) for line in answer.iter_lines() if line]


def test_a_long_list_streams_its_pages_then_the_answer(ui: Ui) -> None:
    """Three pages: progress after each call and page, counts rising, then the envelope."""
    credential = _active(ui)
    form_data = {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": ROWS}
    lines = _stream(ui, "list_or_get_endpoint", {"credential": credential, "formData": form_data})

    *progress, last = lines
    assert all(set(line) == {"progress"} for line in progress)
    pages = [(p["progress"]["pages"], p["progress"]["rows"]) for p in progress]
    assert (3, ROWS) in pages and pages == sorted(pages)
    assert [p["progress"]["calls"] for p in progress][-1] == 3
    assert last["answer"]["result"]["ok"] is True
    assert last["answer"]["result"]["data"]["count"] == ROWS
    assert last["answer"]["result"]["meta"]["api_calls"] == 3


def test_bad_input_streams_one_error_line_and_sends_nothing(ui: Ui) -> None:
    """A value failing its schema: no progress, one error naming the field, no request sent."""
    credential = _active(ui)
    before = sum(ui.workspace.sandbox.counters.requests.values())
    form_data = {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": -1}
    lines = _stream(ui, "list_or_get_endpoint", {"credential": credential, "formData": form_data})

    assert len(lines) == 1
    assert lines[0]["status"] == 422
    assert lines[0]["error"]["details"]["errors"][0]["path"] == "$.limit"
    assert sum(ui.workspace.sandbox.counters.requests.values()) == before


def test_a_body_that_is_not_json_is_refused_before_streaming(ui: Ui) -> None:
    """The request itself is checked first: a plain 422, not a stream."""
    headers = {CSRF_HEADER: ui.token, "Accept": MEDIA_TYPE, "Content-Type": "application/json"}
    answer = ui.client.post("/api/run/list_or_get_endpoint", content=b"{", headers=headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["errors"][0]["path"] == "$"
