"""Records as Exact writes them: ``__metadata``, ``/Date(ms)/``, ``__deferred`` links, next links.

A renderer is planned once per request (which fields, how each is written) and then applied to
every row of the page, so a page costs O(rows * selected fields). Numbers, ``Edm.Int64``
(``Timestamp``) included, are JSON numbers as Exact's clients read them; ``__count`` is a string,
as OData v2 writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from exact_connector.catalog import Endpoint
from exact_connector.sandbox.links import singular
from exact_connector.sandbox.store import Key, Row, TableSpec, edm_type

__all__ = ["Readable", "Renderer", "next_link", "type_name", "uri_literal"]

_MODELS = "Exact.Web.Api.Models."
#: Model names that are not the endpoint's name made singular (seen in recorded answers).
_TYPE_NAMES = {
    "current/me": "System.Me",
    "system/alldivisions": "System.Division",
    "system/divisions": "System.Division",
    "system/users": "System.User",
    "hrm/divisions": "HRM.Division",
}
_SAFE = "$'(),:*/"
_PLAIN, _DATE, _DEFERRED, _EXPANDED = range(4)


class Readable(Protocol):
    """What listing and rendering need of a table (the store's, or a fixed one)."""

    spec: TableSpec

    def getter(self, name: str) -> Callable[[Row], Any]: ...

    def get(self, key: Key) -> Row | None: ...

    def by_timestamp(self, timestamp: int) -> tuple[Key, Row] | None: ...

    def scan(self, by_timestamp: bool, start: Any = None, inclusive: bool = False) -> Any: ...


def type_name(endpoint: Endpoint) -> str:
    """``Exact.Web.Api.Models.Account`` for crm/Accounts, and so on."""
    name = _TYPE_NAMES.get(endpoint.id.lower()) or singular(endpoint.name.split("/")[-1])
    return _MODELS + name


def uri_literal(value: Any, edm: str) -> str:
    """A key as it appears in a URI: ``guid'…'``, ``12``, ``12L`` (Int64), ``'EUR'``."""
    if edm == "Edm.Guid":
        return f"guid'{value}'"
    if edm == "Edm.String":
        return "'" + str(value).replace("'", "''") + "'"
    return f"{value}L" if edm == "Edm.Int64" else str(value)


def next_link(base: str, params: Sequence[tuple[str, str]], skiptoken: str, top: int | None) -> str:
    """The absolute ``__next``: the same query, ``$skiptoken`` added, ``$top`` reduced (``$skip``
    is spent: the skiptoken already stands past the skipped rows)."""
    dropped = ("$skiptoken", "$top", "$skip")
    kept = [(name, value) for name, value in params if name not in dropped]
    if top is not None:
        kept.append(("$top", str(top)))
    kept.append(("$skiptoken", skiptoken))
    return base + "?" + "&".join(f"{quote(n, safe='$')}={quote(v, safe=_SAFE)}" for n, v in kept)


class Renderer:
    """Rows of one table as records of one endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        table: Readable,
        collection_uri: str,
        select: Sequence[str] | None = None,
        expanded: Mapping[str, Callable[[Row], list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.type_name = type_name(endpoint)
        self.collection_uri = collection_uri
        wanted = None if select is None or "*" in select else set(select)
        plan: list[tuple[str, int, Callable[[Row], Any]]] = []
        for field in endpoint.fields:
            if wanted is not None and field.name not in wanted:
                continue
            kind = edm_type(field)
            how = _DATE if kind == "Edm.DateTime" else _PLAIN
            read = table.getter(field.name)
            if not kind:
                how = _DEFERRED
                if expanded is not None and field.name in expanded:
                    how, read = _EXPANDED, expanded[field.name]
            plan.append((field.name, how, read))
        self._plan = plan
        key_name = endpoint.primary_key if isinstance(endpoint.primary_key, str) else None
        key_field = endpoint.field(key_name) if key_name else None
        self.key_edm = edm_type(key_field) if key_field is not None else ""
        self._key = table.getter(key_field.name) if key_field is not None and self.key_edm else None
        self._key_name = key_field.name if key_field is not None else None

    def uri(self, row: Row) -> str:
        """The record's own URI (the collection's when it has no single key)."""
        if self._key is None:
            return self.collection_uri
        return f"{self.collection_uri}({uri_literal(self._key(row), self.key_edm)})"

    def __call__(self, row: Row) -> dict[str, Any]:
        uri = self.uri(row)
        record: dict[str, Any] = {"__metadata": {"uri": uri, "type": self.type_name}}
        for name, how, get in self._plan:
            if how == _PLAIN:
                record[name] = get(row)
            elif how == _DATE:
                value = get(row)
                record[name] = None if value is None else f"/Date({value})/"
            elif how == _DEFERRED:
                record[name] = {"__deferred": {"uri": f"{uri}/{name}"}}
            else:
                record[name] = {"results": list(get(row) or [])}
        return record

    def key_only(self, row: Row) -> dict[str, Any]:
        """What a POST without ``Prefer: return=representation`` gets: the key, the rest null."""
        keep = ("__metadata", self._key_name)
        return {name: (value if name in keep else None) for name, value in self(row).items()}
