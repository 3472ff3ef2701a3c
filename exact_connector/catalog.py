"""The Exact Online endpoint catalog: which endpoints exist, their methods, keys and fields.

The data is ``data/endpoints.json`` (facts merged from public descriptions of Exact's reference
documentation; see ``data/PROVENANCE.md``). It is loaded lazily, once per process. An endpoint's
identity is ``service/Endpoint`` as it appears in the URL after the division, e.g.
``project/TimeTransactions`` or ``bulk/CRM/Accounts``; lookups are case-insensitive and return the
canonical spelling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Literal

from exact_connector.exceptions import UnknownEndpoint
from exact_connector.odata import KEY_TYPES

__all__ = ["ENDPOINT_PATTERN", "Catalog", "Endpoint", "Field", "catalog"]

Kind = Literal["regular", "bulk", "sync", "function"]
Method = Literal["GET", "POST", "PUT", "DELETE"]

#: A typed-in endpoint: two to four segments of ASCII letters, nothing else (no dots, escapes,
#: query strings or hosts can pass).
ENDPOINT_PATTERN = re.compile(r"[A-Za-z]{1,40}(/[A-Za-z]{1,60}){1,3}", re.ASCII)

_PAGE_SIZE: dict[str, int] = {"regular": 60, "function": 60, "bulk": 1000, "sync": 1000}
_TWIN_PREFIXES = ("bulk", "sync")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|\s+")


@dataclass(frozen=True, slots=True)
class Field:
    """One property of an endpoint's records."""

    name: str
    type: str
    key: bool = False
    readonly: bool = False
    mandatory: bool = False
    post_only: bool = False
    obsolete: bool = False
    collection: bool = False

    @property
    def writable(self) -> bool:
        """Whether a POST or PUT may set this field."""
        return not (self.key or self.readonly or self.collection)

    @property
    def navigation(self) -> bool:
        """Whether the field links to other records (Exact sends it as ``__deferred`` unless it
        is expanded): a collection, a model (``Exact.Web.Api.Models.…``) or a list (``php:…[]``)."""
        kind = self.type
        return self.collection or kind.endswith("[]") or not kind.startswith(("Edm.", "php:"))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One Exact Online REST resource."""

    service: str
    name: str
    path: str
    methods: frozenset[str]
    primary_key: str | tuple[str, ...] | None
    kind: Kind
    fields: tuple[Field, ...] = ()
    function_type: str | None = None
    beta: bool = False
    division_in_path: bool = True
    scope: str | None = None
    _by_name: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        """Canonical ``service/Endpoint``."""
        return f"{self.service}/{self.name}"

    @property
    def title(self) -> str:
        """The name in words, as a person searches for it: ``Time Transactions``."""
        return _CAMEL.sub(" ", self.name.replace("/", " ")).strip()

    @property
    def page_size(self) -> int:
        """Rows per page Exact returns for a list on this endpoint."""
        return _PAGE_SIZE[self.kind]

    @property
    def key_field(self) -> Field | None:
        """The primary key's field, for single-column keys with a known type."""
        if not isinstance(self.primary_key, str):
            return None
        return self._by_name.get(self.primary_key.lower())

    @property
    def key_type(self) -> str | None:
        """The Edm type of a single-column primary key (``Edm.Guid`` for most)."""
        key = self.key_field
        return key.type if key is not None else None

    @property
    def writable_fields(self) -> tuple[Field, ...]:
        """Fields a POST or PUT may set, obsolete ones excluded."""
        return tuple(f for f in self.fields if f.writable and not f.obsolete)

    @property
    def mandatory_fields(self) -> tuple[Field, ...]:
        """Fields Exact requires on create."""
        return tuple(f for f in self.fields if f.mandatory)

    def field(self, name: str) -> Field | None:
        """A field by name, case-insensitively."""
        return self._by_name.get(name.lower())

    def supports(self, method: str) -> bool:
        """Whether the endpoint accepts this HTTP method."""
        return method.upper() in self.methods

    @property
    def is_record_endpoint(self) -> bool:
        """A regular resource with a single primary key of a type a key literal can be written
        for (:data:`~exact_connector.odata.KEY_TYPES`): records can be addressed by key."""
        return (
            self.kind != "function"
            and isinstance(self.primary_key, str)
            and (self.key_type or "Edm.Guid") in KEY_TYPES
        )


def _endpoint_from(raw: dict[str, Any]) -> Endpoint:
    fields = tuple(
        Field(
            name=f["name"],
            type=f["type"],
            key=bool(f.get("key")),
            readonly=bool(f.get("readonly")),
            mandatory=bool(f.get("mandatory")),
            post_only=bool(f.get("post_only")),
            obsolete=bool(f.get("obsolete")),
            collection=bool(f.get("collection")),
        )
        for f in raw.get("fields", [])
    )
    key = raw.get("primary_key")
    return Endpoint(
        service=raw["service"],
        name=raw["endpoint"],
        path=raw["path"],
        methods=frozenset(m.upper() for m in raw["methods"]),
        primary_key=tuple(key) if isinstance(key, list) else key,
        kind=raw["kind"],
        fields=fields,
        function_type=raw.get("function_type"),
        beta=bool(raw.get("beta")),
        division_in_path=bool(raw.get("division_in_path", True)),
        scope=raw.get("scope"),
        _by_name={f.name.lower(): f for f in fields},
    )


class Catalog:
    """Lookups over the endpoint list; build once with :func:`catalog`."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        """From the catalog file's entries; each becomes an :class:`Endpoint` when first used
        (a step uses one or two of 455, and building them all costs a process start ~25 ms)."""
        self._entries = {f"{raw['service']}/{raw['endpoint']}".lower(): raw for raw in entries}
        self._built: dict[str, Endpoint] = {}

    def _endpoint(self, key: str) -> Endpoint | None:
        endpoint = self._built.get(key)
        if endpoint is None and (raw := self._entries.get(key)) is not None:
            endpoint = self._built[key] = _endpoint_from(raw)
        return endpoint

    @cached_property
    def _endpoints(self) -> tuple[Endpoint, ...]:
        built = (self._endpoint(key) for key in sorted(self._entries))
        return tuple(endpoint for endpoint in built if endpoint is not None)

    def __len__(self) -> int:
        return len(self._endpoints)

    def __iter__(self) -> Any:
        return iter(self._endpoints)

    def get(self, name: str) -> Endpoint | None:
        """The endpoint named ``service/Endpoint`` (any case), or None."""
        return self._endpoint(name.lower()) if ENDPOINT_PATTERN.fullmatch(name) else None

    def lookup(self, name: str) -> Endpoint:
        """Like :meth:`get`, but an unknown or malformed name raises :class:`UnknownEndpoint`."""
        if not isinstance(name, str) or not ENDPOINT_PATTERN.fullmatch(name):
            raise UnknownEndpoint(
                "The endpoint must be written as service/Endpoint using letters only.",
                errors=[
                    {"path": "$.endpoint", "code": "pattern", "message": "not service/Endpoint"}
                ],
            )
        endpoint = self._endpoint(name.lower())
        if endpoint is None:
            raise UnknownEndpoint(
                "This endpoint is not in the Exact Online catalog.",
                errors=[{"path": "$.endpoint", "code": "unknown", "message": "not in the catalog"}],
            )
        return endpoint

    def options(self, method: str | None = None, search: str | None = None) -> list[Endpoint]:
        """Endpoints for a dropdown: records addressable with ``method``, matching ``search``.

        For DELETE and PUT this means endpoints whose records can be addressed by key (see
        :attr:`Endpoint.is_record_endpoint`); for POST it also admits POST actions.
        """
        result = []
        words = (search or "").lower().split()
        for endpoint in self._endpoints:
            if method is not None:
                if not endpoint.supports(method):
                    continue
                if method.upper() in ("PUT", "DELETE") and not endpoint.is_record_endpoint:
                    continue
            if words and not _matches(endpoint, words):
                continue
            result.append(endpoint)
        return result

    def twin(self, endpoint: Endpoint, kind: Literal["bulk", "sync"]) -> Endpoint | None:
        """The bulk or sync variant of a regular endpoint: crm/Accounts -> bulk/CRM/Accounts."""
        if endpoint.kind != "regular" or endpoint.beta or "/" in endpoint.name:
            return None
        return self._endpoint(f"{kind}/{endpoint.service}/{endpoint.name}".lower())

    def sync_api(self, endpoint: Endpoint) -> Endpoint | None:
        """The sync endpoint mirroring a regular endpoint or its bulk twin (Exact makes a
        ``$filter`` mandatory on lists of those: API-FACTS §3)."""
        regular = self.origin(endpoint) if endpoint.kind == "bulk" else endpoint
        return self.twin(regular, "sync") if regular is not None else None

    def origin(self, endpoint: Endpoint) -> Endpoint | None:
        """The regular endpoint a bulk or sync endpoint mirrors, if the catalog has it."""
        if endpoint.kind not in _TWIN_PREFIXES:
            return None
        return self._endpoint(endpoint.name.lower())


def _matches(endpoint: Endpoint, words: list[str]) -> bool:
    """Every word of a search occurs in the endpoint's id or title (``time transactions``)."""
    haystack = f"{endpoint.id} {endpoint.title}".lower()
    return all(word in haystack for word in words)


@cache
def catalog() -> Catalog:
    """The process-wide catalog, loaded on first use."""
    text = resources.files("exact_connector").joinpath("data/endpoints.json").read_text("utf-8")
    return Catalog(json.loads(text))
