"""What ``Connector.execute`` returns: the ActionResult envelope as typed structures.

``execute`` never raises for an Exact Online or input problem; it returns
``{ok, action, data | error, meta}``. The other engine calls (``options``, ``stream``, ``plan``,
``credentials.begin``, ``complete_authorization``, ``test_connect``'s lookups) raise the typed
errors of :mod:`exact_connector.exceptions` instead: they are called by a host's own code, which
can catch ``ExactConnectorError`` and read the same ``to_dict()`` that ``error`` holds.

Every write returns its record's key as a top-level ``id`` (create ``{id, created, record}``,
update ``{id, updated, record}``, delete ``{id, endpoint, deleted, already_absent?}``), so a
workflow chains steps without knowing which action came before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict, cast

from exact_connector.ratelimit_headers import RateHeaders, parse_rate_headers

__all__ = ["ActionError", "ActionResult", "Meta", "RateLimit", "rate_limit"]


class RateLimit(TypedDict, total=False):
    """The division's limits as Exact last reported them; resets are ISO 8601 UTC times."""

    minute_limit: int
    minute_remaining: int
    minute_reset: str
    day_limit: int
    day_remaining: int
    day_reset: str


class Meta(TypedDict):
    """What a step cost. ``request_id`` is present only when Exact sent one."""

    api_calls: int
    duration_ms: float
    rate_limit: RateLimit
    request_id: NotRequired[str]


class ActionError(TypedDict):
    """A failed step: ``category`` says what to do (fix input, fix config, retry, stop and look)."""

    code: str
    category: Literal["user", "config", "transient", "system"]
    message: str
    retryable: bool
    hint: str
    details: dict[str, Any]
    retry_at: NotRequired[str]


class ActionResult(TypedDict):
    """The envelope: ``data`` when ``ok``, ``error`` otherwise, ``meta`` always."""

    ok: bool
    action: str
    data: NotRequired[dict[str, Any]]
    error: NotRequired[ActionError]
    meta: Meta


def rate_limit(headers: dict[str, str] | RateHeaders) -> RateLimit:
    """Exact's ``X-RateLimit-*`` headers (or their parsed form) as numbers and times; absent ones
    are left out."""
    parsed = headers if isinstance(headers, RateHeaders) else parse_rate_headers(headers)
    values = {
        "minute_limit": parsed.minute_limit,
        "minute_remaining": parsed.minute_remaining,
        "minute_reset": _iso(parsed.minute_reset),
        "day_limit": parsed.day_limit,
        "day_remaining": parsed.day_remaining,
        "day_reset": _iso(parsed.day_reset),
    }
    return cast("RateLimit", {k: v for k, v in values.items() if v is not None})


def _iso(epoch: float | None) -> str | None:
    return (
        None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    )
