"""OAuth as Exact runs it: consent, codes, rotating single-use refresh tokens, the 570 s rule."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sandbox_harness import DIVISION, client_for, recorded, refresh_call, token_call

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox, SandboxApp


def _query(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def _consent(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """The demo app's authorization parameters, as the consent page posts them back."""
    app = sandbox.demo_app
    return {
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uris[0],
        "response_type": "code",
        **extra,
    }


def _authorize(client: httpx.Client, sandbox: Sandbox, **extra: str) -> httpx.Response:
    params = _consent(sandbox, state="s-123", force_login="0", **extra)
    return client.get("/api/oauth2/auth", params=params)


def _exchange(client: httpx.Client, sandbox: Sandbox, code: str) -> httpx.Response:
    """POST the token endpoint to exchange ``code`` for the demo app's first redirect URI."""
    redirect_uri = sandbox.demo_app.redirect_uris[0]
    return token_call(
        client, sandbox, grant_type="authorization_code", code=code, redirect_uri=redirect_uri
    )


def _code_flow(sandbox: Sandbox) -> dict[str, str]:
    """Auto-consent, exchange the code; the token answer."""
    with client_for(sandbox) as client:
        location = _authorize(client, sandbox).headers["location"]
        code = _query(location)["code"]
        answer = _exchange(client, sandbox, code)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture
def auto(clock: ManualClock) -> Sandbox:
    """A sandbox that consents at once, for every division."""
    return Sandbox(seed=1, clock=clock, auto_consent=True)


# -- the authorization endpoint ------------------------------------------------------------------


def test_consent_page_lists_divisions_and_posts_back(sb: Sandbox) -> None:
    """Without auto-consent the authorize URL shows a form with a checkbox per division."""
    with client_for(sb) as client:
        page = _authorize(client, sb)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'action="/api/oauth2/auth"' in page.text
    for code in sb.divisions:
        assert f'name="division" value="{code}"' in page.text
    assert 'value="allow"' in page.text and 'value="deny"' in page.text
    assert 'name="state" value="s-123"' in page.text


def test_allowing_a_subset_grants_only_those_divisions(sb: Sandbox) -> None:
    """The user's checkbox choice becomes the grant: other divisions answer 403."""
    form = _consent(sb, state="xyz", division=str(sb.divisions[1]), decision="allow")
    with client_for(sb) as client:
        answer = client.post("/api/oauth2/auth", data=form)
        assert answer.status_code == 302
        query = _query(answer.headers["location"])
        assert query["state"] == "xyz"
        grant = _exchange(client, sb, query["code"]).json()
    with client_for(sb, grant["access_token"]) as api:
        divisions = api.get(f"/api/v1/{sb.divisions[1]}/system/Divisions").json()["d"]["results"]
        assert [d["Code"] for d in divisions] == [sb.divisions[1]]
        refused = api.get(f"/api/v1/{sb.divisions[0]}/crm/Accounts")
        assert refused.status_code == 403
        assert refused.headers["reason"] == "NoDivisionAccess"


def test_deny_redirects_with_access_denied_and_state(sb: Sandbox) -> None:
    """Deny sends the browser back with error=access_denied and the same state."""
    form = _consent(sb)
    with client_for(sb) as client:
        answer = client.post("/api/oauth2/auth", data={**form, "state": "st", "decision": "deny"})
    assert answer.status_code == 302
    assert _query(answer.headers["location"]) == {"error": "access_denied", "state": "st"}


def test_allow_without_any_division_shows_the_page_again(sb: Sandbox) -> None:
    """Allowing with no division checked is not a grant."""
    form = _consent(sb)
    with client_for(sb) as client:
        answer = client.post("/api/oauth2/auth", data={**form, "decision": "allow"})
    assert answer.status_code == 200
    assert "Choose at least one administration" in answer.text


def test_auto_consent_redirects_at_once_with_a_bang_code(auto: Sandbox) -> None:
    """Auto-consent answers 302 to the exact redirect URI; the code holds '!' sent as %21."""
    with client_for(auto) as client:
        answer = _authorize(client, auto)
    location = answer.headers["location"]
    assert answer.status_code == 302
    assert location.startswith(auto.demo_app.redirect_uris[0] + "?")
    assert "%21" in location and "!" not in location
    assert "!" in _query(location)["code"]
    assert _query(location)["state"] == "s-123"


def test_auto_consent_can_grant_a_configured_subset(clock: ManualClock) -> None:
    """auto_consent=[division] grants just that division."""
    sandbox = Sandbox(seed=1, clock=clock, auto_consent=[100002])
    grant = _code_flow(sandbox)
    with client_for(sandbox, grant["access_token"]) as api:
        assert api.get("/api/v1/100001/crm/Accounts").status_code == 403
        assert api.get("/api/v1/100002/crm/Accounts").status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "client_id"),
        ({"redirect_uri": "http://127.0.0.1:8976/callback/"}, "redirect_uri"),
        ({"redirect_uri": "https://evil.example/callback"}, "redirect_uri"),
    ],
    ids=["unknown-client", "trailing-slash", "foreign-redirect"],
)
def test_unregistered_client_or_redirect_gets_an_error_page_not_a_redirect(
    auto: Sandbox, change: dict[str, str], message: str
) -> None:
    """A redirect URI must match a registered one byte for byte; nothing is redirected."""
    with client_for(auto) as client:
        answer = _authorize(client, auto, **change)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert message in answer.text


def test_implicit_flow_redirects_with_the_tokens_in_the_fragment(auto: Sandbox) -> None:
    """response_type=token (API-FACTS §1 "Grant types": Exact supports the implicit flow): an
    access token, its type and lifetime and the state in the fragment; no code, no refresh token."""
    with client_for(auto) as client:
        answer = _authorize(client, auto, response_type="token")
    location = answer.headers["location"]
    base, _, fragment = location.partition("#")
    granted = {name: values[0] for name, values in parse_qs(fragment).items()}
    assert base == auto.demo_app.redirect_uris[0]
    assert set(granted) == {"access_token", "token_type", "expires_in", "state"}
    assert (granted["expires_in"], granted["state"]) == ("600", "s-123")
    with client_for(auto, granted["access_token"]) as api:
        assert api.get("/api/v1/current/Me").status_code == 200


def test_an_unknown_response_type_is_refused_by_redirect(auto: Sandbox) -> None:
    """Neither code nor token comes back as unsupported_response_type."""
    with client_for(auto) as client:
        answer = _authorize(client, auto, response_type="id_token")
    assert _query(answer.headers["location"])["error"] == "unsupported_response_type"


# -- the code grant ------------------------------------------------------------------------------


def test_code_exchange_answers_like_exact(auto: Sandbox) -> None:
    """The token answer has expires_in as the string "600" and both tokens."""
    grant = _code_flow(auto)
    assert set(grant) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert grant["expires_in"] == "600"
    assert grant["token_type"] == "bearer"
    assert "!" in grant["refresh_token"]
    assert re.fullmatch(r"[\x21-\x7e]+", grant["access_token"])
    assert auto.counters.token_grants["authorization_code"] == 1


def test_a_code_works_once(auto: Sandbox) -> None:
    """Reusing a code answers 400 with the plain text "Bad Request", as recorded (picqer #96)."""
    with client_for(auto) as client:
        code = _query(_authorize(client, auto).headers["location"])["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": auto.demo_app.redirect_uris[0],
        }
        assert token_call(client, auto, **form).status_code == 200
        again = token_call(client, auto, **form)
    reused = next(
        case
        for case in recorded("oauth_token_errors_observed.json")
        if case["case"].startswith("authorization code reused")
    )
    assert (again.status_code, again.text) == (reused["status"], reused["body_text"])
    assert again.headers["content-type"].startswith("text/plain")


def test_a_code_expires_after_three_minutes(auto: Sandbox, clock: ManualClock) -> None:
    """A code older than 180 s is refused."""
    with client_for(auto) as client:
        code = _query(_authorize(client, auto).headers["location"])["code"]
        clock.advance(181)
        answer = _exchange(client, auto, code)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "The authorization code has expired.",
    }


def test_the_redirect_uri_must_match_the_one_authorized(auto: Sandbox) -> None:
    """Exchanging with another redirect_uri than the authorize call used is invalid_grant."""
    with client_for(auto) as client:
        code = _query(_authorize(client, auto).headers["location"])["code"]
        answer = token_call(
            client, auto, grant_type="authorization_code", code=code, redirect_uri="http://x/cb"
        )
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "credentials",
    [{"client_secret": "wrong"}, {"client_id": "nobody"}, {"client_secret": ""}],
    ids=["wrong-secret", "unknown-client", "empty-secret"],
)
def test_bad_client_credentials_are_a_bare_invalid_request(
    auto: Sandbox, credentials: dict[str, str]
) -> None:
    """A wrong secret or unknown client id answers 400 {"error":"invalid_request"}, as recorded
    (picqer #553), with no description."""
    tokens = auto.issue_tokens()
    with client_for(auto) as client:
        form = {
            "client_id": auto.demo_app.client_id,
            "client_secret": auto.demo_app.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            **credentials,
        }
        answer = client.post("/api/oauth2/token", data=form)
    generic = next(
        case
        for case in recorded("oauth_token_errors_observed.json")
        if case["case"].startswith("generic invalid token request")
    )
    assert (answer.status_code, answer.json()) == (generic["status"], generic["body"])


def test_the_token_endpoint_wants_a_form_body(auto: Sandbox) -> None:
    """JSON bodies and unknown grant types are refused."""
    with client_for(auto) as client:
        assert (
            client.post("/api/oauth2/token", json={"grant_type": "x"}).json()["error"]
            == "invalid_request"
        )
        assert (
            token_call(client, auto, grant_type="client_credentials").json()["error"]
            == "unsupported_grant_type"
        )


# -- the refresh grant ---------------------------------------------------------------------------


def test_refresh_before_570_seconds_is_too_early_and_rotates_nothing(
    sb: Sandbox, clock: ManualClock
) -> None:
    """400 access_denied with the TooEarlyToRefreshTokens Reason; the refresh token stays good."""
    tokens = sb.issue_tokens()
    clock.advance(569)
    with client_for(sb) as client:
        early = refresh_call(client, sb, tokens["refresh_token"])
        assert early.status_code == 400
        assert early.json() == {
            "error": "access_denied",
            "error_description": "Rate limit exceeded: access_token not expired",
        }
        assert (
            early.headers["reason"]
            == "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired"
        )
        clock.advance(1)
        later = refresh_call(client, sb, tokens["refresh_token"])
    assert later.status_code == 200
    assert sb.counters.too_early == 1
    assert sb.counters.token_grants["refresh_token"] == 1


def test_refresh_rotates_and_the_old_token_is_single_use(sb: Sandbox, clock: ManualClock) -> None:
    """Reusing a rotated refresh token answers 401 and revokes the whole family."""
    first = sb.issue_tokens()
    clock.advance(570)
    with client_for(sb) as client:
        second = refresh_call(client, sb, first["refresh_token"]).json()
        assert second["refresh_token"] != first["refresh_token"]
        reuse = refresh_call(client, sb, first["refresh_token"])
        assert reuse.status_code == 401
        assert reuse.json() == {
            "error": "unauthorized_client",
            "error_description": "Old refresh token used.",
        }
        clock.advance(600)
        newest = refresh_call(client, sb, second["refresh_token"])
        assert newest.status_code == 400
        assert newest.json()["error"] == "invalid_grant"
    with client_for(sb, second["access_token"]) as api:
        assert api.get("/api/v1/current/Me").status_code == 401
    assert sb.counters.refresh_reuse == 1
    assert [e.kind for e in sb.events if e.kind == "reuse"] == ["reuse"]


def test_a_refresh_token_idle_for_30_days_has_expired(sb: Sandbox, clock: ManualClock) -> None:
    """400 invalid_request with Exact's "expired at … and it is now …" message."""
    tokens = sb.issue_tokens()
    clock.advance(30 * 86_400 + 1)
    with client_for(sb) as client:
        answer = refresh_call(client, sb, tokens["refresh_token"])
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert re.fullmatch(
        r"The refresh token expired at \d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M "
        r"and it is now \d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M\.",
        body["error_description"],
    )


def test_an_unknown_refresh_token_is_invalid_grant(sb: Sandbox) -> None:
    """A token the sandbox never issued is refused with Exact's broken-chain message."""
    with client_for(sb) as client:
        answer = refresh_call(client, sb, "Abc!IAAAAnope")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_refresh_token_belongs_to_its_app(clock: ManualClock) -> None:
    """Another registered app cannot use this app's refresh token."""
    one = SandboxApp("app-one", "secret-one-123", ("http://127.0.0.1:1/cb",))
    two = SandboxApp("app-two", "secret-two-123", ("http://127.0.0.1:2/cb",))
    sandbox = Sandbox(clock=clock, apps=[one, two])
    tokens = sandbox.issue_tokens(app=one)
    clock.advance(600)
    with client_for(sandbox) as client:
        form = {
            "client_id": "app-two",
            "client_secret": "secret-two-123",
            "grant_type": "refresh_token",
        }
        answer = client.post(
            "/api/oauth2/token", data={**form, "refresh_token": tokens["refresh_token"]}
        )
    assert answer.json()["error"] == "invalid_grant"


def test_a_new_access_token_revokes_the_previous_one(sb: Sandbox, clock: ManualClock) -> None:
    """With revoke_previous_access (the default) the old access token answers 401 after a refresh."""
    first = sb.issue_tokens()
    clock.advance(580)
    with client_for(sb) as client:
        second = refresh_call(client, sb, first["refresh_token"]).json()
    with (
        client_for(sb, first["access_token"]) as old,
        client_for(sb, second["access_token"]) as new,
    ):
        assert old.get("/api/v1/current/Me").status_code == 401
        assert new.get("/api/v1/current/Me").status_code == 200


def test_previous_access_tokens_can_stay_valid_when_switched_off(clock: ManualClock) -> None:
    """revoke_previous_access=False keeps the old access token until it expires."""
    sandbox = Sandbox(clock=clock, revoke_previous_access=False)
    first = sandbox.issue_tokens()
    clock.advance(580)
    with client_for(sandbox) as client:
        refresh_call(client, sandbox, first["refresh_token"])
    with client_for(sandbox, first["access_token"]) as old:
        assert old.get("/api/v1/current/Me").status_code == 200
        clock.advance(21)
        assert old.get("/api/v1/current/Me").status_code == 401


def test_refresh_grace_replays_the_lost_answer_until_the_new_tokens_are_used(
    clock: ManualClock,
) -> None:
    """With refresh_grace the previous refresh token returns the same tokens, once unused."""
    sandbox = Sandbox(clock=clock, refresh_grace=True)
    first = sandbox.issue_tokens()
    clock.advance(600)
    with client_for(sandbox) as client:
        form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        lost = token_call(client, sandbox, **form).json()
        replayed = token_call(client, sandbox, **form).json()
        assert replayed == lost
        with client_for(sandbox, lost["access_token"]) as api:
            assert api.get("/api/v1/current/Me").status_code == 200
        after_use = token_call(client, sandbox, **form)
    assert after_use.status_code == 401


# -- access tokens on the API --------------------------------------------------------------------


def test_access_tokens_live_600_seconds(sb: Sandbox, clock: ManualClock) -> None:
    """At 599 s the token works; at 600 s it answers 401 with WWW-Authenticate: Bearer."""
    tokens = sb.issue_tokens()
    with client_for(sb, tokens["access_token"]) as api:
        clock.advance(599)
        assert api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}).status_code == 200
        clock.advance(1)
        expired = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"})
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == "Bearer"
    assert expired.content == b""


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nope", "Basic abc", "bearer"],
    ids=["missing", "unknown", "basic", "empty"],
)
def test_missing_or_invalid_tokens_answer_401(sb: Sandbox, authorization: str | None) -> None:
    """Every API call checks the bearer token."""
    headers = {"Authorization": authorization} if authorization else {}
    with client_for(sb) as client:
        answer = client.get("/api/v1/current/Me", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_events_show_a_refresh_before_the_call_that_used_it(
    sb: Sandbox, clock: ManualClock
) -> None:
    """The event log orders the refresh grant before the first API call with its token."""
    first = sb.issue_tokens()
    with client_for(sb, first["access_token"]) as api:
        api.get("/api/v1/current/Me")
    clock.advance(590)
    with client_for(sb) as client:
        second = refresh_call(client, sb, first["refresh_token"]).json()
    with client_for(sb, second["access_token"]) as api:
        api.get(f"/api/v1/{DIVISION}/project/TimeTransactions", params={"$top": "1"})
    refs = [(e.kind, e.detail, e.ref) for e in sb.events if e.kind in ("token", "api")]
    assert refs == [
        ("token", "issued", "G1-1"),
        ("api", "GET current/Me", "G1-1"),
        ("token", "refresh_token", "G1-2"),
        ("api", "GET project/TimeTransactions", "G1-2"),
    ]
    times = [e.time for e in sb.events if e.kind in ("token", "api")]
    assert times == sorted(times)


# -- client authentication and the daily cap -----------------------------------------------------


def _basic(client_id: str, secret: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_client_credentials_may_come_as_http_basic(sb: Sandbox, clock: ManualClock) -> None:
    """RFC 6749 §2.3.1 Basic auth instead of the form's client_id/client_secret is accepted."""
    tokens = sb.issue_tokens()
    clock.advance(600)
    app = sb.demo_app
    with client_for(sb) as client:
        answer = client.post(
            "/api/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=_basic(app.client_id, app.client_secret),
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == "600"


@pytest.mark.parametrize(
    ("basic", "form"),
    [(("app", "wrong"), {}), (("app", "secret"), {"client_secret": "other"})],
    ids=["wrong-secret", "basic-and-form-disagree"],
)
def test_bad_basic_credentials_are_a_bare_invalid_request(
    sb: Sandbox, basic: tuple[str, str], form: dict[str, str]
) -> None:
    """A wrong Basic secret, or Basic and form naming different secrets: invalid_request."""
    app = sb.demo_app
    secret = app.client_secret if basic[1] == "secret" else basic[1]
    with client_for(sb) as client:
        answer = client.post(
            "/api/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "x", **form},
            headers=_basic(app.client_id, secret),
        )
    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_request"})


def test_the_daily_token_call_cap_is_off_by_default(sb: Sandbox) -> None:
    """The 200-a-day cap is low confidence: without the switch 201 calls are all answered."""
    with client_for(sb) as client:
        statuses = {refresh_call(client, sb, "x").status_code for _ in range(201)}
    assert statuses == {400}


def test_with_the_switch_calls_past_the_daily_cap_wait_for_utc_midnight(
    clock: ManualClock,
) -> None:
    """token_calls_per_day=3: the 4th call answers 429 with Retry-After to the next UTC
    midnight; every call counts, whatever its grant; the next day starts afresh."""
    sandbox = Sandbox(clock=clock, token_calls_per_day=3)
    tokens = sandbox.issue_tokens()
    clock.advance(3600)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    with client_for(sandbox) as client:
        first = token_call(client, sandbox, **form)
        failures = [token_call(client, sandbox, grant_type="nope") for _ in range(2)]
        again = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
        capped = token_call(client, sandbox, **again)
        clock.advance(86_400 - clock.now() % 86_400)
        next_day = token_call(client, sandbox, **again)
    assert first.status_code == 200 and [f.status_code for f in failures] == [400, 400]
    assert capped.status_code == 429
    assert capped.json()["error"] == "access_denied"
    assert int(capped.headers["retry-after"]) == 86_400 - 3600
    assert next_day.status_code == 200
