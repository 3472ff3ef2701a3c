"""The loopback listener that receives the OAuth redirect (``?code=…&state=…``) once."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector.exceptions import ConfigError, RequestTimeout

__all__ = ["CallbackListener", "browser_get", "is_loopback_redirect"]

#: How a sign-in that could not start is taken up again: the credential is stored, pending.
_RESUME = "finish the sign-in with `exact-connector credentials reauthorize NAME`"

_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>exact-connector</title>"
    b"<p>Sign-in received. You can close this window and return to the terminal.</p>"
)


def browser_get(url: str) -> tuple[int, str | None]:
    """One GET as a browser would send it, redirects not followed: the status and Location.

    Plain ``http.client``, which logs nothing: a sign-in redirect's Location carries the one-time
    code. For the demo and tests that play the person's browser; the connector itself never does.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.getheader("Location")
    finally:
        connection.close()


def sandbox_refusal(authorization_url: str) -> str | None:
    """Whether the loopback sandbox refuses this sign-in outright (unknown app or redirect URI).

    Asked with an unsupported ``response_type``: a sandbox that knows the app and its redirect URI
    sends the browser back with an error (and mints no code), one that does not answers 400 at
    once. So a wrong redirect URI is reported now rather than after the sign-in wait times out, and
    a sandbox that does not answer at all is a :class:`ConfigError` naming its address.
    """
    url = httpx.URL(authorization_url)
    probe = url.copy_set_param("response_type", "none")
    try:
        status, _ = browser_get(str(probe))
    except (OSError, http.client.HTTPException) as error:  # not started, or not it on that port
        where = f"{url.scheme}://{url.netloc.decode('ascii')}"
        raise ConfigError(
            f"The sandbox at {where} does not answer ({_reason(error)}); the sign-in cannot start.",
            details={
                "errors": [
                    {"path": "$.server_url", "code": "unreachable", "message": "does not answer"}
                ]
            },
            hint=f"Start it with `exact-connector sandbox`, then {_RESUME} (a server URL that "
            "is not the base_url it prints: `exact-connector credentials remove NAME` and add it "
            "again).",
        ) from None
    if status == 400:
        return "The sandbox does not know this app's client id and redirect URI together."
    return None


def is_loopback_redirect(redirect_uri: str) -> bool:
    """Whether we can listen on ``redirect_uri`` ourselves (http on 127.0.0.1 or localhost)."""
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")


class CallbackListener:
    """Serves one redirect on the redirect URI's host, port and path; yields its query."""

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        if not is_loopback_redirect(redirect_uri) or parts.port is None:
            raise ConfigError(
                "Only an http://127.0.0.1:PORT/… redirect URI can be received here.",
                details={"scheme": parts.scheme},
            )
        self._path = parts.path or "/"
        self._received = threading.Event()
        self.query: dict[str, str] = {}
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target = urlsplit(self.path)
                if target.path != listener._path:
                    self.send_error(404)
                    return
                listener.query = {k: v[0] for k, v in parse_qs(target.query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_PAGE)))
                self.end_headers()
                self.wfile.write(_PAGE)
                listener._received.set()

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the query holds a one-time code that must not reach a log."""

        address = (parts.hostname or "127.0.0.1", parts.port)
        try:
            self._server = ThreadingHTTPServer(address, Handler)
        except OSError as error:  # the port is taken (another sign-in waiting?) or not ours
            raise ConfigError(
                f"The sign-in cannot listen on {address[0]}:{address[1]}, the redirect URI's "
                f"port ({_reason(error)}).",
                details={
                    "errors": [
                        {
                            "path": "$.redirect_uri",
                            "code": "listen",
                            "message": "cannot be listened on",
                        }
                    ]
                },
                hint="Stop what listens on that port (another sign-in still waiting?), "
                f"then {_RESUME}.",
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackListener:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters, or :class:`RequestTimeout` if none came in time."""
        if not self._received.wait(timeout):
            raise RequestTimeout(
                "No sign-in arrived at the redirect URI in time.",
                hint="Open the printed URL in a browser and sign in; run the command again.",
            )
        return self.query


def _reason(error: Exception) -> str:
    """Why a socket failed, in the system's words when it has them (never a peer's text)."""
    return error.strerror if isinstance(error, OSError) and error.strerror else "no answer"
