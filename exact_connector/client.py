"""ExactClient: the one way requests reach Exact Online.

Every request is built from validated parts on the credential's allow-listed origin, checked again
by a request hook, paced by the rate governor, and its outcome decided by two tables: one for
transport failures (was the request possibly processed?) and one for HTTP statuses. The retry
matrix follows RELIABILITY.md §4.3: a POST that may have reached Exact is never sent twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx

from exact_connector.auth import ExactAuth, TokenPolicy, TokenService
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    AccessDenied,
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
    TransientError,
)
from exact_connector.hosts import Origin, check_request_url, parse_server_url
from exact_connector.limits import RateGovernor, backoff_delay

if TYPE_CHECKING:
    from collections.abc import Mapping

    from exact_connector.catalog import Endpoint
    from exact_connector.vault import Vault

__all__ = ["DEFAULT_DEADLINE", "CallStats", "ExactClient"]

DEFAULT_DEADLINE = 120.0
_MAX_ATTEMPTS = 4
_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
_REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id")

Fate = Literal["not_sent", "maybe_sent"]

#: Transport failures by whether the server may have processed the request.
_TRANSPORT_FATE: tuple[tuple[type[httpx.TransportError], Fate], ...] = (
    (httpx.ConnectError, "not_sent"),
    (httpx.ConnectTimeout, "not_sent"),
    (httpx.PoolTimeout, "not_sent"),
    (httpx.TransportError, "maybe_sent"),
)

#: Final HTTP statuses (after the auth flow and retries) -> the error they become.
_STATUS_ERRORS: dict[int, type[ExactConnectorError]] = {
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
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class CallStats:
    """What a step cost: API calls sent, the last rate-limit headers and request id."""

    api_calls: int = 0
    request_id: str | None = None
    rate_limit: dict[str, str] = field(default_factory=dict)


class ExactClient:
    """Requests on behalf of one credential, with refresh, pacing, retries and classification."""

    def __init__(
        self,
        vault: Vault,
        credential_id: str,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        governor: RateGovernor | None = None,
        policy: TokenPolicy | None = None,
        allow_sandbox: bool = False,
        timeout: httpx.Timeout = _TIMEOUT,
    ) -> None:
        credential = vault.get(credential_id)
        self.credential_id = credential.id
        self.client_id = credential.client_id
        self.origin: Origin = parse_server_url(credential.server_url, allow_sandbox=allow_sandbox)
        self.clock = clock or SystemClock()
        self.governor = governor or RateGovernor(clock=self.clock)
        self.tokens = TokenService(self.origin, transport=transport, clock=self.clock)
        self.auth = ExactAuth(vault, credential.id, self.tokens, policy=policy, clock=self.clock)
        self.stats = CallStats()
        self._http = httpx.Client(
            transport=transport,
            auth=self.auth,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"Accept": "application/json"},
            event_hooks={"request": [self._check_request]},
        )

    def close(self) -> None:
        """Release connections."""
        self._http.close()
        self.tokens.close()

    def __enter__(self) -> ExactClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_request(self, request: httpx.Request) -> None:
        check_request_url(request.url, self.origin)

    # -- building ------------------------------------------------------------------------------

    def url(
        self,
        endpoint: Endpoint,
        division: int | None,
        key_literal: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.URL:
        """The absolute URL of an endpoint (and record), from validated parts only."""
        path = endpoint.path
        if endpoint.division_in_path:
            if division is None:
                raise ValueError("this endpoint needs a division")
            path = path.replace("{division}", str(int(division)))
        if key_literal is not None:
            path = f"{path}({key_literal})"
        url = self.origin.join(path)
        return url.copy_merge_params(dict(params)) if params else url

    # -- sending -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        endpoint: Endpoint,
        division: int | None,
        json: Any = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send with the retry matrix; a success (2xx) is returned, everything else raised.

        A DELETE whose earlier attempt may have been processed and whose retry answers 404 is
        returned as that 404: the record is absent, which is what the caller asked for.
        """
        deadline = deadline if deadline is not None else self.clock.now() + DEFAULT_DEADLINE
        headers = {"X-Client-Request-Id": str(uuid.uuid4())}
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/json"
        if method == "POST":
            headers["Prefer"] = "return=representation"
        maybe_processed = False
        for attempt in range(_MAX_ATTEMPTS):
            if division is not None and endpoint.division_in_path:
                self.governor.acquire(self.client_id, division, endpoint.id, deadline=deadline)
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise RequestTimeout(
                    "The step's time ran out before Exact Online answered.",
                    details={"endpoint": endpoint.id, "attempts": attempt},
                )
            try:
                self.stats.api_calls += 1
                response = self._http.request(
                    method, url, json=json, headers=headers, timeout=_bounded(remaining)
                )
            except httpx.TransportError as error:
                fate = next(f for kind, f in _TRANSPORT_FATE if isinstance(error, kind))
                if fate == "maybe_sent" and method == "POST":
                    raise _outcome_unknown(
                        method, endpoint, headers, "the connection failed"
                    ) from None
                maybe_processed = maybe_processed or fate == "maybe_sent"
                self._pause(attempt, deadline, endpoint, "network")
                continue
            self._observe(response, endpoint, division)
            status = response.status_code
            if status < 300:
                return response
            if status == 404 and method == "DELETE" and maybe_processed:
                return response
            if status in _RETRYABLE_STATUS:
                if status >= 500 and method == "POST":
                    raise _outcome_unknown(method, endpoint, headers, f"HTTP {status}")
                maybe_processed = maybe_processed or status >= 500
                self._pause(attempt, deadline, endpoint, f"HTTP {status}", response)
                continue
            raise self._error_for(response, endpoint)
        raise TransientError(
            "Exact Online kept failing; the step was stopped after several attempts.",
            details={"endpoint": endpoint.id, "attempts": _MAX_ATTEMPTS},
        )

    def _observe(self, response: httpx.Response, endpoint: Endpoint, division: int | None) -> None:
        self.stats.rate_limit = {
            k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit-")
        }
        self.stats.request_id = _request_id(response) or self.stats.request_id
        if division is not None and endpoint.division_in_path:
            self.governor.observe(
                self.client_id, division, endpoint.id, response.status_code, response.headers
            )

    def _pause(
        self,
        attempt: int,
        deadline: float,
        endpoint: Endpoint,
        cause: str,
        response: httpx.Response | None = None,
    ) -> None:
        """Wait before the next attempt; 429s wait in the governor's next ``acquire``."""
        if attempt + 1 >= _MAX_ATTEMPTS:
            return
        if response is not None and response.status_code == 429:
            return
        hinted = (
            self.governor.retry_after(response.status_code, response.headers) if response else None
        )
        delay = hinted if hinted is not None else backoff_delay(attempt)
        if self.clock.now() + delay >= deadline:
            raise RequestTimeout(
                f"Exact Online is not answering ({cause}) and the step's time ran out.",
                details={"endpoint": endpoint.id, "attempts": attempt + 1},
            )
        self.clock.sleep(delay)

    def _error_for(self, response: httpx.Response, endpoint: Endpoint) -> ExactConnectorError:
        status = response.status_code
        details: dict[str, Any] = {"status": status, "endpoint": endpoint.id}
        if (request_id := _request_id(response)) is not None:
            details["request_id"] = request_id
        if 300 <= status < 400:
            return RedirectNotAllowed(
                "Exact Online answered with a redirect, which is never followed.",
                details=details,
            )
        exact_message = _exact_message(response)
        if exact_message:
            details["exact_message"] = exact_message
        if (reason := response.headers.get("Reason")) and len(reason) < 200:
            details["reason"] = reason
        error_class = _STATUS_ERRORS.get(status, TransientError if status >= 500 else ExactError)
        text = f"Exact Online answered {status}"
        return error_class(
            f"{text}: {exact_message}" if exact_message else f"{text}.", details=details
        )


def _bounded(remaining: float) -> httpx.Timeout:
    return httpx.Timeout(
        connect=min(5.0, remaining),
        read=min(30.0, remaining),
        write=min(30.0, remaining),
        pool=min(5.0, remaining),
    )


def _outcome_unknown(
    method: str, endpoint: Endpoint, headers: Mapping[str, str], cause: str
) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"{method} {endpoint.id} may or may not have been applied ({cause}); it was not retried.",
        details={
            "method": method,
            "endpoint": endpoint.id,
            "client_request_id": headers["X-Client-Request-Id"],
        },
    )


def _request_id(response: httpx.Response) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = str(response.headers.get(name, ""))
        if value and len(value) <= 100 and value.isprintable():
            return value
    return None


def _exact_message(response: httpx.Response) -> str:
    """Exact's own error text from ``{"error":{"message":{"value":…}}}``, bounded in length."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    value: object = message.get("value") if isinstance(message, dict) else message
    return value[:500] if isinstance(value, str) else ""
