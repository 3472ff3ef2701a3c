"""OAuth 2 as Exact runs it, strict exactly where clients break.

* ``GET /api/oauth2/auth`` checks the client id and the redirect URI (byte-equal to a registered
  one), then shows a consent page (or consents at once in auto-consent mode) and redirects with
  ``code`` and ``state``. Codes contain ``!`` (sent as ``%21``), live 3 minutes and work once: a
  second use answers a plain-text 400 "Bad Request" (recorded, picqer #96). ``response_type=token``
  is the implicit flow (API-FACTS §1 "Grant types"): the redirect carries ``access_token``,
  ``token_type``, ``expires_in`` and ``state`` in its fragment, and no refresh token.
* ``POST /api/oauth2/token`` (form-encoded; client credentials in the body or as HTTP Basic, see
  :mod:`~exact_connector.sandbox.token_requests`) answers the code and refresh grants with
  ``expires_in`` as the *string* ``"600"``. Unknown client credentials answer the bare
  ``{"error":"invalid_request"}`` Exact was recorded giving (picqer #553). Refresh tokens rotate
  and are single-use: presenting an old one answers 401 "Old refresh token used." and revokes the
  whole family (every token descended from that consent). A refresh within 570 s of the family's
  last grant answers 400 ``access_denied`` with ``Reason: TooEarlyToRefreshTokens…`` and rotates
  nothing. A refresh token unused for 30 days has expired.
* Issuing a new access token revokes the family's previous one (``revoke_previous_access``,
  default on): a third-party report (Flowgear) says Exact keeps one access token per client, and
  the stricter behaviour is the one that exposes clients which keep using a stale token.
* ``refresh_grace`` (default off) models Invantive's report that an old refresh token keeps working
  until the new tokens are first used: the previous refresh token then replays the same answer.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import httpx

from exact_connector.clock import Clock
from exact_connector.sandbox.consent import consent_page, error_page
from exact_connector.sandbox.counters import Counters
from exact_connector.sandbox.token_requests import (
    OAuthError,
    TokenQuota,
    basic_credentials,
    form_pairs,
    single_values,
)
from exact_connector.sandbox.wire import html_response, json_response

__all__ = ["AccessGrant", "Family", "OAuthServer", "SandboxApp"]

ACCESS_TTL = 600.0
MIN_REFRESH_AGE = 570.0
CODE_TTL = 180.0
REFRESH_IDLE_TTL = 30 * 86_400.0
_TOO_EARLY = "Rate limit exceeded: access_token not expired"


@dataclass(frozen=True)
class SandboxApp:
    """An app registered in the sandbox's App Center."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()
    name: str = "Sandbox app"


@dataclass(eq=False)
class Family:
    """The tokens descending from one consent; revoked as a whole when a used token returns."""

    id: str
    app: SandboxApp
    divisions: tuple[int, ...]
    generation: int = 0
    issued_at: float = 0.0
    revoked: bool = False
    current_used: bool = False
    last_answer: dict[str, str] | None = field(default=None, repr=False)

    @property
    def grant_id(self) -> str:
        """``G<family>-<generation>``: names the current token set in events."""
        return f"{self.id}-{self.generation}"


@dataclass(frozen=True, eq=False)
class AccessGrant:
    """What an access token stands for."""

    family: Family
    generation: int
    expires_at: float

    @property
    def grant_id(self) -> str:
        """``G<family>-<generation>`` of the token set this access token belongs to."""
        return f"{self.family.id}-{self.generation}"


@dataclass
class _Code:
    app: SandboxApp
    redirect_uri: str
    divisions: tuple[int, ...]
    issued_at: float
    used: bool = False


#: Told every secret a sandbox mints or is configured with (tokens, codes, client secrets).
SecretHook = Callable[[str], object]


def _exact_time(moment: float) -> str:
    """``10/11/2022 9:18:20 PM``, the form of Exact's refresh-token expiry message."""
    when = datetime.fromtimestamp(moment, UTC)
    hour = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    return f"{when.month}/{when.day}/{when.year} {hour}:{when.minute:02d}:{when.second:02d} {half}"


class OAuthServer:
    """The authorization and token endpoints, and the access-token check of every API call."""

    def __init__(
        self,
        clock: Clock,
        apps: Sequence[SandboxApp],
        divisions: Mapping[int, str],
        counters: Counters,
        auto_consent: bool | Collection[int] = False,
        revoke_previous_access: bool = True,
        refresh_grace: bool = False,
        token_calls_per_day: int | None = None,
        on_secret: SecretHook | None = None,
    ) -> None:
        self.clock = clock
        self.on_secret = on_secret
        self.quota = TokenQuota(clock, token_calls_per_day)
        self.apps = {app.client_id: app for app in apps}
        self.divisions = dict(divisions)
        self.counters = counters
        self.auto_consent = auto_consent
        self.revoke_previous_access = revoke_previous_access
        self.refresh_grace = refresh_grace
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, tuple[Family, int]] = {}
        self._access: dict[str, AccessGrant] = {}
        self._families = 0

    # -- the authorization endpoint --------------------------------------------------------------

    def authorize(self, request: httpx.Request) -> httpx.Response:
        """``/api/oauth2/auth``: the consent page (GET) and the user's answer to it (POST)."""
        try:
            pairs = (
                form_pairs(request)
                if request.method == "POST"
                else list(request.url.params.multi_items())
            )
        except OAuthError as error:
            return html_response(400, error_page(error.description or error.error))
        params = {name: value for name, value in reversed(pairs)}
        app = self.apps.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if app is None:
            return html_response(400, error_page("The client_id is not a registered app."))
        if redirect_uri not in app.redirect_uris:
            return html_response(
                400, error_page("The redirect_uri is not registered for this app.")
            )
        state = params.get("state")
        if params.get("response_type") not in ("code", "token"):
            return self._back(redirect_uri, {"error": "unsupported_response_type"}, state)
        implicit = params.get("response_type") == "token"
        if request.method == "GET":
            if self.auto_consent is False:
                return html_response(200, self._page(app, params))
            chosen = (
                tuple(self.divisions) if self.auto_consent is True else tuple(self.auto_consent)
            )
            return self._consent(app, redirect_uri, chosen, state, implicit)
        if params.get("decision") == "deny":
            self.counters.log(self.clock.now(), "consent", "deny")
            return self._back(redirect_uri, {"error": "access_denied"}, state, implicit)
        picked = {value for name, value in pairs if name == "division"}
        chosen = tuple(code for code in self.divisions if str(code) in picked)
        if params.get("decision") != "allow" or not chosen:
            return html_response(
                200, self._page(app, params, "Choose at least one administration.")
            )
        return self._consent(app, redirect_uri, chosen, state, implicit)

    def authorize_url(
        self, base: str, app: SandboxApp, state: str, redirect_uri: str | None = None
    ) -> str:
        """The URL a browser opens to start the code flow against ``base``."""
        query = urlencode(
            {
                "client_id": app.client_id,
                "redirect_uri": redirect_uri or app.redirect_uris[0],
                "response_type": "code",
                "state": state,
                "force_login": "0",
            }
        )
        return f"{base}/api/oauth2/auth?{query}"

    def _page(self, app: SandboxApp, params: Mapping[str, str], problem: str | None = None) -> str:
        keep = ("client_id", "redirect_uri", "response_type", "state", "force_login")
        hidden = {name: params[name] for name in keep if name in params}
        return consent_page(app.name, hidden, self.divisions, problem)

    def _consent(
        self,
        app: SandboxApp,
        redirect_uri: str,
        divisions: tuple[int, ...],
        state: str | None,
        implicit: bool = False,
    ) -> httpx.Response:
        self.counters.log(self.clock.now(), "consent", "allow")
        if implicit:  # the tokens themselves, in the fragment; no refresh token
            answer = self._grant(self._new_family(app, divisions), "implicit", refresh=False)
            return self._back(redirect_uri, answer, state, implicit)
        code = self._token(secrets.token_urlsafe(3)[:4] + "!IAAAA", 36)
        self._codes[code] = _Code(app, redirect_uri, divisions, self.clock.now())
        return self._back(redirect_uri, {"code": code}, state)

    @staticmethod
    def _back(
        redirect_uri: str, params: dict[str, str], state: str | None, implicit: bool = False
    ) -> httpx.Response:
        if state is not None:
            params["state"] = state
        query = urlencode(params, quote_via=quote, safe="")
        joint = "#" if implicit else "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{joint}{query}"
        return httpx.Response(302, headers={"Location": location}, content=b"")

    # -- the token endpoint ----------------------------------------------------------------------

    def token(self, request: httpx.Request) -> httpx.Response:
        """``/api/oauth2/token``: the authorization-code and refresh-token grants."""
        self.counters.token_calls += 1
        try:
            if request.method != "POST":
                raise OAuthError(405, "invalid_request", "The token endpoint accepts POST only.")
            form = single_values(form_pairs(request))
            app = self._client(request, form)
            wait = self.quota.take(app.client_id)
            if wait is not None:
                description = "Rate limit exceeded: too many token requests today."
                raise OAuthError(429, "access_denied", description, {"Retry-After": str(wait)})
            grants = {"authorization_code": self._exchange, "refresh_token": self._refresh_grant}
            grant = grants.get(form.get("grant_type", ""))
            if grant is None:
                raise OAuthError(400, "unsupported_grant_type")
            answer = grant(app, form)
        except OAuthError as error:
            return error.response()
        return json_response(200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def issue(self, app: SandboxApp, divisions: Sequence[int]) -> dict[str, str]:
        """A fresh grant without the browser dance (a test helper; not counted as a token call)."""
        family = self._new_family(app, tuple(divisions))
        return self._grant(family, "issued")

    def _client(self, request: httpx.Request, form: Mapping[str, str]) -> SandboxApp:
        try:
            basic = basic_credentials(request)
        except ValueError:
            raise OAuthError(400, "invalid_request") from None
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if basic is not None:
            if (client_id and client_id != basic[0]) or (secret and secret != basic[1]):
                raise OAuthError(400, "invalid_request")
            client_id, secret = basic
        app = self.apps.get(client_id)
        if app is None or not hmac.compare_digest(app.client_secret.encode(), secret.encode()):
            raise OAuthError(400, "invalid_request")  # bare, as recorded (picqer #553)
        return app

    def _exchange(self, app: SandboxApp, form: Mapping[str, str]) -> dict[str, str]:
        code = self._codes.get(form.get("code", ""))
        now = self.clock.now()
        if code is None or code.app is not app:
            raise OAuthError(400, "invalid_grant", "The authorization code is not valid.")
        if code.used:
            raise OAuthError(400, "invalid_grant", plain="Bad Request")
        if now > code.issued_at + CODE_TTL:
            raise OAuthError(400, "invalid_grant", "The authorization code has expired.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(
                400, "invalid_grant", "The redirect_uri does not match the authorization request."
            )
        code.used = True
        return self._grant(self._new_family(app, code.divisions), "authorization_code")

    def _refresh_grant(self, app: SandboxApp, form: Mapping[str, str]) -> dict[str, str]:
        found = self._refresh.get(form.get("refresh_token", ""))
        if found is None or found[0].app is not app:
            raise OAuthError(
                400, "invalid_grant", "Token is not allowed, because of invalid or empty chainId"
            )
        family, generation = found
        now = self.clock.now()
        if family.revoked:
            raise OAuthError(400, "invalid_grant", "The refresh token has been revoked.")
        if generation < family.generation:
            replay = (
                self.refresh_grace
                and generation == family.generation - 1
                and not family.current_used
            )
            if replay and family.last_answer is not None:
                self.counters.log(now, "token", "refresh_token_replay", family.grant_id)
                return dict(family.last_answer)
            family.revoked = True
            self.counters.refresh_reuse += 1
            self.counters.log(now, "reuse", "refresh_token", f"{family.id}-{generation}")
            raise OAuthError(401, "unauthorized_client", "Old refresh token used.")
        if now > family.issued_at + REFRESH_IDLE_TTL:
            expired = _exact_time(family.issued_at + REFRESH_IDLE_TTL)
            raise OAuthError(
                400,
                "invalid_request",
                f"The refresh token expired at {expired} and it is now {_exact_time(now)}.",
            )
        if now < family.issued_at + MIN_REFRESH_AGE:
            self.counters.too_early += 1
            self.counters.log(now, "too_early", "refresh_token", family.grant_id)
            raise OAuthError(
                400,
                "access_denied",
                _TOO_EARLY,
                {"Reason": f"TooEarlyToRefreshTokens: {_TOO_EARLY}"},
            )
        return self._grant(family, "refresh_token")

    def _new_family(self, app: SandboxApp, divisions: tuple[int, ...]) -> Family:
        self._families += 1
        return Family(f"G{self._families}", app, divisions)

    def _token(self, prefix: str, size: int) -> str:
        token = prefix + secrets.token_urlsafe(size)
        if self.on_secret is not None:
            self.on_secret(token)
        return token

    def _grant(self, family: Family, grant_type: str, refresh: bool = True) -> dict[str, str]:
        now = self.clock.now()
        family.generation += 1
        family.issued_at = now
        family.current_used = False
        access = self._token("AAEAA", 96)
        self._access[access] = AccessGrant(family, family.generation, now + ACCESS_TTL)
        answer = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": str(int(ACCESS_TTL)),
        }
        if refresh:
            answer["refresh_token"] = self._token(secrets.token_urlsafe(3)[:4] + "!IAAAA", 96)
            self._refresh[answer["refresh_token"]] = (family, family.generation)
        family.last_answer = answer
        if grant_type != "issued":
            self.counters.token_grants[grant_type] += 1
        self.counters.log(now, "token", grant_type, family.grant_id)
        return dict(answer)

    # -- the API side ----------------------------------------------------------------------------

    def lookup(self, authorization: str | None) -> AccessGrant | None:
        """The grant behind an ``Authorization: Bearer …`` header, valid or not."""
        scheme, _, token = (authorization or "").partition(" ")
        return self._access.get(token.strip()) if scheme.lower() == "bearer" else None

    def valid(self, grant: AccessGrant) -> bool:
        """Whether the token may be used now (not expired, not revoked, not superseded)."""
        family = grant.family
        if family.revoked or self.clock.now() >= grant.expires_at:
            return False
        if grant.generation != family.generation:
            return not self.revoke_previous_access
        family.current_used = True
        return True
