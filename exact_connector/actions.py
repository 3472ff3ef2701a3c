"""The four actions, as one dispatch table.

Every handler receives input that already passed its JSON Schema, and a division already checked
against the credential. Handlers resolve endpoints through the catalog, render keys with
:mod:`exact_connector.odata`, and never concatenate a user's string into a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exact_connector.catalog import ENDPOINT_PATTERN, Endpoint, catalog
from exact_connector.exceptions import (
    ExactError,
    ExactRejected,
    InputError,
    MethodNotSupported,
    NotFound,
    OutcomeUnknown,
    UnknownEndpoint,
)
from exact_connector.odata import (
    key_literal,
    location_key,
    normalize,
    record_normalizer,
    unwrap_record,
)
from exact_connector.pagination import Cursor, Pager, read_json
from exact_connector.validation import parse_date_time

if TYPE_CHECKING:
    import httpx

    from exact_connector.client import ExactClient

__all__ = ["ACTIONS", "Step", "iter_list", "resolve_endpoint"]

TIME_TRANSACTIONS = "project/TimeTransactions"
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}", re.ASCII)
_ORDER_TERM = re.compile(r"([A-Za-z][A-Za-z0-9_]{0,79})(?: (asc|desc))?", re.ASCII | re.IGNORECASE)
_DATE_TYPES = frozenset({"Edm.DateTime", "Edm.DateTimeOffset"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The one filter Exact's sync endpoints take (API-FACTS, "Sync feed": only Timestamp, ``gt``).
_SYNC_FILTER = re.compile(r"\s*Timestamp gt [0-9]{1,19}L?\s*", re.ASCII)


@dataclass
class Step:
    """One action run: the client, the checked division, the deadline, and what to report.

    Without a deadline (a stream, which the consumer paces) each request gets the client's own.
    ``cursor_key`` signs and checks the cursors of lists (see :mod:`exact_connector.pagination`).
    """

    client: ExactClient
    division: int
    deadline: float | None
    cursor_key: bytes = field(repr=False, kw_only=True)
    warnings: list[dict[str, str]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)


def resolve_endpoint(name: str, method: str, step: Step) -> Endpoint:
    """A catalog endpoint supporting ``method``; a typed unknown one only for GET and DELETE."""
    known = catalog().get(name) if isinstance(name, str) else None
    if known is not None:
        if not known.supports(method):
            raise MethodNotSupported(
                f"{known.id} does not support {method}.",
                errors=[
                    {"path": "$.endpoint", "code": "method", "message": f"{method} not supported"}
                ],
                details={"endpoint": known.id, "methods": sorted(known.methods)},
            )
        return known
    if method not in ("GET", "DELETE") or not ENDPOINT_PATTERN.fullmatch(name):
        catalog().lookup(name)  # raises the precise UnknownEndpoint
    if name.split("/", 1)[0].lower() in ("bulk", "sync", "read", "current", "system"):
        raise UnknownEndpoint(
            "Typed endpoints may not start with a reserved service name.",
            errors=[{"path": "$.endpoint", "code": "unknown", "message": "not in the catalog"}],
        )
    step.warnings.append(
        {
            "code": "endpoint_not_in_catalog",
            "message": f"{name} is not in the Exact Online catalog; it was called as typed.",
            "path": "$.endpoint",
        }
    )
    service, _, rest = name.partition("/")
    return Endpoint(
        service=service,
        name=rest,
        path=f"/api/v1/{{division}}/{service}/{rest}",
        methods=frozenset({"GET", "DELETE"}),
        primary_key="ID",
        kind="regular",
    )


@contextmanager
def _listing(endpoint: Endpoint, data: dict[str, Any]) -> Iterator[None]:
    """A 404 to a list of a typed endpoint means Exact has no such endpoint: no key could miss.

    A 400 about a filter to an unfiltered list of an endpoint with a sync API is Exact's
    mandatory filter (API-FACTS §3): the person's fix is the filter field, so it is named.
    """
    try:
        yield
    except ExactRejected as error:
        message = str(error.details.get("exact_message", ""))
        if (
            data.get("filter")
            or catalog().sync_api(endpoint) is None
            or "filter" not in message.lower()
        ):
            raise
        raise ExactRejected(
            f"Exact Online lists {endpoint.id} only with a filter: {message}",
            errors=[{"path": "$.filter", "code": "filter_required", "message": "add a filter"}],
            details={k: v for k, v in error.details.items() if k != "errors"},
            hint="Add a filter (for example on Modified or Code) and run the step again.",
        ) from None
    except NotFound as error:
        if catalog().get(endpoint.id) is not None:
            raise
        raise UnknownEndpoint(
            f"Exact Online has no endpoint {endpoint.id} (it answered 404 to the list).",
            errors=[{"path": "$.endpoint", "code": "unknown", "message": "Exact answered 404"}],
            details={k: v for k, v in error.details.items() if k != "errors"},
        ) from None


def _key(endpoint: Endpoint, value: object, path: str = "$.id") -> str:
    return key_literal(value, endpoint.key_type or "Edm.Guid", path)


def _send(
    step: Step,
    method: str,
    endpoint: Endpoint,
    key: str | None = None,
    *,
    params: dict[str, str] | None = None,
    json: Any = None,
) -> httpx.Response:
    url = step.client.url(endpoint, step.division, key, params)
    return step.client.request(
        method, url, endpoint=endpoint, division=step.division, json=json, deadline=step.deadline
    )


def _shape(record: dict[str, Any], raw: bool) -> dict[str, Any]:
    return record if raw else normalize(record)


def _shaper(
    endpoint: Endpoint, raw: bool, select: list[str]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How a list's records are returned: untouched, or normalised by the endpoint's field types
    (only the selected fields when a select was sent)."""
    if raw:
        return lambda record: record
    if not endpoint.fields:  # a typed endpoint the catalog does not describe
        return normalize
    chosen = set(select)
    fields = [f for f in endpoint.fields if f.name in chosen] if chosen else list(endpoint.fields)
    return record_normalizer(
        dates=(f.name for f in fields if f.type in _DATE_TYPES or f.type.startswith("php:")),
        collections=(f.name for f in fields if f.collection),
        known=(f.name for f in fields),
    )


# -- the handlers --------------------------------------------------------------------------------


def _wall_clock(endpoint: Endpoint, fields: dict[str, Any]) -> dict[str, Any]:
    """Date-times as Exact reads them: the wall-clock time written, without a UTC offset."""
    result = dict(fields)
    for name, value in fields.items():
        described = endpoint.field(name)
        if described is not None and described.type == "Edm.DateTime" and isinstance(value, str):
            moment = parse_date_time(value)  # the schema's format: never None for valid input
            result[name] = moment.replace(tzinfo=None).isoformat() if moment else value
    return result


def create_time_transaction(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """POST project/TimeTransactions with ``Prefer: return=representation``."""
    endpoint = catalog().lookup(TIME_TRANSACTIONS)
    body = _wall_clock(endpoint, data["data"])
    record = _created(step, endpoint, _send(step, "POST", endpoint, json=body))
    step.audit.update(endpoint=endpoint.id, id=record.get("ID"))
    return {
        "id": record.get("ID"),
        "created": True,
        "record": _shape(record, bool(data.get("raw"))),
    }


def _created(step: Step, endpoint: Endpoint, response: httpx.Response) -> dict[str, Any]:
    """The record a create answered with (2xx: it was created, whatever the body holds).

    A body that cannot be read is not a failure: the record is read back by the key its
    ``Location`` names, with a warning. Without a usable key the outcome is unknown to the caller
    (reporting a failure would invite a run that creates a duplicate).
    """
    try:
        return unwrap_record(read_json(response))
    except ExactError:
        pass  # raised below, outside this block: the unreadable body travels with no error
    key = location_key(response.headers.get("Location", ""), response.request.url.path)
    if key is None:
        raise OutcomeUnknown(
            f"Exact Online answered {response.status_code} to the create on {endpoint.id}, but "
            "its answer could not be read, so which record was made is unknown; it was not "
            "retried.",
            details={"method": "POST", "endpoint": endpoint.id, "status": response.status_code},
        )
    step.warnings.append(
        {
            "code": "created_answer_unreadable",
            "message": "Exact Online created the record but its answer could not be read; the "
            "record was read back by its key.",
            "path": "$",
        }
    )
    return unwrap_record(read_json(_send(step, "GET", endpoint, key)))


def update_time_transaction(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """PUT the changed fields, then read the record back (PUT answers 204 with no body)."""
    endpoint = catalog().lookup(TIME_TRANSACTIONS)
    key = _key(endpoint, data["id"])
    _send(step, "PUT", endpoint, key, json=_wall_clock(endpoint, data["data"]))
    record = unwrap_record(read_json(_send(step, "GET", endpoint, key)))
    step.audit.update(endpoint=endpoint.id, id=record.get("ID", data["id"]))
    return {
        "id": record.get("ID", data["id"]),
        "updated": True,
        "record": _shape(record, bool(data.get("raw"))),
    }


def delete_record(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """DELETE {service}/{endpoint}({key}); a record already gone counts as deleted.

    An engine retries a step whose answer it lost, so the second DELETE must succeed: a 404 from
    a catalog endpoint means the record is absent (``already_absent``). A typed endpoint's 404
    may mean the endpoint does not exist, so it stays ``not_found``.
    """
    endpoint = resolve_endpoint(data["endpoint"], "DELETE", step)
    if not endpoint.is_record_endpoint:
        raise MethodNotSupported(
            f"{endpoint.id} has no single primary key of a type that can be written in a URL, so "
            "records cannot be deleted by ID.",
            errors=[{"path": "$.endpoint", "code": "key", "message": "not addressable by ID"}],
        )
    key = _key(endpoint, data["id"])
    try:
        absent = _send(step, "DELETE", endpoint, key).status_code == 404
    except NotFound:
        if catalog().get(endpoint.id) is None:
            raise
        absent = True
    step.audit.update(endpoint=endpoint.id, id=data["id"], already_absent=absent)
    result: dict[str, Any] = {"id": data["id"], "endpoint": endpoint.id, "deleted": True}
    if absent:
        result["already_absent"] = True
    return result


def list_or_get(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """One record by key, or a list (with a resumable cursor when a limit stops it early)."""
    endpoint = resolve_endpoint(data["endpoint"], "GET", step)
    raw = bool(data.get("raw"))
    if data.get("id") not in (None, ""):
        params = _select_param(endpoint, data.get("select"))
        record = unwrap_record(
            read_json(_send(step, "GET", endpoint, _key(endpoint, data["id"]), params=params))
        )
        return {"record": _shape(record, raw)}
    pager, select = _pager(step, endpoint, data)
    shape = _shaper(pager.endpoint, raw, select)
    limit = data.get("limit")
    records = []
    with _listing(endpoint, data):
        for record in pager:
            records.append(shape(record))
            if limit is not None and len(records) >= limit:
                break
    cursor = pager.cursor()
    return {
        "records": records,
        "count": len(records),
        "next_cursor": cursor.encode(step.cursor_key) if cursor is not None else None,
    }


def iter_list(step: Step, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The list of ``list_or_get_endpoint`` as a stream, for engines and the CLI (flat memory)."""
    endpoint = resolve_endpoint(data["endpoint"], "GET", step)
    raw = bool(data.get("raw"))
    limit = data.get("limit")
    pager, select = _pager(step, endpoint, data)
    shape = _shaper(pager.endpoint, raw, select)
    with _listing(endpoint, data):
        for count, record in enumerate(pager, start=1):
            yield shape(record)
            if limit is not None and count >= limit:
                return


# -- list plumbing -------------------------------------------------------------------------------


def _fields(endpoint: Endpoint, names: list[str], path: str) -> list[str]:
    """Field names checked against the endpoint (canonical spelling); unknown ones refused."""
    result = []
    for index, name in enumerate(names):
        where = f"{path}[{index}]"
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise InputError.at(where, "pattern", "a field name uses letters, digits and _ only")
        field_ = endpoint.field(name)
        if endpoint.fields and field_ is None:
            raise InputError.at(where, "unknown_field", f"not a field of {endpoint.id}")
        result.append(field_.name if field_ is not None else name)
    return result


def _select_param(endpoint: Endpoint, select: list[str] | None) -> dict[str, str]:
    return {"$select": ",".join(_fields(endpoint, select, "$.select"))} if select else {}


def _order_by(endpoint: Endpoint, text: str) -> str:
    terms = []
    for index, part in enumerate(text.split(",")):
        match = _ORDER_TERM.fullmatch(part.strip())
        if match is None:
            raise InputError.at("$.order_by", "pattern", "write fields as 'Name asc, Date desc'")
        name = _fields(endpoint, [match.group(1)], f"$.order_by[{index}]")[0]
        terms.append(f"{name} {match.group(2).lower()}" if match.group(2) else name)
    return ",".join(terms)


def _list_target(
    endpoint: Endpoint, data: dict[str, Any], resumed: str | None = None
) -> tuple[Endpoint, list[str]]:
    """The endpoint to page through, preferring a bulk or sync twin that answers the same question.

    A twin pages 1000 rows a call instead of 60. Bulk answers any list of its regular endpoint; sync
    is ordered by its own Timestamp, so it is used only for a plain full list (no filter, no order).
    Both require ``$select``: without one, every scalar field of the regular endpoint is selected.
    A list resumed from a cursor stays on the endpoint the cursor was made on (``resumed``),
    whatever the limit is now.
    """
    select = _fields(endpoint, data.get("select") or [], "$.select")
    limit = data.get("limit")
    if endpoint.kind in ("bulk", "sync"):  # asked for by name: Exact refuses them without $select
        return endpoint, select or _scalar_fields(endpoint)
    short = resumed is None and limit is not None and limit <= endpoint.page_size
    if endpoint.kind != "regular" or short or resumed == endpoint.id:
        return endpoint, select
    candidates = [catalog().twin(endpoint, "bulk")]
    if not data.get("filter") and not data.get("order_by"):
        candidates.append(catalog().twin(endpoint, "sync"))
    wanted = select or _scalar_fields(endpoint)
    for twin in candidates:
        fits = twin is not None and wanted and all(twin.field(name) for name in wanted)
        if twin is not None and fits and resumed in (None, twin.id):
            return twin, wanted
    return endpoint, select


def _list_endpoints(endpoint: Endpoint) -> set[str]:
    """The endpoints a list of ``endpoint`` may be read from: itself and its twins."""
    twins = (catalog().twin(endpoint, kind) for kind in ("bulk", "sync"))
    return {endpoint.id, *(twin.id for twin in twins if twin is not None)}


def _scalar_fields(endpoint: Endpoint) -> list[str]:
    return [f.name for f in endpoint.fields if not f.collection]


def _pager(step: Step, endpoint: Endpoint, data: dict[str, Any]) -> tuple[Pager, list[str]]:
    """The pager over the endpoint (or its twin), and the fields it selects (empty: all)."""
    cursor = None
    if data.get("cursor"):
        cursor = Cursor.decode(
            data["cursor"],
            key=step.cursor_key,
            endpoints=_list_endpoints(endpoint),
            division=step.division,
        )
    target, select = _list_target(endpoint, data, cursor.endpoint if cursor else None)
    params: dict[str, str] = {}
    if select:
        params["$select"] = ",".join(select)
    if data.get("filter"):
        if _CONTROL.search(data["filter"]):
            raise InputError.at("$.filter", "pattern", "control characters are not allowed")
        if target.kind == "sync" and not _SYNC_FILTER.fullmatch(data["filter"]):
            raise InputError.at(
                "$.filter", "sync_filter", "a sync endpoint takes only 'Timestamp gt <number>'"
            )
        params["$filter"] = data["filter"]
    if data.get("order_by"):
        params["$orderby"] = _order_by(target, data["order_by"])
    # No $top for a limit: a full page costs the same one call and lets the cursor resume.
    first = step.client.url(target, step.division, None, params)
    if target is not endpoint:
        step.audit["list_endpoint"] = target.id
    if cursor is not None:
        pager = Pager.resume(
            step.client, target, first, step.division, cursor, deadline=step.deadline
        )
    else:
        pager = Pager(step.client, target, step.division, first, deadline=step.deadline)
    return pager, select


Handler = Callable[[Step, dict[str, Any]], dict[str, Any]]

#: Action id -> handler. Titles, schemas and behaviour flags live in connector.yaml.
ACTIONS: dict[str, Handler] = {
    "create_project_time_transaction": create_time_transaction,
    "update_project_time_transaction": update_time_transaction,
    "delete_endpoint_record": delete_record,
    "list_or_get_endpoint": list_or_get,
}
