"""Dynamic dropdowns: what ``options_from`` in a form spec resolves to.

Static sources come from the catalog; live sources (divisions, projects, employees, hour types,
accounts, and the records of an endpoint) ask Exact Online: one call, at most ``LIVE_LIMIT``
options, narrowed by ``search``. Every option is ``{"value": …, "label": …}`` plus an optional
``description``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from exact_connector.catalog import Endpoint, catalog
from exact_connector.datamanager import data_manager_schema
from exact_connector.exceptions import (
    ConfigError,
    CredentialNotActive,
    DivisionNotAllowed,
    ExactConnectorError,
    ExactRejected,
    InputError,
)
from exact_connector.feeds import feed, feeds
from exact_connector.lists import filter_demanded
from exact_connector.odata import canonical_integer, filter_literal, parse_date
from exact_connector.pagination import Pager
from exact_connector.validation import unsendable

if TYPE_CHECKING:
    from exact_connector.client import ExactClient
    from exact_connector.vault import Credential

__all__ = ["LIVE_LIMIT", "LIVE_SOURCES", "STATIC_SOURCES", "serve_options"]

Option = dict[str, Any]
LIVE_LIMIT = 60
"""The most options a live source gives: one page of a regular endpoint, so one API call."""


@dataclass(frozen=True, slots=True)
class _Live:
    """A lookup of records in a division: which endpoint, which fields make value and label."""

    endpoint: str
    label_fields: tuple[str, ...]
    search_field: str
    fixed_filter: str | None = None
    order_by: str | None = None


#: Live lookups by source name, for the Data Manager's GUID fields.
LIVE_SOURCES: dict[str, _Live] = {
    "accounts": _Live("crm/Accounts", ("Code", "Name"), "Name", order_by="Name"),
    "employees": _Live("payroll/Employees", ("Code", "FullName"), "FullName", order_by="FullName"),
    "hour_types": _Live(
        "logistics/Items", ("Code", "Description"), "Description", "IsTime eq 1", "Code"
    ),
    "projects": _Live("project/Projects", ("Code", "Description"), "Description", order_by="Code"),
}
#: The longest search a dropdown takes (characters).
SEARCH_MAX = 100
#: Field types a search can look into.
_TEXT_TYPES = frozenset({"Edm.String", "php:string"})
#: How a record of an endpoint is named in a dropdown: these fields, where the endpoint has them.
_RECORD_LABELS = ("Code", "Name", "FullName", "Description", "Date", "ProjectCode", "Quantity")
_RECORD_LABEL_COUNT = 3


def _endpoints(params: dict[str, Any]) -> list[Option]:
    method = params.get("method")
    if method is not None and method not in ("GET", "POST", "PUT", "DELETE"):
        raise InputError(
            "method must be GET, POST, PUT or DELETE.",
            errors=[{"path": "$.method", "code": "enum", "message": "unknown method"}],
        )
    return [
        {"value": e.id, "label": e.id, "description": f"{e.kind}; {', '.join(sorted(e.methods))}"}
        for e in catalog().options(method, params.get("search"))
    ]


def _fields_of(endpoint_id: str, writable_only: bool) -> list[Option]:
    endpoint = catalog().lookup(endpoint_id)
    fields = endpoint.writable_fields if writable_only else endpoint.fields
    return [
        {
            "value": f.name,
            "label": f.name,
            "description": f.type.removeprefix("Edm.") + (", required" if f.mandatory else ""),
        }
        for f in fields
        if not f.collection
    ]


def _time_transaction_fields(params: dict[str, Any]) -> list[Option]:
    """The Data Manager's fields with their labels, help and the schema each is filled with."""
    properties = data_manager_schema()["$defs"]["fields"]["properties"]
    return [
        {
            "value": option["value"],
            "label": properties[option["value"]]["title"],
            "description": properties[option["value"]]["description"],
            "schema": properties[option["value"]],
        }
        for option in _fields_of("project/TimeTransactions", writable_only=True)
    ]


def _watchable(params: dict[str, Any]) -> list[Option]:
    """Endpoints a polling trigger can watch; ``deletions=true``: those whose deletions show."""
    deletions = params.get("deletions") == "true"
    needle = str(params.get("search") or "").lower()
    return [
        {"value": f.name, "label": f.name, "description": f"changes read from {f.sync.id}"}
        for f in feeds().values()
        if (f.deletions or not deletions) and needle in f.name.lower()
    ]


def _feed_fields(params: dict[str, Any]) -> list[Option]:
    """The fields a polling trigger on the endpoint can read: its change feed's (the sync twin
    lacks some of the endpoint's own), and of a feed of document lines only the document's, of
    which an event is made."""
    watched = feed(str(params.get("endpoint", "")))
    whole = watched.document_fields
    offered = {name for name in watched.fields if whole is None or name in whole}
    return [
        {"value": f.name, "label": f.name, "description": f.type.removeprefix("Edm.")}
        for f in watched.sync.fields
        if f.name in offered
    ]


_STATIC: dict[str, Callable[[dict[str, Any]], list[Option]]] = {
    "endpoints": _endpoints,
    "watchable_endpoints": _watchable,
    "endpoint_fields": lambda p: _fields_of(str(p.get("endpoint", "")), writable_only=False),
    "feed_fields": _feed_fields,
    "time_transaction_fields": _time_transaction_fields,
}
STATIC_SOURCES = frozenset(_STATIC)
"""Sources served from the catalog alone: no credential, no API call."""


def serve_options(
    source: str,
    client: ExactClient | None,
    credential: Credential | None,
    params: dict[str, Any],
) -> list[Option]:
    """The options of ``source`` (a name, optionally with ``?key=value`` parameters).

    A ``{placeholder}`` left in the query must be given in ``params``; it never falls back to a
    default (a list of the wrong division looks right and is not).
    """
    name, _, query = source.partition("?")
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if not (value.startswith("{") and value.endswith("}")):
            params = {key: value, **params}
        elif params.get(key) in (None, ""):
            raise InputError(
                f"The options '{name}' need {key}: fill {value} or pass {key}=….",
                errors=[
                    {"path": f"$.{key}", "code": "required", "message": "placeholder unfilled"}
                ],
            )
    problems = unsendable(params)
    if problems:
        raise InputError("The options' parameters are not valid.", errors=problems)
    if name in _STATIC:
        return _STATIC[name](params)
    if client is None or credential is None:
        raise ConfigError(
            f"The options '{name}' need a credential."
            if name in ("divisions", "records", *LIVE_SOURCES)
            else "Unknown options source.",
            details={"source": name},
        )
    if name == "divisions":
        return _divisions(client, credential, params)
    if name == "records":
        return _records(client, credential, params)
    if name in LIVE_SOURCES:
        return _live(LIVE_SOURCES[name], client, credential, params)
    raise ConfigError("Unknown options source.", details={"source": name})


def _divisions(client: ExactClient, credential: Credential, params: dict[str, Any]) -> list[Option]:
    """The credential's allowed divisions, labelled with their names (one API call); ``search``
    keeps those whose number or name holds it (an accountant may have hundreds).

    The allowed list itself comes from the vault (Test Connect stored it); Exact is asked only for
    the names, and a failure there still yields the numbers.
    """
    allowed = credential.allowed_divisions
    if not allowed:
        raise _no_divisions(credential)
    names: dict[int, str] = {}
    endpoint = catalog().lookup("system/Divisions")
    url = client.url(endpoint, allowed[0], None, {"$select": "Code,Description"})
    try:
        for row in Pager(client, endpoint, allowed[0], url, page_cap=20):
            if isinstance(row.get("Code"), int) and isinstance(row.get("Description"), str):
                names[row["Code"]] = row["Description"].strip()
    except ExactConnectorError:
        names = {}
    options: list[Option] = [
        {"value": code, "label": f"{code} — {names[code]}" if names.get(code) else str(code)}
        for code in allowed
    ]
    search = params.get("search")
    if search:
        needle = str(search).casefold()
        options = [option for option in options if needle in str(option["label"]).casefold()]
    return options


def _no_divisions(credential: Credential) -> ConfigError:
    """No division is known: a sign-in not finished, or one whose divisions never loaded."""
    if credential.status == "pending":
        return CredentialNotActive(
            f"The credential {credential.connector_name} has not finished its sign-in, so no "
            "division is known for it yet.",
            details={"status": credential.status},
        )
    return ConfigError(
        "No division is known for this connection yet: Test Connect stores them.",
        hint="Run Test Connect for this credential, then open the form again.",
    )


def _division(credential: Credential, params: dict[str, Any]) -> int:
    division = params.get("division")
    if division in (None, ""):  # an engine's unset field: the connection's default
        division = credential.default_division
    if division is None:
        raise _no_divisions(credential)
    division = canonical_integer(division, "$.division", "Edm.Int32")
    if division not in credential.allowed_divisions:
        raise DivisionNotAllowed(
            "This connection was not granted that division.",
            errors=[{"path": "$.division", "code": "not_allowed", "message": "not granted"}],
        )
    return division


def _live(
    source: _Live, client: ExactClient, credential: Credential, params: dict[str, Any]
) -> list[Option]:
    filters = [source.fixed_filter] if source.fixed_filter else []
    search = params.get("search")
    if search:
        filters.append(f"substringof({_needle(search)}, {source.search_field})")
    query = {"$select": ",".join(("ID", *source.label_fields))}
    if filters:
        query["$filter"] = " and ".join(filters)
    if source.order_by:
        query["$orderby"] = source.order_by
    rows = _page(client, _division(credential, params), source.endpoint, query)
    return [{"value": row.get("ID"), "label": _label(row, source.label_fields)} for row in rows]


def _needle(search: object) -> str:
    """A search as the text literal of a ``substringof`` filter; at most :data:`SEARCH_MAX`
    characters (a longer one would make a URL Exact refuses, blamed on no field of the form)."""
    text = str(search)
    if len(text) > SEARCH_MAX:
        raise InputError.at("$.search", "too_long", f"search at most {SEARCH_MAX} characters")
    return filter_literal(text, "Edm.String", "$.search")


def _records(client: ExactClient, credential: Credential, params: dict[str, Any]) -> list[Option]:
    """The newest records of an endpoint, to pick a primary key by what the record says;
    ``search`` narrows them to those with a text label (Code, Name…) that contains it.

    Where Exact demands a filter (see :func:`_page`), the list without a search is one page of
    the sync twin, which in a division with more records than a page holds is not the newest:
    a search is a filter, and reads the newest that match.
    """
    endpoint = catalog().lookup(str(params.get("endpoint", "")))
    key = endpoint.primary_key
    if not isinstance(key, str):
        raise InputError(
            f"Records of {endpoint.id} have no single key, so they cannot be picked from a list.",
            errors=[{"path": "$.endpoint", "code": "key", "message": "no single key to pick"}],
            hint="Leave the ID empty to list the records, or choose another endpoint.",
        )
    names = {f.name for f in endpoint.fields}
    labels = tuple(n for n in _RECORD_LABELS if n in names and n != key)[:_RECORD_LABEL_COUNT]
    query = {"$select": ",".join((key, *labels))}
    search = params.get("search")
    if search and endpoint.kind == "sync":
        raise InputError.at(
            "$.search",
            "not_searchable",
            f"{endpoint.id} is a sync feed, which Exact filters by Timestamp only",
        )
    if search:
        typed = {f.name: f.type for f in endpoint.fields}
        texts = [name for name in labels if typed[name] in _TEXT_TYPES]
        if not texts:
            raise InputError.at(
                "$.search", "not_searchable", f"records of {endpoint.id} have no text to search"
            )
        needle = _needle(search)
        query["$filter"] = " or ".join(f"substringof({needle}, {name})" for name in texts)
    if "Modified" in names:
        query["$orderby"] = "Modified desc"
    division = _division(credential, params)
    if endpoint.kind == "sync":  # no filter, no order: one page of the feed, ordered here
        return [
            {"value": row.get(key), "label": _label(row, labels or (key,))}
            for row in _sorted_sync_page(client, division, endpoint, query)
        ]
    rows = _page(client, division, endpoint.id, query)
    return [{"value": row.get(key), "label": _label(row, labels or (key,))} for row in rows]


def _page(
    client: ExactClient, division: int, endpoint_id: str, query: dict[str, str]
) -> list[dict[str, Any]]:
    """The first :data:`LIVE_LIMIT` rows of one page of the endpoint's list.

    Where Exact refuses an unfiltered list for want of a ``$filter`` (its mandatory filter, set
    per app), one page of the sync twin is read instead and ordered here: it takes no filter and
    no order (the connection remembers, as for lists: one refused call, not one per form).
    """
    endpoint = catalog().lookup(endpoint_id)
    sync = _sync_for(endpoint, query)
    demanded = endpoint.id.lower() in client.filter_required and "$filter" not in query
    if demanded and sync is None:
        raise _search_needed(endpoint)  # asked once already: not again, each refusal counts
    if sync is None or not demanded:
        url = client.url(endpoint, division, None, query)
        try:
            return list(islice(Pager(client, endpoint, division, url, page_cap=1), LIVE_LIMIT))
        except ExactRejected as error:
            if "$filter" in query or not filter_demanded(error):
                raise
            client.filter_required.add(endpoint.id.lower())
            if sync is None:
                raise _search_needed(endpoint) from None
    assert sync is not None  # either remembered or just learnt, with a twin to read
    return _sorted_sync_page(client, division, sync, query)


def _search_needed(endpoint: Endpoint) -> InputError:
    """Exact lists ``endpoint`` to this app only with a filter, and no feed can stand in."""
    return InputError.at(
        "$.search",
        "filter_required",
        f"Exact Online lists {endpoint.id} to this app only with a filter: type a search",
    )


def _sync_for(endpoint: Endpoint, query: dict[str, str]) -> Endpoint | None:
    """The sync twin an unfiltered lookup can be read from instead: one with the fields asked
    for, whose rows are the endpoint's records (not one per line of a document)."""
    sync = catalog().sync_api(endpoint) if "$filter" not in query else None
    if sync is None or (sync.field("LineNumber") and not endpoint.field("LineNumber")):
        return None
    order = query.get("$orderby", "").partition(" ")[0]
    wanted = [*query["$select"].split(","), *([order] if order else [])]
    return sync if all(sync.field(name) for name in wanted) else None


def _sorted_sync_page(
    client: ExactClient, division: int, sync: Endpoint, query: dict[str, str]
) -> list[dict[str, Any]]:
    """One page of a sync twin (its oldest changes: a division with more rows than a page
    offers a part of them, which a search narrows), in the order the query asked for."""
    order = query.get("$orderby", "")
    field, _, direction = order.partition(" ")
    select = query["$select"].split(",")
    wanted = [*select, field] if field and field not in select else select
    url = client.url(sync, division, None, {"$select": ",".join(wanted)})
    rows = list(islice(Pager(client, sync, division, url, page_cap=1), sync.page_size))
    if field:
        rows.sort(key=lambda row: _sort_key(row.get(field)), reverse=direction == "desc")
    return rows[:LIVE_LIMIT]


def _sort_key(value: Any) -> tuple[int, Any]:
    """Nulls first, then text (case-folded, Exact's padded codes unpadded) or numbers."""
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.strip().casefold())
    return (2, value)


def _label(row: dict[str, Any], fields: tuple[str, ...]) -> str:
    """A record's fields joined for a person: Exact's /Date(ms)/ as the day, codes unpadded."""
    parts = []
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value.startswith("/Date("):
            value = (parse_date(value) or value)[:10]
        parts.append(str(value if value is not None else "").strip())
    return " — ".join(part for part in parts if part) or "(no description)"
