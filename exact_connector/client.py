"""ExactClient: the one way requests reach Exact Online.

Every request is built from validated parts on the credential's allow-listed origin, checked again
by a request hook, paced by the rate governor, and its outcome decided by two tables: one for
transport failures (was the request possibly processed?) and one for HTTP statuses. The retry
matrix follows RELIABILITY.md §4.3: a POST that may have reached Exact is never sent twice.

httpx's timeouts bound each network operation, not a request: a body that trickles in a byte at a
time never trips them. So bodies are read in chunks against the step's deadline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx

from exact_connector.auth import ExactAuth, TokenPolicy
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    AccessDenied,
    ExactConnectorError,
    ExactError,
    ExactRejected,
    HostNotAllowed,
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
from exact_connector.hosts import Origin, check_request_url, default_transport, parse_server_url
from exact_connector.limits import RateGovernor, backoff_delay
from exact_connector.request_parts import (
    MAX_BODY_BYTES,
    checked_key,
    checked_length,
    division_segment,
    encode_body,
    query_options,
)
from exact_connector.tokens import TokenService, tls_refused

if TYPE_CHECKING:
    from collections.abc import Mapping

    from exact_connector.catalog import Endpoint
    from exact_connector.vault import Vault

__all__ = ["DEFAULT_DEADLINE", "MAX_BODY_BYTES", "CallStats", "ExactClient", "request_headers"]

DEFAULT_DEADLINE = 120.0
_MAX_ATTEMPTS = 4
_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
_REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id")
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

Fate = Literal["not_sent", "maybe_sent", "unsendable"]

#: Transport failures by whether the server may have processed the request.
_TRANSPORT_FATE: tuple[tuple[type[httpx.TransportError], Fate], ...] = (
    (httpx.ConnectError, "not_sent"),
    (httpx.ConnectTimeout, "not_sent"),
    (httpx.PoolTimeout, "not_sent"),
    (httpx.UnsupportedProtocol, "unsendable"),
    (httpx.LocalProtocolError, "unsendable"),  # never echoed: h11's text holds the header value
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


class _Overdue(Exception):
    """The step's deadline passed while a response body was still arriving."""


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
        transport = transport or default_transport()
        self.tokens = TokenService(self.origin, transport=transport, clock=self.clock)
        self.auth = ExactAuth(vault, credential.id, self.tokens, policy=policy, clock=self.clock)
        self.stats = CallStats()
        self._timeout = timeout
        # trust_env=False: HTTPS_PROXY and SSL_CERT_FILE in the environment neither reroute the
        # bearer token nor widen which certificates are trusted; verification stays on.
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
        if not request.url.path.startswith("/api/v1/"):  # the bearer token goes to the API only
            raise HostNotAllowed(
                "A request outside Exact Online's REST API was blocked.",
                details={"host": request.url.host},
            )
        self.stats.api_calls += 1

    # -- building ------------------------------------------------------------------------------

    def url(
        self,
        endpoint: Endpoint,
        division: int | None,
        key_literal: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.URL:
        """The absolute URL of an endpoint (and record), from validated parts only.

        The division must be a whole number of ASCII digits in range, the key literal one that
        :func:`~exact_connector.odata.key_literal` renders, and each query option one the client
        knows with a value of the expected shape; anything else is an :class:`InputError`.
        """
        path = endpoint.path
        if endpoint.division_in_path:
            path = path.replace("{division}", division_segment(division))
        if key_literal is not None:
            path = f"{path}({checked_key(key_literal)})"
        url = self.origin.join(path)
        if params:
            url = url.copy_merge_params(query_options(params))
        checked_length(str(url), params)
        return url

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
        body = encode_body(json) if json is not None else None
        headers = request_headers(method)
        paced_division = division if endpoint.division_in_path else None
        paced = paced_division is not None
        maybe_processed = timed_out = False
        for attempt in range(_MAX_ATTEMPTS):
            if paced_division is not None:
                self.governor.acquire(
                    self.client_id, paced_division, endpoint.id, deadline=deadline
                )
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise _out_of_time(endpoint, attempt)
            try:
                response = self._send(method, url, body, headers, remaining, deadline)
            except httpx.TransportError as error:
                fate = next(f for kind, f in _TRANSPORT_FATE if isinstance(error, kind))
                if (refused := tls_refused(error)) is not None:
                    raise refused from None
                if fate == "unsendable":
                    raise SystemError_(
                        f"The {method} request to {endpoint.id} could not be sent: it is not "
                        "valid HTTP.",
                        details={"endpoint": endpoint.id},
                    ) from None
                if fate == "maybe_sent" and method == "POST":
                    raise _outcome_unknown(
                        method, endpoint, headers, "the connection failed"
                    ) from None
                maybe_processed = maybe_processed or fate == "maybe_sent"
                timed_out = isinstance(error, httpx.TimeoutException)
                self._pause(attempt, deadline, endpoint, "network", paced)
                continue
            except _Overdue:
                if method == "POST":
                    raise _outcome_unknown(
                        method, endpoint, headers, "the answer was still arriving at the deadline"
                    ) from None
                raise _out_of_time(endpoint, attempt + 1) from None
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
                timed_out = False
                self._pause(attempt, deadline, endpoint, f"HTTP {status}", paced, response)
                continue
            raise self._error_for(response, endpoint)
        if timed_out:
            raise RequestTimeout(
                "Exact Online did not answer in time; the step was stopped after several attempts.",
                details={"endpoint": endpoint.id, "attempts": _MAX_ATTEMPTS},
            )
        raise TransientError(
            "Exact Online kept failing; the step was stopped after several attempts.",
            details={"endpoint": endpoint.id, "attempts": _MAX_ATTEMPTS},
        )

    def _send(
        self,
        method: str,
        url: httpx.URL,
        body: bytes | None,
        headers: dict[str, str],
        remaining: float,
        deadline: float,
    ) -> httpx.Response:
        """One exchange (plus the auth flow's one resend); the body is read against the deadline."""
        request = self._http.build_request(
            method, url, content=body, headers=headers, timeout=self._bounded(remaining)
        )
        response = self._http.send(request, stream=True)
        try:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if self.clock.now() > deadline:
                    raise _Overdue()
        finally:
            response.close()
        return httpx.Response(
            response.status_code,
            headers=[
                (k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS
            ],
            content=b"".join(chunks),
            request=response.request,
            history=response.history,
        )

    def _bounded(self, remaining: float) -> httpx.Timeout:
        """The configured timeouts, none longer than what is left of the step."""

        def cap(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        timeout = self._timeout
        return httpx.Timeout(
            connect=cap(timeout.connect),
            read=cap(timeout.read),
            write=cap(timeout.write),
            pool=cap(timeout.pool),
        )

    def _observe(self, response: httpx.Response, endpoint: Endpoint, division: int | None) -> None:
        self.stats.rate_limit = {
            k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit-")
        }
        self.stats.request_id = _request_id(response) or self.stats.request_id
        if division is not None and endpoint.division_in_path:
            # The auth flow's refused first attempt (a 401 it resent) is a call, not an error.
            for seen in (*response.history, response):
                self.governor.observe(
                    self.client_id,
                    division,
                    endpoint.id,
                    seen.status_code,
                    seen.headers,
                    resolved=seen is not response,
                )

    def _pause(
        self,
        attempt: int,
        deadline: float,
        endpoint: Endpoint,
        cause: str,
        paced: bool,
        response: httpx.Response | None = None,
    ) -> None:
        """Wait before the next attempt; a paced 429 waits in the governor's next ``acquire``."""
        if attempt + 1 >= _MAX_ATTEMPTS:
            return
        status = response.status_code if response is not None else None
        if status == 429 and paced:
            return
        hinted = (
            self.governor.retry_after(status, response.headers)
            if status is not None and response is not None
            else None
        )
        delay = hinted if hinted is not None else backoff_delay(attempt)
        if self.clock.now() + delay >= deadline:
            raise RequestTimeout(
                f"Exact Online is not answering ({cause}) and the step's time ran out.",
                details={"endpoint": endpoint.id, "attempts": attempt + 1},
                retry_at=_utc(self.clock.now() + delay) if hinted is not None else None,
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
        if status == 401 and (allowed := self.auth.refresh_allowed_at()) is not None:
            # Refused before Exact would let us renew it (revoked elsewhere?): a wait, not a
            # sign-in, fixes this; at retry_at the token is refreshed first.
            return TransientError(
                "Exact Online refused the access token before it can be renewed.",
                details=details,
                retry_at=_utc(allowed),
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


def request_headers(method: str) -> dict[str, str]:
    """The headers a request carries besides Accept and Authorization."""
    headers = {"X-Client-Request-Id": str(uuid.uuid4())}
    if method in ("POST", "PUT"):
        headers["Content-Type"] = "application/json"
    if method == "POST":
        headers["Prefer"] = "return=representation"  # else Exact fills only the new key
    return headers


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _out_of_time(endpoint: Endpoint, attempts: int) -> RequestTimeout:
    return RequestTimeout(
        "The step's time ran out before Exact Online answered.",
        details={"endpoint": endpoint.id, "attempts": attempts},
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
