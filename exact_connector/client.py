"""ExactClient: the one way requests reach Exact Online.

Every request is built from validated parts on the credential's allow-listed origin, checked again
by the auth flow as it is sent (a resend after a 401 too) and paced by the rate governor; what
each attempt comes to is resolved by one table, :data:`exact_connector.retries.MATRIX`
(RELIABILITY.md §4.3): a POST that may have reached Exact is never sent twice. A final status
becomes its error through ``_STATUS_ERRORS``.

httpx's timeouts bound each network operation, not a request: a body that trickles in a byte at a
time never trips them. So bodies are read in chunks against the step's deadline.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, cast

import httpx

from exact_connector import retries
from exact_connector.auth import DEADLINE, ExactAuth, TokenPolicy
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    HostNotAllowed,
    RequestTimeout,
    StepCancelled,
)
from exact_connector.limits import RateGovernor
from exact_connector.oauth import TokenService
from exact_connector.progress import CallMade, Progress, RateLimitWait, emit
from exact_connector.ratelimit_headers import RateHeaders, parse_rate_headers
from exact_connector.results import Meta, RateLimit, rate_limit
from exact_connector.retries import MAX_ATTEMPTS, Attempt
from exact_connector.urls import (
    MAX_BODY_BYTES,
    Origin,
    check_request_url,
    checked_key,
    checked_length,
    default_transport,
    division_segment,
    encode_body,
    parse_server_url,
    query_options,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from exact_connector.catalog import Endpoint
    from exact_connector.vault import Credential, Vault

__all__ = [
    "DEFAULT_DEADLINE",
    "MAX_BODY_BYTES",
    "CallStats",
    "ExactClient",
    "http_client",
    "lent",
    "request_headers",
    "result_meta",
]

DEFAULT_DEADLINE = 120.0
_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
#: Headers that make the wire body differ from the decoded one (Content-Length then counts it).
_ENCODED_BODY_HEADERS = ("content-encoding", "transfer-encoding")

#: Set by the Connector's async methods for the worker thread running a step: once the engine
#: cancels the task (or ``asyncio.wait_for`` times it out), calls not sent yet are not sent.
CANCELLED: ContextVar[threading.Event | None] = ContextVar(
    "exact_connector_cancelled", default=None
)

#: One send: method, URL, body, headers, seconds left, deadline.
_Sent = tuple[str, httpx.URL, bytes | None, dict[str, str], float, float]


@dataclass
class CallStats:
    """What a step cost: API calls sent, the last rate-limit headers and request id."""

    api_calls: int = 0
    request_id: str | None = None
    rate_limit: dict[str, str] = field(default_factory=dict)
    #: ``rate_limit`` as read (by :func:`~exact_connector.ratelimit_headers.parse_rate_headers`).
    rate_headers: RateHeaders | None = None


class _Lent(httpx.BaseTransport):
    """Another's transport, used but never closed: closing a client leaves the pool to its owner."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)


def lent(transport: httpx.BaseTransport) -> httpx.BaseTransport:
    """``transport`` for a client that must not close it when the client closes."""
    return _Lent(transport)


def http_client(transport: httpx.BaseTransport, timeout: httpx.Timeout = _TIMEOUT) -> httpx.Client:
    """The HTTP client requests are sent through; each send names its credential's auth flow.

    ``trust_env=False``: HTTPS_PROXY and SSL_CERT_FILE in the environment neither reroute the
    bearer token nor widen which certificates are trusted; verification stays on. No cookie is
    kept: Exact's REST API is authorised by the bearer token alone, and a client shared by a
    credential's steps must not carry one step's cookies into the next.
    """
    client = httpx.Client(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"Accept": "application/json"},
    )
    # httpx offers no switch for its jar; every response would be wrapped in urllib objects for
    # it (~5% of a step). httpx is pinned to 0.28, whose Client keeps its jar here.
    client._cookies = _NoCookies()
    return client


class _NoCookies(httpx.Cookies):
    """Cookies that are never kept: no response is even looked at for them."""

    def __init__(self) -> None:
        super().__init__()
        self.jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep nothing, and skip the parsing."""

    def set_cookie(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Keep nothing."""


class _Overdue(Exception):
    """The step's deadline passed while a response body was still arriving."""


class _UntilDeadline(httpx.SyncByteStream):
    """A response body read against the step's deadline, checked after each chunk."""

    def __init__(self, stream: httpx.SyncByteStream, clock: Clock, deadline: float) -> None:
        self._stream, self._clock, self._deadline = stream, clock, deadline

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            yield chunk
            if self._clock.now() > self._deadline:
                raise _Overdue()

    def close(self) -> None:
        self._stream.close()


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
        credential: Credential | None = None,
        http: httpx.Client | None = None,
        origin: Origin | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """``credential``: the record as just read from the vault, so it is not read again.

        ``http`` (made by :func:`http_client` on ``transport``) and ``origin`` (the credential's
        Server URL, parsed): a Connector's, reused across steps instead of made again.
        """
        if credential is None or credential.id != credential_id:
            credential = vault.get(credential_id)
        self.credential_id = credential.id
        self.client_id = credential.client_id
        self.origin: Origin = origin or parse_server_url(
            credential.server_url, allow_sandbox=allow_sandbox
        )
        self.clock = clock or SystemClock()
        self.governor = governor or RateGovernor(clock=self.clock)
        # A transport given is lent (a Connector's pool, kept open across steps): never closed here.
        self._own_transport: httpx.BaseTransport | None = None
        if transport is None:
            transport = self._own_transport = default_transport(self.origin)
        borrowed = lent(transport)
        self.tokens = TokenService(self.origin, transport=borrowed, clock=self.clock)
        self.auth = ExactAuth(
            vault,
            credential.id,
            self.tokens,
            policy=policy,
            clock=self.clock,
            read=credential,
            check=self._check_request,
        )
        self.stats = CallStats()
        #: Told of every call and every wait (see :mod:`exact_connector.progress`).
        self.progress: Progress | None = None
        #: Endpoints (lower case) whose lists Exact refused without a ``$filter`` (its mandatory
        #: filter, set per app): learnt from a refusal, shared by a connection's clients.
        self.filter_required: set[str] = set()
        #: When a call given no deadline of its own must end (None: each call gets
        #: DEFAULT_DEADLINE): a dropdown's lookups, a poll, a Test Connect use the engine's.
        self.deadline: float | None = None
        self._endpoint_id = ""
        self._timeout = timeout
        limits = [timeout.connect, timeout.read, timeout.write, timeout.pool]
        longest = max((limit for limit in limits if limit is not None), default=math.inf)
        self._longest_timeout = math.inf if None in limits else longest
        # An HTTP client given is lent as well (the Connector's, shared by the credential's steps
        # and threads); the auth flow and the request check are this client's, per request.
        self._own_http = http is None
        self._http = http if http is not None else http_client(borrowed, timeout)
        self._on_close = on_close  # the lender's release, called once

    def close(self) -> None:
        """Release connections (those of a lent transport or client stay open for their owner)."""
        if self._own_http:
            self._http.close()
        self.tokens.close()
        if self._own_transport is not None:
            self._own_transport.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

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
        emit(self.progress, CallMade(request.method, self._endpoint_id, self.stats.api_calls))

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
        ahead: int = 0,
    ) -> httpx.Response:
        """Send, resolving each attempt by :data:`~exact_connector.retries.MATRIX`.

        ``ahead``: calls to the same endpoint expected right after this one (a list's next
        pages), which the governor may reserve with it (see :meth:`release_ahead`).

        A success (2xx) is returned, everything else raised. A DELETE whose earlier attempt may
        have been processed and whose retry answers 404 is returned as that 404: the record is
        absent, which is what the caller asked for.
        """
        if deadline is None:
            deadline = self.deadline or self.clock.now() + DEFAULT_DEADLINE
        body = encode_body(json) if json is not None else None
        headers = request_headers(method)
        self._before_sending(method, url, headers, json, endpoint, division)
        paced_division = division if endpoint.division_in_path else None
        maybe_processed = timed_out = False
        self._endpoint_id = endpoint.id

        def waiting(until: float) -> None:
            emit(
                self.progress,
                RateLimitWait(endpoint.id, division, datetime.fromtimestamp(until, UTC), "minute"),
            )

        for number in range(MAX_ATTEMPTS):
            ticket = None
            if paced_division is not None:
                ticket = self.governor.acquire(
                    self.client_id,
                    paced_division,
                    endpoint.id,
                    deadline=deadline,
                    on_wait=waiting,
                    ahead=ahead,
                    board=True,
                )
            try:
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    raise retries.out_of_time(endpoint.id, number)
                cancelled = CANCELLED.get()
                if cancelled is not None and cancelled.is_set():  # after any wait, before sending
                    raise StepCancelled(
                        f"The step was cancelled before its call to {endpoint.id} was sent.",
                        details={"endpoint": endpoint.id, "attempts": number},
                    )
                sent = (method, url, body, headers, remaining, deadline)
                attempt = self._attempt(sent, endpoint, division, maybe_processed)
            finally:
                if paced_division is not None:
                    self.governor.land(self.client_id, paced_division, endpoint.id, ticket)
            resolution = retries.resolve(method, attempt.happened)
            if resolution == "return" and attempt.response is not None:
                return attempt.response
            if resolution != "retry":
                client_request_id = headers["X-Client-Request-Id"]
                raise retries.failure(
                    method,
                    endpoint.id,
                    attempt,
                    number,
                    client_request_id,
                    self.auth.refresh_allowed_at,
                ) from None
            maybe_processed = maybe_processed or attempt.happened in retries.MAYBE_PROCESSED
            timed_out = isinstance(attempt.error, httpx.TimeoutException)
            self._pause(number, deadline, endpoint, paced_division is not None, attempt.response)
        raise retries.exhausted(endpoint.id, timed_out)

    def release_ahead(self, endpoint: Endpoint, division: int | None) -> None:
        """Give back the calls reserved ahead for ``endpoint`` and not made."""
        if division is not None and endpoint.division_in_path:
            self.governor.release(self.client_id, division, endpoint.id)

    def _before_sending(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        json: Any,
        endpoint: Endpoint,
        division: int | None,
    ) -> None:
        """The request is built and checked; a dry run stops here (see :mod:`~.dryrun`)."""

    def _attempt(
        self, sent: _Sent, endpoint: Endpoint, division: int | None, maybe_processed: bool
    ) -> Attempt:
        """Send once and say what happened (see :data:`~exact_connector.retries.Happened`)."""
        try:
            response = self._send(*sent)
        except httpx.TransportError as error:
            return Attempt(retries.on_transport_error(error), error=error)
        except httpx.DecodingError:  # sent and answered, but the body is not what it says
            return Attempt("garbled")
        except _Overdue:
            return Attempt("overdue")
        self._observe(response, endpoint, division)
        happened = retries.on_response(sent[0], response.status_code, maybe_processed)
        return Attempt(happened, response)

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
            method,
            url,
            content=body,
            headers=headers,
            timeout=self._bounded(remaining),
            extensions={DEADLINE: deadline},
        )
        response = self._http.send(request, auth=self.auth, stream=True)
        wire = cast("httpx.SyncByteStream", response.stream)  # a sync client's
        response.stream = _UntilDeadline(wire, self.clock, deadline)
        try:
            content = response.read()
        finally:
            response.close()
        if any(name in response.headers for name in _ENCODED_BODY_HEADERS):
            # They describe the wire body; the response now holds the decoded one.
            kept = [(k, v) for k, v in response.headers.multi_items() if k not in _BODY_HEADERS]
            response.headers = httpx.Headers([*kept, ("content-length", str(len(content)))])
        return response

    def _bounded(self, remaining: float) -> httpx.Timeout:
        """The configured timeouts, none longer than what is left of the step."""
        timeout = self._timeout
        if remaining >= self._longest_timeout:
            return timeout

        def cap(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        return httpx.Timeout(
            connect=cap(timeout.connect),
            read=cap(timeout.read),
            write=cap(timeout.write),
            pool=cap(timeout.pool),
        )

    def _observe(self, response: httpx.Response, endpoint: Endpoint, division: int | None) -> None:
        rate = _rate_limit_headers(response.headers)
        self.stats.rate_limit = rate
        self.stats.rate_headers = parsed = parse_rate_headers(rate)
        self.stats.request_id = retries.request_id(response) or self.stats.request_id
        if division is not None and endpoint.division_in_path:
            # The auth flow's refused first attempt (a 401 it resent) is a call, not an error.
            for seen in response.history:
                self.governor.observe(
                    self.client_id,
                    division,
                    endpoint.id,
                    seen.status_code,
                    seen.headers,
                    resolved=True,
                )
            # The governor reads only the rate-limit headers, but of a 429 also Retry-After.
            headers = response.headers if response.status_code == 429 else rate
            self.governor.observe(
                self.client_id, division, endpoint.id, response.status_code, headers, parsed=parsed
            )

    def _pause(
        self,
        attempt: int,
        deadline: float,
        endpoint: Endpoint,
        paced: bool,
        response: httpx.Response | None,
    ) -> None:
        """Wait before the next attempt; a paced 429 waits in the governor's next ``acquire``."""
        if attempt + 1 >= MAX_ATTEMPTS:
            return
        status = response.status_code if response is not None else None
        cause = "network" if status is None else f"HTTP {status}"
        if status == 429 and paced:
            return
        hinted = (
            self.governor.retry_after(status, response.headers)
            if status is not None and response is not None
            else None
        )
        delay = hinted if hinted is not None else retries.backoff_delay(attempt)
        if self.clock.now() + delay >= deadline:
            raise RequestTimeout(
                f"Exact Online is not answering ({cause}) and the step's time ran out.",
                details={"endpoint": endpoint.id, "attempts": attempt + 1},
                retry_at=(
                    datetime.fromtimestamp(self.clock.now() + delay, UTC)
                    if hinted is not None
                    else None
                ),
            )
        if hinted is not None:
            until = datetime.fromtimestamp(self.clock.now() + delay, UTC)
            emit(self.progress, RateLimitWait(endpoint.id, None, until, "retry"))
        self.clock.sleep(delay)


def _rate_limit_headers(headers: httpx.Headers) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers, names in lower case (only those are decoded); a repeated one
    joined with ", " as httpx joins it (so it reads as no count at all)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        if raw_name[:12].lower() == b"x-ratelimit-":
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _random_uuid() -> str:
    """A version 4 UUID as text, as ``str(uuid.uuid4())`` writes it.

    From ``random`` (reseeded in every forked child), not ``os.urandom``: a request id must be
    unique, not secret, and the system call would hand the GIL to another thread on every step.
    """
    bits = random.getrandbits(128) & ~(0xF000 << 64 | 0xC000 << 48) | (0x4000 << 64 | 0x8000 << 48)
    digits = f"{bits:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def request_headers(method: str) -> dict[str, str]:
    """The headers a request carries besides Accept and Authorization."""
    headers = {"X-Client-Request-Id": _random_uuid()}
    if method in ("POST", "PUT"):
        headers["Content-Type"] = "application/json"
    if method == "POST":
        headers["Prefer"] = "return=representation"  # else Exact fills only the new key
    return headers


def result_meta(client: ExactClient | None, started: float) -> Meta:
    """The ``meta`` of a result envelope: what the client's calls cost since ``started``
    (a ``time.monotonic()`` reading)."""
    stats = client.stats if client is not None else None
    meta = Meta(
        api_calls=stats.api_calls if stats else 0,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        rate_limit=rate_limit(stats.rate_headers or stats.rate_limit) if stats else RateLimit(),
    )
    if stats is not None and stats.request_id is not None:
        meta["request_id"] = stats.request_id
    return meta
