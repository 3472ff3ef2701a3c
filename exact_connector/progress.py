"""What long work reports while it runs: typed events for one ``progress`` callback.

``Connector.execute`` and ``Connector.stream`` (and the CLI's sign-in wait) take
``progress: Progress | None``; the callback is called on the calling thread, between requests,
with one of the frozen events below. Events carry counts, endpoint ids and times only, never a
record, a token or a URL's query, so a host may log or show them as they are.

A callback that raises stops the work: it is the caller's code, so its error is not swallowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "CallMade",
    "PageFetched",
    "Progress",
    "ProgressEvent",
    "RateLimitWait",
    "SignInWait",
    "Tally",
    "emit",
]


@dataclass(frozen=True, slots=True)
class CallMade:
    """One request is about to reach Exact Online; ``calls`` counts them for this step."""

    method: str
    endpoint: str
    calls: int


@dataclass(frozen=True, slots=True)
class PageFetched:
    """One page of a list arrived: ``rows`` on it, ``total_rows`` and ``pages`` so far."""

    endpoint: str
    rows: int
    total_rows: int
    pages: int


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    """Waiting for Exact's rate limit: nothing is sent before ``until`` (UTC).

    ``reason`` is ``minute`` (the division's calls for this minute are used) or ``retry``
    (Exact asked to retry later).
    """

    endpoint: str
    division: int | None
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class SignInWait:
    """Waiting for the person to sign in in a browser, at the latest until ``until`` (UTC)."""

    credential: str
    until: datetime


ProgressEvent = CallMade | PageFetched | RateLimitWait | SignInWait
Progress = Callable[[ProgressEvent], None]


def emit(progress: Progress | None, event: ProgressEvent) -> None:
    """Hand ``event`` to ``progress`` when there is one."""
    if progress is not None:
        progress(event)


@dataclass(slots=True)
class Tally:
    """One step's events folded into counts so far and the wait in progress, for a status line."""

    rows: int = 0
    pages: int = 0
    calls: int = 0
    waiting: RateLimitWait | SignInWait | None = None

    def update(self, event: ProgressEvent) -> None:
        """Count ``event`` in; a call or a page ends the wait that came before it."""
        match event:
            case CallMade(calls=calls):
                self.calls, self.waiting = calls, None
            case PageFetched(total_rows=rows, pages=pages):
                self.rows, self.pages, self.waiting = rows, pages, None
            case RateLimitWait() | SignInWait():
                self.waiting = event

    def to_dict(self) -> dict[str, Any]:
        """The counts, and the wait as ``{"until": ISO 8601 UTC, "reason": ...}`` or None."""
        waiting = None
        if self.waiting is not None:
            reason = self.waiting.reason if isinstance(self.waiting, RateLimitWait) else "sign_in"
            waiting = {"until": self.waiting.until.isoformat(), "reason": reason}
        return {"rows": self.rows, "pages": self.pages, "calls": self.calls, "waiting": waiting}
