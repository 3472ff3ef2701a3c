"""Progress on stderr: a live line on a terminal, one line per wait otherwise, never on stdout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exact_connector.cli._progress import describe, progress_on_stderr
from exact_connector.progress import CallMade, PageFetched, RateLimitWait, SignInWait

UNTIL = datetime(2026, 1, 1, 12, 34, 56, tzinfo=UTC)
LOCAL = UNTIL.astimezone().strftime("%H:%M:%S")


def _stderr_of_calls_then_a_wait(
    action: str, calls: int, capsys: pytest.CaptureFixture[str]
) -> str:
    """Report ``calls`` calls of one 60-row page each, then a rate-limit wait: what stderr got.

    Nothing may reach stdout.
    """
    with progress_on_stderr(action) as progress:
        progress(CallMade("GET", "crm/Accounts", calls))
        progress(PageFetched("crm/Accounts", 60, 60 * calls, calls))
        progress(RateLimitWait("crm/Accounts", 100001, UNTIL, "minute"))
    out, err = capsys.readouterr()
    assert out == ""
    return err


def test_without_a_terminal_only_waits_are_announced(capsys: pytest.CaptureFixture[str]) -> None:
    """Counters stay quiet in a log; each wait is one line saying until when."""
    err = _stderr_of_calls_then_a_wait("list_or_get_endpoint", 1, capsys)
    assert err == f"list_or_get_endpoint: waiting for the rate limit until {LOCAL}\n"


def test_on_a_terminal_the_line_counts_rows_pages_and_calls(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live line shows the running totals and the wait in progress."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    err = _stderr_of_calls_then_a_wait("run", 2, capsys)
    assert f"run: 120 rows, 2 pages, 2 calls; waiting for the rate limit until {LOCAL}" in err


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (RateLimitWait("crm/Accounts", None, UNTIL, "retry"), f"retrying at {LOCAL}"),
        (SignInWait("mine", UNTIL), f"waiting for the sign-in until {LOCAL}"),
        (PageFetched("crm/Accounts", 60, 120, 2), "120 rows in 2 pages"),
        (CallMade("GET", "crm/Accounts", 3), "call 3: GET crm/Accounts"),
    ],
    ids=["retry", "sign-in", "page", "call"],
)
def test_every_event_has_words(event: object, words: str) -> None:
    """Each kind of event reads as a short phrase."""
    assert words in describe(event)  # type: ignore[arg-type]
