"""Retries: RELIABILITY.md §4.3 as one table, and how long to wait before the next attempt.

Each attempt comes to one :data:`Happened`: a transport failure by its fate (was the request
possibly processed?), or a response by its status. :data:`MATRIX` maps what happened, for a POST and
for any other method, to one :data:`Resolution`:

- ``return``: hand the response to the caller;
- ``retry``: wait (``Retry-After``, else full-jitter backoff) and send again;
- ``fail``: raise the error that names what went wrong;
- ``unknown``: raise :class:`~exact_connector.exceptions.OutcomeUnknown`, never resend.

Exact offers no idempotency key, so a POST that may have reached it is never sent twice. A 401 is
resolved before it gets here: the auth flow (:class:`~exact_connector.auth.ExactAuth`) refreshes
the token once and resends once; a 401 that survives that is ``rejected``. A 429 is paced by the
rate governor, which waits for the minute to reopen in its next ``acquire``. A refused TLS
certificate fails at once: retrying cannot help, and nothing was sent.
"""

from __future__ import annotations

import random
import re
import ssl
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Literal

import httpx

from exact_connector.exceptions import (
    AccessDenied,
    ConfigError,
    ExactConnectorError,
    ExactError,
    ExactRejected,
    MethodNotSupported,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ReauthRequired,
    RedirectNotAllowed,
    RequestTimeout,
    SystemError_,
    TransientError,
)
from exact_connector.redaction import redact

__all__ = [
    "MATRIX",
    "MAX_ATTEMPTS",
    "MAX_RETRY_AFTER",
    "MAYBE_PROCESSED",
    "MIN_RETRY_AFTER",
    "STATUS_ERRORS",
    "Attempt",
    "Happened",
    "Resolution",
    "backoff_delay",
    "clamp_wait",
    "exhausted",
    "failure",
    "on_response",
    "on_transport_error",
    "out_of_time",
    "request_id",
    "resolve",
    "retry_after",
    "tls_refusal",
    "tls_refused",
]

MAX_ATTEMPTS = 4
MIN_RETRY_AFTER = 1.0  # Retry-After of 0 or a past date still waits a little: never a hot loop
MAX_RETRY_AFTER = 86_400.0  # nothing Exact limits lasts longer than a day; larger is a mistake

Happened = Literal[
    "answered",  # 2xx
    "absent",  # 404 to a DELETE whose earlier attempt may have been processed
    "not_sent",  # the connection failed before the request left (connect error or timeout)
    "maybe_sent",  # the connection failed after the request may have left (read timeout, reset)
    "garbled",  # an answer came, but its body could not be decoded (a broken gzip)
    "tls_refused",  # the server's certificate did not verify
    "unsendable",  # the request is not valid HTTP
    "overdue",  # the step's deadline passed while the body was still arriving
    "throttled",  # 429
    "server_error",  # 500, 502, 503, 504; any 5xx to a POST (a gateway's 520 or 524 too)
    "rejected",  # any other status: 3xx, 4xx (a 401 only after the auth flow's one refresh)
]
Resolution = Literal["return", "retry", "fail", "unknown"]

#: What happened -> (the resolution for a POST, for any other method). RELIABILITY.md §4.3.
MATRIX: dict[Happened, tuple[Resolution, Resolution]] = {
    "answered": ("return", "return"),
    "absent": ("fail", "return"),  # the record is gone, which is what the DELETE asked for
    "not_sent": ("retry", "retry"),
    "maybe_sent": ("unknown", "retry"),
    "garbled": ("unknown", "retry"),  # the answer, whatever it said, was lost
    "tls_refused": ("fail", "fail"),
    "unsendable": ("fail", "fail"),
    "overdue": ("unknown", "fail"),
    "throttled": ("retry", "retry"),  # Exact does not process a throttled request
    "server_error": ("unknown", "retry"),
    "rejected": ("fail", "fail"),
}
#: What happened that means an earlier attempt may have been processed.
MAYBE_PROCESSED: frozenset[Happened] = frozenset({"maybe_sent", "garbled", "server_error"})

#: Transport failures by whether the server may have processed the request; first match wins.
_TRANSPORT: tuple[tuple[type[httpx.TransportError], Happened], ...] = (
    (httpx.ConnectError, "not_sent"),
    (httpx.ConnectTimeout, "not_sent"),
    (httpx.PoolTimeout, "not_sent"),
    (httpx.UnsupportedProtocol, "unsendable"),
    (httpx.LocalProtocolError, "unsendable"),  # never echoed: h11's text holds the header value
    (httpx.TransportError, "maybe_sent"),
)
_SERVER_ERRORS = frozenset({500, 502, 503, 504})
#: A final status (after the auth flow and the retries) -> the error it becomes; else 5xx is
#: transient and the rest an ExactError.
STATUS_ERRORS: dict[int, type[ExactConnectorError]] = {
    400: ExactRejected,
    401: ReauthRequired,
    403: AccessDenied,
    404: NotFound,
    405: MethodNotSupported,
    409: ExactRejected,
    413: ExactRejected,
    422: ExactRejected,
    429: RateLimited,
}
#: Why the outcome of a POST is unknown when no response says (a server error names its status).
_UNKNOWN_CAUSES: dict[Happened, str] = {
    "maybe_sent": "the connection failed",
    "garbled": "its answer could not be decoded",
    "overdue": "the answer was still arriving at the deadline",
}
_REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_RNG = random.Random()  # jitter, not secrecy


@dataclass(frozen=True)
class Attempt:
    """What one send came to: what happened, and the response or transport error, if any."""

    happened: Happened
    response: httpx.Response | None = None
    error: httpx.TransportError | None = None


def resolve(method: str, happened: Happened) -> Resolution:
    """What to do about one attempt of ``method`` that came to ``happened``."""
    for_post, for_others = MATRIX[happened]
    return for_post if method == "POST" else for_others


def on_transport_error(error: httpx.TransportError) -> Happened:
    """What a transport failure means: was the request sent, possibly, or never?"""
    if tls_refused(error) is not None:
        return "tls_refused"
    return next(happened for kind, happened in _TRANSPORT if isinstance(error, kind))


def on_response(method: str, status: int, maybe_processed: bool) -> Happened:
    """What a response means, given whether an earlier attempt may have been processed."""
    if status < 300:
        return "answered"
    if status == 404 and method == "DELETE" and maybe_processed:
        return "absent"
    if status == 429:
        return "throttled"
    if status in _SERVER_ERRORS or (status >= 500 and method == "POST"):
        # Any 5xx may come after the server did the work (a proxy's 524 after a slow create):
        # a POST's outcome is then unknown, whatever the number. Other methods retry the usual
        # four; the rest fail as transient (they are safe to send again).
        return "server_error"
    return "rejected"


def tls_refusal() -> ConfigError:
    """The error for a TLS certificate that did not verify: configuration, never retried."""
    return ConfigError(
        "The server's TLS certificate could not be verified; nothing was sent.",
        hint="Check the Server URL and any proxy or firewall intercepting HTTPS.",
    )


def tls_refused(error: BaseException) -> ConfigError | None:
    """:func:`tls_refusal` if ``error`` (or what caused it) is a refused certificate, else None.

    Retrying cannot help (and nothing was sent), and no input or flag turns verification off.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return tls_refusal()
        cause = cause.__cause__ or cause.__context__
    return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Retry-After as seconds from ``now`` (delay-seconds or an HTTP-date); garbage gives None.

    The result is not clamped: it may be negative (a past date) or ``inf`` (a huge number).
    """
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return float(text)  # a huge value overflows to inf, which the caller caps
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def clamp_wait(delay: float) -> float:
    """A server's hint as a sane wait: at least ``MIN_RETRY_AFTER``, at most a day."""
    return min(max(delay, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Full jitter: a uniform delay in ``[0, min(cap, base * 2**attempt)]`` seconds."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    return (rng or _RNG).uniform(0.0, max(ceiling, 0.0))


# --- the errors a request ends with ------------------------------------------------------------


def failure(
    method: str,
    endpoint: str,
    attempt: Attempt,
    number: int,
    client_request_id: str,
    refresh_allowed_at: Callable[[], float | None],
) -> ExactConnectorError:
    """The error attempt ``number`` (from 0), resolved ``fail`` or ``unknown``, is raised as."""
    happened, response = attempt.happened, attempt.response
    if resolve(method, happened) == "unknown":
        status = None if response is None else f"HTTP {response.status_code}"
        return OutcomeUnknown(
            f"{method} {endpoint} may or may not have been applied "
            f"({status or _UNKNOWN_CAUSES[happened]}); it was not retried.",
            details={
                "method": method,
                "endpoint": endpoint,
                "client_request_id": client_request_id,
            },
        )
    if happened == "tls_refused":
        return tls_refusal()
    if happened == "unsendable":
        return SystemError_(
            f"The {method} request to {endpoint} could not be sent: it is not valid HTTP.",
            details={"endpoint": endpoint},
        )
    if response is None:  # overdue
        return out_of_time(endpoint, number + 1)
    return _status_error(response, endpoint, refresh_allowed_at)


def out_of_time(endpoint: str, attempts: int) -> RequestTimeout:
    """The step's deadline passed before an answer came."""
    return RequestTimeout(
        "The step's time ran out before Exact Online answered.",
        details={"endpoint": endpoint, "attempts": attempts},
    )


def exhausted(endpoint: str, timed_out: bool) -> ExactConnectorError:
    """Every attempt was used up; ``timed_out``: the last one by a timeout."""
    details = {"endpoint": endpoint, "attempts": MAX_ATTEMPTS}
    if timed_out:
        return RequestTimeout(
            "Exact Online did not answer in time; the step was stopped after several attempts.",
            details=details,
        )
    return TransientError(
        "Exact Online kept failing; the step was stopped after several attempts.",
        details=details,
    )


def request_id(response: httpx.Response) -> str | None:
    """The server's id for this request, if it sent a plausible one."""
    for name in _REQUEST_ID_HEADERS:
        value = str(response.headers.get(name, ""))
        if value and len(value) <= 100 and value.isprintable():
            return value
    return None


def _status_error(
    response: httpx.Response, endpoint: str, refresh_allowed_at: Callable[[], float | None]
) -> ExactConnectorError:
    status = response.status_code
    details: dict[str, Any] = {"status": status, "endpoint": endpoint}
    if (found := request_id(response)) is not None:
        details["request_id"] = found
    if 300 <= status < 400:
        return RedirectNotAllowed(
            "Exact Online answered with a redirect, which is never followed.",
            details=details,
        )
    if status == 401 and (allowed := refresh_allowed_at()) is not None:
        # Refused before Exact would let us renew it (revoked elsewhere?): a wait, not a
        # sign-in, fixes this; at retry_at the token is refreshed first.
        return TransientError(
            "Exact Online refused the access token before it can be renewed.",
            details=details,
            retry_at=datetime.fromtimestamp(allowed, UTC),
        )
    # The answer's own words, with any secret masked: a server (or a gateway before it) may echo
    # the request, its Authorization header included, and these reach engines and people.
    exact_message = redact(_exact_message(response) or _server_words(response))
    if exact_message:
        details["exact_message"] = exact_message
    if (reason := response.headers.get("Reason")) and len(reason) < 200:
        details["reason"] = redact(reason)
    error_class = STATUS_ERRORS.get(status, TransientError if status >= 500 else ExactError)
    text = f"Exact Online answered {status}"
    return error_class(f"{text}: {exact_message}" if exact_message else f"{text}.", details=details)


def _exact_message(response: httpx.Response) -> str:
    """Exact's own error text from ``{"error":{"message":{"value":…}}}``, bounded in length."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    value: object = message.get("value") if isinstance(message, dict) else message
    return _plain_text(value) if isinstance(value, str) else ""


def _server_words(response: httpx.Response) -> str:
    """What Exact said when its answer is not OData JSON: a reason phrase of its own ("Bad
    Request - Error in query syntax."), else a short plain-text body ("Forbidden - Application
    Scope Violated"); "" when neither says more than the status."""
    reason = response.reason_phrase
    try:
        standard = HTTPStatus(response.status_code).phrase
    except ValueError:
        standard = ""
    if reason and reason.strip().lower() != standard.lower():
        return _plain_text(reason)
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "text/plain" and 0 < len(response.content) <= _PLAIN_BODY_LIMIT:
        return _plain_text(response.content.decode("utf-8", "replace"))
    return ""


def _plain_text(text: str) -> str:
    """Server text as one line: control and format characters (a terminal's escapes, line
    breaks) as spaces, runs of spaces as one, at most 500 characters."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text[:2000])
    return " ".join(cleaned.split())[:500]


_PLAIN_BODY_LIMIT = 2000
