"""Sign-in across engine workers: started by one Connector, finished by another."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exact_connector.clock import ManualClock
from exact_connector.exceptions import InputError, TokenResponseInvalid
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


def _begin(
    connector: Connector, sandbox: Sandbox, server_url: str = "https://start.exactonline.nl"
) -> Credential:
    app = sandbox.demo_app
    return connector.credentials.begin(
        {
            "connector_name": "Workers",
            "auth_type": "oauth2_authorization_code",
            "server_url": server_url,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": app.redirect_uris[0],
        }
    )


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
