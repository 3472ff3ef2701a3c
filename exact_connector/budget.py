"""What polling costs: API calls a day for a poll interval, against Exact's 5,000 per division.

Exact allows 5,000 calls per app per division per day (API-FACTS §3). A poll with nothing new
costs one call (one empty sync page); 1,000 changes cost one call more per 1,000; the division-move
check costs one call at most once per ``move_check_seconds``. Once, the first poll of a trigger
that starts "now" (and the first after a reset) reads the feed to its end to find where "now" is:
one call per 1,000 records it holds. An interval whose idle cost alone would use the whole day's
budget is refused: the division would be locked out by noon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from exact_connector.exceptions import InputError

__all__ = [
    "DAILY_CALLS",
    "DEFAULT_INTERVAL",
    "MOVE_CHECK_SECONDS",
    "PollCost",
    "check_interval",
    "poll_cost",
]

DAILY_CALLS = 5_000
DEFAULT_INTERVAL = 300
MOVE_CHECK_SECONDS = 3_600
_DAY = 86_400
_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class PollCost:
    """The daily price of polling ``feeds`` feeds of one division every ``interval_seconds``."""

    interval_seconds: int
    feeds: int
    polls_per_day: int
    calls_per_idle_poll: int
    move_checks_per_day: int
    idle_calls_per_day: int
    share_of_daily_budget: float

    def calls_for_changes(self, changes: int) -> int:
        """Calls one feed's poll makes to read ``changes`` changed rows (an empty page if none)."""
        return max(1, math.ceil(changes / _PAGE))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, with the per-1,000 figures included: changes read by any poll, and
        records a feed holds, read once by the first poll from "now" to find its end."""
        per_page = self.calls_for_changes(_PAGE)
        return {
            **asdict(self),
            "calls_per_1000_changes": per_page,
            "first_poll_calls_per_1000_records": per_page,
        }


def poll_cost(
    interval_seconds: int, *, feeds: int = 1, move_check_seconds: int = MOVE_CHECK_SECONDS
) -> PollCost:
    """The calls a day that polling costs when nothing changes."""
    polls = math.ceil(_DAY / interval_seconds) * feeds
    checks = math.ceil(_DAY / max(interval_seconds, move_check_seconds)) * feeds
    idle = polls + checks
    return PollCost(
        interval_seconds=interval_seconds,
        feeds=feeds,
        polls_per_day=polls,
        calls_per_idle_poll=1,
        move_checks_per_day=checks,
        idle_calls_per_day=idle,
        share_of_daily_budget=round(idle / DAILY_CALLS, 4),
    )


def check_interval(
    interval_seconds: int, *, feeds: int = 1, path: str = "$.interval_seconds"
) -> PollCost:
    """The cost of an interval; an :class:`InputError` at ``path`` if it is not a whole number of
    seconds from 1 to a day, or would exhaust the day, and at ``$.feeds`` if ``feeds`` is not a
    whole number from 1, or more than even daily polls can pay for."""
    if type(interval_seconds) is not int or not 1 <= interval_seconds <= _DAY:
        raise InputError.at(path, "range", f"must be a whole number of seconds from 1 to {_DAY}")
    if type(feeds) is not int or feeds < 1:
        raise InputError.at("$.feeds", "range", "must be a whole number of feeds from 1")
    cost = poll_cost(interval_seconds, feeds=feeds)
    if cost.idle_calls_per_day < DAILY_CALLS:
        return cost
    shortest = next(
        (
            seconds
            for seconds in range(interval_seconds, _DAY + 1)
            if poll_cost(seconds, feeds=feeds).idle_calls_per_day < DAILY_CALLS
        ),
        None,
    )
    if shortest is None:  # even one poll a day of each feed is too many
        most = (DAILY_CALLS - 1) // poll_cost(_DAY).idle_calls_per_day
        raise InputError(
            f"Polling {feeds} feeds is too many feeds for one division's daily budget: even once "
            f"a day they would use {poll_cost(_DAY, feeds=feeds).idle_calls_per_day} of its "
            f"{DAILY_CALLS} API calls with nothing changing.",
            errors=[{"path": "$.feeds", "code": "budget", "message": "too many feeds"}],
            details=cost.to_dict(),
            hint=f"Watch at most {most} feeds of one division, or add the webhook trigger.",
        )
    raise InputError(
        f"Polling every {interval_seconds} s would use {cost.idle_calls_per_day} of the "
        f"division's {DAILY_CALLS} API calls a day with nothing changing.",
        errors=[{"path": path, "code": "budget", "message": "exhausts the daily API budget"}],
        details=cost.to_dict(),
        hint=f"Poll every {shortest} seconds or more, or add the webhook trigger.",
    )
