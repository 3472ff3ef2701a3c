"""Injected failures for reliability tests: switch one on, make the call, watch the client.

``sb.faults.add(kind, on_call=N, times=1, path_contains=..., method=..., **params)`` arms a fault
for the N-th matching request from now on, for ``times`` requests in a row (``None``: for ever).
What each kind does is the table :data:`KINDS`. Some act *before* the request is processed (the
request has no effect: a 5xx, an HTML page, a redirect, a 429), some *after* (the request took
effect and only the answer is damaged or lost), and ``latency`` only delays.

A dropped answer is the one that matters most: the record *is* created, or the refresh token *is*
rotated, and the client never hears. In-process the transport raises
:class:`httpx.RemoteProtocolError`; over loopback the server closes the socket without a byte.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

import httpx

from exact_connector.sandbox.limits import minute_reset_ms
from exact_connector.sandbox.wire import (
    error_body,
    html_response,
    json_response,
    redirect_response,
)

__all__ = ["KINDS", "Fault", "Faults"]

Phase = Literal["delay", "before", "after"]


@dataclass(frozen=True)
class _Kind:
    phase: Phase
    params: Mapping[str, Any]
    what: str


KINDS: dict[str, _Kind] = {
    "latency": _Kind("delay", {"seconds": 1.0}, "wait `seconds` on the sandbox clock, then answer"),
    "error": _Kind(
        "before",
        {"status": 500, "retry_after": None, "after": False},
        "answer `status` with Exact's 5xx body (after=True: process the request first)",
    ),
    "html": _Kind("before", {"status": 500}, "answer an IIS-style HTML error page"),
    "redirect": _Kind(
        "before", {"location": "https://evil.example/api/v1/"}, "answer 302 to another host"
    ),
    "rate_limit": _Kind(
        "before",
        {"headers": True, "retry_after": None},
        "answer 429 with the minutely headers (headers=False: with none)",
    ),
    "drop": _Kind("after", {}, "process the request, then close the connection with no answer"),
    "malformed_json": _Kind("after", {}, "process the request, then send truncated JSON"),
    "foreign_next": _Kind(
        "after", {"host": "evil.example"}, "process the request, then point d.__next elsewhere"
    ),
    "trickle": _Kind(
        "after",
        {"chunk": 64, "interval": 0.5},
        "process the request, then send the body `chunk` bytes every `interval` seconds",
    ),
}

_SERVER_ERROR = (
    "A problem has occurred. The cause of this issue will be investigated as soon as possible."
)


@dataclass
class Fault:
    """One armed fault: matching requests counted while armed (``seen``), and ``fired``."""

    kind: str
    on_call: int = 1
    times: int | None = 1
    path_contains: str | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    @property
    def phase(self) -> Phase:
        """When the fault acts: ``delay``, ``before`` or ``after`` processing."""
        if self.kind == "error" and self.params.get("after"):
            return "after"
        return KINDS[self.kind].phase

    @property
    def exhausted(self) -> bool:
        """Whether it will never fire again."""
        return self.times is not None and self.fired >= self.times

    def _matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


class Faults:
    """The armed faults of one sandbox."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        on_call: int = 1,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
        **params: Any,
    ) -> Fault:
        """Arm a fault; see :data:`KINDS` for the kinds and their parameters."""
        spec = KINDS.get(kind)
        if spec is None:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(KINDS))}")
        unknown = set(params) - set(spec.params)
        if unknown:
            raise TypeError(f"fault {kind!r} takes no parameter(s) {', '.join(sorted(unknown))}")
        if on_call < 1 or (times is not None and times < 1):
            raise ValueError("on_call and times count from 1")
        fault = Fault(kind, on_call, times, path_contains, method, {**spec.params, **params})
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return sum(not fault.exhausted for fault in self._faults)

    def firing(self, method: str, path: str) -> list[Fault]:
        """Count this request against every matching fault; return those that fire on it."""
        fired = []
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault._matches(method, path):
                    continue
                fault.seen += 1
                if fault.seen >= fault.on_call:
                    fault.fired += 1
                    fired.append(fault)
        return fired


def respond(fault: Fault, now: float) -> httpx.Response:
    """The answer a *before* fault gives instead of processing the request."""
    params = fault.params
    retry = {"Retry-After": str(params["retry_after"])} if params.get("retry_after") else {}
    if fault.kind == "error":
        return json_response(int(params["status"]), error_body(_SERVER_ERROR), retry)
    if fault.kind == "html":
        status = int(params["status"])
        title = f"{status} - {HTTPStatus(status).phrase}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return html_response(status, page)
    if fault.kind == "redirect":
        return redirect_response(str(params["location"]))
    headers = dict(retry)
    if params["headers"]:
        headers |= {
            "X-RateLimit-Minutely-Limit": "60",
            "X-RateLimit-Minutely-Remaining": "0",
            "X-RateLimit-Minutely-Reset": str(minute_reset_ms(now)),
        }
    return json_response(429, error_body("Too many requests: API rate limit exceeded."), headers)


class _Trickle(httpx.SyncByteStream):
    """A body that arrives a few bytes at a time, waiting on the sandbox clock in between."""

    def __init__(self, body: bytes, chunk: int, interval: float, sleep: Callable[[float], None]):
        self.body, self.chunk, self.interval, self.sleep = body, max(1, chunk), interval, sleep

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            if start:
                self.sleep(self.interval)
            yield self.body[start : start + self.chunk]


def damage(
    fault: Fault,
    request: httpx.Request,
    response: httpx.Response,
    sleep: Callable[[float], None],
) -> httpx.Response:
    """What an *after* fault makes of a processed request's answer (``drop`` raises instead)."""
    if fault.kind == "drop":
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if fault.kind == "error":
        return respond(fault, 0.0)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if fault.kind == "malformed_json":
        body = response.content
        cut = body[: len(body) // 2] if len(body) > 8 else b'{"d":{"results":['
        return httpx.Response(response.status_code, headers=headers, content=cut)
    if fault.kind == "trickle":
        body = response.content
        headers["Content-Length"] = str(len(body))
        chunk, interval = int(fault.params["chunk"]), float(fault.params["interval"])
        stream = _Trickle(body, chunk, interval, sleep)
        return httpx.Response(response.status_code, headers=headers, stream=stream)
    return _foreign_next(str(fault.params["host"]), request, response, headers)


def _foreign_next(
    host: str, request: httpx.Request, response: httpx.Response, headers: dict[str, str]
) -> httpx.Response:
    try:
        payload = json.loads(response.content)
    except ValueError:
        return response
    body = payload.get("d") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        return response
    current = body.get("__next")
    link = httpx.URL(current) if isinstance(current, str) else request.url
    body["__next"] = str(link.copy_with(host=host, port=None))
    return json_response(response.status_code, payload, headers)
