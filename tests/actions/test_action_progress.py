"""The ``progress`` hook: calls, pages and rate-limit waits reported as they happen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from actions_harness import Bench, signed_in_bench

from exact_connector.limits import RateGovernor
from exact_connector.progress import CallMade, PageFetched, ProgressEvent, RateLimitWait

#: project/Projects has no bulk twin, and an order rules out its sync twin: 60 rows a page.
LIST = {"endpoint": "project/Projects", "order_by": "Code"}


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A bench of its own: one test changes the connector's rate governor."""
    with signed_in_bench(tmp_path / "vault") as made:
        yield made


def test_execute_reports_every_call_and_page_of_a_list(bench: Bench) -> None:
    """Each call is counted as it is made, and each page with its rows and the running total."""
    events: list[ProgressEvent] = []
    inputs = {"division": bench.divisions[0], **LIST}
    result = bench.connector.execute(
        "list_or_get_endpoint", bench.credential_id, inputs, progress=events.append
    )
    assert result["ok"], result
    pages = [e for e in events if isinstance(e, PageFetched)]
    calls = [e for e in events if isinstance(e, CallMade)]
    assert len(pages) >= 3
    assert [p.pages for p in pages] == list(range(1, len(pages) + 1))
    assert pages[-1].total_rows == sum(p.rows for p in pages) == result["data"]["count"]
    assert {p.endpoint for p in pages} == {"project/Projects"}
    assert [c.calls for c in calls] == list(range(1, result["meta"]["api_calls"] + 1))
    assert {(c.method, c.endpoint) for c in calls} == {("GET", "project/Projects")}


def test_stream_reports_pages_as_the_consumer_reads_them(bench: Bench) -> None:
    """A stream reports a page before its first record reaches the consumer."""
    events: list[ProgressEvent] = []
    inputs = {"division": bench.divisions[0], **LIST}
    stream = bench.connector.stream(bench.credential_id, inputs, progress=events.append)
    next(stream)
    assert [type(e) for e in events] == [CallMade, PageFetched]
    rows = 1 + sum(1 for _ in stream)
    assert events[-1] == PageFetched("project/Projects", rows - 120, rows, 3)


def test_a_rate_limit_wait_is_announced_with_its_end(bench: Bench) -> None:
    """When the minute's calls are used, the wait is reported before it starts, with its end."""
    bench.connector.governor = RateGovernor(clock=bench.clock, minute_limit=1)
    events: list[ProgressEvent] = []
    started = bench.clock.now()
    inputs = {"division": bench.divisions[0], **LIST}
    result = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        inputs,
        deadline_seconds=600,
        progress=events.append,
    )
    assert result["ok"], result
    waits = [e for e in events if isinstance(e, RateLimitWait)]
    assert len(waits) == result["meta"]["api_calls"] - 1
    assert all(w.reason == "minute" and w.division == bench.divisions[0] for w in waits)
    assert waits[0].until > datetime.fromtimestamp(started, UTC)
    assert waits[0].until.timestamp() <= started + 60 + 2  # the next minute, plus a margin


def test_a_raising_callback_stops_the_work(bench: Bench) -> None:
    """The callback is the caller's code: its error reaches the caller, it is not swallowed."""

    def broken(event: ProgressEvent) -> None:
        raise LookupError("callback bug")

    inputs = {"division": bench.divisions[0], **LIST}
    with pytest.raises(LookupError, match="callback bug"):
        bench.connector.execute(
            "list_or_get_endpoint", bench.credential_id, inputs, progress=broken
        )
