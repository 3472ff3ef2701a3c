"""Change feeds: which endpoints a trigger can watch, and how their changes are read.

An endpoint can be watched when Exact has a ``sync/…`` twin for it (API-FACTS, "Sync feed"): the
twin lists every record ordered by its row version ``Timestamp``, 1,000 a page. Deletions come from
the one ``sync/Deleted`` feed of a division, told apart by ``EntityType`` code; only the codes the
facts name are used (2 accounts, 14 time and cost transactions, 21 projects), so "Deleted record"
is offered for those feeds alone. The sync twins of orders, invoices and quotations hold one row
per line: their events are per document, keyed by the document's own key. Webhook topics
(API-FACTS, "Topics seen") name the feed an event wakes. Everything here is derived from the
catalog plus the small tables below: a new sync endpoint in the catalog is a new feed without new
code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from exact_connector.catalog import Endpoint, catalog
from exact_connector.exceptions import InputError
from exact_connector.lists import field_names

__all__ = ["DELETED", "Feed", "feed", "feeds", "feeds_for_topic"]

DELETED = "sync/Deleted"
#: Sync endpoints whose regular endpoint the catalog cannot infer from the name.
_ORIGINS = {"sync/Project/TimeCostTransactions": "project/TimeTransactions"}
#: Rows of a shared sync feed that belong to the watched endpoint (field -> value).
_ROW_FILTERS: dict[str, tuple[str, int]] = {"project/TimeTransactions": ("Type", 1)}
#: ``sync/Deleted`` EntityType codes the facts name (API-FACTS, "Sync feed").
_ENTITY_TYPES = {
    "sync/CRM/Accounts": 2,
    "sync/Project/TimeCostTransactions": 14,
    "sync/Project/Projects": 21,
}
#: Webhook topics seen (API-FACTS, "Topics seen") -> the sync feed each one wakes.
_TOPICS = {
    "Accounts": "sync/CRM/Accounts",
    "Contacts": "sync/CRM/Contacts",
    "Items": "sync/Logistics/Items",
    "StockPositions": "sync/Inventory/StockPositions",
    "SalesOrders": "sync/SalesOrder/SalesOrders",
    "SalesInvoices": "sync/SalesInvoice/SalesInvoices",
    "PurchaseOrders": "sync/PurchaseOrder/PurchaseOrders",
    "GoodsDeliveries": "sync/SalesOrder/GoodsDeliveries",
    "TimeTransactions": "sync/Project/TimeCostTransactions",
    "CostTransactions": "sync/Project/TimeCostTransactions",
    "Documents": "sync/Documents/Documents",
    "Quotations": "sync/CRM/Quotations",
}


@dataclass(frozen=True, slots=True)
class Feed:
    """One watchable endpoint: its name, its sync twin, and how its deletions are recognised."""

    name: str
    sync: Endpoint
    key_field: str
    entity_type: int | None = None
    row_filter: tuple[str, int] | None = None
    #: The watched endpoint's fields, when the sync twin holds one row per line of a document
    #: (orders, invoices, quotations): an event is the document, made of these, once per poll.
    document_fields: frozenset[str] | None = None

    @property
    def deletions(self) -> bool:
        """Whether ``sync/Deleted`` can tell this feed's deletions apart."""
        return self.entity_type is not None

    @property
    def topics(self) -> tuple[str, ...]:
        """The webhook topics that wake this feed."""
        return tuple(topic for topic, sync in _TOPICS.items() if sync == self.sync.id)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every scalar field of the sync twin (its ``$select`` when none is chosen)."""
        return tuple(f.name for f in self.sync.fields if not f.collection and not f.obsolete)

    def checked_fields(self, names: Sequence[str], path: str = "$.select") -> list[str]:
        """Field names of the sync twin, spelt its way (Exact reads them case-sensitively); one
        it lacks is an input error at its place in ``path``: Exact would refuse every poll with a
        400, each counted toward its hourly error limit."""
        absent = f"{{name}} is not available in the change feed of {self.name}"
        return field_names(self.sync, names, path, absent)


def _feed_for(sync: Endpoint) -> Feed:
    origin = catalog().get(_ORIGINS.get(sync.id, "")) or catalog().origin(sync)
    name = origin.id if origin is not None else sync.id
    names = {f.name for f in sync.fields}
    document_fields = None
    if origin is not None and sync.field("LineNumber") and not origin.field("LineNumber"):
        # One row per line: its ID is the line's; the document's own key names the event.
        document_fields = frozenset(
            f.name for f in [*origin.fields, sync.field("Timestamp")] if f and f.name in names
        )
        names = set(document_fields)
    key = next((k for k in ("ID", origin and origin.primary_key) if k in names), "Timestamp")
    return Feed(
        name=name,
        sync=sync,
        key_field=str(key),
        entity_type=_ENTITY_TYPES.get(sync.id),
        row_filter=_ROW_FILTERS.get(name),
        document_fields=document_fields,
    )


@cache
def feeds() -> dict[str, Feed]:
    """Every watchable endpoint by lower-cased name, in catalog order."""
    found = [
        _feed_for(endpoint)
        for endpoint in catalog()
        if endpoint.service == "sync" and endpoint.id != DELETED
    ]
    return {f.name.lower(): f for f in found}


def feed(name: str, *, deletions: bool = False, path: str = "$.endpoint") -> Feed:
    """The feed for an endpoint name; an input error at ``path`` when it cannot be watched."""
    found = feeds().get(name.lower()) if isinstance(name, str) else None
    if found is None:
        raise InputError.at(path, "not_watchable", "has no sync API, so it cannot be watched")
    if deletions and not found.deletions:
        raise InputError.at(
            path, "no_deletions", "has no known sync/Deleted entity type, so deletions are unknown"
        )
    return found


def feeds_for_topic(topic: str) -> list[Feed]:
    """The feeds a webhook topic wakes (none for a topic this connector does not know)."""
    sync = _TOPICS.get(topic) if isinstance(topic, str) else None
    return [f for f in feeds().values() if f.sync.id == sync]
