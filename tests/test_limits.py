"""The rate governor: minute and day budgets, 429 waits, Retry-After, jitter, the error budget."""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import random
import sqlite3
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pg_server
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exact_connector import limits
from exact_connector.clock import ManualClock, ScaledClock
from exact_connector.exceptions import (
    DailyRateLimited,
    ErrorBudgetExhausted,
    RateLimited,
    RequestTimeout,
    SystemError_,
    TransientError,
)
from exact_connector.limits import (
    PAST_RESET_BACKOFF,
    RESET_MARGIN,
    RateGovernor,
    RateHeaders,
    parse_rate_headers,
)
from exact_connector.limits_pg import PostgresRateGovernor
from exact_connector.retries import MAX_RETRY_AFTER, MIN_RETRY_AFTER, backoff_delay

RECORDED = Path("/work/shared/exact-online/recorded/ratelimit_headers_observed.json")
NewGovernor = Callable[..., RateGovernor]
W = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a minute and a UTC-day boundary
APP, DIV, ENDPOINT = "app-client-id", 123, "crm/Accounts"


def ms(epoch: float) -> str:
    """An epoch in Exact's header unit: milliseconds, as a string."""
    return str(int(epoch * 1000))


def minutely(remaining: int, reset: float | None, limit: int = 60) -> dict[str, str]:
    headers = {
        "X-RateLimit-Minutely-Limit": str(limit),
        "X-RateLimit-Minutely-Remaining": str(remaining),
    }
    if reset is not None:
        headers["X-RateLimit-Minutely-Reset"] = ms(reset)
    return headers


def daily(remaining: int, reset: float, limit: int = 5000) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": ms(reset),
    }


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(W + 10)


@pytest.fixture(params=["sqlite", "postgres"])
def new_governor(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[NewGovernor]:
    """Make governors on one backend: SQLite in memory, or a PostgreSQL schema of the test's own.

    Governors made by one test on PostgreSQL share that schema (as workers on many hosts do).
    """
    made: list[RateGovernor] = []
    schema = pg_server.fresh_schema()

    def make(state_path: Path | None = None, **options: Any) -> RateGovernor:
        options.setdefault("clock", clock)
        if request.param == "sqlite":
            governor = RateGovernor(state_path, **options)
        else:  # one schema per test: the state is shared already
            url = request.getfixturevalue("postgres_url")
            governor = PostgresRateGovernor(url, schema=schema, **options)
        made.append(governor)
        return governor

    yield make
    for governor in made:
        governor.close()


@pytest.fixture
def governor(new_governor: NewGovernor) -> RateGovernor:
    return new_governor()


# --- parse_rate_headers -------------------------------------------------------------------------


def test_recorded_exact_headers_parse_as_milliseconds() -> None:
    """The real response from picqer#609 reads as 60/58 until 08:19:00Z and 5000/4766 until midnight."""
    recorded = json.loads(RECORDED.read_text())["normal_response_headers"]
    assert parse_rate_headers(recorded) == RateHeaders(
        minute_limit=60,
        minute_remaining=58,
        minute_reset=1683879540.0,
        day_limit=5000,
        day_remaining=4766,
        day_reset=1683936000.0,
    )


def test_httpx_headers_are_accepted_and_duplicates_read_as_absent() -> None:
    """The client passes httpx.Headers; a repeated header joins to "5, 6", which is not a count."""
    headers = httpx.Headers(
        [
            ("x-ratelimit-minutely-limit", "60"),
            ("X-RateLimit-Minutely-Remaining", "5"),
            ("X-RateLimit-Minutely-Remaining", "6"),
            ("X-RateLimit-Minutely-Reset", "1683879540000"),
        ]
    )
    assert parse_rate_headers(headers) == RateHeaders(60, None, 1683879540.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "x-ratelimit-minutely-limit": "60",
                "x-ratelimit-minutely-remaining": "3",
                "x-ratelimit-minutely-reset": "1683879540000",
            },
            RateHeaders(60, 3, 1683879540.0),
        ),
        (
            {
                "X-RateLimit-Minutely-Limit": "60",
                "X-RateLimit-Minutely-Remaining": "3",
                "X-RateLimit-Minutely-Reset": "1683879540",
            },
            RateHeaders(60, 3, 1683879540.0),
        ),
        (
            {"X-RateLimit-Minutely-Reset": " 1683879540000.0 ", "X-RateLimit-Minutely-Limit": "60"},
            RateHeaders(60, None, 1683879540.0),
        ),
        (
            {
                **minutely(0, 1683879540.0),
                "X-RateLimit-Limit": "0",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "0",
            },
            RateHeaders(60, 0, 1683879540.0),
        ),
        (
            {
                "X-RateLimit-Minutely-Limit": "abc",
                "X-RateLimit-Minutely-Remaining": "-5",
                "X-RateLimit-Minutely-Reset": "1e12",
            },
            RateHeaders(),
        ),
        (
            {
                "X-RateLimit-Limit": "６０",
                "X-RateLimit-Remaining": "NaN",
                "X-RateLimit-Reset": "1683879540000000",
            },
            RateHeaders(),
        ),
        (
            {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "", "X-RateLimit-Reset": "x"},
            RateHeaders(day_limit=5000),
        ),
        ({"Content-Type": "application/json"}, RateHeaders()),
    ],
    ids=[
        "lower-case-names",
        "reset-in-seconds-by-mistake",
        "decimal-ms-with-spaces",
        "minutely-429-daily-read-as-zero",
        "garbage-minute",
        "full-width-nan-microseconds",
        "limit-only",
        "no-rate-headers",
    ],
)
def test_rate_headers_are_read_defensively(headers: dict[str, str], expected: RateHeaders) -> None:
    """Names are case-insensitive, resets are ms (seconds tolerated), garbage reads as absent."""
    assert parse_rate_headers(headers) == expected


HEADER_NAMES = st.sampled_from(
    [
        "X-RateLimit-Minutely-Limit",
        "X-RateLimit-Minutely-Remaining",
        "X-RateLimit-Minutely-Reset",
        "X-RateLimit-Limit",
        "x-ratelimit-remaining",
        "X-RATELIMIT-RESET",
        "Retry-After",
        "retry-after",
    ]
) | st.text(max_size=30)
HEADER_VALUES = st.text(max_size=40) | st.integers(min_value=-(10**20), max_value=10**20).map(str)
HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=8)


@given(HEADERS)
def test_parse_rate_headers_is_total(headers: dict[str, str]) -> None:
    """Any header dict parses without raising; counts are non-negative, resets plausible epochs."""
    parsed = parse_rate_headers(headers)
    for count in (
        parsed.minute_limit,
        parsed.minute_remaining,
        parsed.day_limit,
        parsed.day_remaining,
    ):
        assert count is None or count >= 0
    for reset in (parsed.minute_reset, parsed.day_reset):
        assert reset is None or 0 < reset < 1e11


# --- retry_after (G8) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        (format_datetime(utc(W + 10 + 30), usegmt=True), 30.0),
        (format_datetime(utc(W - 3600), usegmt=True), MIN_RETRY_AFTER),
        ("0", MIN_RETRY_AFTER),
        ("999999999", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),
        ("garbage", None),
        ("-5", None),
        ("", None),
    ],
    ids=[
        "seconds",
        "padded",
        "http-date",
        "past-date",
        "zero",
        "huge",
        "enormous",
        "garbage",
        "negative",
        "empty",
    ],
)
def test_retry_after_is_honoured_capped_or_defaulted(
    governor: RateGovernor, value: str, expected: float | None
) -> None:
    """G8: Retry-After in seconds or as an HTTP-date; past is a small wait, huge is capped."""
    assert governor.retry_after(429, {"Retry-After": value}) == expected


def test_retry_after_on_503_is_honoured(governor: RateGovernor) -> None:
    """A 503's Retry-After is honoured just like a 429's."""
    assert governor.retry_after(503, {"retry-after": "10"}) == 10.0


@pytest.mark.parametrize("status", [200, 400, 404, 500, 502])
def test_retry_after_ignores_statuses_that_are_not_throttling(
    governor: RateGovernor, status: int
) -> None:
    """Only 429 and 503 carry a wait hint."""
    assert governor.retry_after(status, {"Retry-After": "10", **minutely(0, W + 60)}) is None


@pytest.mark.parametrize("retry_after", [None, "garbage"], ids=["absent", "garbage"])
def test_retry_after_falls_back_to_the_minutely_reset(
    governor: RateGovernor, retry_after: str | None
) -> None:
    """Without a usable Retry-After, a 429 waits for the minutely reset plus the margin."""
    headers = minutely(0, W + 60)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    assert governor.retry_after(429, headers) == 60 - 10 + RESET_MARGIN


def test_retry_after_without_any_hint_is_none(governor: RateGovernor) -> None:
    """A bare 429 gives no hint: the caller falls back to its own backoff."""
    assert governor.retry_after(429, {}) is None


@given(st.integers(min_value=0, max_value=999), HEADERS)
def test_retry_after_is_total_and_never_negative(status: int, headers: dict[str, str]) -> None:
    """Any status and headers give None or a wait within [MIN_RETRY_AFTER, MAX_RETRY_AFTER]."""
    delay = RateGovernor(clock=ManualClock(W)).retry_after(status, headers)
    assert delay is None or MIN_RETRY_AFTER <= delay <= MAX_RETRY_AFTER


@given(st.datetimes(timezones=st.just(UTC)))
def test_retry_after_accepts_any_http_date(when: datetime) -> None:
    """Every representable HTTP-date gives a bounded, positive wait."""
    delay = RateGovernor(clock=ManualClock(W)).retry_after(
        429, {"Retry-After": format_datetime(when, usegmt=True)}
    )
    assert delay is not None
    assert MIN_RETRY_AFTER <= delay <= MAX_RETRY_AFTER


# --- backoff_delay (G9) -------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 6, 10, 64, 10_000])
def test_jitter_stays_within_the_full_jitter_bounds(attempt: int) -> None:
    """G9: every delay is within [0, min(cap, base * 2**attempt)]."""
    rng = random.Random(attempt)
    ceiling = min(30.0, 0.5 * 2.0 ** min(attempt, 64))
    delays = [backoff_delay(attempt, rng=rng) for _ in range(500)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling / 2  # spread over the range, not stuck at its bottom


def test_jitter_of_a_negative_attempt_is_bounded_by_base() -> None:
    """A negative attempt is treated as the first."""
    assert 0.0 <= backoff_delay(-3, base=2.0, rng=random.Random(1)) <= 2.0


def test_a_zero_cap_gives_no_delay() -> None:
    """cap=0 disables waiting (a test switch)."""
    assert backoff_delay(7, cap=0.0, rng=random.Random(1)) == 0.0


def test_one_hundred_clients_do_not_retry_in_lockstep() -> None:
    """G9: 100 clients failing together pick 100 different delays, spread over the range."""
    seeded = [backoff_delay(4, rng=random.Random(seed)) for seed in range(100)]
    unseeded = [backoff_delay(4) for _ in range(100)]
    for delays in (seeded, unseeded):
        assert len(set(delays)) == 100
        assert max(delays) - min(delays) > 4.0  # of a possible 8


# --- the minute window and 429s (G6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "opens_at"),
    [
        (minutely(0, W + 60), W + 60 + RESET_MARGIN),
        (
            {**minutely(0, W + 60), "X-RateLimit-Minutely-Reset": str(int(W + 60))},
            W + 60 + RESET_MARGIN,
        ),
        (minutely(0, W + 5), W + 10 + PAST_RESET_BACKOFF + RESET_MARGIN),
        ({}, W + 60 + RESET_MARGIN),
        (minutely(12, W + 60), W + 60 + RESET_MARGIN),
        ({**minutely(0, W + 60), "Retry-After": "90"}, W + 10 + 90 + RESET_MARGIN),
    ],
    ids=[
        "reset-ms",
        "reset-seconds",
        "reset-in-past",
        "headers-missing",
        "remaining-above-zero",
        "longer-retry-after",
    ],
)
def test_429_waits_for_the_reset(
    governor: RateGovernor, clock: ManualClock, headers: dict[str, str], opens_at: float
) -> None:
    """G6: after a 429 the next call waits until reset + margin (past: short backoff; none: next minute)."""
    governor.observe(APP, DIV, ENDPOINT, 429, headers)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == opens_at


@pytest.mark.parametrize(
    ("headers", "opens_at"),
    [
        (minutely(0, W + 60), W + 60 + RESET_MARGIN),
        (minutely(0, W + 5), W + 10 + PAST_RESET_BACKOFF + RESET_MARGIN),
        ({}, W + 60 + RESET_MARGIN),
    ],
    ids=["reset-ms", "reset-in-past", "headers-missing"],
)
def test_429_wait_past_the_deadline_raises_rate_limited(
    governor: RateGovernor, clock: ManualClock, headers: dict[str, str], opens_at: float
) -> None:
    """G6: a wait that would pass the step's deadline raises RateLimited(retry_at) without sleeping."""
    governor.observe(APP, DIV, ENDPOINT, 429, headers)
    with pytest.raises(RateLimited) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=W + 10 + 0.5)
    assert type(caught.value) is RateLimited
    assert caught.value.retry_at == utc(opens_at)
    assert caught.value.retryable
    assert clock.now() == W + 10


def test_a_late_429_of_the_previous_minute_keeps_this_minutes_calls_counted(
    new_governor: NewGovernor, clock: ManualClock, tmp_path: Path
) -> None:
    """A call sent at the end of one minute whose 429 arrives after the next began (its reset
    already passed) ends the window early, but the calls the new minute holds still count: two
    workers together stay at 60 in that minute (the window was emptied: 100 went out)."""
    clock.advance(W + 59.5 - clock.now())
    first, second = new_governor(tmp_path / "limits.db"), new_governor(tmp_path / "limits.db")
    first.acquire(APP, DIV, ENDPOINT, deadline=None)  # minute M, answered late
    clock.advance(5.5)
    for _ in range(40):  # minute M+1
        second.acquire(APP, DIV, ENDPOINT, deadline=None)

    first.observe(APP, DIV, ENDPOINT, 429, minutely(0, W + 60))
    clock.advance(2.5)
    made = 0
    try:
        while made < 100:
            second.acquire(APP, DIV, ENDPOINT, deadline=W + 119.9)
            made += 1
    except RateLimited:
        pass

    assert made > 0 and 40 + made <= 60
    assert clock.now() < W + 120


def test_minutely_429_with_daily_headers_read_as_zero_is_not_a_daily_limit(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """The picqer#646 shape (daily 0/0/0 on a minutely 429) waits for the minute, not the day."""
    headers = {
        **minutely(0, W + 60),
        "X-RateLimit-Limit": "0",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "0",
    }
    governor.observe(APP, DIV, ENDPOINT, 429, headers)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == W + 60 + RESET_MARGIN
    assert governor.snapshot(APP, DIV).day_remaining == 4999


def test_sixty_calls_pass_and_the_sixty_first_waits_for_the_next_minute(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """Pacing: a full minute's budget goes without waiting; the next call waits for the window."""
    for _ in range(60):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == W + 10
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == W + 60 + RESET_MARGIN
    assert governor.snapshot(APP, DIV).minute_remaining == 59


def test_calls_at_the_end_of_a_window_also_count_in_the_next(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """Skew: a call within the margin of a reset may land in Exact's next minute, so it counts there."""
    clock.advance(49.5)  # W + 59.5
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    clock.advance(2.0)
    assert governor.snapshot(APP, DIV).minute_remaining == 59


def test_server_remaining_lowers_the_local_count_but_never_raises_it(
    governor: RateGovernor,
) -> None:
    """Reconcile: remaining = min(local, server) within the same window."""
    for _ in range(10):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    governor.observe(APP, DIV, ENDPOINT, 200, minutely(58, W + 60))
    assert governor.snapshot(APP, DIV).minute_remaining == 50
    governor.observe(APP, DIV, ENDPOINT, 200, minutely(5, W + 60))
    assert governor.snapshot(APP, DIV).minute_remaining == 5


def test_a_late_response_from_the_previous_minute_is_ignored(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """Reconcile: a header whose reset is the previous window's does not drain the new one."""
    clock.advance(60)  # W + 70
    governor.observe(APP, DIV, ENDPOINT, 200, minutely(0, W + 60))
    assert governor.snapshot(APP, DIV).minute_remaining == 60


def test_the_servers_reset_wins_for_the_window_end(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """Skew: when Exact's minute ends 3 s after ours, the spent window reopens after Exact's."""
    governor.observe(APP, DIV, ENDPOINT, 200, minutely(0, W + 63))
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == W + 63 + RESET_MARGIN


def test_a_lower_server_limit_is_respected(governor: RateGovernor, clock: ManualClock) -> None:
    """An advertised minute limit below ours (e.g. 30) becomes the budget."""
    governor.observe(APP, DIV, ENDPOINT, 200, minutely(30, W + 60, limit=30))
    for _ in range(30):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() == W + 10
    with pytest.raises(RateLimited):
        governor.acquire(APP, DIV, ENDPOINT, deadline=W + 20)


@pytest.mark.parametrize(
    "headers",
    [
        minutely(0, W + 10 + 86_400),
        {
            "X-RateLimit-Minutely-Limit": "x",
            "X-RateLimit-Minutely-Remaining": "0",
            "X-RateLimit-Minutely-Reset": "soon",
        },
        daily(4000, W + 30 * 86_400),
    ],
    ids=["minute-reset-a-day-away", "garbage", "daily-reset-a-month-away"],
)
def test_implausible_resets_do_not_block(governor: RateGovernor, headers: dict[str, str]) -> None:
    """A reset far outside its window is a unit mistake: our window end stands, no day-long wait."""
    governor.observe(APP, DIV, ENDPOINT, 200, headers)
    governor.acquire(APP, DIV, ENDPOINT, deadline=W + 10 + 61 + RESET_MARGIN)
    snapshot = governor.snapshot(APP, DIV)
    assert snapshot.minute_reset <= utc(W + 120)
    assert snapshot.day_reset == utc(W + 86_400)


# --- the day window (G7) ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 429])
def test_daily_budget_spent_fails_fast_with_retry_at(
    governor: RateGovernor, clock: ManualClock, status: int
) -> None:
    """G7: daily Remaining 0 with reset tomorrow raises DailyRateLimited at once, no sleeping."""
    tomorrow = W + 86_400
    governor.observe(APP, DIV, ENDPOINT, status, {**minutely(40, W + 60), **daily(0, tomorrow)})
    with pytest.raises(DailyRateLimited) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert caught.value.retry_at == utc(tomorrow + RESET_MARGIN)
    assert caught.value.code == "rate_limited_daily"
    assert clock.now() == W + 10


def test_daily_limit_leaves_other_divisions_alone(governor: RateGovernor) -> None:
    """G7: one division's spent day does not affect another division."""
    governor.observe(APP, DIV, ENDPOINT, 429, daily(0, W + 86_400))
    governor.acquire(APP, DIV + 1, ENDPOINT, deadline=None)
    assert governor.snapshot(APP, DIV + 1).day_remaining == 4999
    with pytest.raises(DailyRateLimited):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)


def test_daily_budget_returns_after_the_reset(governor: RateGovernor, clock: ManualClock) -> None:
    """G7: after the daily reset (plus margin) calls flow again."""
    governor.observe(APP, DIV, ENDPOINT, 200, daily(0, W + 86_400))
    clock.advance(86_400 - 10 + RESET_MARGIN)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert governor.snapshot(APP, DIV).day_remaining == 4999


def test_local_day_count_stops_at_the_day_limit(new_governor: NewGovernor) -> None:
    """The day is counted locally too: the call after the limit fails until UTC midnight."""
    governor = new_governor(day_limit=3)
    for _ in range(3):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    with pytest.raises(DailyRateLimited) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert caught.value.retry_at == utc(W + 86_400 + RESET_MARGIN)


# --- the error budget (G11) ---------------------------------------------------------------------


def fail(governor: RateGovernor, times: int, status: int = 404, endpoint: str = ENDPOINT) -> None:
    for _ in range(times):
        governor.acquire(APP, DIV, endpoint, deadline=None)
        governor.observe(APP, DIV, endpoint, status, {})


def test_eight_errors_stop_the_endpoint_before_sending(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """G11: after 8 client errors in an hour the next acquire is refused locally, saying why."""
    fail(governor, 8)
    remaining = governor.snapshot(APP, DIV).minute_remaining
    with pytest.raises(ErrorBudgetExhausted) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    error = caught.value
    assert error.code == "error_budget_protect"
    assert "8 errors on crm/Accounts in the last hour" in error.message
    assert "Exact blocks the app at 10" in error.message
    assert error.retry_at == utc(W + 10 + 3600)
    assert governor.snapshot(APP, DIV).minute_remaining == remaining  # nothing reserved
    assert clock.now() == W + 10


def test_seven_errors_still_allow_calls(governor: RateGovernor) -> None:
    """G11: below the stop line calls go on."""
    fail(governor, 7)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)


def test_calls_in_flight_count_against_the_error_budget(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """Five errors counted and three calls under way: were those three to fail too, the next
    call could make the ninth error, so it waits for one to be answered (here, past its deadline:
    refused before sending). Another endpoint is not held back, and a landing makes room."""
    fail(governor, 5)
    for _ in range(3):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    assert governor.in_flight(APP, DIV, ENDPOINT.upper()) == 3

    with pytest.raises(ErrorBudgetExhausted) as refused:
        governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)

    assert "5 calls to crm/Accounts failed in the last hour and 3 more are under way" in (
        refused.value.message
    )
    governor.acquire(APP, DIV, "project/TimeTransactions", deadline=clock.now(), board=True)
    governor.observe(APP, DIV, ENDPOINT, 200, {})
    governor.land(APP, DIV, ENDPOINT)
    governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)
    assert governor.in_flight(APP, DIV, ENDPOINT) == 3


def test_a_leased_call_boards_only_while_there_is_room(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """A list's next pages reserved ahead (a lease) are calls like any other: with the stop's
    worth of calls in flight, one more taken from the lease waits too (here, past its deadline:
    refused) and goes back to the lease; once a call lands, the next call is made."""
    for _ in range(7):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7, board=True)
    remaining = governor.snapshot(APP, DIV).minute_remaining

    with pytest.raises(RequestTimeout) as refused:
        governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)

    # No call failed: the message says what held it back, not that calls failed.
    assert refused.value.message.startswith("8 calls to crm/Accounts are under way at once")
    assert "failed" not in refused.value.message
    assert governor.in_flight(APP, DIV, ENDPOINT) == 8
    assert governor.snapshot(APP, DIV).minute_remaining == remaining  # the leased call kept
    governor.observe(APP, DIV, ENDPOINT, 200, {})
    governor.land(APP, DIV, ENDPOINT)
    governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)
    assert governor.in_flight(APP, DIV, ENDPOINT) == 8
    assert governor.snapshot(APP, DIV).minute_remaining == remaining - 1


def test_a_leased_call_waits_for_a_landing_not_for_the_next_minute(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """A call taken from a lease that finds the stop's worth of calls in flight waits for one to
    land and then uses its lease, even when the division's minute is otherwise full: it used to
    go for a fresh call of the minute and wait for the next one (or fail at its deadline)."""
    for _ in range(7):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7, board=True)  # 7 leased
    for _ in range(45):
        governor.acquire(APP, DIV, "crm/Contacts", deadline=None)
    assert governor.snapshot(APP, DIV).minute_remaining == 7  # the lease's, and no more
    waits: list[float] = []
    landing = threading.Timer(0.2, governor.land, (APP, DIV, ENDPOINT))
    landing.start()

    ticket = governor.acquire(
        APP, DIV, ENDPOINT, deadline=clock.now() + 30, board=True, on_wait=waits.append
    )

    landing.join()
    assert ticket is not None
    assert (waits, clock.now()) == ([], W + 10)  # no wait for the minute
    assert governor.in_flight(APP, DIV, ENDPOINT) == 8
    for _ in range(6):  # the rest of the lease, as the list's next pages take it
        governor.land(APP, DIV, ENDPOINT)
        governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)
    governor.land(APP, DIV, ENDPOINT)
    with pytest.raises(RateLimited):  # the lease is used up, and so is the minute
        governor.acquire(APP, DIV, ENDPOINT, deadline=clock.now(), board=True)


def test_a_call_landing_after_its_expiry_takes_no_other_call_off(
    governor: RateGovernor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call under way longer than FLIGHT_EXPIRY stops counting; when it lands after all, the
    calls still under way keep counting (it used to take the oldest of them off, and one call
    more than the stop could then be sent)."""
    real = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: real[0])
    slow = governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    real[0] += limits.FLIGHT_EXPIRY + 1
    for _ in range(7):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    assert governor.in_flight(APP, DIV, ENDPOINT) == 7

    governor.land(APP, DIV, ENDPOINT, slow)

    assert governor.in_flight(APP, DIV, ENDPOINT) == 7
    governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)  # the eighth
    with pytest.raises(RequestTimeout):  # and no ninth
        governor.acquire(APP, DIV, ENDPOINT, deadline=0, board=True)


def test_a_call_that_lands_before_the_waiter_waits_is_not_missed(governor: RateGovernor) -> None:
    """A landing between a failed boarding and the wait that follows it wakes the waiter all
    the same (it used to sleep a whole poll interval, half a second, for nothing)."""
    for _ in range(8):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    flights = governor._flights
    waited = flights.wait

    def land_first(seconds: float, landings: int) -> None:
        governor.land(APP, DIV, ENDPOINT)  # the call lands just before the waiter waits
        flights.wait = waited
        waited(seconds, landings)

    flights.wait = land_first
    started = time.monotonic()
    governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
    assert time.monotonic() - started < limits._LANDING_POLL / 2


def test_eleven_workers_on_a_failing_endpoint_send_no_more_than_the_stop(
    governor: RateGovernor,
) -> None:
    """Eleven threads call an endpoint that answers 400 at the same moment: eight are sent and
    three refused before sending, so Exact's ten errors an hour are never reached (each one's
    check passed before any error was counted, and all eleven were sent)."""
    sent, refused = [], []

    def worker() -> None:
        try:
            governor.acquire(APP, DIV, ENDPOINT, deadline=None, board=True)
        except ErrorBudgetExhausted:
            refused.append(1)
            return
        sent.append(1)
        time.sleep(0.05)  # the request is under way
        governor.observe(APP, DIV, ENDPOINT, 400, {})
        governor.land(APP, DIV, ENDPOINT)

    threads = [threading.Thread(target=worker) for _ in range(11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert (len(sent), len(refused)) == (8, 3)
    assert governor.in_flight(APP, DIV, ENDPOINT) == 0


def test_error_budget_is_per_endpoint_and_division(governor: RateGovernor) -> None:
    """G11: another endpoint, or the same endpoint in another division, is unaffected."""
    fail(governor, 8)
    governor.acquire(APP, DIV, "project/TimeTransactions", deadline=None)
    governor.acquire(APP, DIV + 1, ENDPOINT, deadline=None)
    with pytest.raises(ErrorBudgetExhausted):
        governor.acquire(APP, DIV, ENDPOINT.upper(), deadline=None)


def test_reset_errors_lifts_the_hold_on_one_endpoint_or_all(governor: RateGovernor) -> None:
    """`limits reset`: the local count is forgotten (per endpoint, or every endpoint), on each
    backend, and says how many errors it forgot."""
    fail(governor, 8)
    fail(governor, 8, endpoint="project/TimeTransactions")
    assert governor.reset_errors(APP, ENDPOINT.upper()) == 8
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    with pytest.raises(ErrorBudgetExhausted):
        governor.acquire(APP, DIV, "project/TimeTransactions", deadline=None)
    assert governor.reset_errors(APP) == 8
    governor.acquire(APP, DIV, "project/TimeTransactions", deadline=None)
    assert governor.reset_errors(APP) == 0


def test_error_budget_slides_over_the_hour(governor: RateGovernor, clock: ManualClock) -> None:
    """G11: once the oldest error is an hour old, the endpoint may be called again."""
    fail(governor, 1)
    clock.advance(600)
    fail(governor, 7)
    with pytest.raises(ErrorBudgetExhausted) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert caught.value.retry_at == utc(W + 10 + 3600)
    clock.advance(3000 + 0.001)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (200, False),
        (201, False),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_which_statuses_count_toward_the_error_budget(
    governor: RateGovernor, status: int, counts: bool
) -> None:
    """400/401/403/404 count (401 too: RELIABILITY Q8 is open); 429 and 5xx do not."""
    fail(governor, 8, status=status)
    if counts:
        with pytest.raises(ErrorBudgetExhausted):
            governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    else:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)


def test_error_limit_and_margin_are_configurable(new_governor: NewGovernor) -> None:
    """error_limit=5, error_margin=1 stops after 4 errors."""
    governor = new_governor(error_limit=5, error_margin=1)
    fail(governor, 3)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    governor.observe(APP, DIV, ENDPOINT, 400, {})
    with pytest.raises(ErrorBudgetExhausted, match="4 errors"):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)


# --- snapshot and state -------------------------------------------------------------------------


def test_snapshot_of_an_unused_division(governor: RateGovernor) -> None:
    """Test Connect's headroom: full budgets, resets at the next minute and the next UTC midnight."""
    snapshot = governor.snapshot(APP, DIV)
    assert (snapshot.minute_limit, snapshot.minute_remaining) == (60, 60)
    assert (snapshot.day_limit, snapshot.day_remaining) == (5000, 5000)
    assert snapshot.minute_reset == utc(W + 60)
    assert snapshot.day_reset == utc(W + 86_400) == datetime(2026, 1, 2, tzinfo=UTC)


def test_snapshot_reflects_the_servers_headers(governor: RateGovernor) -> None:
    """After a response the snapshot shows Exact's remaining counts and resets."""
    governor.observe(APP, DIV, ENDPOINT, 200, {**minutely(58, W + 60), **daily(4766, W + 86_400)})
    snapshot = governor.snapshot(APP, DIV)
    assert (snapshot.minute_remaining, snapshot.day_remaining) == (58, 4766)
    assert snapshot.day_reset - snapshot.minute_reset == timedelta(seconds=86_400 - 60)


def test_the_servers_counts_outlive_the_snapshot_that_first_reads_them(
    governor: RateGovernor,
) -> None:
    """A success's headers are folded in at the next read of the division; a snapshot is such a
    read, and what it folded in stays (a second snapshot, or the next call, still sees it)."""
    governor.observe(APP, DIV, ENDPOINT, 200, {**minutely(5, W + 60), **daily(4766, W + 86_400)})

    first = governor.snapshot(APP, DIV)
    second = governor.snapshot(APP, DIV)

    assert (first.minute_remaining, first.day_remaining) == (5, 4766)
    assert (second.minute_remaining, second.day_remaining) == (5, 4766)


def test_the_servers_counts_outlive_a_call_that_waits_for_the_minute(
    governor: RateGovernor, clock: ManualClock
) -> None:
    """A call that finds the minute spent waits; the daily count the last success reported is
    kept through that wait, not dropped with the read that found the minute full."""
    for _ in range(60):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    governor.observe(APP, DIV, ENDPOINT, 200, {**minutely(0, W + 60), **daily(100, W + 86_400)})

    governor.acquire(APP, DIV, ENDPOINT, deadline=None)

    assert clock.now() == W + 60 + RESET_MARGIN
    assert governor.snapshot(APP, DIV).day_remaining == 99


def test_state_file_is_shared_private_and_persistent(tmp_path: Path, clock: ManualClock) -> None:
    """Two governors on one file share reservations; the file is 0600 and survives a restart."""
    path = tmp_path / "home" / "limits.db"
    first, second = RateGovernor(path, clock=clock), RateGovernor(path, clock=clock)
    for _ in range(30):
        first.acquire(APP, DIV, ENDPOINT, deadline=None)
    fail(second, 8)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first.close()
    assert RateGovernor(path, clock=clock).snapshot(APP, DIV).minute_remaining == 60 - 38
    with pytest.raises(ErrorBudgetExhausted):
        first.acquire(APP, DIV, ENDPOINT, deadline=None)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_worker_opens_its_own_connection(tmp_path: Path, clock: ManualClock) -> None:
    """F10: a governor used before a fork keeps working in the child, on the same shared file."""
    governor = RateGovernor(tmp_path / "limits.db", clock=clock)
    for _ in range(10):
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)

    def child() -> None:
        for _ in range(10):
            governor.acquire(APP, DIV, ENDPOINT, deadline=None)
        governor.close()  # gives back the calls it reserved and did not make

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    assert governor.snapshot(APP, DIV).minute_remaining == 40


def test_a_corrupt_state_file_gives_a_clear_error(tmp_path: Path, clock: ManualClock) -> None:
    """A damaged limits.db raises a system error saying it is safe to delete, not a traceback."""
    path = tmp_path / "limits.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SystemError_) as caught:
        RateGovernor(path, clock=clock).acquire(APP, DIV, ENDPOINT, deadline=None)
    assert "delete the file" in caught.value.hint
    assert caught.value.__cause__ is None


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=100, max_value=599), HEADERS)
def test_any_response_leaves_a_sane_state(status: int, headers: dict[str, str]) -> None:
    """observe never raises; afterwards budgets stay within their limits and any wait is bounded."""
    clock = ManualClock(W + 10)
    governor = RateGovernor(clock=clock)
    governor.observe(APP, DIV, ENDPOINT, status, headers)
    snapshot = governor.snapshot(APP, DIV)
    assert 0 <= snapshot.minute_remaining <= snapshot.minute_limit <= 60
    assert 0 <= snapshot.day_remaining <= snapshot.day_limit <= 5000
    if snapshot.day_remaining == 0:
        with pytest.raises(DailyRateLimited) as caught:
            governor.acquire(APP, DIV, ENDPOINT, deadline=None)
        assert caught.value.retry_at is not None
        assert caught.value.retry_at <= utc(W + 10 + 2 * 86_400 + RESET_MARGIN)
    else:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert clock.now() - (W + 10) <= MAX_RETRY_AFTER + RESET_MARGIN


# --- pacing under concurrency -------------------------------------------------------------------


class FakeMinuteServer:
    """Exact's side: 60 calls per clock minute on the shared clock, answering with its headers."""

    def __init__(self, clock: ScaledClock, limit: int = 60) -> None:
        self.clock, self.limit = clock, limit
        self.counts: Counter[int] = Counter()
        self.over_limit = 0
        self._lock = threading.Lock()

    def call(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            window = math.floor(self.clock.now() / 60)
            self.counts[window] += 1
            if self.counts[window] > self.limit:
                self.over_limit += 1
                return 429, minutely(0, (window + 1) * 60)
            remaining = self.limit - self.counts[window]
            return 200, minutely(remaining, (window + 1) * 60)


def test_ten_threads_stay_within_the_minute_and_use_it(new_governor: NewGovernor) -> None:
    """Pacing: 10 threads x 30 calls against 60/min: no 429 at all and >= 90% utilisation.

    PostgreSQL runs at 20x, not 120x: a round trip of a few ms on a loaded machine would otherwise
    be whole accelerated seconds between a reservation and its call, which no real clock has; the
    slower rounds then leave a partial last minute, so 80% use is required there instead of 90%.
    """
    on_postgres = isinstance(new_governor(), PostgresRateGovernor)
    clock = ScaledClock(20.0 if on_postgres else 120.0)
    governor = new_governor(clock=clock)
    server = FakeMinuteServer(clock)
    first_call = clock.now()

    def worker() -> None:
        for _ in range(30):
            governor.acquire(APP, DIV, ENDPOINT, deadline=None)
            status, headers = server.call()
            governor.observe(APP, DIV, ENDPOINT, status, headers)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    elapsed_minutes = (clock.now() - first_call) / 60
    windows = max(server.counts) - min(server.counts) + 1
    utilisation = sum(server.counts.values()) / (windows * 60)
    figure = f"{utilisation:.0%} of {windows} minutes ({elapsed_minutes:.2f} clock minutes elapsed)"
    assert sum(server.counts.values()) == 300
    assert server.over_limit == 0
    assert utilisation >= (0.8 if on_postgres else 0.9), figure


class SharedScaledClock:
    """A ScaledClock every process agrees on: it runs from a wall-clock origin, not a monotonic one."""

    def __init__(self, factor: float, start: float, origin: float) -> None:
        self.factor, self.start, self.origin = factor, start, origin

    def now(self) -> float:
        return self.start + (time.time() - self.origin) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)


def acquire_in_process(
    path: str, log: str, origin: float, barrier: Any, url: str | None = None
) -> None:
    """One worker process: wait for the others and the next minute, then make 40 acquires.

    With ``url`` the state is that PostgreSQL database (``path`` is then the schema).
    """
    clock = SharedScaledClock(60.0, W, origin)
    governor = (
        RateGovernor(path, clock=clock)
        if url is None
        else PostgresRateGovernor(url, schema=path, clock=clock)
    )
    barrier.wait()
    clock.sleep(math.floor(clock.now() / 60) * 60 + 61 - clock.now())
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for _ in range(40):
            governor.acquire(APP, DIV, ENDPOINT, deadline=None)
            os.write(fd, f"{clock.now()!r}\n".encode())
    finally:
        os.close(fd)


def assert_three_processes_share_a_minute(state: str, log: Path, url: str | None = None) -> None:
    """Run three :func:`acquire_in_process` workers on ``state``: all 120 acquires are made, over
    two clock minutes at least, and none of those minutes gets more than 60."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    args = (state, str(log), time.time(), barrier, url)
    processes = [context.Process(target=acquire_in_process, args=args) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    stamps = [float(line) for line in log.read_text().split()]
    per_minute = Counter(math.floor(stamp / 60) for stamp in stamps)
    assert len(stamps) == 120
    assert max(per_minute.values()) <= 60
    assert len(per_minute) >= 2


@pytest.mark.slow
def test_three_processes_share_one_minute_budget(tmp_path: Path) -> None:
    """F9: 3 processes x 40 acquires on one state file: no clock minute gets more than 60."""
    path = tmp_path / "limits.db"
    assert_three_processes_share_a_minute(str(path), tmp_path / "calls.log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        (used,) = db.execute("SELECT used FROM windows WHERE kind = 'minute'").fetchone()
    assert 0 < used <= 60


def test_governors_on_one_postgres_schema_share_everything(
    postgres_url: str, clock: ManualClock
) -> None:
    """Two hosts' governors on one schema share reservations and the error budget, and the state
    survives a restart: the PostgreSQL counterpart of the shared state file."""
    schema = pg_server.fresh_schema()
    first = PostgresRateGovernor(postgres_url, schema=schema, clock=clock)
    second = PostgresRateGovernor(postgres_url, schema=schema, clock=clock)
    for _ in range(30):
        first.acquire(APP, DIV, ENDPOINT, deadline=None)
    fail(second, 8)
    first.close()
    third = PostgresRateGovernor(postgres_url, schema=schema, clock=clock)
    assert third.snapshot(APP, DIV).minute_remaining == 60 - 38
    with pytest.raises(ErrorBudgetExhausted):
        first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert third.snapshot(APP, DIV + 1).minute_remaining == 60  # other divisions untouched
    for governor in (first, second, third):
        governor.close()


@pytest.mark.slow
def test_three_processes_share_one_minute_budget_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    """F9 on PostgreSQL: 3 processes x 40 acquires, no clock minute gets more than 60."""
    schema = pg_server.fresh_schema()
    assert_three_processes_share_a_minute(schema, tmp_path / "calls.log", postgres_url)


def test_an_unreachable_postgres_is_a_transient_error(tmp_path: Path, clock: ManualClock) -> None:
    url = f"postgresql://someone:pw-secret@/postgres?host={tmp_path}&connect_timeout=1"
    governor = PostgresRateGovernor(url, clock=clock, timeout=1.0)
    with pytest.raises(TransientError) as caught:
        governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert "pw-secret" not in str(caught.value) and caught.value.__cause__ is None


def test_the_connector_picks_the_postgres_governor_from_the_database_url(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXACT_CONNECTOR_DATABASE_URL moves the budgets to PostgreSQL with the vault."""
    from exact_connector.runtime import Connector

    monkeypatch.setenv("EXACT_CONNECTOR_DATABASE_URL", pg_server.create_database(postgres_url))
    connector = Connector(home=tmp_path / "home")
    assert isinstance(connector.governor, PostgresRateGovernor)
    connector.governor.close()


# --- leases: a reservation takes a few calls while the minute has room (LEASE_MAX, LEASE_SHARE) --


@pytest.fixture
def shared(new_governor: NewGovernor, tmp_path: Path) -> NewGovernor:
    """Governors on one state, as separate processes (or hosts) have it: a SQLite file, or one
    PostgreSQL schema."""
    return functools.partial(new_governor, tmp_path / "limits.db")


BIG = 1000  # a minute whose first reservation leases LEASE_MAX (1000 // 64 > 8)


def test_at_exacts_60_a_minute_every_call_is_reserved_alone(shared: NewGovernor) -> None:
    """60 // 64 is 0: no call is ever reserved ahead, so none can go unused."""
    first, other = shared(), shared()
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert other.snapshot(APP, DIV).minute_remaining == 59


def test_leased_calls_are_reserved_for_others_and_given_back_at_close(shared: NewGovernor) -> None:
    """One call with a big minute empty reserves 8: the other process sees 992 left; the caller's
    own snapshot counts only the call made; close gives the unused back."""
    first, other = shared(minute_limit=BIG), shared(minute_limit=BIG)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert first.snapshot(APP, DIV).minute_remaining == BIG - 1
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 8
    first.acquire(APP, DIV, ENDPOINT, deadline=None)  # from the lease: nothing more reserved
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 8
    first.close()
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 2


def test_processes_sharing_a_state_never_exceed_the_minute_together(
    shared: NewGovernor, clock: ManualClock
) -> None:
    """Leases or not, three processes calling in turn get exactly the minute's calls."""
    governors = [shared(minute_limit=200) for _ in range(3)]
    granted = Counter[int]()
    for turn in range(300):
        try:
            governors[turn % 3].acquire(APP, DIV, ENDPOINT, deadline=clock.now() + 1)
        except RateLimited:
            continue
        granted[turn % 3] += 1
    assert sum(granted.values()) == 200
    assert all(count >= 60 for count in granted.values())  # nobody is starved by another's lease


def test_an_error_ends_the_leases_and_an_endpoint_with_errors_gets_none(
    shared: NewGovernor,
) -> None:
    first, other = shared(minute_limit=BIG), shared(minute_limit=BIG)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    first.observe(APP, DIV, ENDPOINT, 404, {})
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 1  # the leased calls went back
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 2  # one call, one reservation
    first.acquire(APP, DIV, "crm/Contacts", deadline=None)  # an endpoint without errors
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 10


def test_no_lease_reaches_into_the_last_second_of_the_minute(
    shared: NewGovernor, clock: ManualClock
) -> None:
    """Calls in the window's last second also count in the next (carry): each is reserved alone."""
    first, other = shared(minute_limit=BIG), shared(minute_limit=BIG)
    clock.advance(40)  # W + 50; W + 60 is the minute's end
    first.acquire(APP, DIV, ENDPOINT, deadline=None)  # reserves 8, usable until W + 59
    clock.advance(9.5)  # W + 59.5
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 9


def test_the_servers_count_is_taken_over_calls_reserved_and_not_made(
    shared: NewGovernor,
) -> None:
    """Exact saying 900 calls are left, after our 1 made and 7 leased: 900 for us; once the lease
    is given back, 899 for everyone (the headers are stored with the next transaction)."""
    first, other = shared(minute_limit=BIG), shared(minute_limit=BIG)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    first.observe(APP, DIV, ENDPOINT, 200, minutely(900, W + 60, limit=BIG))
    assert first.snapshot(APP, DIV).minute_remaining == 900
    first.acquire(APP, DIV, ENDPOINT, deadline=None)  # from the lease
    first.observe(APP, DIV, ENDPOINT, 200, minutely(899, W + 60, limit=BIG))
    first.close()
    assert other.snapshot(APP, DIV).minute_remaining == 899


def test_a_lease_of_an_ended_minute_does_not_count_in_the_next(
    shared: NewGovernor, clock: ManualClock
) -> None:
    """Calls leased in one minute and never made are not taken for the next minute's."""
    first, other = shared(minute_limit=BIG), shared(minute_limit=BIG)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)  # 7 leased, unused
    clock.advance(60)  # the next minute
    first.observe(APP, DIV, ENDPOINT, 200, minutely(BIG, W + 120, limit=BIG))
    first.acquire(APP, DIV, "crm/Contacts", deadline=None)  # a reservation folds the headers in
    assert other.snapshot(APP, DIV).minute_remaining == BIG - 8  # 1 made, 7 newly leased


# --- calls announced ahead: a list read quickly reserves its next pages with one transaction -----


def test_calls_announced_ahead_are_reserved_at_60_a_minute_and_released_unused(
    shared: NewGovernor,
) -> None:
    """A list's page announcing 7 more reserves 8 of Exact's 60; 3 are made from the lease, the
    list ends, and release gives the other 4 back: everyone sees the 4 calls made."""
    first, other = shared(), shared()
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)
    assert other.snapshot(APP, DIV).minute_remaining == 52
    for _ in range(3):
        first.acquire(APP, DIV, ENDPOINT, deadline=None)
    assert other.snapshot(APP, DIV).minute_remaining == 52  # from the lease: no transaction
    first.release(APP, DIV, ENDPOINT)
    assert other.snapshot(APP, DIV).minute_remaining == 56
    first.release(APP, DIV, ENDPOINT)  # nothing held any more: nothing changes
    assert other.snapshot(APP, DIV).minute_remaining == 56


@pytest.mark.parametrize(("ahead", "reserved"), [(0, 1), (2, 3), (7, 8), (50, 8)])
def test_a_reservation_takes_what_was_announced_up_to_lease_max(
    shared: NewGovernor, ahead: int, reserved: int
) -> None:
    first, other = shared(), shared()
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=ahead)
    assert other.snapshot(APP, DIV).minute_remaining == 60 - reserved


def test_calls_ahead_never_take_more_than_the_minute_has_left(
    shared: NewGovernor, clock: ManualClock
) -> None:
    """With 3 calls left in the minute, announcing 7 reserves the 3; the 4th call waits for the
    next minute as it would have without the lease."""
    first, other = shared(), shared()
    for _ in range(57):
        other.acquire(APP, DIV, ENDPOINT, deadline=None)
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)
    assert other.snapshot(APP, DIV).minute_remaining == 0
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    with pytest.raises(RateLimited):
        first.acquire(APP, DIV, ENDPOINT, deadline=clock.now() + 1, ahead=7)


def test_an_endpoint_with_counted_errors_reserves_nothing_ahead(shared: NewGovernor) -> None:
    first, other = shared(), shared()
    first.observe(APP, DIV, ENDPOINT, 404, {})
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)
    assert other.snapshot(APP, DIV).minute_remaining == 59


def test_a_release_after_the_minute_ended_gives_nothing_to_the_next(
    shared: NewGovernor, clock: ManualClock
) -> None:
    first, other = shared(), shared()
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)
    clock.advance(60)
    other.acquire(APP, DIV, "crm/Contacts", deadline=None)
    first.release(APP, DIV, ENDPOINT)
    assert other.snapshot(APP, DIV).minute_remaining == 59  # the next minute's one call


def test_a_release_counts_calls_the_server_saw_and_gives_back_only_the_unmade(
    shared: NewGovernor,
) -> None:
    """Exact says 40 are left (other apps' calls): once our 6 unmade calls go back, 40 remain,
    not 46 (the headers are folded in while the lease is still counted)."""
    first, other = shared(), shared()
    first.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)
    first.acquire(APP, DIV, ENDPOINT, deadline=None)
    first.observe(APP, DIV, ENDPOINT, 200, minutely(40, W + 60))
    first.release(APP, DIV, ENDPOINT)
    assert other.snapshot(APP, DIV).minute_remaining == 40


def test_a_release_the_state_cannot_take_is_dropped_quietly(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving calls back is best effort (a list's end must not fail on it): the calls stay
    counted, and the governor goes on working."""
    governor = RateGovernor(tmp_path / "limits.db", clock=clock)
    governor.acquire(APP, DIV, ENDPOINT, deadline=None, ahead=7)

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(governor, "_save", broken)
    governor.release(APP, DIV, ENDPOINT)
    monkeypatch.undo()
    assert (
        RateGovernor(tmp_path / "limits.db", clock=clock).snapshot(APP, DIV).minute_remaining == 52
    )
    governor.acquire(APP, DIV, ENDPOINT, deadline=None)
    governor.close()


def test_lists_reserving_ahead_in_three_processes_never_exceed_the_minute_together(
    shared: NewGovernor, clock: ManualClock
) -> None:
    """Three quick lists at Exact's 60 a minute, each announcing its next pages: 60 calls in the
    minute between them, none starved, and what one reserved and did not read goes back."""
    governors = [shared() for _ in range(3)]
    granted = Counter[int]()
    for turn in range(90):
        try:
            governors[turn % 3].acquire(APP, DIV, ENDPOINT, deadline=clock.now() + 1, ahead=7)
        except RateLimited:
            continue
        granted[turn % 3] += 1
    assert sum(granted.values()) == 60
    assert min(granted.values()) >= 16
    for governor in governors:
        governor.release(APP, DIV, ENDPOINT)
    assert governors[0].snapshot(APP, DIV).minute_remaining == 0  # all 60 were made
