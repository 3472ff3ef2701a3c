"""One fixed window of Exact's call budget (a clock minute or a UTC day), as Exact counts it.

A :class:`Window` counts the calls made in it, rolls over at its end, and takes the server's view
from the ``X-RateLimit-*`` headers: the server's reset wins for the window's end, and its remaining
count can lower ours but never raise it. Clock skew against Exact is absorbed by
:data:`RESET_MARGIN`: a spent window reopens only that long after its reset, and a call made within
that margin of the end counts in both windows. :class:`~exact_connector.limits.RateGovernor` keeps
the windows of every division; this module is only the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["DAY", "MINUTE", "RESET_MARGIN", "Window", "next_boundary", "plausible", "utc"]

MINUTE = 60.0
DAY = 86_400.0
RESET_MARGIN = 1.0  # seconds: covers clock skew between us and Exact around a window's reset


def plausible(reset: float | None, now: float, length: float) -> float | None:
    """A reset more than two windows from now is a unit mistake or garbage: ignore it."""
    if reset is None or abs(reset - now) > 2 * length:
        return None
    return reset


def next_boundary(now: float, length: float) -> float:
    """The end of the window of ``length`` seconds that ``now`` falls in."""
    return math.floor(now / length) * length + length


def utc(epoch: float) -> datetime:
    """An epoch time as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)


@dataclass(slots=True)
class Window:
    """One fixed window (a clock minute or a UTC day) of one division's call budget."""

    length: float
    limit: int
    end: float = 0.0  # our clock; 0 until first use
    used: int = 0
    carry: int = 0  # calls made within RESET_MARGIN of ``end``: Exact may count them in the next

    def roll(self, now: float) -> None:
        """Start a new window once the current one has ended (plus the skew margin)."""
        if now < self.end + RESET_MARGIN:
            return
        self.used = self.carry if now < self.end + self.length else 0
        self.carry = 0
        self.end = next_boundary(now, self.length)

    def opens_at(self) -> float | None:
        """When the next call may be made, or None if one may be made now."""
        return None if self.used < self.limit else self.end + RESET_MARGIN

    def reserve(self, now: float) -> None:
        self.used += 1
        if now >= self.end - RESET_MARGIN:
            self.carry += 1

    def reconcile(
        self,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        now: float,
        cap: int,
        reserved: int = 0,
    ) -> None:
        """Take the server's view: its reset ends the window, its count may only lower ours.

        ``reserved``: calls counted in ``used`` that are not made yet (a process's leases), which
        the server's count cannot include.
        """
        if limit:
            self.limit = min(cap, limit)
        if (reset := plausible(reset, now, self.length)) is not None:
            if reset < self.end - self.length / 2:
                return  # a late response from a previous window
            if reset >= self.end + self.length / 2:
                self.used, self.carry = self.carry, 0  # Exact is already in the next window
            self.end = max(self.end, reset)
        if remaining is not None:
            self.used = max(self.used, self.limit - remaining + reserved)

    def spend(self, until: float) -> None:
        """A 429: nothing more in this window, which Exact says lasts until ``until``.

        If that ends it early (a reset that has passed: our clock runs ahead, or the 429 answered
        a call of the previous minute and arrived late), the calls it counted still count in the
        window that follows: the next clock minute may already hold them.
        """
        if until < self.end:
            self.carry = max(self.carry, self.used)
        self.used = max(self.used, self.limit)
        self.end = until
