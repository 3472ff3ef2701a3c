"""What keeps the local app local: the Host check, the CSRF token, and the response headers.

The server binds to 127.0.0.1 only, but a web page the person has open elsewhere can still send
requests there (and DNS rebinding can make such a page same-site). So every request must name this
app's own host and port in ``Host``, and every state-changing request must carry the per-run token
that only the page served by this app can read (``X-CSRF-Token``) and, when the browser sends one,
this app's own ``Origin``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_HEADER", "Guard", "new_token"]

CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: No framing, no third-party anything, and no Referer: the callback URL carries a one-time code.
#: 'unsafe-eval' because Ajv (the forms' validator) compiles each schema into a function.
_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def new_token() -> str:
    """A fresh CSRF token for one run of the app."""
    return secrets.token_urlsafe(32)


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    error: dict[str, object] = {
        "code": code,
        "category": "config",
        "message": message,
        "hint": None,
        "details": {},
    }
    return JSONResponse({"error": error}, status_code=status)


class Guard:
    """ASGI middleware: refuse foreign hosts and unauthenticated writes; add the headers."""

    def __init__(self, app: ASGIApp, *, hosts: Collection[str], token: str) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.origins = frozenset(f"http://{host}" for host in hosts)
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._check(scope["method"], headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _check(self, method: str, headers: Headers) -> JSONResponse | None:
        if headers.get("host", "") not in self.hosts:
            return _refuse(421, "wrong_host", "This app answers only on its own loopback address.")
        if method in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return _refuse(403, "cross_origin", "Requests from other sites are refused.")
        if not hmac.compare_digest(headers.get(CSRF_HEADER, ""), self.token):
            return _refuse(403, "csrf", "Reload the page: the request lacks this page's token.")
        return None
