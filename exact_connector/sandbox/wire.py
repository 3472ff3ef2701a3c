"""How the sandbox answers: Exact-shaped JSON bodies and errors, the rare HTML page.

Handlers raise :class:`SandboxError` wherever Exact would refuse a request; the app renders it once,
as ``{"error":{"code":"","message":{"lang":"","value":…}}}`` with Exact's status, reason
phrase and headers (``Reason`` on some 403s, ``Allow`` on 405s).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "JSON",
    "SYNTAX_REASON",
    "SandboxError",
    "dumps",
    "empty_response",
    "error_body",
    "error_response",
    "html_response",
    "json_response",
    "redirect_response",
]

JSON = "application/json; charset=utf-8"
#: The reason phrase Exact puts on a 400 for an unparsable query (picqer #198, #609).
SYNTAX_REASON = "Bad Request - Error in query syntax."


class SandboxError(Exception):
    """An answer Exact would give instead of the data: status, message, reason phrase, headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as Exact sends it; key order is the payload's own (deterministic)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _extensions(reason: str | None) -> dict[str, Any]:
    return {"reason_phrase": reason.encode("ascii")} if reason else {}


def json_response(
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> httpx.Response:
    """A JSON answer."""
    all_headers = {"Content-Type": JSON, **(headers or {})}
    return httpx.Response(
        status, headers=all_headers, content=dumps(payload), extensions=_extensions(reason)
    )


def error_body(message: str) -> dict[str, Any]:
    """Exact's error envelope around one message."""
    return {"error": {"code": "", "message": {"lang": "", "value": message}}}


def error_response(error: SandboxError, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """The JSON answer for a :class:`SandboxError`, plus extra headers (rate-limit ones)."""
    return json_response(
        error.status, error_body(error.message), {**(headers or {}), **error.headers}, error.reason
    )


def empty_response(status: int, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """An answer without a body (204 after PUT and DELETE, plain 401s)."""
    return httpx.Response(status, headers=dict(headers or {}), content=b"")


def html_response(
    status: int, page: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """An HTML page (consent screen, OAuth error page, injected error pages)."""
    all_headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
    return httpx.Response(status, headers=all_headers, content=page.encode("utf-8"))


def redirect_response(location: str) -> httpx.Response:
    """A 302 with the small "Object moved" page IIS sends along."""
    link = html.escape(location, quote=True)
    page = (
        "<html><head><title>Object moved</title></head>"
        f'<body><h2>Object moved to <a href="{link}">here</a>.</h2></body></html>'
    )
    return httpx.Response(
        302,
        headers={"Location": location, "Content-Type": "text/html; charset=utf-8"},
        content=page.encode("utf-8"),
    )
