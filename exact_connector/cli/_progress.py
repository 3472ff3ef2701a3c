"""Progress on stderr: a live status line on a terminal (rich), one-line notices otherwise.

Stdout carries data only, so progress never goes there. On a terminal the line shows rows,
pages and calls so far and any wait; piped or redirected, only waits are announced, one line each,
so a log shows why a command was quiet for a minute without filling with counters.

rich is imported only when stderr may be a terminal: a piped step (an engine's, a script's) never
loads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from exact_connector.progress import (
    CallMade,
    PageFetched,
    Progress,
    ProgressEvent,
    RateLimitWait,
    SignInWait,
    Tally,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["describe", "progress_on_stderr"]

#: Variables with which rich treats a stream that is not a tty as a terminal.
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE")


def _clock_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _line(what: str, tally: Tally) -> str:
    """Counts so far, and the wait in progress, as one human line."""
    counts = f"{what}: {tally.rows} rows, {tally.pages} pages, {tally.calls} calls"
    return f"{counts}; {describe(tally.waiting)}" if tally.waiting else counts


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
    console = _terminal()
    if console is None:

        def notice(event: ProgressEvent) -> None:
            if isinstance(event, RateLimitWait | SignInWait):
                sys.stderr.write(f"{what}: {describe(event)}\n")
                sys.stderr.flush()

        yield notice
        return
    tally = Tally()
    with console.status(_line(what, tally)) as status:

        def live(event: ProgressEvent) -> None:
            tally.update(event)
            status.update(_line(what, tally))

        yield live


def _terminal() -> Console | None:
    """rich's console on stderr if rich judges stderr a terminal, else None; rich is not
    imported for a stream that is no tty unless a variable could make it count as one."""
    try:
        maybe = sys.stderr.isatty() or any(name in os.environ for name in _TERMINAL_ENV)
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        maybe = False
    if not maybe:
        return None
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    return console if console.is_terminal else None
