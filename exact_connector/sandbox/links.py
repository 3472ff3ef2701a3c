"""Parents and their lines: which collection property lists which child table, and by what link.

Derived from the catalog, so no endpoint needs Python of its own: a collection property such as
``SalesInvoiceLines`` of ``salesinvoice/SalesInvoices`` names the endpoint
``salesinvoice/SalesInvoiceLines`` of the same service, and each line points back at its parent
through a GUID field named after the parent's key (``InvoiceID``, ``EntryID``, ``OrderID``), or
after the parent's own name made singular (``Account`` on ``crm/BankAccounts``, ``Project`` on
``project/InvoiceTerms``), or that plus ``ID``. This is the shape of Exact's recorded
``SalesInvoices?$expand=SalesInvoiceLines`` answer (tests/sandbox/recorded).

Seeded line ``i`` belongs to seeded parent ``i mod parents``, so with tables of equal size every
seeded invoice has a line, as real ones do, and a larger line table gives parents several.
``$expand`` lists a parent's lines from the child table itself, so a line created, changed or
deleted through its own endpoint shows in its parent's expansion at once.

A document (an order, invoice or quotation) is a parent whose sync twin holds one row per line: a
``LineNumber`` its regular endpoint lacks. Its lines are its children with a ``LineNumber``; a
write to one of them saves the document, as Exact's does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from exact_connector.catalog import Endpoint, catalog
from exact_connector.sandbox.seed import Linked

__all__ = [
    "Link",
    "child_links",
    "document_lines",
    "document_of",
    "group_by",
    "link_generator",
    "parent_link",
    "singular",
]


@dataclass(frozen=True)
class Link:
    """A parent's collection property and the child table whose ``field`` holds the parent key."""

    navigation: str
    parent: str
    child: str
    field: str


def singular(word: str) -> str:
    """``Invoices`` -> ``Invoice``, ``Entries`` -> ``Entry`` (Exact's model names)."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def _link_field(parent: Endpoint, child: Endpoint) -> str | None:
    own = singular(parent.name.rsplit("/", 1)[-1])
    key = parent.primary_key if isinstance(parent.primary_key, str) else None
    for name in (key, own, own + "ID"):
        found = child.field(name) if name else None
        if found is not None and not found.key and found.type == "Edm.Guid":
            return found.name
    return None


@cache
def _all() -> tuple[dict[str, dict[str, Link]], dict[str, dict[str, str]]]:
    by_parent: dict[str, dict[str, Link]] = {}
    by_child: dict[str, dict[str, str]] = {}
    for parent in catalog():
        if parent.kind != "regular":
            continue
        for nav in (f for f in parent.fields if f.collection):
            child = catalog().get(f"{parent.service}/{nav.name}")
            field = _link_field(parent, child) if child is not None else None
            if child is None or child.kind != "regular" or field is None:
                continue
            link = Link(nav.name, parent.id, child.id, field)
            by_parent.setdefault(parent.id.lower(), {})[nav.name] = link
            by_child.setdefault(child.id.lower(), {})[field] = parent.id
    return by_parent, by_child


@cache
def _documents() -> dict[str, list[Link]]:
    """Document table -> the links to its lines, in property order."""
    documents: dict[str, list[Link]] = {}
    for links in _all()[0].values():
        for link in links.values():
            parent, child = catalog().lookup(link.parent), catalog().lookup(link.child)
            sync = catalog().twin(parent, "sync")
            per_line = sync is not None and sync.field("LineNumber") is not None
            if per_line and not parent.field("LineNumber") and child.field("LineNumber"):
                documents.setdefault(parent.id.lower(), []).append(link)
    return documents


@cache
def _lines_of_documents() -> dict[str, Link]:
    return {link.child.lower(): link for links in _documents().values() for link in links}


def child_links(table_id: str) -> dict[str, Link]:
    """A parent table's linked collection properties, by property name."""
    return _all()[0].get(table_id.lower(), {})


def parent_link(table_id: str, field: str) -> str | None:
    """The parent table a child table's field points at, if it is a link field."""
    return _all()[1].get(table_id.lower(), {}).get(field)


def document_lines(table_id: str) -> list[Link]:
    """A document table's links to its lines (none for a table that is not a document)."""
    return _documents().get(table_id.lower(), [])


def document_of(table_id: str) -> Link | None:
    """The link from a table of a document's lines to the document, if it is one."""
    return _lines_of_documents().get(table_id.lower())


def link_generator(parent: Linked) -> Callable[[int], Any]:
    """Seeded line ``i`` -> the key of seeded parent ``i mod parents``."""
    return lambda i: parent.seed_key(i % parent.seeded) if parent.seeded else None


def group_by(rows: Iterable[tuple[Any, Any]], read: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    """Rows grouped by the parent key they hold, in the child table's key order."""
    groups: dict[Any, list[Any]] = {}
    for _, row in rows:
        groups.setdefault(read(row), []).append(row)
    return groups
