"""Exact's throttles: 60 calls a minute and 5,000 a day per app and division, the error budget, and
the size limits of a request.

Minute windows are aligned to the clock minute and days to UTC midnight, as Exact's reset headers
show (``X-RateLimit-Minutely-Reset`` = the next whole minute, ``X-RateLimit-Reset`` = the next UTC
midnight, both epoch milliseconds). A throttled call is not counted. On a minutely 429 only the
minutely headers are sent (picqer #646); on a daily 429 only the daily ones.

The error budget: more than 10 answers of 400/401/403/404 within an hour on one endpoint, per app
and division, blocks that endpoint for an hour, and each further block in the same day lasts an
hour longer (Exact: "the block will gradually increase"). A blocked call is answered **429** —
Exact calls this an API rate limit and documents no status for it; 429 is what a client already
treats as "wait, do not retry now" — with a message naming the unblock time and no
``X-RateLimit-*`` headers, so it cannot be mistaken for the minute running out.

Sizes (API-FACTS §3 "Sizes", KB "API limits" and "REST API - Restrictions"): a URL longer than
6,000 characters after encoding answers 414, a body over 10 MB answers 413, before anything else
looks at the request, as the web server in front of Exact would. The facts give the limits, not
the answers: the statuses are the HTTP ones for exactly these refusals, and "10 MB" is read as
10,000,000 bytes, the smaller reading, so nothing the sandbox accepts could be refused by Exact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import httpx

from exact_connector.clock import Clock
from exact_connector.sandbox.wire import SandboxError

__all__ = [
    "ERROR_STATUSES",
    "MAX_BODY_BYTES",
    "MAX_URL_LENGTH",
    "ErrorBudget",
    "RateLimits",
    "Verdict",
    "minute_reset_ms",
    "oversized",
]

ERROR_STATUSES = frozenset({400, 401, 403, 404})
_DAY = 86_400
MAX_URL_LENGTH = 6_000
MAX_BODY_BYTES = 10_000_000


def oversized(request: httpx.Request) -> SandboxError | None:
    """The refusal of a request whose URL or body is larger than Exact takes, else None."""
    length = len(str(request.url))
    if length > MAX_URL_LENGTH:
        message = f"The URL is {length} characters long; at most {MAX_URL_LENGTH} are accepted."
        return SandboxError(414, message)
    if len(request.content) > MAX_BODY_BYTES:
        return SandboxError(413, "The request body is larger than the 10 MB Exact accepts.")
    return None


def minute_reset_ms(now: float) -> int:
    """The next whole clock minute, in epoch milliseconds."""
    return (int(now // 60) + 1) * 60_000


def day_reset_ms(now: float) -> int:
    """The next UTC midnight, in epoch milliseconds."""
    return (int(now // _DAY) + 1) * _DAY * 1000


@dataclass(frozen=True)
class Verdict:
    """Whether a call may proceed, and the headers its answer carries."""

    allowed: bool
    headers: dict[str, str]
    scope: str = ""


class RateLimits:
    """Fixed-window call counters per (client id, division)."""

    def __init__(self, clock: Clock, minutely: int = 60, daily: int = 5000) -> None:
        self.clock = clock
        self.minutely = minutely
        self.daily = daily
        self._minute: dict[tuple[str, int], tuple[int, int]] = {}
        self._day: dict[tuple[str, int], tuple[int, int]] = {}

    def take(self, client_id: str, division: int) -> Verdict:
        """Count one call if the budget allows it; always return the headers to send."""
        now = self.clock.now()
        scope = (client_id, division)
        minute, day = int(now // 60), int(now // _DAY)
        minute_used = self._used(self._minute, scope, minute)
        day_used = self._used(self._day, scope, day)
        minutely = {
            "X-RateLimit-Minutely-Limit": str(self.minutely),
            "X-RateLimit-Minutely-Reset": str(minute_reset_ms(now)),
        }
        daily = {"X-RateLimit-Limit": str(self.daily), "X-RateLimit-Reset": str(day_reset_ms(now))}
        if day_used >= self.daily:
            return Verdict(False, {**daily, "X-RateLimit-Remaining": "0"}, "daily")
        if minute_used >= self.minutely:
            return Verdict(False, {**minutely, "X-RateLimit-Minutely-Remaining": "0"}, "minutely")
        self._minute[scope] = (minute, minute_used + 1)
        self._day[scope] = (day, day_used + 1)
        minutely["X-RateLimit-Minutely-Remaining"] = str(self.minutely - minute_used - 1)
        daily["X-RateLimit-Remaining"] = str(self.daily - day_used - 1)
        return Verdict(True, {**minutely, **daily})

    @staticmethod
    def _used(
        table: dict[tuple[str, int], tuple[int, int]], scope: tuple[str, int], window: int
    ) -> int:
        seen_window, used = table.get(scope, (window, 0))
        return used if seen_window == window else 0


class ErrorBudget:
    """Client errors per (client id, division, endpoint) in a sliding hour, and the blocks."""

    def __init__(self, clock: Clock, limit: int = 10, window: float = 3600.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._errors: dict[tuple[str, int, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, int, str], float] = {}
        self._blocks: dict[tuple[str, int, str], deque[float]] = {}

    def blocked_until(self, scope: tuple[str, int, str]) -> float | None:
        """When the block on this scope lifts, or None if it is not blocked."""
        until = self._blocked_until.get(scope)
        return until if until is not None and until > self.clock.now() else None

    def errors(self, scope: tuple[str, int, str]) -> int:
        """Errors counted for this scope within the last hour."""
        return len(self._recent(scope))

    def record(self, scope: tuple[str, int, str], status: int) -> bool:
        """Count an answer; True when it was the error that started a block."""
        if status not in ERROR_STATUSES:
            return False
        now = self.clock.now()
        errors = self._recent(scope)
        errors.append(now)
        if len(errors) <= self.limit:
            return False
        blocks = self._blocks.setdefault(scope, deque())
        while blocks and blocks[0] <= now - _DAY:
            blocks.popleft()
        blocks.append(now)
        self._blocked_until[scope] = now + self.window * len(blocks)
        errors.clear()
        return True

    def reset(self, client_id: str, endpoint: str | None = None) -> int:
        """Forget an app's errors and lift its blocks (``exact-connector limits reset``), on one
        endpoint (any case) or all."""
        wanted = endpoint.lower() if endpoint else None
        scopes = {
            s
            for s in (*self._errors, *self._blocked_until)
            if s[0] == client_id and (wanted is None or s[2].lower() == wanted)
        }
        for scope in scopes:
            self._errors.pop(scope, None)
            self._blocked_until.pop(scope, None)
            self._blocks.pop(scope, None)
        return len(scopes)

    def _recent(self, scope: tuple[str, int, str]) -> deque[float]:
        errors = self._errors.setdefault(scope, deque())
        horizon = self.clock.now() - self.window
        while errors and errors[0] <= horizon:
            errors.popleft()
        return errors
