"""Progress on stderr: a live status line on a terminal (rich), one-line notices otherwise.

Stdout carries data only, so progress never goes there. On a terminal the line shows rows,
pages and calls so far and any wait; piped or redirected, only waits are announced, one line each,
so a log shows why a command was quiet for a minute without filling with counters.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console

from exact_connector.progress import (
    CallMade,
    PageFetched,
    Progress,
    ProgressEvent,
    RateLimitWait,
    SignInWait,
)

__all__ = ["describe", "progress_on_stderr"]


def _clock_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


class _Tally:
    """Counts so far, and the wait in progress, as one human line."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.rows = self.pages = self.calls = 0
        self.waiting = ""

    def update(self, event: ProgressEvent) -> None:
        match event:
            case CallMade(calls=calls):
                self.calls, self.waiting = calls, ""
            case PageFetched(total_rows=rows, pages=pages):
                self.rows, self.pages = rows, pages
            case RateLimitWait() | SignInWait():
                self.waiting = describe(event)

    def line(self) -> str:
        counts = f"{self.what}: {self.rows} rows, {self.pages} pages, {self.calls} calls"
        return f"{counts}; {self.waiting}" if self.waiting else counts


def describe(event: ProgressEvent) -> str:
    """One event in words (the notice printed when stderr is not a terminal)."""
    match event:
        case RateLimitWait(until=until, reason="retry"):
            return f"Exact Online asked to wait; retrying at {_clock_time(until)}"
        case RateLimitWait(until=until):
            return f"waiting for the rate limit until {_clock_time(until)}"
        case SignInWait(until=until):
            return f"waiting for the sign-in until {_clock_time(until)} (Ctrl+C to stop)"
        case PageFetched(total_rows=rows, pages=pages):
            return f"{rows} rows in {pages} pages"
        case CallMade(method=method, endpoint=endpoint, calls=calls):
            return f"call {calls}: {method} {endpoint}"
    raise AssertionError(event)  # pragma: no cover


@contextmanager
def progress_on_stderr(what: str) -> Iterator[Progress]:
    """A ``progress`` callback for the duration of one command's work on ``what``."""
    console = Console(stderr=True, highlight=False)
    tally = _Tally(what)
    if not console.is_terminal:

        def notice(event: ProgressEvent) -> None:
            tally.update(event)
            if isinstance(event, RateLimitWait | SignInWait):
                sys.stderr.write(f"{what}: {describe(event)}\n")
                sys.stderr.flush()

        yield notice
        return
    with console.status(tally.line()) as status:

        def live(event: ProgressEvent) -> None:
            tally.update(event)
            status.update(tally.line())

        yield live
