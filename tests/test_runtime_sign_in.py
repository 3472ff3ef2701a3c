"""Sign-in across engine workers: started by one Connector, finished by another."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exact_connector.clock import ManualClock
from exact_connector.exceptions import (
    CredentialPending,
    InputError,
    ReauthRequired,
    TokenResponseInvalid,
    TransientError,
)
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.vault import Credential, Vault
from exact_connector.vault.sealing import KeyRing, generate_key


@pytest.fixture
def world(tmp_path: Path) -> tuple[Sandbox, KeyRing, Path, ManualClock]:
    """An auto-consenting sandbox, a vault home and its key, one clock."""
    clock = ManualClock()
    return (
        Sandbox(clock=clock, auto_consent=True),
        KeyRing.from_bytes(generate_key()),
        tmp_path,
        clock,
    )


def _worker(world: tuple[Sandbox, KeyRing, Path, ManualClock]) -> Connector:
    sandbox, ring, home, clock = world
    vault = Vault.open(home / "vault", keys=ring, clock=clock)
    return Connector(vault=vault, transport=httpx.MockTransport(sandbox), clock=clock)


def _form(sandbox: Sandbox, name: str, **changes: object) -> dict[str, object]:
    """The credential form for the sandbox's app (a browser sign-in), with ``changes``; a change
    to None leaves that field out."""
    app = sandbox.demo_app
    form = {
        "connector_name": name,
        "auth_type": "oauth2_authorization_code",
        "server_url": "https://start.exactonline.nl",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_uris[0],
        **changes,
    }
    return {key: value for key, value in form.items() if value is not None}


def _begin(
    connector: Connector, sandbox: Sandbox, server_url: str = "https://start.exactonline.nl"
) -> Credential:
    return connector.credentials.begin(_form(sandbox, "Workers", server_url=server_url))


def _consent(sandbox: Sandbox, url: str) -> dict[str, str]:
    location = httpx.Client(transport=httpx.MockTransport(sandbox)).get(url).headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_a_callback_handled_by_another_worker_completes_the_sign_in(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """The pending state lives in the shared vault, not in the worker that started it."""
    sandbox = world[0]
    starter, finisher = _worker(world), _worker(world)
    credential = _begin(starter, sandbox)
    answer = _consent(sandbox, starter.authorization_url(credential, "state-from-the-engine-1"))
    signed_in = finisher.complete_authorization(credential.id, answer["code"], answer["state"])
    assert signed_in.refresh_token is not None
    assert finisher.test_connect(signed_in.id)["ok"] is True


def test_a_forged_or_replayed_state_is_refused_before_the_token_call(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """A state no worker started, or one already used, never reaches Exact's token endpoint."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)
    answer = _consent(sandbox, connector.authorization_url(credential, "state-from-the-engine-2"))
    grants_before = sum(sandbox.counters.token_grants.values())
    with pytest.raises(InputError) as forged:
        connector.complete_authorization(credential.id, answer["code"], "not-the-state-we-sent")
    assert forged.value.errors[0]["path"] == "$.state"
    connector.complete_authorization(credential.id, answer["code"], answer["state"])
    with pytest.raises(InputError):
        connector.complete_authorization(credential.id, answer["code"], answer["state"])
    assert sum(sandbox.counters.token_grants.values()) == grants_before + 1


def test_a_token_endpoint_outage_leaves_the_sign_in_open_for_the_same_answer(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """Exact's token endpoint answers 503 to the code exchange: the code was not spent, so the
    person reloads the page Exact sent them back to and the same code and state finish the
    sign-in (before, the state was used up and they had to start again). Then it is used up."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)
    answer = _consent(sandbox, connector.authorization_url(credential, "state-outage-0001"))
    sandbox.faults.add("error", status=503, path_contains="/oauth2/token")

    with pytest.raises(TransientError) as outage:
        connector.complete_authorization(credential.id, answer["code"], answer["state"])
    assert "same sign-in answer again" in outage.value.hint

    signed_in = connector.complete_authorization(credential.id, answer["code"], answer["state"])
    assert signed_in.refresh_token is not None
    with pytest.raises(InputError) as replayed:
        connector.complete_authorization(credential.id, answer["code"], answer["state"])
    assert replayed.value.errors[0]["path"] == "$.state"


def test_a_refused_code_or_a_newer_sign_in_does_not_reopen_a_sign_in(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """Only an exchange Exact did not answer reopens the sign-in: a code Exact refused uses it
    up, and one started meanwhile is the one that stays (the outage's state no longer works)."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)
    first = _consent(sandbox, connector.authorization_url(credential, "state-refused-01"))
    with pytest.raises(ReauthRequired):
        connector.complete_authorization(credential.id, "not-a-code-exact-gave", first["state"])
    with pytest.raises(InputError):
        connector.complete_authorization(credential.id, first["code"], first["state"])

    second = _consent(sandbox, connector.authorization_url(credential, "state-outage-0002"))
    sandbox.faults.add("error", status=502, path_contains="/oauth2/token")
    with pytest.raises(TransientError) as outage:
        connector.complete_authorization(credential.id, second["code"], second["state"])
    third = _consent(sandbox, connector.authorization_url(credential, "state-newer-0003"))
    with pytest.raises(InputError):
        connector.complete_authorization(credential.id, second["code"], second["state"])
    assert "same sign-in answer again" in outage.value.hint
    assert connector.complete_authorization(credential.id, third["code"], third["state"])


def test_a_sign_in_finished_during_an_outage_keeps_the_older_answer_used_up(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """While one worker's code exchange goes unanswered, the person starts over and finishes on
    another worker: the older answer is not put back (it would sign in over the newer tokens,
    perhaps as another Exact user), and the error says to start the sign-in again."""
    sandbox, ring, home, clock = world
    other = _worker(world)
    newer: list[Credential] = []

    def outage_while_a_newer_sign_in_finishes(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token") and not newer:
            answer = _consent(sandbox, other.authorization_url(credential, "state-newer-0005"))
            newer.append(
                other.complete_authorization(credential.id, answer["code"], answer["state"])
            )
            return httpx.Response(503, json={"error": "temporarily_unavailable"})
        return sandbox(request)

    vault = Vault.open(home / "vault", keys=ring, clock=clock)
    transport = httpx.MockTransport(outage_while_a_newer_sign_in_finishes)
    connector = Connector(vault=vault, transport=transport, clock=clock)
    credential = _begin(connector, sandbox)
    older = _consent(sandbox, connector.authorization_url(credential, "state-older-0004"))

    with pytest.raises(TransientError) as outage:
        connector.complete_authorization(credential.id, older["code"], older["state"])
    assert "same sign-in answer" not in outage.value.hint
    assert "start the sign-in again" in outage.value.hint
    with pytest.raises(InputError) as replayed:
        connector.complete_authorization(credential.id, older["code"], older["state"])
    assert replayed.value.errors[0]["path"] == "$.state"
    stored = connector.vault.get(credential.id).refresh_token
    assert stored is not None and newer[0].refresh_token is not None
    assert stored.get_secret_value() == newer[0].refresh_token.get_secret_value()


@pytest.mark.parametrize(
    "written",
    [
        "https://start.exactonline.nl/",
        "HTTPS://START.ExactOnline.NL",
        "https://Start.exactonline.nl/",
    ],
)
def test_the_credential_form_takes_every_spelling_the_server_url_rule_accepts(
    world: tuple[Sandbox, KeyRing, Path, ManualClock], written: str
) -> None:
    """RELIABILITY H1: a trailing slash or upper case is accepted and stored canonical."""
    credential = _begin(_worker(world), world[0], written)

    assert credential.server_url == "https://start.exactonline.nl"


@pytest.mark.parametrize(
    "written",
    ["http://start.exactonline.nl", "https://start.exactonline.nl/x", "https://exactonline.nl"],
)
def test_the_credential_form_refuses_what_the_server_url_rule_refuses(
    world: tuple[Sandbox, KeyRing, Path, ManualClock], written: str
) -> None:
    """Anything else is still an input error at $.server_url."""
    with pytest.raises(InputError) as refused:
        _begin(_worker(world), world[0], written)

    assert [e["path"] for e in refused.value.errors] == ["$.server_url"]


class _TruncatedTokenAnswer:
    """The sandbox, with the token endpoint's 200 answer cut short (its new tokens inside)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.answers: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.sandbox(request)
        if request.url.path != "/api/oauth2/token":
            return response
        self.answers.append(response.text)
        return httpx.Response(200, content=response.content[:-3], headers=response.headers)


def _frames(error: BaseException) -> list[dict[str, object]]:
    """The locals of every frame of ours the error passed through."""
    found, tb = [], error.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("exact_connector"):
            found.append(dict(tb.tb_frame.f_locals))
        tb = tb.tb_next
    return found


def test_an_unusable_token_answer_carries_no_token_code_or_secret_with_its_error(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """No context whose ``doc`` is the answer, and no frame of ours holds a secret as text."""
    sandbox, ring, home, clock = world
    truncating = _TruncatedTokenAnswer(sandbox)
    vault = Vault.open(home / "vault", keys=ring, clock=clock)
    connector = Connector(vault=vault, transport=httpx.MockTransport(truncating), clock=clock)
    credential = _begin(connector, sandbox)
    answer = _consent(sandbox, connector.authorization_url(credential, "state-truncated-1"))

    with pytest.raises(TokenResponseInvalid) as raised:
        connector.complete_authorization(credential.id, answer["code"], answer["state"])

    error = raised.value
    assert error.__context__ is None and error.__cause__ is None
    (body,) = truncating.answers
    secrets = [answer["code"], sandbox.demo_app.client_secret]
    secrets += [
        body.split(f'"{name}":"')[1].split('"')[0] for name in ("access_token", "refresh_token")
    ]
    frames = _frames(error)
    assert len(frames) >= 3  # runtime, the token service, the answer's reader
    for local in frames:
        text = repr(local)
        assert not [secret for secret in secrets if secret in text], sorted(local)


def _sign_in(
    connector: Connector, sandbox: Sandbox, credential: Credential, state: str
) -> Credential:
    answer = _consent(sandbox, connector.authorization_url(credential, state))
    return connector.complete_authorization(credential.id, answer["code"], answer["state"])


_LIST = {"endpoint": "crm/Accounts", "limit": 1}


def test_test_connect_before_the_sign_in_says_to_finish_it_and_marks_nothing(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """No tokens yet is not a dead grant: Test Connect says to finish the sign-in, makes no token
    call and leaves the credential pending, so adding the name again still says the same."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)

    report = connector.test_connect(credential.id)

    assert report["ok"] is False
    token = report["checks"][0]
    assert (token["name"], token["code"]) == ("token", "credential_not_active")
    assert "sign-in" in token["summary"] and "sign-in" in token["remediation"]
    assert sandbox.counters.token_calls == 0
    stored = connector.credentials.get(credential.id)
    assert (stored.status, stored.status_reason) == ("pending", None)
    with pytest.raises(CredentialPending) as again:
        _begin(connector, sandbox)
    assert "re-authorize" in again.value.hint


def test_a_sign_in_leaves_a_never_activated_credential_pending(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """Test Connect tried before the sign-in, then the sign-in: still pending, so no action runs
    until the credential is activated (Connect & Create)."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)
    connector.test_connect(credential.id)

    signed_in = _sign_in(connector, sandbox, credential, "state-after-a-test-1")

    assert signed_in.status == "pending"
    inputs = {"division": signed_in.allowed_divisions[0], **_LIST}
    refused = connector.execute("list_or_get_endpoint", credential.id, inputs)
    assert refused["ok"] is False and refused["error"]["code"] == "credential_not_active"
    connector.credentials.activate(credential.id)
    assert connector.execute("list_or_get_endpoint", credential.id, inputs)["ok"] is True


def test_a_refused_refresh_token_of_a_never_activated_credential_keeps_it_pending(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """Signed in, never activated, idle past Exact's 30 days: Test Connect reports reauth_required
    but the credential stays pending, and signing in again does not activate it."""
    sandbox, _, _, clock = world
    connector = _worker(world)
    credential = _sign_in(connector, sandbox, _begin(connector, sandbox), "state-idle-0001")
    clock.advance(31 * 86_400.0)

    report = connector.test_connect(credential.id)

    assert report["checks"][0]["code"] == "reauth_required"
    assert connector.credentials.get(credential.id).status == "pending"
    again = _sign_in(connector, sandbox, credential, "state-idle-0002")
    assert again.status == "pending"


def test_an_active_connection_that_lost_its_grant_is_active_again_after_a_sign_in(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """needs_reauth is only ever an active connection's state: a new sign-in brings it back."""
    sandbox, _, _, clock = world
    connector = _worker(world)
    credential = _sign_in(connector, sandbox, _begin(connector, sandbox), "state-lost-0001")
    connector.credentials.activate(credential.id)
    clock.advance(31 * 86_400.0)
    inputs = {"division": credential.allowed_divisions[0], **_LIST}
    assert connector.execute("list_or_get_endpoint", credential.id, inputs)["ok"] is False
    assert connector.credentials.get(credential.id).status == "needs_reauth"

    again = _sign_in(connector, sandbox, credential, "state-lost-0002")

    assert (again.status, again.status_reason) == ("active", None)
    assert connector.execute("list_or_get_endpoint", credential.id, inputs)["ok"] is True


class _DuringCodeExchange:
    """The sandbox, running ``action`` when the next authorization-code call arrives."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.action: Callable[[], object] | None = None
        self.refresh_tokens: list[str] = []  # issued for codes

    def __call__(self, request: httpx.Request) -> httpx.Response:
        code_grant = request.url.path == "/api/oauth2/token" and b"authorization_code" in (
            request.read()
        )
        if code_grant and self.action is not None:
            action, self.action = self.action, None
            action()
        response = self.sandbox(request)
        if code_grant and response.status_code == 200:
            self.refresh_tokens.append(response.json()["refresh_token"])
        return response


def test_a_re_authorization_keeps_its_tokens_when_a_worker_refreshed_meanwhile(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """A worker refreshes (and stores divisions) while the code is exchanged: the code is spent,
    so the sign-in's pair is stored on the record as it is now instead of being thrown away."""
    sandbox, ring, home, clock = world
    hooked = _DuringCodeExchange(sandbox)
    vault = Vault.open(home / "vault", keys=ring, clock=clock)
    connector = Connector(vault=vault, transport=httpx.MockTransport(hooked), clock=clock)
    worker = _worker(world)
    credential = _sign_in(connector, sandbox, _begin(connector, sandbox), "state-reauth-0001")
    connector.credentials.activate(credential.id)
    clock.advance(590)  # the worker's access token is due
    reports: list[dict[str, object]] = []
    hooked.action = lambda: reports.append(worker.test_connect(credential.id))

    again = _sign_in(connector, sandbox, credential, "state-reauth-0002")

    assert [report["ok"] for report in reports] == [True]
    assert sandbox.counters.token_grants["refresh_token"] == 1
    assert again.refresh_token is not None
    assert again.refresh_token.get_secret_value() == hooked.refresh_tokens[-1]
    assert again.status == "active"
    inputs = {"division": again.allowed_divisions[0], **_LIST}
    assert worker.execute("list_or_get_endpoint", credential.id, inputs)["ok"] is True


def test_a_pending_credential_added_again_with_another_client_secret_says_to_remove_it(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """Re-authorizing would use the stored (mistyped) secret again: the error says to remove it
    and add it again, naming the field, never its value."""
    sandbox = world[0]
    connector = _worker(world)
    app = sandbox.demo_app
    form = _form(sandbox, "Typo", client_secret="not-" + app.client_secret)
    connector.credentials.begin(form)

    with pytest.raises(CredentialPending) as caught:
        connector.credentials.begin({**form, "client_secret": app.client_secret})

    error = caught.value
    assert error.details["changed"] == ["client_secret"]
    assert "remove" in error.hint.lower() and "re-authorize" not in error.hint
    assert app.client_secret not in f"{error.message} {error.details} {error.hint}"


def test_a_pending_pasted_token_credential_added_again_is_not_told_to_sign_in(
    world: tuple[Sandbox, KeyRing, Path, ManualClock],
) -> None:
    """A pasted-token credential has no browser sign-in: the same form again says to run Test
    Connect and activate it; another refresh token says to remove it and add it again."""
    sandbox = world[0]
    connector = _worker(world)
    form = _form(
        sandbox,
        "Pasted",
        auth_type="oauth2_refresh_token",
        redirect_uri=None,
        refresh_token=sandbox.issue_tokens()["refresh_token"],
    )
    connector.credentials.begin(form)

    with pytest.raises(CredentialPending) as same:
        connector.credentials.begin(form)
    with pytest.raises(CredentialPending) as other:
        connector.credentials.begin({**form, "refresh_token": "another-refresh-token-0001"})

    assert "Test Connect" in same.value.hint and "re-authorize" not in same.value.hint
    assert other.value.details["changed"] == ["refresh_token"]
    assert "remove" in other.value.hint.lower()


@pytest.mark.parametrize("state", ["x\ud800", ""], ids=["lone-surrogate", "empty"])
def test_a_state_that_cannot_be_one_is_an_input_error_at_state(
    world: tuple[Sandbox, KeyRing, Path, ManualClock], state: str
) -> None:
    """Not Unicode text (no digest of it exists) or empty (no check at all): refused at $.state
    when the sign-in starts, and a callback carrying it matches no sign-in."""
    sandbox = world[0]
    connector = _worker(world)
    credential = _begin(connector, sandbox)
    connector.authorization_url(credential, "state-started-0001")

    with pytest.raises(InputError) as started:
        connector.authorization_url(credential, state)
    with pytest.raises(InputError) as finished:
        connector.complete_authorization(credential.id, "code-0001", state)

    assert [e["path"] for e in started.value.errors] == ["$.state"]
    assert [e["path"] for e in finished.value.errors] == ["$.state"]
    assert sandbox.counters.token_calls == 0


@pytest.mark.parametrize(
    "written",
    [
        pytest.param(lambda guid: "{" + guid.upper() + "}", id="braces-upper"),
        pytest.param(lambda guid: "urn:uuid:" + guid, id="urn"),
        pytest.param(lambda guid: guid.replace("-", ""), id="no-hyphens"),
    ],
)
def test_a_client_id_written_as_the_form_allows_is_stored_and_sent_as_exact_writes_it(
    world: tuple[Sandbox, KeyRing, Path, ManualClock], written: Callable[[str], str]
) -> None:
    """App Center shows the Client ID in braces: the form takes it, and the sign-in must work
    (the sandbox, like Exact, knows the app by its canonical id only)."""
    sandbox = world[0]
    connector = _worker(world)
    app = sandbox.demo_app
    credential = connector.credentials.begin(
        _form(sandbox, "Braces", client_id=written(app.client_id))
    )

    assert credential.client_id == app.client_id
    url = connector.authorization_url(credential, "state-braces")
    assert parse_qs(urlsplit(url).query)["client_id"] == [app.client_id]
    signed_in = _sign_in(connector, sandbox, credential, "state-braces")
    assert signed_in.refresh_token is not None
