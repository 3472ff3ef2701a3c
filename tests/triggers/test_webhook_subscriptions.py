"""Webhook subscriptions beyond the simple case: more than a page of them, two workers at once, a
lost answer, callback URLs that do not parse; and the sandbox keeping them per app, checking
their topic and URL, and delivering every topic the form offers. Each test failed on the code
before (a review of the webhook area reproduced them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.sandbox.oauth import SandboxApp
from exact_connector.testing import EXACT, Connected, _sign_in, connect
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

DIVISION = 100001
SUBSCRIPTIONS = "webhooks/WebhookSubscriptions"
HOOK = "https://engine.example.com/hooks/exact"


class Hook:
    """The engine's callback: answers 200 to everything and records what came in."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.during_validation: Any = None  # called once, inside the first validation POST

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.received.append((str(request.url), body))
        if not body and self.during_validation is not None:
            action, self.during_validation = self.during_validation, None
            action()
        return httpx.Response(200)

    def deliveries(self) -> list[str]:
        return [url for url, body in self.received if body]


@contextlib.contextmanager
def bench(tmp_path: Path, apps: list[SandboxApp] | None = None) -> Iterator[tuple[Connected, Hook]]:
    hook = Hook()
    sb = Sandbox(
        clock=ManualClock(),
        auto_consent=True,
        limits=False,
        apps=apps,
        webhook_transport=httpx.MockTransport(hook),
    )
    with connect(sb, tmp_path / "vault", name="props") as connected:
        yield connected, hook


def inputs(topic: str = "Accounts", callback_url: str = HOOK) -> dict[str, Any]:
    return {"division": DIVISION, "topic": topic, "callback_url": callback_url}


def count(sb: Sandbox) -> int:
    return sb.count(DIVISION, SUBSCRIPTIONS)


# -- 1. subscribe/unsubscribe read only the first page of subscriptions --------------------------


def test_subscribing_again_reuses_a_subscription_beyond_the_first_page(tmp_path: Path) -> None:
    """Subscribing is documented as idempotent ("running it twice makes one"). With more than one
    page (60) of subscriptions in a division, it only looks at the first page and POSTs a
    duplicate: Exact then calls the callback twice for every change."""
    with bench(tmp_path) as (c, _hook):
        triggers = c.connector.triggers
        urls = [f"{HOOK}/{n}" for n in range(61)]
        for url in urls:
            assert triggers.subscribe(c.credential_id, inputs(callback_url=url))["ok"]
        assert count(c.sandbox) == 61

        again = [triggers.subscribe(c.credential_id, inputs(callback_url=url)) for url in urls]

        assert [r["data"]["created"] for r in again if r["data"]["created"]] == []
        assert count(c.sandbox) == 61


def test_unsubscribe_removes_a_subscription_beyond_the_first_page(tmp_path: Path) -> None:
    """Unsubscribe says ``deleted: false`` ("done already") for a subscription that exists but
    is not on the first page of the list: Exact keeps delivering to the callback."""
    with bench(tmp_path) as (c, _hook):
        triggers = c.connector.triggers
        urls = [f"{HOOK}/{n}" for n in range(61)]
        for url in urls:
            assert triggers.subscribe(c.credential_id, inputs(callback_url=url))["ok"]
        token = c.sandbox.issue_tokens()["access_token"]
        first_page = httpx.Client(transport=httpx.MockTransport(c.sandbox)).get(
            f"{EXACT}/api/v1/{DIVISION}/{SUBSCRIPTIONS}?$select=CallbackURL",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        on_first_page = {r["CallbackURL"] for r in first_page.json()["d"]["results"]}
        beyond = next(url for url in urls if url not in on_first_page)

        result = triggers.unsubscribe(c.credential_id, inputs(callback_url=beyond))

        assert result["ok"], result
        assert result["data"]["deleted"] is True
        assert count(c.sandbox) == 60


# -- 2. a malformed punycode host in the callback URL crashes subscribe --------------------------


@pytest.mark.parametrize("url", ["https://xn--zz.example.com/hook", "https://xn--a.example/hook"])
def test_a_malformed_punycode_callback_host_is_an_input_error_not_a_crash(
    tmp_path: Path, url: str
) -> None:
    """``subscribe`` promises an envelope for every input problem; a callback URL whose host is
    an invalid A-label (``xn--…``, a pasted punycode name with a typo) passes the schema and then
    escapes ``_check_callback`` as an idna exception (a traceback in the CLI)."""
    with bench(tmp_path) as (c, _hook):
        result = c.connector.triggers.subscribe(c.credential_id, inputs(callback_url=url))
        assert result["ok"] is False
        assert result["error"]["category"] == "user"
        paths = [e["path"] for e in result["error"]["details"]["errors"]]
        assert paths == ["$.callback_url"]
        assert count(c.sandbox) == 0


# -- 3. unsubscribe leaves a duplicate subscription behind ----------------------------------------


def test_two_workers_subscribing_at_once_and_one_unsubscribe_leave_no_subscription(
    tmp_path: Path,
) -> None:
    """Two engine workers subscribe the same callback at once (Exact answers the POST only after
    its validation round-trip to the callback, about a second): both find none and both POST.
    A later unsubscribe removes just one of the two and says ``deleted: true``; the other keeps
    delivering every change to the callback."""
    with bench(tmp_path) as (c, hook):
        key = KeyRing.from_bytes(generate_key())
        other_vault = Vault.open(tmp_path / "vault2", keys=key, clock=c.sandbox.clock)
        try:
            other = Connector(
                vault=other_vault,
                transport=httpx.MockTransport(c.sandbox),
                clock=c.sandbox.clock,
            )
            other_id = _sign_in(c.sandbox, other, EXACT, "worker-2")
            # worker 2 subscribes while worker 1's POST waits for Exact's validation request
            hook.during_validation = lambda: other.triggers.subscribe(other_id, inputs())
            first = c.connector.triggers.subscribe(c.credential_id, inputs())
            assert first["ok"], first
            assert count(c.sandbox) == 2  # the race itself (precondition)

            gone = c.connector.triggers.unsubscribe(c.credential_id, inputs())

            assert gone["ok"] and gone["data"]["deleted"] is True
            assert count(c.sandbox) == 0, "a subscription to the callback is left behind"
        finally:
            other_vault.close()


# -- 4. the sandbox: subscriptions are not kept per app --------------------------------------------


APP_A = SandboxApp(
    "11111111-1111-4111-8111-111111111111", "secret-a-" + "a" * 20,
    ("http://127.0.0.1:8976/callback",), "App A",
)  # fmt: skip
APP_B = SandboxApp(
    "22222222-2222-4222-8222-222222222222", "secret-b-" + "b" * 20,
    ("http://127.0.0.1:8976/callback",), "App B",
)  # fmt: skip


def _subscribed_by_app_b(sb: Sandbox) -> str:
    """App B's subscription to the same topic and callback the tests' app (A) uses: its ID."""
    token_b = sb.issue_tokens(app=APP_B)["access_token"]
    http_b = httpx.Client(
        transport=httpx.MockTransport(sb),
        base_url=f"{EXACT}/api/v1/{DIVISION}/",
        headers={"Authorization": f"Bearer {token_b}", "Accept": "application/json"},
    )
    made = http_b.post(SUBSCRIPTIONS, json={"CallbackURL": HOOK, "Topic": "Accounts"})
    assert made.status_code == 201, made.text
    return str(made.json()["d"]["ID"])


def test_sandbox_does_not_show_or_reuse_another_apps_subscription(tmp_path: Path) -> None:
    """API-FACTS: subscriptions are per division and user, "one app cannot see another's". In
    the sandbox, app A's subscribe reused app B's subscription (``created: false``, B's id), so
    A never got one of its own and no delivery signed with A's secret ever arrived."""
    with bench(tmp_path, apps=[APP_A, APP_B]) as (c, _hook):
        b_id = _subscribed_by_app_b(c.sandbox)
        result = c.connector.triggers.subscribe(c.credential_id, inputs())
        assert result["ok"], result
        assert result["data"]["id"] != b_id
        assert result["data"]["created"] is True


def test_sandbox_unsubscribe_does_not_delete_another_apps_subscription(tmp_path: Path) -> None:
    """App A's unsubscribe deleted app B's subscription in the sandbox (Exact would not let A
    see it)."""
    with bench(tmp_path, apps=[APP_A, APP_B]) as (c, _hook):
        _subscribed_by_app_b(c.sandbox)
        result = c.connector.triggers.unsubscribe(c.credential_id, inputs())
        assert result["ok"], result
        assert result["data"]["deleted"] is False
        assert count(c.sandbox) == 1


# -- 5. the sandbox never delivers some topics the form offers ------------------------------------


@pytest.mark.parametrize(
    ("topic", "endpoint", "change"),
    [
        ("GoodsDeliveries", "salesorder/GoodsDeliveries", {"Remarks": "left at the door"}),
        ("CostTransactions", "project/CostTransactions", {"Notes": "taxi"}),
    ],
)
def test_sandbox_delivers_changes_for_every_topic_the_form_offers(
    tmp_path: Path, topic: str, endpoint: str, change: dict[str, Any]
) -> None:
    """The webhook form offers GoodsDeliveries and CostTransactions (API-FACTS "Topics seen"),
    and the sandbox accepts a subscription to them and lets those records be changed, but never
    delivers a change: trying the trigger on the sandbox shows nothing at all."""
    with bench(tmp_path) as (c, hook):
        subscribed = c.connector.triggers.subscribe(c.credential_id, inputs(topic=topic))
        assert subscribed["ok"], subscribed
        token = c.sandbox.issue_tokens()["access_token"]
        http = httpx.Client(
            transport=httpx.MockTransport(c.sandbox),
            base_url=f"{EXACT}/api/v1/{DIVISION}/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        record = c.sandbox.records(DIVISION, endpoint)[0]
        key = record.get("EntryID") or record["ID"]
        answer = http.put(f"{endpoint}(guid'{key}')", json=change)
        assert answer.status_code == 204, answer.text
        c.sandbox.webhooks.drain()

        assert hook.deliveries() == [HOOK]


# -- 6. a lost answer to subscribe is reported as unsafe to retry ---------------------------------


def test_a_lost_answer_to_subscribe_is_settled_by_listing_again(tmp_path: Path) -> None:
    """Subscribe is idempotent (it lists first and reuses an equal subscription), yet a lost
    answer to its POST came back as ``outcome_unknown``, not retryable, telling the person to
    "check in Exact Online before running it again". Listing again settles it: the subscription
    the lost answer was about is returned."""
    with bench(tmp_path) as (c, _hook):
        c.sandbox.faults.add("drop", path_contains="WebhookSubscriptions", method="POST")
        lost = c.connector.triggers.subscribe(c.credential_id, inputs())
        assert lost["ok"], lost
        assert lost["data"]["created"] is True and count(c.sandbox) == 1
        again = c.connector.triggers.subscribe(c.credential_id, inputs())
        assert again["ok"] and again["data"]["created"] is False
        assert again["data"]["id"] == lost["data"]["id"]


def test_a_lost_answer_to_a_subscribe_that_made_nothing_says_run_it_again(
    tmp_path: Path,
) -> None:
    """A 500 to the POST (which may or may not have been processed: here it was not): nothing
    to find on listing again, so the step fails as retryable, saying running it again is safe."""
    with bench(tmp_path) as (c, _hook):
        c.sandbox.faults.add("error", path_contains="WebhookSubscriptions", method="POST")
        lost = c.connector.triggers.subscribe(c.credential_id, inputs())
        assert lost["ok"] is False, lost
        assert count(c.sandbox) == 0
        assert lost["error"]["code"] != "outcome_unknown"
        assert lost["error"]["retryable"] is True
        assert "check in Exact Online" not in lost["error"]["hint"]


# -- 7. the sandbox's own checks of a new subscription ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"CallbackURL": HOOK},
        {"CallbackURL": HOOK, "Topic": "NoSuchTopic"},
    ],
    ids=["no-topic", "unknown-topic"],
)
def test_sandbox_refuses_a_subscription_without_a_known_topic(
    tmp_path: Path, body: dict[str, Any]
) -> None:
    """API-FACTS: CallbackURL and Topic are both required. The sandbox creates a subscription
    with no Topic, or one no change is ever delivered for, answering 201: code tried against the
    sandbox passes and fails on Exact."""
    with bench(tmp_path) as (c, _hook):
        token = c.sandbox.issue_tokens()["access_token"]
        http = httpx.Client(
            transport=httpx.MockTransport(c.sandbox),
            base_url=f"{EXACT}/api/v1/{DIVISION}/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        answer = http.post(SUBSCRIPTIONS, json=body)
        assert answer.status_code == 400, answer.text
        assert count(c.sandbox) == 0


@pytest.mark.parametrize("url", ["https://[::1/hook", "https://xn--zz.example/hook"])
def test_sandbox_answers_400_for_an_unparsable_callback_url(url: str) -> None:
    """A CallbackURL that is not a URL makes the loopback sandbox fail with an internal error
    (500 "A problem has occurred", which the connector treats as a server fault) instead of
    Exact's 400 naming the callback URL: its validation POST catches only httpx.HTTPError."""
    sb = Sandbox(clock=ManualClock(), auto_consent=True, limits=False)
    token = sb.issue_tokens()["access_token"]
    with (
        serve(sb) as base,
        httpx.Client(base_url=f"{base}/api/v1/{DIVISION}/", trust_env=False) as http,
    ):
        answer = http.post(
            SUBSCRIPTIONS,
            json={"CallbackURL": url, "Topic": "Accounts"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
    assert answer.status_code == 400, answer.text
