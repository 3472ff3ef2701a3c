"""E1-E12: the OAuth token lifecycle against the sandbox's strict token endpoint."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from client_harness import (
    DIVISION,
    EXACT,
    OffsetClock,
    World,
    advance,
    answer_with,
    get_accounts,
    issue_tokens,
    make_world,
    register_secret,
    spend_refresh_token,
    store_tokens,
)
from pydantic import SecretStr

from exact_connector.auth import TokenPolicy
from exact_connector.cli._main import run as cli
from exact_connector.client import ExactClient
from exact_connector.exceptions import (
    ExactConnectorError,
    InvalidClient,
    ReauthRequired,
    TokenResponseInvalid,
    TransientError,
    VaultIOError,
)
from exact_connector.limits import RateGovernor
from exact_connector.oauth import TokenService, authorization_url
from exact_connector.sandbox import DEMO_REDIRECT_URI
from exact_connector.testconnect import run_test_connect
from exact_connector.testing import find_secrets
from exact_connector.urls import parse_server_url
from exact_connector.vault import Vault, save_key_file
from exact_connector.vault.keyfile import load_key_ring
from exact_connector.vault.sealing import KeyRing

DAY = 86_400.0


def _stored(world: World) -> tuple[int, str, str]:
    """The vault's version, access token and refresh token."""
    credential = world.credential()
    assert credential.access_token is not None and credential.refresh_token is not None
    return (
        credential.version,
        credential.access_token.get_secret_value(),
        credential.refresh_token.get_secret_value(),
    )


def _bearer(seen: object) -> str:
    return str(seen.headers["authorization"]).removeprefix("Bearer ")  # type: ignore[attr-defined]


# -- E1, E2: when to refresh -----------------------------------------------------------------------


@pytest.mark.parametrize("age", [0, 300, 569.9], ids=["fresh", "halfway", "just-under-570"])
def test_e1_a_token_outside_the_window_is_used_without_a_token_call(
    world: World, age: float
) -> None:
    """More than the refresh window left (or younger than 570 s): 0 token calls, 1 API call."""
    advance(world.clock, age)
    assert get_accounts(world.client()).status_code == 200
    assert world.sb.counters.token_calls == 0
    assert len(world.app.api_calls()) == 1


@pytest.mark.parametrize("age", [570, 585, 599.9, 700], ids=["570", "585", "599.9", "expired"])
def test_e2_inside_the_window_one_refresh_persisted_before_first_use(
    world: World, age: float
) -> None:
    """Age >= 570 s and <= 30 s left: one token call; the vault holds the new token before use."""
    before, old_access, _ = _stored(world)
    advance(world.clock, age)
    at_use: list[tuple[int, str, str]] = []

    def watch(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path.startswith("/api/v1/"):
            at_use.append((*_stored(world)[:2], request.headers["authorization"]))

    world.app.tamper = watch
    client = world.client()
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert client.auth.refreshed == 1
    [(version, stored_access, sent)] = at_use
    assert version > before
    assert stored_access != old_access
    assert sent == f"Bearer {stored_access}"
    kinds = [(event.kind, event.detail, event.ref) for event in world.sb.events]
    refresh = kinds.index(("token", "refresh_token", "G1-2"))
    first_use = next(i for i, (kind, _, ref) in enumerate(kinds) if kind == "api")
    assert refresh < first_use and kinds[first_use][2] == "G1-2"


def test_e2_a_second_call_reuses_the_new_token(world: World) -> None:
    """After the refresh, further calls use the stored token: still one token call."""
    advance(world.clock, 580)
    client = world.client()
    for _ in range(5):
        assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_calls == 1


# -- E3: TooEarly -------------------------------------------------------------------------------------


def test_e3_too_early_keeps_the_current_token_and_waits(world: World) -> None:
    """Our clock 10 s ahead: Exact says TooEarly; the current token keeps working, no re-auth."""
    client = world.client(clock=OffsetClock(world.clock, 10.0))
    advance(world.clock, 562)  # we think 572 s: refresh due; the sandbox says 562 s: too early
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.too_early == 1
    assert world.credential().status == "active"
    advance(world.clock, 1)
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_calls == 1, "the refresh is put off, not retried per call"
    advance(world.clock, 9)  # the sandbox is now at 572 s
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert world.sb.counters.refresh_reuse == 0


def test_e3_a_pasted_token_younger_than_570_s_is_a_transient_error(tmp_path: object) -> None:
    """Only a refresh token, issued 100 s ago: retry_at is 570 s after the grant; nothing lost."""
    world = make_world(tmp_path / "v", age=None)  # type: ignore[operator]
    try:
        advance(world.clock, 100)
        with pytest.raises(TransientError) as caught:
            get_accounts(world.client())
        assert caught.value.retry_at is not None
        assert caught.value.retry_at.timestamp() == pytest.approx(world.clock.now() + 570)
        assert world.credential().status == "active"
        assert world.app.api_calls() == []
    finally:
        world.close()


# -- E4, E12: a dead refresh token ---------------------------------------------------------------------


def test_e4_old_refresh_token_used_marks_needs_reauth_and_fails_fast(world: World) -> None:
    """ "Old refresh token used." -> REAUTH_REQUIRED, needs_reauth persisted, tokens kept."""
    advance(world.clock, 575)
    spend_refresh_token(world)
    _, _, refresh = _stored(world)
    with pytest.raises(ReauthRequired) as caught:
        get_accounts(world.client())
    assert caught.value.details["oauth_error"] == "unauthorized_client"
    assert world.sb.counters.refresh_reuse == 1
    credential = world.credential()
    assert credential.status == "needs_reauth" and credential.status_reason
    assert _stored(world)[2] == refresh, "tokens are kept until a new sign-in replaces them"
    received = len(world.app.seen)
    for client in (world.client(), world.client()):
        with pytest.raises(ReauthRequired):
            get_accounts(client)
    assert len(world.app.seen) == received, "later actions fail fast with no network call"


def test_e4_invalid_grant_is_reauth_required(world: World) -> None:
    """A refresh token Exact never issued: invalid_grant -> REAUTH_REQUIRED, needs_reauth."""
    unknown = {
        "access_token": register_secret("stale-access-token-0001"),
        "refresh_token": register_secret("unknown-refresh-token-0001"),
    }
    store_tokens(world.vault, world.credential_id, unknown, world.clock.now() - 580)
    with pytest.raises(ReauthRequired) as caught:
        get_accounts(world.client())
    assert caught.value.details["oauth_error"] == "invalid_grant"
    assert world.credential().status == "needs_reauth"


def test_e4_a_pasted_refresh_token_refused_says_to_add_a_new_one_not_to_sign_in(
    world: World,
) -> None:
    """A pasted-token credential has no browser sign-in: the refusal, and every later step's
    fail-fast error, say to remove it and add it again with a new refresh token."""
    assert world.credential().auth_type == "oauth2_refresh_token"
    advance(world.clock, 575)
    spend_refresh_token(world)
    with pytest.raises(ReauthRequired) as refused:
        get_accounts(world.client())
    with pytest.raises(ReauthRequired) as later:
        get_accounts(world.client())
    for error in (refused.value, later.value):
        assert "new refresh token" in error.hint and "remove" in error.hint
        assert "Reconnect" not in error.hint and "re-authorize" not in error.hint
    assert "sign in" not in later.value.message
    assert world.credential().status == "needs_reauth"


def test_e12_a_refresh_token_idle_for_30_days_needs_reauth(world: World) -> None:
    """Past the 30-day inactivity expiry: REAUTH_REQUIRED, and Test Connect says so."""
    advance(world.clock, 31 * DAY)
    client = world.client()
    report = run_test_connect(client, world.vault)
    assert not report.ok
    [token] = [check for check in report.checks if check.name == "token"]
    assert token.code == "reauth_required"
    assert world.credential().status == "needs_reauth"
    with pytest.raises(ReauthRequired):
        get_accounts(client)


# -- E5, E6: unusable token answers ---------------------------------------------------------------------


def _token_json(**changes: object) -> str:
    body: dict[str, object] = {
        "access_token": "AAEAA" + "x" * 40,
        "token_type": "bearer",
        "expires_in": "600",
        "refresh_token": "Rr!IAAAA" + "y" * 40,
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


BROKEN_ANSWERS = {
    "truncated-json": ('{"access_token": "AAEAA', "application/json"),
    "html": ("<html><body>Service Unavailable</body></html>", "text/html"),
    "json-list": ("[1, 2, 3]", "application/json"),
    "nested-too-deep": ("[" * 100_000 + "]" * 100_000, "application/json"),  # RecursionError
    "no-refresh-token": (_token_json(refresh_token=None), "application/json"),
    "no-access-token": (_token_json(access_token=None), "application/json"),
    "expires-in-0": (_token_json(expires_in=0), "application/json"),
    "expires-in-minus-1": (_token_json(expires_in=-1), "application/json"),
    "expires-in-1e9": (_token_json(expires_in=10**9), "application/json"),
    "expires-in-abc": (_token_json(expires_in="abc"), "application/json"),
    "expires-in-true": (_token_json(expires_in=True), "application/json"),
    # E6: characters a token cannot have (h11 would later echo them in an error)
    "access-crlf": (_token_json(access_token="AAEAA\r\nX-Evil: 1"), "application/json"),
    "access-nul": (_token_json(access_token="AAEAA\x00abc"), "application/json"),
    "access-space": (_token_json(access_token="AAEAA abc"), "application/json"),
    "refresh-non-ascii": (_token_json(refresh_token="Rr!IAAAAé"), "application/json"),
    "access-empty": (_token_json(access_token=""), "application/json"),
}


@pytest.mark.parametrize("name", list(BROKEN_ANSWERS))
def test_e5_e6_an_unusable_token_answer_is_refused_and_not_echoed(world: World, name: str) -> None:
    """TOKEN_RESPONSE_INVALID(status, content type, length); body not echoed; tokens unchanged."""
    body, content_type = BROKEN_ANSWERS[name]
    advance(world.clock, 580)
    before = _stored(world)
    world.app.tamper = answer_with(200, body, content_type)
    with pytest.raises(TokenResponseInvalid) as caught:
        get_accounts(world.client())
    error = caught.value
    assert error.details == {
        "status": 200,
        "content_type": content_type,
        "length": len(body.encode()),
    }
    text = error.message + json.dumps(error.to_dict())
    for fragment in ("AAEAA", "Rr!IAAAA", "Service Unavailable", "X-Evil"):
        assert fragment not in text
    assert _stored(world) == before
    assert world.app.api_calls() == []


@pytest.mark.parametrize("expires_in", ["600", 600, "60", 3600], ids=repr)
def test_e5_expires_in_as_a_string_or_number_in_range_is_accepted(
    world: World, expires_in: object
) -> None:
    """Exact sends expires_in as the string "600"; a number in [60, 3600] is fine too."""
    advance(world.clock, 580)

    def rewrite(
        request: httpx.Request, call: Callable[[], httpx.Response]
    ) -> httpx.Response | None:
        if request.url.path != "/api/oauth2/token":
            return None
        body = call().json()
        body["expires_in"] = expires_in
        return httpx.Response(200, json=body)

    world.app.tamper = rewrite
    assert get_accounts(world.client()).status_code == 200
    credential = world.credential()
    assert credential.access_token_expires_at == pytest.approx(world.clock.now() + int(expires_in))


# -- E7: the lost answer ----------------------------------------------------------------------------------


def test_e7_lost_refresh_response_retried_once_under_the_lock_then_reauth(world: World) -> None:
    """The sandbox rotates, the answer is lost; one retry (still locked) meets "old token used"."""
    advance(world.clock, 580)
    world.sb.faults.add("drop", path_contains="oauth2/token")
    locked_during_token_calls: list[bool] = []

    def probe_lock(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path == "/api/oauth2/token":
            try:
                with world.vault.lock(world.credential_id, timeout=0):
                    locked_during_token_calls.append(False)
            except TransientError:
                locked_during_token_calls.append(True)

    world.app.tamper = probe_lock
    with pytest.raises(ReauthRequired) as caught:
        get_accounts(world.client())
    assert "lost in transit" in caught.value.message
    assert world.sb.counters.token_calls == 2
    assert world.sb.counters.refresh_reuse == 1
    assert locked_during_token_calls == [True, True]
    assert world.credential().status == "needs_reauth"


def test_e7_with_a_grace_for_the_previous_token_the_retry_recovers(tmp_path: object) -> None:
    """If Exact replays the answer for the previous refresh token (Q1), the retry succeeds."""
    world = make_world(tmp_path / "v", refresh_grace=True)  # type: ignore[operator]
    try:
        advance(world.clock, 580)
        world.sb.faults.add("drop", path_contains="oauth2/token")
        assert get_accounts(world.client()).status_code == 200
        assert world.sb.counters.token_calls == 2
        assert world.sb.counters.refresh_reuse == 0
        assert world.credential().status == "active"
    finally:
        world.close()


# -- E8: the token endpoint is down --------------------------------------------------------------------


def test_e8_token_endpoint_503_while_the_token_is_valid_keeps_serving(world: World) -> None:
    """503 + Retry-After at 575 s: calls keep using the current token; token calls stay few."""
    advance(world.clock, 575)
    world.sb.faults.add(
        "error", status=503, retry_after="120", path_contains="oauth2/token", times=None
    )
    client = world.client()
    for _ in range(24):  # one call a second until one second before expiry
        assert get_accounts(client).status_code == 200
        advance(world.clock, 1)
    token_calls = world.sb.counters.calls("oauth2/token")
    assert 2 <= token_calls <= 6, "retried before expiry, but not on every call"
    advance(world.clock, 2)
    with pytest.raises(TransientError) as caught:  # expired, endpoint still down: retry later
        get_accounts(client)
    assert caught.value.retry_at is not None
    world.sb.faults.clear()
    advance(world.clock, 130)
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert world.credential().status == "active"


def test_e8_connect_error_on_the_token_endpoint_is_transient(world: World) -> None:
    """The token endpoint unreachable and the token expired: a transient error, no re-auth."""
    advance(world.clock, 700)

    def unreachable(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path == "/api/oauth2/token":
            raise httpx.ConnectError("connection refused", request=request)

    world.app.tamper = unreachable
    with pytest.raises(TransientError):
        get_accounts(world.client())
    assert world.credential().status == "active"


def _token_calls_fail(world: World, failure: Callable[[httpx.Request], Exception]) -> None:
    """Every token call fails in transport, before the sandbox sees it."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path == "/api/oauth2/token":
            raise failure(request)

    world.app.tamper = tamper


def _tls_refused(request: httpx.Request) -> Exception:
    try:
        raise ssl.SSLCertVerificationError("certificate verify failed")
    except ssl.SSLCertVerificationError as cause:
        error = httpx.ConnectError("TLS handshake failed", request=request)
        error.__cause__ = cause
        return error


def test_e8_a_token_call_never_sent_keeps_the_token_in_use_and_marks_nothing(world: World) -> None:
    """A PoolTimeout (retries: not_sent) while the token is still valid: the step runs on the
    current token; once it has expired, a transient error; the connection stays active, and when
    the pool is back the same refresh token refreshes."""
    advance(world.clock, 590)
    _token_calls_fail(world, lambda r: httpx.PoolTimeout("no connection available in the pool"))
    client = world.client()
    assert get_accounts(client).status_code == 200
    advance(world.clock, 11)
    with pytest.raises(TransientError) as caught:
        get_accounts(client)
    assert caught.value.code == "transient" and caught.value.retryable
    assert world.credential().status == "active"
    assert world.sb.counters.token_calls == 0
    world.app.tamper = None
    assert get_accounts(world.client()).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert world.credential().status == "active"


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (lambda r: httpx.LocalProtocolError("illegal header value"), "system_error"),
        (lambda r: httpx.UnsupportedProtocol("no such scheme", request=r), "system_error"),
        (_tls_refused, "config_error"),
    ],
    ids=["local-protocol-error", "unsupported-protocol", "tls-refused"],
)
def test_e8_a_token_call_that_cannot_be_sent_fails_once_and_marks_nothing(
    world: World, failure: Callable[[httpx.Request], Exception], code: str
) -> None:
    """Not valid HTTP, or a certificate that did not verify: the error every request gets for it,
    no second attempt, and no sign-in asked for (the refresh token never left)."""
    advance(world.clock, 700)
    _token_calls_fail(world, failure)
    with pytest.raises(ExactConnectorError) as caught:
        get_accounts(world.client())
    assert caught.value.code == code != ReauthRequired.code
    assert not caught.value.retryable
    assert len(world.app.requests("oauth2/token")) == 1
    assert world.credential().status == "active"


# -- E9: the authorization-code flow -------------------------------------------------------------------


def _code_world(world: World) -> tuple[str, object]:
    credential = world.vault.begin(
        connector_name="browser",
        auth_type="oauth2_authorization_code",
        server_url=EXACT,
        client_id=world.sb.demo_app.client_id,
        client_secret=SecretStr(world.sb.demo_app.client_secret),
        redirect_uri=DEMO_REDIRECT_URI,
    )
    return credential.id, credential


def test_e9_authorization_url_is_on_the_allow_listed_origin_with_exact_redirect(
    world: World,
) -> None:
    """Host from the allow-list; redirect_uri byte-equal; state carried; no PKCE (Q3: not known)."""
    origin = parse_server_url("https://START.exactonline.be/")
    redirect = "https://engine.example/callback?x=1&y=é"
    url = httpx.URL(authorization_url(origin, "client-1", redirect, "st-1"))
    assert (url.scheme, url.host, url.path) == ("https", "start.exactonline.be", "/api/oauth2/auth")
    query = parse_qs(urlsplit(str(url)).query)
    assert query["redirect_uri"] == [redirect]
    assert query["state"] == ["st-1"] and query["response_type"] == ["code"]
    assert "code_challenge" not in query


def test_e9_code_flow_round_trip_and_a_reused_code_is_refused_clearly(world: World) -> None:
    """state comes back unchanged; the code works once; a second use names the code, not a token."""
    _, credential = _code_world(world)
    url = authorization_url(
        parse_server_url(EXACT), world.sb.demo_app.client_id, DEMO_REDIRECT_URI, "st-42"
    )
    with httpx.Client(transport=httpx.MockTransport(world.app)) as browser:
        location = browser.get(url).headers["location"]
    assert location.startswith(DEMO_REDIRECT_URI + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == "st-42"
    service = TokenService(
        parse_server_url(EXACT), transport=httpx.MockTransport(world.app), clock=world.clock
    )
    try:
        grant = service.exchange_code(credential, query["code"])  # type: ignore[arg-type]
        assert grant.expires_at - grant.issued_at == 600
        with pytest.raises(ReauthRequired) as caught:
            service.exchange_code(credential, query["code"])  # type: ignore[arg-type]
    finally:
        service.close()
    assert "authorization code" in caught.value.message
    assert "refresh token" not in caught.value.message
    assert world.sb.counters.token_grants["authorization_code"] == 1


@pytest.mark.parametrize("code", ["", "has space", "crlf\r\n", "x" * 5000, None])
def test_e9_a_malformed_code_is_refused_before_any_token_call(world: World, code: object) -> None:
    """A code that cannot be one: INVALID_INPUT at $.code, nothing sent."""
    from exact_connector.exceptions import InputError

    _, credential = _code_world(world)
    service = TokenService(parse_server_url(EXACT), transport=httpx.MockTransport(world.app))
    try:
        with pytest.raises(InputError) as caught:
            service.exchange_code(credential, code)  # type: ignore[arg-type]
    finally:
        service.close()
    assert caught.value.errors[0]["path"] == "$.code"
    assert world.app.seen == []


# -- E10: a 401 for a token we think is valid ----------------------------------------------------------


def _long_lived(world: World, age: float) -> None:
    """Store the sandbox's token as if it lived 1200 s, so the client does not expect expiry."""
    tokens = issue_tokens(world.sb)
    store_tokens(world.vault, world.credential_id, tokens, world.clock.now(), ttl=1200)
    advance(world.clock, age)


def test_e10_another_worker_refreshed_so_retry_once_with_the_stored_token(world: World) -> None:
    """401 and the vault holds a newer token: one retry with it, no token call of our own."""
    _long_lived(world, 0)
    client = world.client()
    assert get_accounts(client).status_code == 200  # caches the current token
    advance(world.clock, 575)
    # another process refreshes and stores the new pair (the sandbox revokes our access token)
    store_tokens(world.vault, world.credential_id, spend_refresh_token(world), world.clock.now())
    calls = len(world.app.api_calls())
    assert get_accounts(client).status_code == 200
    assert len(world.app.api_calls()) == calls + 2, "the refused call and one retry"
    assert world.sb.counters.token_grants["refresh_token"] == 1, "only the other process's"
    assert client.auth.refreshed == 0


def test_e10_unchanged_and_old_enough_refreshes_then_retries_once(world: World) -> None:
    """401 at 605 s (we thought 1200 s): refresh, then one retry; POST-safe (401 = not done)."""
    _long_lived(world, 605)
    client = world.client()
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1
    statuses = [status for (_, status) in world.sb.counters.requests]
    assert statuses.count(401) == 1
    assert len(world.app.api_calls()) == 2


def test_e10_too_young_to_refresh_is_a_transient_error_with_retry_at(world: World) -> None:
    """401 at 100 s: no refresh is possible yet; one request only, retry at 570 s, no re-auth."""
    advance(world.clock, 100)

    def refuse(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        return httpx.Response(401) if request.url.path.startswith("/api/v1/") else None

    world.app.tamper = refuse
    with pytest.raises(TransientError) as caught:
        get_accounts(world.client())
    assert caught.value.retry_at is not None
    assert caught.value.retry_at.timestamp() == pytest.approx(world.clock.now() + 470)
    assert len(world.app.api_calls()) == 1
    assert world.sb.counters.token_calls == 0
    assert world.credential().status == "active"


# -- E11: Test Connect ------------------------------------------------------------------------------------


def test_e11_test_connect_with_a_valid_token_makes_no_token_call(world: World) -> None:
    """ok, the user's division and the rate-limit headroom; no refresh; no secret in the report."""
    report = run_test_connect(world.client(), world.vault)
    assert report.ok, report.to_dict()
    assert world.sb.counters.token_calls == 0
    checks = {check.name: check for check in report.checks}
    assert checks["user"].detail["current_division"] == DIVISION
    assert checks["divisions"].detail["allowed"] == world.sb.divisions
    assert checks["rate_limit"].detail["minutely_remaining"] is not None
    assert checks["rate_limit"].detail["daily_remaining"] is not None
    assert find_secrets(json.dumps(report.to_dict())) == []
    assert world.credential().allowed_divisions == tuple(world.sb.divisions)


def test_e11_test_connect_refreshes_and_persists_when_due(world: World) -> None:
    """In the window: one refresh, stored, reported as a new token."""
    before = _stored(world)
    advance(world.clock, 590)
    report = run_test_connect(world.client(), world.vault)
    assert report.ok
    assert report.checks[0].detail["refreshed"] is True
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert _stored(world)[0] > before[0]


def test_e11_a_wrong_client_secret_is_invalid_client_not_reauth(world: World) -> None:
    """INVALID_CLIENT (fix the app's secret), distinct from REAUTH_REQUIRED; no reuse detected."""
    tokens = issue_tokens(world.sb)
    bad = world.vault.begin(
        connector_name="bad-secret",
        auth_type="oauth2_refresh_token",
        server_url=EXACT,
        client_id=world.sb.demo_app.client_id,
        client_secret=SecretStr(register_secret("not-the-client-secret")),
        refresh_token=SecretStr(tokens["refresh_token"]),
    )
    advance(world.clock, 580)
    world.credential_id = bad.id
    report = run_test_connect(world.client(), world.vault)
    assert not report.ok
    assert report.checks[0].code == InvalidClient.code != ReauthRequired.code
    assert world.vault.get(bad.id).status == "pending"
    assert world.sb.counters.refresh_reuse == 0


def test_token_policy_is_the_manifests() -> None:
    """600 s access tokens, refresh from 570 s, inside the last 30 s."""
    policy = TokenPolicy.declared()
    assert (policy.access_ttl, policy.min_refresh_age, policy.refresh_window) == (600, 570, 30)


def test_the_daily_token_call_cap_is_a_wait_until_midnight_not_a_sign_in(tmp_path: object) -> None:
    """With the sandbox's 200-a-day switch (low confidence, API-FACTS §1) the cap is reached:
    a due refresh answering 429 keeps the live token in use, and once it has expired the call is
    a TransientError to retry at UTC midnight; stored tokens and credential are untouched."""
    world = make_world(tmp_path / "v", token_calls_per_day=1)  # type: ignore[operator]
    try:
        with httpx.Client(transport=httpx.MockTransport(world.app), base_url=EXACT) as other:
            app = world.sb.demo_app
            form = {
                "grant_type": "x",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            }
            assert other.post("/api/oauth2/token", data=form).status_code == 400
        before = _stored(world)
        advance(world.clock, 590)
        assert get_accounts(world.client()).status_code == 200  # the current token still works
        advance(world.clock, 11)
        with pytest.raises(TransientError) as caught:
            get_accounts(world.client())
        assert caught.value.retry_at is not None
        assert caught.value.retry_at.timestamp() == (world.clock.now() // DAY + 1) * DAY
        assert _stored(world) == before
        assert world.credential().status == "active"
        assert len(world.app.api_calls()) == 1
    finally:
        world.close()


def test_401s_resolved_after_another_workers_refresh_do_not_spend_the_error_budget(
    world: World,
) -> None:
    """Issue 11: nine workers holding the superseded token each draw one 401, resent with the
    stored token; none counts toward the local error budget (which stops at 8), so the endpoint
    is not held back. (The sandbox, like Exact may, counts them: past 10 it would block.)"""
    _long_lived(world, 0)
    governor = RateGovernor(clock=world.clock)
    workers = [world.client(governor=governor) for _ in range(9)]
    for worker in workers:
        assert get_accounts(worker).status_code == 200  # each caches the current token
    advance(world.clock, 575)
    store_tokens(world.vault, world.credential_id, spend_refresh_token(world), world.clock.now())

    answers = [get_accounts(worker).status_code for worker in workers]

    assert answers == [200] * 9
    assert world.sb.counters.requests[("crm/Accounts", 401)] == 9
    assert get_accounts(workers[0]).status_code == 200  # the endpoint is not held back
    governor.close()


def test_a_refreshed_pair_the_vault_cannot_store_is_kept_used_and_saved_later(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 1 (RELIABILITY C3): disk full while storing the rotated pair. The call is
    served with the new pair held in memory, no further token call is made while it is unsaved,
    the persist is retried, and the credential never ends needs_reauth."""
    refused = []
    store = world.vault.update_tokens

    def disk_full(*args: object, **kwargs: object) -> object:
        if len(refused) < 2:
            refused.append(1)
            raise VaultIOError("vault database cannot grow: no space left")
        return store(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.vault, "update_tokens", disk_full)
    advance(world.clock, 580)
    client = world.client()

    assert get_accounts(client).status_code == 200  # served with the pair held in memory
    advance(world.clock, 30)
    assert get_accounts(client).status_code == 200  # retry refused again: still served
    advance(world.clock, 30)
    assert get_accounts(client).status_code == 200  # retry succeeds

    assert len(refused) == 2
    assert world.sb.counters.token_grants["refresh_token"] == 1
    stored = world.credential()
    assert stored.status == "active"
    assert stored.refresh_token is not None
    fresh = world.client()  # a new worker refreshes with the saved (rotated) refresh token
    advance(world.clock, 600)
    assert get_accounts(fresh).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 2
    assert world.credential().status == "active"


def test_a_pair_the_vault_could_not_store_outlives_the_step_that_refreshed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY C3 across steps: the disk is full for a moment while one step stores the
    rotated pair; the next step (a new client, as ``Connector.execute`` makes one per step) uses
    and saves the pair held in memory instead of sending the spent refresh token from the row."""
    store = world.vault.update_tokens
    full = [True]

    def disk_full(*args: object, **kwargs: object) -> object:
        if full[0]:
            raise VaultIOError("vault database cannot grow: no space left")
        return store(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.vault, "update_tokens", disk_full)
    advance(world.clock, 580)
    with world.client() as step:
        assert get_accounts(step).status_code == 200  # refreshed; the pair is not stored
    spent = world.credential().refresh_token
    with world.client() as step:  # still full: served with the held pair, no token call
        assert get_accounts(step).status_code == 200
    assert world.credential().refresh_token == spent
    full[0] = False  # the disk is freed
    advance(world.clock, 2)
    with world.client() as step:
        assert get_accounts(step).status_code == 200

    assert world.sb.counters.token_grants["refresh_token"] == 1
    stored = world.credential()
    assert stored.status == "active"
    assert stored.refresh_token != spent  # the rotated pair is in the vault now
    advance(world.clock, 600)
    with world.client() as step:  # and the next refresh uses it
        assert get_accounts(step).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 2
    assert world.credential().status == "active"


def test_a_refresh_landing_during_a_master_key_rotation_stores_its_new_pair(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY B4 on the refresh path: an engine opened the vault from its key file; while its
    token call is under way the operator runs ``vault rotate-key --master --retire-old`` and then
    ``vault rotate-key``. The new data key is sealed only under the new master key, which is in
    the key file by then: the engine reads it and stores the rotated pair (Exact has spent the
    old refresh token, so failing here would cost the connection)."""
    home = Path(world.home)
    monkeypatch.delenv("EXACT_CONNECTOR_VAULT_KEY", raising=False)
    save_key_file(home, KeyRing.from_bytes(world.key))
    engine = Vault.open(home, clock=world.clock)
    issued: list[str] = []

    def rotate_meanwhile(
        request: httpx.Request, call: Callable[[], httpx.Response]
    ) -> httpx.Response | None:
        if request.url.path != "/api/oauth2/token":
            return None
        answer = call()
        issued.append(answer.json()["refresh_token"])
        assert cli(["vault", "rotate-key", "--master", "--retire-old", "--home", str(home)]) == 0
        assert cli(["vault", "rotate-key", "--home", str(home)]) == 0
        return answer

    world.app.tamper = rotate_meanwhile
    advance(world.clock, 580)
    client = ExactClient(
        engine, world.credential_id, transport=httpx.MockTransport(world.app), clock=world.clock
    )
    try:
        assert get_accounts(client).status_code == 200
    finally:
        client.close()
        engine.close()
        world.app.tamper = None

    with Vault.open(home, keys=load_key_ring(home), clock=world.clock) as vault:
        stored = vault.get(world.credential_id)
    assert len(issued) == 1
    assert stored.refresh_token == SecretStr(issued[0])
    assert stored.status == "active"
