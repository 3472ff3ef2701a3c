"""The OAuth endpoints of Exact Online: the sign-in URL and the token endpoint.

:class:`TokenService` trades an authorization code or a refresh token for a new token pair and
turns every answer into a grant or a typed error: a refused refresh token means sign in again, a
wrong client secret is configuration, "too early" means keep the current token, a call that never
left (by the transport table of :mod:`~exact_connector.retries`) is transient, and only an answer
lost after the request may have arrived is retried once with the same token. Exact's recorded
refusals (API-FACTS §1) are read as they come: a bare ``{"error":"invalid_request"}`` is its
answer to wrong client credentials, and a used authorization code gets a plain-text "Bad
Request", not JSON. A token answer's body is never echoed, and tokens are checked (printable
ASCII, bounded) before anything stores them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from exact_connector import redaction
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    ExactConnectorError,
    InputError,
    InvalidClient,
    ReauthRequired,
    TokenResponseInvalid,
    TransientError,
)
from exact_connector.retries import Attempt, clamp_wait, failure, on_transport_error, retry_after
from exact_connector.urls import default_transport

if TYPE_CHECKING:
    from collections.abc import Callable

    from exact_connector.retries import Happened
    from exact_connector.urls import Origin
    from exact_connector.vault import Credential

__all__ = [
    "TOKEN_TEXT",
    "Grant",
    "TokenService",
    "TooEarly",
    "authorization_url",
    "new_state",
]

#: What an access token, refresh token or code may consist of: printable ASCII, bounded.
TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,4096}", re.ASCII)
_TOO_EARLY = "toearlytorefreshtokens"
_REAUTH_ERRORS = frozenset({"invalid_grant", "unauthorized_client", "invalid_request"})
_SECRET_PARAMETERS = frozenset({"code", "refresh_token", "client_secret"})
_ENDPOINT = "oauth2/token"


def new_state() -> str:
    """A one-time ``state`` for an authorization request."""
    return secrets.token_urlsafe(24)


def authorization_url(
    origin: Origin, client_id: str, redirect_uri: str, state: str, *, force_login: bool = False
) -> str:
    """The URL a person opens to sign in to Exact Online and consent."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
            "force_login": "1" if force_login else "0",
        }
    )
    return f"{origin.join('/api/oauth2/auth')}?{query}"


#: What a refused grant means to the person, by grant type.
_REFUSALS = {
    "refresh_token": "Exact Online no longer accepts this connection's refresh token",
    "authorization_code": (
        "Exact Online refused the authorization code (it works once, for 3 minutes, and only "
        "with the redirect URI it was issued for)"
    ),
}
_LOST = " (the previous token answer was lost in transit)"
#: What a lost token answer costs, by grant type: the grant it was sent with may be spent.
_LOST_ANSWERS = {
    "refresh_token": (
        "The token endpoint's answer was lost, so the rotated refresh token never arrived; "
        "sign in again to restore the connection."
    ),
    "authorization_code": (
        "The token endpoint's answer was lost, so the authorization code may be spent; "
        "sign in again."
    ),
}


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: SecretStr
    refresh_token: SecretStr
    issued_at: float
    expires_at: float


class TooEarly(Exception):
    """Exact refused the refresh because the access token is younger than 570 s."""


class TokenService:
    """Talks to ``/api/oauth2/token`` and turns every answer into a grant or a typed error."""

    def __init__(
        self,
        origin: Origin,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._origin = origin
        self._clock = clock or SystemClock()
        self._transport = transport
        self._timeout = timeout

    @cached_property
    def _http(self) -> httpx.Client:
        # Made on first use: most steps never refresh, and a client costs a step ~0.1 ms.
        return httpx.Client(
            transport=self._transport or default_transport(self._origin),
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        """Release the connection pool."""
        if "_http" in self.__dict__:
            self._http.close()

    def exchange_code(self, credential: Credential, code: str | SecretStr) -> Grant:
        """Trade an authorization code for the first token pair."""
        secret = SecretStr(code) if isinstance(code, str) else code
        del code  # no frame of ours that may raise holds a secret as plain text
        if not isinstance(secret, SecretStr) or not TOKEN_TEXT.fullmatch(secret.get_secret_value()):
            raise InputError(
                "The authorization code is malformed.",
                errors=[
                    {"path": "$.code", "code": "format", "message": "not an authorization code"}
                ],
            )
        return self._post(
            lambda: {
                "grant_type": "authorization_code",
                "code": secret.get_secret_value(),
                "redirect_uri": credential.redirect_uri or "",
                "client_id": credential.client_id,
                "client_secret": credential.client_secret.get_secret_value(),
            },
            "authorization_code",
            retry_lost_response=False,
        )

    def refresh(self, credential: Credential) -> Grant:
        """Trade the stored refresh token for a new pair (may raise :class:`TooEarly`)."""
        refresh_token = credential.refresh_token
        if refresh_token is None:
            raise ReauthRequired(
                "This connection has no refresh token; sign in again.",
                details={"credential_id": credential.id},
            )
        return self._post(
            lambda: {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token.get_secret_value(),
                "client_id": credential.client_id,
                "client_secret": credential.client_secret.get_secret_value(),
            },
            "refresh_token",
            retry_lost_response=True,
        )

    def _post(
        self, form: Callable[[], dict[str, str]], grant_type: str, *, retry_lost_response: bool
    ) -> Grant:
        """POST the form, built only as the request's argument so that no frame keeps it.

        Failures are raised outside the ``except`` blocks: a raised error carries no context
        (httpx's, which may hold the form or the answer).
        """
        _remember(form())
        attempts = 2 if retry_lost_response else 1
        for attempt in range(attempts):
            problem: ExactConnectorError | None = None
            try:
                response = self._http.post(self._origin.join("/api/oauth2/token"), data=form())
            except (httpx.TransportError, httpx.DecodingError) as error:
                # An answer whose body cannot be decoded is as lost as one that never came.
                happened = (
                    on_transport_error(error)
                    if isinstance(error, httpx.TransportError)
                    else "maybe_sent"
                )
                if happened == "maybe_sent" and attempt + 1 < attempts:
                    # The request may have been processed and the refresh token rotated: one
                    # immediate retry with the same token is all that can be tried.
                    continue
                problem = _transport_failure(happened, grant_type)
            if problem is not None:
                raise problem
            return self._grant_from(
                response, grant_type=grant_type, after_lost_response=attempt > 0
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _grant_from(
        self, response: httpx.Response, *, grant_type: str, after_lost_response: bool
    ) -> Grant:
        if response.status_code == 200:
            return self._parse_grant(response)
        error, description = _oauth_error(response)
        reason = response.headers.get("Reason", "")
        if _TOO_EARLY in reason.lower().replace(" ", "") or "not expired" in description.lower():
            raise TooEarly()
        if error == "invalid_client" or (error == "invalid_request" and not description):
            raise InvalidClient(
                "Exact Online rejected the Client ID or Client Secret.",
                details={"status": response.status_code, "oauth_error": error},
            )
        if not error and response.status_code == 400 and grant_type == "authorization_code":
            raise ReauthRequired(  # a used or unknown code answers a plain "Bad Request"
                _REFUSALS[grant_type] + "; sign in again.",
                details={"status": response.status_code},
            )
        if error in _REAUTH_ERRORS:
            raise ReauthRequired(
                _REFUSALS[grant_type] + (_LOST if after_lost_response else "") + "; sign in again.",
                details={"status": response.status_code, "oauth_error": error},
            )
        if response.status_code >= 500 or response.status_code == 429:
            now = self._clock.now()
            hinted = retry_after(response.headers, now)
            wait = None if hinted is None else clamp_wait(hinted)
            raise TransientError(
                "Exact Online's token endpoint is temporarily unavailable.",
                details={"status": response.status_code},
                retry_at=datetime.fromtimestamp(now + wait, UTC) if wait is not None else None,
            )
        raise TokenResponseInvalid(
            "The token endpoint answered with an unexpected error.",
            details={"status": response.status_code, "oauth_error": error or None},
        )

    def _parse_grant(self, response: httpx.Response) -> Grant:
        grant = _read_grant(response, self._clock.now())
        if isinstance(grant, Grant):
            return grant
        raise TokenResponseInvalid(
            f"The token endpoint's answer is unusable: {grant}.",
            details={
                "status": response.status_code,
                "content_type": response.headers.get("content-type", ""),
                "length": len(response.content),
            },
        )


def _transport_failure(happened: Happened, grant_type: str) -> ExactConnectorError:
    """The error a token call that failed in transport ends with, by whether it was sent.

    Only an answer lost after the request may have reached Exact can have spent the grant; a call
    that never left (no connection, an exhausted pool) is retried later with the same token.
    """
    if happened == "not_sent":
        return TransientError(
            "Could not reach Exact Online's token endpoint.",
            details={"endpoint": _ENDPOINT},
        )
    if happened == "maybe_sent":
        return ReauthRequired(
            _LOST_ANSWERS[grant_type], details={"endpoint": _ENDPOINT, "lost_response": True}
        )
    # A refused certificate or a request that is not valid HTTP: as for any other request.
    return failure("POST", _ENDPOINT, Attempt(happened), 0, "", lambda: None)


def _read_grant(response: httpx.Response, now: float) -> Grant | str:
    """The grant in a token answer, or what is wrong with it.

    Returned, never raised: the answer's text (in a JSON error's ``doc``, or in this frame's
    locals) must not travel with the error the caller raises.
    """
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        return "not JSON"
    if not isinstance(body, dict):
        return "not a JSON object"
    access, refresh = body.get("access_token"), body.get("refresh_token")
    for name, token in (("access_token", access), ("refresh_token", refresh)):
        if not isinstance(token, str) or not TOKEN_TEXT.fullmatch(token):
            return f"{name} is missing or has characters a token cannot have"
    lifetime = _parse_expires_in(body.get("expires_in"))
    if lifetime is None:
        return "expires_in is not a number of seconds between 60 and 3600"
    redaction.remember(str(access))
    redaction.remember(str(refresh))
    return Grant(SecretStr(str(access)), SecretStr(str(refresh)), now, now + lifetime)


def _remember(form: dict[str, str]) -> None:
    for name in _SECRET_PARAMETERS & form.keys():
        redaction.remember(form[name])


def _parse_expires_in(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value, re.ASCII):
        value = int(value)
    if isinstance(value, int) and 60 <= value <= 3600:
        return value
    return None


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body: Any = response.json()
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description")
    return (
        # An OAuth error code is a short word (RFC 6749: invalid_grant); anything else is not
        # one, and is not carried into the error's details (it could be long, or hold a token).
        error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "",
        description if isinstance(description, str) else "",
    )


_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", re.ASCII)
