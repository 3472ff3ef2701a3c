"""The four actions, as one dispatch table.

Every handler receives input that already passed its JSON Schema, and a division already checked
against the credential. Handlers resolve endpoints through the catalog, render keys with
:mod:`exact_connector.odata`, and never concatenate a user's string into a URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exact_connector import lists
from exact_connector.catalog import ENDPOINT_PATTERN, Endpoint, catalog
from exact_connector.exceptions import (
    ExactConnectorError,
    ExactError,
    MethodNotSupported,
    NotFound,
    OutcomeUnknown,
    UnknownEndpoint,
)
from exact_connector.odata import (
    key_literal,
    key_value,
    location_key,
    normalize,
    unwrap_record,
)
from exact_connector.pagination import read_json
from exact_connector.validation import parse_date_time

if TYPE_CHECKING:
    import httpx

    from exact_connector.client import ExactClient

__all__ = ["ACTIONS", "Step", "iter_list", "resolve_endpoint"]

TIME_TRANSACTIONS = "project/TimeTransactions"


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
    return _read_back(step, endpoint, key, "created")


def _read_back(step: Step, endpoint: Endpoint, key: str, done: str) -> dict[str, Any]:
    """The record a write that succeeded (``done``: created, updated) left, read by its key.

    The write stands whatever this read comes to: if it fails, only the key is returned, with a
    warning. A failed step would be run again, and a create run again makes a duplicate.
    """
    try:
        return unwrap_record(read_json(_send(step, "GET", endpoint, key)))
    except ExactConnectorError as error:
        failure = error.code
    step.warnings.append(
        {
            "code": f"{done}_record_not_read",
            "message": f"The record was {done}, but reading it back failed ({failure}), so only "
            "its key is returned; read it later by that key.",
            "path": "$.record",
        }
    )
    name = endpoint.primary_key if isinstance(endpoint.primary_key, str) else "ID"
    return {name: key_value(key)}


def update_time_transaction(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """PUT the changed fields, then read the record back (PUT answers 204 with no body)."""
    endpoint = catalog().lookup(TIME_TRANSACTIONS)
    key = _key(endpoint, data["id"])
    _send(step, "PUT", endpoint, key, json=_wall_clock(endpoint, data["data"]))
    record = _read_back(step, endpoint, key, "updated")
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
    record_id = key_value(key)  # the key as sent: canonical, as create and update return it
    step.audit.update(endpoint=endpoint.id, id=record_id, already_absent=absent)
    result: dict[str, Any] = {"id": record_id, "endpoint": endpoint.id, "deleted": True}
    if absent:
        result["already_absent"] = True
    return result


def list_or_get(step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """One record by key, or a list (with a resumable cursor when a limit stops it early)."""
    endpoint = resolve_endpoint(data["endpoint"], "GET", step)
    if data.get("id") not in (None, ""):
        return {"record": _get_by_key(step, endpoint, data)}
    reading = lists.Reading(step, endpoint, data)
    limit = data.get("limit")
    records = []
    with lists.list_errors(endpoint, data):
        for record in reading:
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    cursor = reading.pager.cursor()
    return {
        "records": records,
        "count": len(records),
        "next_cursor": cursor.encode(step.cursor_key) if cursor is not None else None,
    }


def _get_by_key(step: Step, endpoint: Endpoint, data: dict[str, Any]) -> dict[str, Any]:
    """The one record ``data["id"]`` names, shaped as a list's records are."""
    selected = lists.selected_fields(endpoint, data.get("select"))
    params = {"$select": ",".join(selected)} if selected else {}
    record = unwrap_record(
        read_json(_send(step, "GET", endpoint, _key(endpoint, data["id"]), params=params))
    )
    return lists.shaper(endpoint, bool(data.get("raw")), selected)([record])[0]


def iter_list(step: Step, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The list of ``list_or_get_endpoint`` as a stream, for engines and the CLI (flat memory);
    with an ``id``, the one record it names (as :func:`list_or_get` answers it)."""
    endpoint = resolve_endpoint(data["endpoint"], "GET", step)
    if data.get("id") not in (None, ""):
        yield _get_by_key(step, endpoint, data)
        return
    limit = data.get("limit")
    reading = lists.Reading(step, endpoint, data)
    with lists.list_errors(endpoint, data):
        if limit is None:
            yield from reading
            return
        for count, record in enumerate(reading, start=1):
            yield record
            if count >= limit:
                return


Handler = Callable[[Step, dict[str, Any]], dict[str, Any]]

#: Action id -> handler. Titles, schemas and behaviour flags live in connector.yaml.
ACTIONS: dict[str, Handler] = {
    "create_project_time_transaction": create_time_transaction,
    "update_project_time_transaction": update_time_transaction,
    "delete_endpoint_record": delete_record,
    "list_or_get_endpoint": list_or_get,
}
