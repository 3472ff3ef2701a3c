"""Webhooks in the sandbox: subscriptions that Exact validates, and signed deliveries.

Creating a ``webhooks/WebhookSubscriptions`` record first POSTs an empty body to its
``CallbackURL``; anything but 200 refuses the subscription (API-FACTS, "Webhooks and the sync
change feed"). Afterwards every create, update and delete of a record whose table has a topic is
delivered to each subscription for that topic in the division, as
``{"Content": {Topic, ClientId, Division, Action, Key, ExactOnlineEndpoint, EventCreatedOn},
"HashCode": …}`` with HashCode the upper-case hex HMAC-SHA256 of the raw Content text keyed with
the app's webhook secret. Deliveries go out from one background thread, in order, without
retries (Exact documents none); ``drop_next`` loses the next few, as Exact sometimes does, and
:meth:`SandboxWebhooks.drain` waits until every queued delivery was attempted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from exact_connector.clock import Clock
from exact_connector.sandbox.oauth import SandboxApp
from exact_connector.sandbox.seed import salt_of
from exact_connector.sandbox.wire import SandboxError

__all__ = ["TOPICS", "SandboxWebhooks", "webhook_secret"]

#: Table -> the webhook topic its changes are delivered under (API-FACTS, "Topics seen").
TOPICS = {
    "crm/accounts": "Accounts",
    "crm/contacts": "Contacts",
    "logistics/items": "Items",
    "project/timetransactions": "TimeTransactions",
    "salesorder/salesorders": "SalesOrders",
    "salesinvoice/salesinvoices": "SalesInvoices",
    "purchaseorder/purchaseorders": "PurchaseOrders",
    "documents/documents": "Documents",
    "crm/quotations": "Quotations",
    "salesorder/goodsdeliveries": "GoodsDeliveries",
    "project/costtransactions": "CostTransactions",
}
#: Every topic Exact is known to deliver (API-FACTS, "Topics seen"); the sandbox delivers those
#: of :data:`TOPICS`, and refuses a subscription to any other (or to none).
KNOWN_TOPICS = frozenset(
    {*TOPICS.values(), "StockPositions", "FinancialTransactions", "BankAccounts"}
)
SUBSCRIPTIONS = "webhooks/webhooksubscriptions"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_TIMEOUT = 5.0


def webhook_secret(seed: int, app: SandboxApp) -> str:
    """An app's webhook secret, fixed per sandbox seed (Exact shows it in the App Center)."""
    digest = hmac.new(str(salt_of(seed, "webhook")).encode(), app.client_id.encode(), "sha256")
    return digest.hexdigest()[:32]


class SandboxWebhooks:
    """Validates callbacks and delivers signed events; ``transport`` reaches the callbacks."""

    def __init__(
        self,
        clock: Clock,
        secret_for: Callable[[str], str | None],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self._secret_for = secret_for
        self._transport = transport
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._guard = threading.Lock()
        self.drop_next = 0
        #: (callback URL, HTTP status or 0 for no answer, dropped) of every delivery attempted.
        self.delivered: list[tuple[str, int, bool]] = []

    def validate(self, callback_url: object, topic: object) -> None:
        """Exact's checks of a new subscription: a topic it knows, and a callback URL that
        answers its validation request (an empty POST) with 200."""
        if not isinstance(topic, str) or not topic:
            raise SandboxError(400, "Topic is mandatory.")
        if topic not in KNOWN_TOPICS:
            raise SandboxError(400, f"Topic '{topic[:80]}' is not a webhook topic.")
        if not isinstance(callback_url, str) or not callback_url:
            raise SandboxError(400, "CallbackURL is mandatory.")
        try:
            url = httpx.URL(callback_url)
            host = url.host  # decoded, and so checked, here
        except (httpx.InvalidURL, ValueError):  # IDNA errors (xn--…) are ValueErrors
            raise SandboxError(400, "CallbackURL is not a valid URL.") from None
        # Exact takes https only; plain http to this machine stands in for it in the sandbox.
        if url.scheme != "https" and not (url.scheme == "http" and host in _LOOPBACK):
            raise SandboxError(400, "CallbackURL must be an https URL.")
        if self._post(callback_url, b"") != 200:
            raise SandboxError(
                400, "The callback URL did not answer the validation request with 200."
            )

    def changed(
        self,
        subscriptions: list[dict[str, Any]],
        table_id: str,
        action: str,
        key: Any,
        uri: str,
    ) -> None:
        """Queue a delivery of one change to every subscription for its table's topic."""
        topic = TOPICS.get(table_id.lower())
        if topic is None:
            return
        created = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for subscription in subscriptions:
            secret = self._secret_for(str(subscription.get("ClientID")))
            if subscription.get("Topic") != topic or secret is None:
                continue
            content = {
                "Topic": topic,
                "ClientId": subscription.get("ClientID"),
                "Division": subscription.get("Division"),
                "Action": action,
                "Key": key,
                "ExactOnlineEndpoint": uri,
                "EventCreatedOn": created,
            }
            raw = json.dumps(content, separators=(",", ":"))
            signature = hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest().upper()
            body = f'{{"Content":{raw},"HashCode":"{signature}"}}'.encode()
            self._queue.put((str(subscription["CallbackURL"]), body))
        self._start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued delivery was attempted."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("webhook deliveries are still queued")
                self._queue.all_tasks_done.wait(remaining)

    def _start(self) -> None:
        with self._guard:
            if self._worker is None:
                self._worker = threading.Thread(target=self._deliver, daemon=True)
                self._worker.start()

    def _deliver(self) -> None:
        while True:
            url, body = self._queue.get()
            try:
                with self._guard:
                    dropped = self.drop_next > 0
                    self.drop_next -= dropped
                status = 0 if dropped else self._post(url, body)
                self.delivered.append((url, status, dropped))
            finally:
                self._queue.task_done()

    def _post(self, url: str, body: bytes) -> int:
        # A client per request: no pooled connection to a callback outlives its delivery.
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            with httpx.Client(transport=self._transport, timeout=_TIMEOUT, trust_env=False) as http:
                return http.post(url, content=body, headers=headers).status_code
        except httpx.HTTPError:
            return 0
