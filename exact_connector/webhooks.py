"""Webhook subscriptions: subscribe and unsubscribe a callback for a topic, both idempotent.

A subscription lives in ``webhooks/WebhookSubscriptions`` of one division, per app and user
(API-FACTS, "Webhooks and the sync change feed"). Subscribing first lists the existing ones and
reuses a subscription for the same topic and callback URL, so running it twice makes one; only
when none exists is one POSTed (Exact then sends its empty validation POST to the callback).
Unsubscribing deletes every subscription for them (workers subscribing at once can make two).
Callback URLs must be https; a plain http loopback URL is accepted for the sandbox only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from exact_connector.catalog import catalog
from exact_connector.exceptions import InputError, OutcomeUnknown, TransientError
from exact_connector.odata import key_literal, unwrap_record
from exact_connector.pagination import Pager, read_json

if TYPE_CHECKING:
    from exact_connector.client import ExactClient

__all__ = ["SUBSCRIPTIONS", "subscribe", "unsubscribe"]

SUBSCRIPTIONS = "webhooks/WebhookSubscriptions"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def subscribe(client: ExactClient, division: int, topic: str, callback_url: str) -> dict[str, Any]:
    """The subscription for ``topic`` at ``callback_url``: the existing one, or a new one.

    An answer to the POST that was lost is settled by listing again (subscribing is idempotent):
    the subscription found is the one made; none found means none was made, and the step may
    simply run again.
    """
    _check_callback(client, callback_url)
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    existing = _find(client, division, topic, callback_url)
    if existing:
        return {"id": existing[0], "topic": topic, "callback_url": callback_url, "created": False}
    try:
        response = client.request(
            "POST",
            client.url(endpoint, division),
            endpoint=endpoint,
            division=division,
            json={"CallbackURL": callback_url, "Topic": topic},
        )
    except OutcomeUnknown as lost:
        made = _find(client, division, topic, callback_url)
        if not made:
            raise TransientError(
                "The answer to the subscription was lost, and Exact Online lists no "
                "subscription for this topic and callback URL: none was made.",
                details={**lost.details, "topic": topic},
                hint="Run the step again: subscribing makes one subscription however often.",
            ) from None
        return {"id": made[0], "topic": topic, "callback_url": callback_url, "created": True}
    created = unwrap_record(read_json(response))
    return {"id": created.get("ID"), "topic": topic, "callback_url": callback_url, "created": True}


def unsubscribe(
    client: ExactClient, division: int, topic: str, callback_url: str
) -> dict[str, Any]:
    """Remove the subscriptions for ``topic`` at ``callback_url`` (two workers subscribing at
    once can make two: each would deliver every change); done already if there are none."""
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    existing = _find(client, division, topic, callback_url)
    for found in existing:
        url = client.url(endpoint, division, key_literal(found, "Edm.Guid"))
        client.request("DELETE", url, endpoint=endpoint, division=division)
    first = existing[0] if existing else None
    return {"id": first, "topic": topic, "callback_url": callback_url, "deleted": bool(existing)}


def _find(client: ExactClient, division: int, topic: str, callback_url: str) -> list[str]:
    """The IDs of the subscriptions for ``topic`` at ``callback_url``, from every page."""
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    url = client.url(endpoint, division, params={"$select": "ID,CallbackURL,Topic"})
    return [
        str(record.get("ID"))
        for record in Pager(client, endpoint, division, url)
        if record.get("Topic") == topic and record.get("CallbackURL") == callback_url
    ]


def _check_callback(client: ExactClient, callback_url: str) -> None:
    try:
        url = httpx.URL(callback_url)
        scheme, host, user = url.scheme, url.host, url.userinfo  # the host is decoded here
    except (httpx.InvalidURL, TypeError, ValueError):  # IDNA errors (xn--…) are ValueErrors
        raise InputError.at("$.callback_url", "format", "is not a URL") from None
    sandbox_loopback = client.origin.is_sandbox and host in _LOOPBACK
    if scheme != "https" and not (scheme == "http" and sandbox_loopback):
        raise InputError.at("$.callback_url", "https", "must be an https URL")
    if not host or user:
        raise InputError.at("$.callback_url", "format", "must name a host and no user")
