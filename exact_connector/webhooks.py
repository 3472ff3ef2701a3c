"""Webhook subscriptions: subscribe and unsubscribe a callback for a topic, both idempotent.

A subscription lives in ``webhooks/WebhookSubscriptions`` of one division, per app and user
(API-FACTS, "Webhooks and the sync change feed"). Subscribing first lists the existing ones and
reuses a subscription for the same topic and callback URL, so running it twice makes one; only
when none exists is one POSTed (Exact then sends its empty validation POST to the callback).
Unsubscribing deletes that subscription if there is one. Callback URLs must be https; a plain
http loopback URL is accepted for the sandbox only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from exact_connector.catalog import catalog
from exact_connector.exceptions import InputError
from exact_connector.odata import key_literal, unwrap_page, unwrap_record
from exact_connector.pagination import read_json

if TYPE_CHECKING:
    from exact_connector.client import ExactClient

__all__ = ["SUBSCRIPTIONS", "subscribe", "unsubscribe"]

SUBSCRIPTIONS = "webhooks/WebhookSubscriptions"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def subscribe(client: ExactClient, division: int, topic: str, callback_url: str) -> dict[str, Any]:
    """The subscription for ``topic`` at ``callback_url``: the existing one, or a new one."""
    _check_callback(client, callback_url)
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    existing = _find(client, division, topic, callback_url)
    if existing is not None:
        return {"id": existing, "topic": topic, "callback_url": callback_url, "created": False}
    response = client.request(
        "POST",
        client.url(endpoint, division),
        endpoint=endpoint,
        division=division,
        json={"CallbackURL": callback_url, "Topic": topic},
    )
    created = unwrap_record(read_json(response))
    return {"id": created.get("ID"), "topic": topic, "callback_url": callback_url, "created": True}


def unsubscribe(
    client: ExactClient, division: int, topic: str, callback_url: str
) -> dict[str, Any]:
    """Remove the subscription for ``topic`` at ``callback_url``; done already if there is none."""
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    existing = _find(client, division, topic, callback_url)
    if existing is not None:
        url = client.url(endpoint, division, key_literal(existing, "Edm.Guid"))
        client.request("DELETE", url, endpoint=endpoint, division=division)
    return {"id": existing, "topic": topic, "callback_url": callback_url, "deleted": bool(existing)}


def _find(client: ExactClient, division: int, topic: str, callback_url: str) -> str | None:
    endpoint = catalog().lookup(SUBSCRIPTIONS)
    url = client.url(endpoint, division, params={"$select": "ID,CallbackURL,Topic"})
    response = client.request("GET", url, endpoint=endpoint, division=division)
    for record in unwrap_page(read_json(response)).records:
        if record.get("Topic") == topic and record.get("CallbackURL") == callback_url:
            return str(record.get("ID"))
    return None


def _check_callback(client: ExactClient, callback_url: str) -> None:
    try:
        url = httpx.URL(callback_url)
    except (httpx.InvalidURL, TypeError):
        raise InputError.at("$.callback_url", "format", "is not a URL") from None
    sandbox_loopback = client.origin.is_sandbox and url.host in _LOOPBACK
    if url.scheme != "https" and not (url.scheme == "http" and sandbox_loopback):
        raise InputError.at("$.callback_url", "https", "must be an https URL")
    if not url.host or url.userinfo:
        raise InputError.at("$.callback_url", "format", "must name a host and no user")
