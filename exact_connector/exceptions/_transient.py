"""transient: retry later, possibly at ``retry_at`` (the :class:`TransientError` family)."""

from __future__ import annotations

from exact_connector.exceptions._base import TransientError


class RateLimited(TransientError):
    """Raised when the minute budget cannot refill before the step's deadline."""

    code = "rate_limited"
    hint = "Exact's rate limit was reached; the step can be retried at retry_at."


class DailyRateLimited(RateLimited):
    """Raised when the division's daily call budget is spent; fails fast until the reset."""

    code = "rate_limited_daily"
    hint = "The division used all of today's API calls; retry after retry_at (UTC midnight)."


class ErrorBudgetExhausted(TransientError):
    """Raised locally before Exact's 10-errors-per-endpoint-per-hour lockout would trigger."""

    code = "error_budget_protect"
    hint = (
        "Too many failed calls on this endpoint this hour; fix the cause and retry after "
        "retry_at (in development, reset the local count: RateGovernor.reset_errors)."
    )


class RequestTimeout(TransientError):
    """Raised when a request or the step's overall deadline ran out."""

    code = "timeout"
    hint = "Exact Online did not answer in time; retry the step later."


class StepCancelled(TransientError):
    """Raised in a step's worker thread when the engine cancelled the step (an async task
    cancelled, or timed out by ``asyncio.wait_for``): the calls not sent yet are not sent."""

    code = "step_cancelled"
    hint = "The engine cancelled the step; calls it had not sent were not sent. Run it again."


class TokenRefreshInProgress(TransientError):
    """Raised when another worker holds the refresh lock for longer than the wait allows."""

    code = "token_refresh_in_progress"
    hint = "Another worker is refreshing this connection's token; retry in a few seconds."


class ConcurrentUpdate(TransientError):
    """Raised when a compare-and-swap write finds the record changed since it was read."""

    code = "concurrent_update"
    hint = "Another worker changed this credential at the same time; re-read it and retry."


class VaultBusy(TransientError):
    """Raised when the vault database stayed locked by another writer past the busy timeout."""

    code = "vault_busy"
    hint = "The credential store is busy; retry in a few seconds."
