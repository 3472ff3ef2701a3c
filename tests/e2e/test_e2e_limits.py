"""Rate limits end to end: the day spent fails fast with retry_at; the minute spent waits or fails.

Another client of the same app (a second worker) spends the division's budget in the sandbox, so
the connector learns of it only from Exact's answer: one 429, then a typed error, never a retry
loop. Every action is subject to the same budget.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from e2e_harness import ACTIONS, DIVISION, TIME_TRANSACTIONS, World, assert_error

pytestmark = pytest.mark.e2e

MIDNIGHT = datetime(2026, 1, 2, tzinfo=UTC)  # the ManualClock starts at 2026-01-01T00:00:00Z
NEXT_MINUTE = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_spent_day_answers_rate_limited_daily_with_retry_at(world: World, action: str) -> None:
    """The day's budget is gone: one 429 is drawn, then rate_limited_daily until UTC midnight."""
    world.sb.rate_limits.daily = 150  # a smaller day, spent for real by the other client
    world.spend("daily")
    records = world.sb.records(DIVISION, TIME_TRANSACTIONS)

    error = assert_error(
        world.run_valid(action),
        "rate_limited_daily",
        "transient",
        retryable=True,
        api_calls=1,
    )

    assert MIDNIGHT <= _when(error["retry_at"]) <= MIDNIGHT.replace(second=5)
    assert world.sb.counters.rate_limited == 1
    assert world.sb.records(DIVISION, TIME_TRANSACTIONS) == records


@pytest.mark.parametrize("action", ACTIONS)
def test_the_next_step_on_a_spent_day_sends_nothing(world: World, action: str) -> None:
    """Once the connector knows the day is spent, a step fails at once without a call."""
    world.sb.rate_limits.daily = 150
    world.spend("daily")
    world.run_valid("list_or_get_endpoint")
    calls = world.recorder.api_calls()

    assert_error(
        world.run_valid(action),
        "rate_limited_daily",
        "transient",
        retryable=True,
        api_calls=0,
    )
    assert world.recorder.api_calls() == calls


@pytest.mark.parametrize("action", ACTIONS)
def test_a_spent_minute_with_a_short_deadline_is_rate_limited(world: World, action: str) -> None:
    """The minute is gone and the step may wait only 5 s: rate_limited with the window's reset."""
    world.spend("minutely")
    records = world.sb.records(DIVISION, TIME_TRANSACTIONS)

    error = assert_error(
        world.run(action, world.valid_inputs(action), deadline_seconds=5),
        "rate_limited",
        "transient",
        retryable=True,
        api_calls=1,
    )

    assert NEXT_MINUTE <= _when(error["retry_at"]) <= NEXT_MINUTE.replace(second=5)
    assert world.sb.records(DIVISION, TIME_TRANSACTIONS) == records
    assert world.clock.now() < NEXT_MINUTE.timestamp()  # it did not sit out the minute


@pytest.mark.parametrize("action", ACTIONS)
def test_a_spent_minute_with_time_left_waits_for_the_next_window(world: World, action: str) -> None:
    """With the default deadline the step waits for the minute to refill, then succeeds."""
    world.spend("minutely")

    result = world.run_valid(action)

    assert result["ok"] is True, result
    assert world.clock.now() >= NEXT_MINUTE.timestamp()
    assert world.sb.counters.rate_limited == 1
