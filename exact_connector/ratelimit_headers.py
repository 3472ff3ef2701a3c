"""Reading Exact's rate-limit headers: ``X-RateLimit-*`` (``Retry-After`` is read by retries).

Pure functions, no state: :mod:`exact_connector.limits` decides what the numbers mean for its
budgets. Parsing is defensive and total: a header that is absent or garbled reads as ``None``
(never as 0, never an exception), and the governor then falls back on its own counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RateHeaders", "parse_rate_headers"]

_NUMBER = re.compile(r"([0-9]{1,16})(?:\.[0-9]{0,9})?", re.ASCII)
_MS_THRESHOLD = 1e11  # epochs below are seconds (1e11 ms is 1973; 1e11 s is the year 5138)


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The ``X-RateLimit-*`` headers of one response; ``None`` where absent or unreadable."""

    minute_limit: int | None = None
    minute_remaining: int | None = None
    minute_reset: float | None = None  # epoch seconds
    day_limit: int | None = None
    day_remaining: int | None = None
    day_reset: float | None = None  # epoch seconds

    def group(self, kind: str) -> tuple[int | None, int | None, float | None]:
        """``(limit, remaining, reset)`` of the ``"minute"`` or ``"day"`` headers."""
        if kind == "minute":
            return self.minute_limit, self.minute_remaining, self.minute_reset
        return self.day_limit, self.day_remaining, self.day_reset


def parse_rate_headers(headers: Mapping[str, str]) -> RateHeaders:
    """Read Exact's rate-limit headers defensively; never raises."""
    found = _lowered(headers)
    return RateHeaders(
        *_header_group(found, "x-ratelimit-minutely-"), *_header_group(found, "x-ratelimit-")
    )


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): value for name, value in headers.items() if isinstance(value, str)}


def _integer(value: str | None) -> int | None:
    match = _NUMBER.fullmatch(value.strip()) if value is not None else None
    return int(match.group(1)) if match else None


def _epoch(value: str | None) -> float | None:
    """An epoch in milliseconds (Exact's unit) or, mistakenly, seconds; 0 means absent."""
    number = _integer(value)
    if not number:
        return None
    seconds = number / 1000 if number >= _MS_THRESHOLD else float(number)
    return seconds if seconds < _MS_THRESHOLD else None


def _header_group(
    found: dict[str, str], prefix: str
) -> tuple[int | None, int | None, float | None]:
    limit = _integer(found.get(prefix + "limit"))
    reset = _epoch(found.get(prefix + "reset"))
    if not limit and reset is None:
        # Exact's minutely 429 omits the daily headers; clients that read them as 0 must not
        # conclude the day is spent.
        return None, None, None
    return limit or None, _integer(found.get(prefix + "remaining")), reset
