"""What a token request carries and is checked for before its grant: the form, who the client is,
and the day's cap; and how the token endpoint refuses (:class:`OAuthError`).

Client credentials come in the form body (``client_id``, ``client_secret``: what Exact's KB and
SDKs send, API-FACTS §1 "Token request bodies") or as HTTP Basic auth (RFC 6749 §2.3.1). The facts
only say the clients they cite use the body, not that Exact refuses Basic, and one widely used
client depends on Basic, so the sandbox accepts both; a request whose two sets disagree is refused.

The cap: at most 200 token-endpoint calls per app, user and day (API-FACTS §1 "Other token-endpoint
limits", from Invantive's summary of the July 2021 changes; not in the KB, low confidence). It is a
switch, off by default (``token_calls_per_day``). When on, every call that authenticates as the
app counts, whatever its grant and outcome (the sandbox has one user); days are UTC days like the
API's daily limit; the call past the cap answers 429 with ``Retry-After`` until the next UTC
midnight: the facts record no answer for it, and 429 is HTTP's answer to a rate limit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, unquote_plus

import httpx

from exact_connector.clock import Clock
from exact_connector.sandbox.wire import json_response

__all__ = ["OAuthError", "TokenQuota", "basic_credentials", "form_pairs", "single_values"]

_DAY = 86_400


class OAuthError(Exception):
    """A token-endpoint refusal: ``{"error": …, "error_description": …}``, or ``plain`` text."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        plain: str | None = None,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.description = status, error, description
        self.headers = dict(headers or {})
        self.plain = plain

    def response(self) -> httpx.Response:
        if self.plain is not None:
            text = {"Content-Type": "text/plain; charset=utf-8", **self.headers}
            return httpx.Response(self.status, headers=text, content=self.plain.encode())
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return json_response(self.status, body, {"Cache-Control": "no-store", **self.headers})


def form_pairs(request: httpx.Request) -> list[tuple[str, str]]:
    """The name/value pairs of a form-encoded body (400 for any other body)."""
    if (
        request.headers.get("content-type", "").split(";")[0].strip()
        != "application/x-www-form-urlencoded"
    ):
        raise OAuthError(
            400, "invalid_request", "The body must be application/x-www-form-urlencoded."
        )
    try:
        return parse_qsl(
            request.content.decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "The body is not valid UTF-8.") from None


def single_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The pairs as a mapping; a parameter sent twice is refused."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise OAuthError(400, "invalid_request", f"Parameter '{name}' was sent more than once.")
        values[name] = value
    return values


def basic_credentials(request: httpx.Request) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from ``Authorization: Basic``; None without one.

    Raises ValueError when the header is not readable Basic credentials.
    """
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("unreadable Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise ValueError("unreadable Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


class TokenQuota:
    """Token-endpoint calls per app and UTC day, against an optional cap."""

    def __init__(self, clock: Clock, per_day: int | None) -> None:
        if per_day is not None and (isinstance(per_day, bool) or per_day < 1):
            raise ValueError("token_calls_per_day must be a positive number or None")
        self.clock = clock
        self.per_day = per_day
        self._used: dict[str, tuple[int, int]] = {}

    def take(self, client_id: str) -> int | None:
        """Count a call; the seconds until the cap resets when the call is one too many."""
        if self.per_day is None:
            return None
        now = self.clock.now()
        day = int(now // _DAY)
        seen_day, used = self._used.get(client_id, (day, 0))
        used = used if seen_day == day else 0
        if used >= self.per_day:
            return max(1, int((day + 1) * _DAY - now))
        self._used[client_id] = (day, used + 1)
        return None
