"""The REST API: a URL becomes a catalog endpoint, then a list, a read, a create, an update or a
delete over the store, answered in Exact's envelopes.

Lists page 60 rows (1000 on bulk and sync endpoints) in key order (Timestamp order on sync ones);
:mod:`~exact_connector.sandbox.listing` finds the page. ``current/Me`` and the division lists are
derived from the sandbox's settings (:mod:`~exact_connector.sandbox.system`) and read-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from exact_connector.catalog import Endpoint, catalog
from exact_connector.clock import Clock
from exact_connector.sandbox.counters import Counters
from exact_connector.sandbox.domain import REFERENCES
from exact_connector.sandbox.filters import predicate
from exact_connector.sandbox.listing import count, page
from exact_connector.sandbox.oauth import AccessGrant
from exact_connector.sandbox.query import Options, parse_key, parse_options
from exact_connector.sandbox.render import Readable, Renderer, next_link, type_name, uri_literal
from exact_connector.sandbox.store import Key, Row, Store, Table, edm_type, table_spec
from exact_connector.sandbox.system import FixedTable, division_record, me_record
from exact_connector.sandbox.wire import SandboxError, empty_response, json_response
from exact_connector.sandbox.writes import check_write

__all__ = ["Rest", "Route", "route"]

_PATH = re.compile(r"/api/v1/(?:(?P<beta>beta)/)?(?:(?P<division>[0-9]{1,10})/)?(?P<rest>.+)")
_KEYED = re.compile(r"(?P<name>[^()]+)\((?P<key>.*)\)(?:/(?P<tail>[A-Za-z]+))?")
_DIVISION_LISTS = frozenset({"system/divisions", "system/alldivisions", "hrm/divisions"})


@dataclass(frozen=True)
class Route:
    """What an API path names: division, endpoint, key literal, and ``$count`` or a navigation."""

    division: int | None
    beta: bool
    name: str
    key: str | None = None
    tail: str | None = None


def route(path: str) -> Route | None:
    """Parse ``/api/v1/[beta/][division/]service/Endpoint[(key)][/tail]``; None if it is not one."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    rest, key, tail = match["rest"], None, None
    keyed = _KEYED.fullmatch(rest)
    if keyed is not None:
        rest, key, tail = keyed["name"], keyed["key"], keyed["tail"]
    elif rest.endswith("/$count"):
        rest, tail = rest[: -len("/$count")], "$count"
    division = int(match["division"]) if match["division"] else None
    return Route(division, bool(match["beta"]), rest, key, tail)


def resolve(where: Route) -> Endpoint:
    """The catalog endpoint a route names, or 404 as Exact answers an unknown resource."""
    endpoint = catalog().get(where.name)
    if (
        endpoint is None
        or endpoint.beta != where.beta
        or endpoint.division_in_path != (where.division is not None)
    ):
        segment = where.name.rsplit("/", 1)[-1]
        raise SandboxError(404, f"Resource not found for the segment '{segment}'.")
    return endpoint


@dataclass(frozen=True)
class Call:
    """One authorised API request, resolved: its endpoint, table and collection URI."""

    request: httpx.Request
    where: Route
    endpoint: Endpoint
    table: Readable
    collection: str
    params: list[tuple[str, str]]

    @property
    def division(self) -> int:
        """The division in the URL (0 for the few endpoints without one)."""
        return self.where.division or 0


class Rest:
    """Generic CRUD over the store for every catalog endpoint, plus the derived system lists."""

    def __init__(
        self, store: Store, clock: Clock, counters: Counters, current_division: int
    ) -> None:
        self.store = store
        self.clock = clock
        self.counters = counters
        self.current_division = current_division

    def handle(
        self, request: httpx.Request, where: Route, endpoint: Endpoint, grant: AccessGrant
    ) -> httpx.Response:
        """Answer one authorised API request."""
        method = request.method
        action = _ACTIONS.get((method, where.key is not None))
        if where.tail is not None:
            action = Rest._tail if method == "GET" else None
        if method not in endpoint.methods or action is None:
            allow = ", ".join(sorted(endpoint.methods))
            message = f"The HTTP method '{method}' is not allowed on this address."
            raise SandboxError(405, message, headers={"Allow": allow})
        table = self._table(endpoint, where.division, grant)
        if method != "GET" and not isinstance(table, Table):
            raise SandboxError(403, "The sandbox's administrations and user cannot be changed.")
        beta = "/beta" if where.beta else ""
        division = f"/{where.division}" if where.division is not None else ""
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        collection = f"{base}/api/v1{beta}{division}/{endpoint.id}"
        params = list(request.url.params.multi_items())
        return action(self, Call(request, where, endpoint, table, collection, params))

    # -- reading ---------------------------------------------------------------------------------

    @staticmethod
    def _options(call: Call, listing: bool) -> Options:
        endpoint = call.endpoint
        fields = {f.name: kind for f in endpoint.fields if (kind := edm_type(f))}
        navigation = frozenset(f.name for f in endpoint.fields if not edm_type(f))
        needs_select = listing and endpoint.kind in ("bulk", "sync")
        return parse_options(
            call.params, fields, navigation, type_name(endpoint), require_select=needs_select
        )

    def _list(self, call: Call) -> httpx.Response:
        options = self._options(call, listing=True)
        table, endpoint = call.table, call.endpoint
        by_ts = endpoint.kind == "sync"
        order_edm = "Edm.Int64" if by_ts or table.spec.key_field is None else table.spec.key_type
        test = predicate(options.filter, table.getter) if options.filter is not None else None
        limit = endpoint.page_size if options.top is None else min(endpoint.page_size, options.top)
        start = parse_key(options.skiptoken, order_edm) if options.skiptoken is not None else None
        found = page(
            table,
            by_timestamp=by_ts,
            test=test,
            filter_tree=options.filter,
            orderby=options.orderby,
            start=start,
            limit=limit,
        )
        body: dict[str, Any] = {}
        if options.inlinecount:
            body["__count"] = str(count(table, by_ts, test))
        render = Renderer(endpoint, table, call.collection, options.select, options.expand)
        body["results"] = [render(row) for _, row in found.rows]
        top_left = None if options.top is None else options.top - len(found.rows)
        if found.more and (top_left is None or top_left > 0):
            skiptoken = uri_literal(found.last, order_edm)
            body["__next"] = next_link(call.collection, options.params, skiptoken, top_left)
        return json_response(200, {"d": body})

    @staticmethod
    def _find(call: Call) -> tuple[Key, Row]:
        endpoint, table = call.endpoint, call.table
        key_name = endpoint.primary_key if isinstance(endpoint.primary_key, str) else None
        key_field = endpoint.field(key_name) if key_name else None
        edm = edm_type(key_field) if key_field is not None else ""
        if key_field is None or not edm:
            raise SandboxError(400, "This resource has no single key to address a record by.")
        value = parse_key(call.where.key or "", edm)
        if key_field.name == "Timestamp" and table.spec.key_field != "Timestamp":
            found = table.by_timestamp(value)
        else:
            row = table.get(value)
            found = None if row is None else (value, row)
        if found is None:
            segment = endpoint.name.rsplit("/", 1)[-1]
            raise SandboxError(404, f"Resource not found for the segment '{segment}'.")
        return found

    def _get(self, call: Call) -> httpx.Response:
        options = self._options(call, listing=False)
        _, row = self._find(call)
        table, collection = call.table, call.collection
        render = Renderer(call.endpoint, table, collection, options.select, options.expand)
        return json_response(200, {"d": render(row)})

    def _tail(self, call: Call) -> httpx.Response:
        tail, endpoint = call.where.tail, call.endpoint
        if tail == "$count" and call.where.key is None:
            options = self._options(call, listing=False)
            table = call.table
            test = predicate(options.filter, table.getter) if options.filter is not None else None
            text = str(count(table, False, test)).encode()
            return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=text)
        field = endpoint.field(tail or "")
        if call.where.key is None or field is None or field.name != tail or edm_type(field):
            raise SandboxError(404, f"Resource not found for the segment '{tail}'.")
        _, row = self._find(call)
        lines = call.table.getter(field.name)(row) or []
        return json_response(200, {"d": {"results": list(lines)}})

    # -- writing ---------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def _references(self, call: Call, values: dict[str, Any]) -> None:
        for name, other in REFERENCES.get(call.table.spec.id, {}).items():
            value = values.get(name)
            target = self.store.table_by_id(call.division, other)
            if value is not None and target.get(value) is None:
                message = f"Invalid reference: no {other} record has the ID given in '{name}'."
                raise SandboxError(400, message)

    def _create(self, call: Call) -> httpx.Response:
        table = call.table
        assert isinstance(table, Table)  # handle() lets only stored tables be written
        body, name = call.request.content, type_name(call.endpoint)
        values = check_write(call.endpoint, body, name, creating=True)
        self._references(call, values)
        key_field = table.spec.key_field
        if key_field in values and table.get(values[key_field]) is not None:
            raise SandboxError(400, "A record with this key already exists.")
        key = table.insert(values, self._now_ms())
        self.counters.records_created[call.endpoint.id] += 1
        row = table.get(key)
        assert row is not None  # just inserted
        render = Renderer(call.endpoint, table, call.collection)
        prefer = call.request.headers.get("prefer", "").replace(" ", "")
        record = render(row) if "return=representation" in prefer else render.key_only(row)
        return json_response(201, {"d": record}, {"Location": render.uri(row)})

    def _update(self, call: Call) -> httpx.Response:
        table = call.table
        assert isinstance(table, Table)
        key, _ = self._find(call)
        values = check_write(
            call.endpoint, call.request.content, type_name(call.endpoint), key=key, creating=False
        )
        self._references(call, values)
        table.update(key, values, self._now_ms())
        return empty_response(204)

    def _delete(self, call: Call) -> httpx.Response:
        table = call.table
        assert isinstance(table, Table)
        key, _ = self._find(call)
        table.delete(key, self._now_ms())
        return empty_response(204)

    # -- the derived system lists ----------------------------------------------------------------

    def _table(self, endpoint: Endpoint, division: int | None, grant: AccessGrant) -> Readable:
        name = endpoint.id.lower()
        world, current = self.store.world, self.current_division
        if name == "current/me":
            employees = self.store.table_by_id(current, "payroll/Employees")
            employee = employees.seed_key(0) if employees.seeded else None
            me = me_record(world, current, str(employee) if employee else None, self.clock.now())
            return FixedTable(table_spec(endpoint), [me])
        if name in _DIVISION_LISTS:
            granted = (
                grant.family.divisions if name == "system/divisions" else tuple(world.divisions)
            )
            records = [division_record(world, code, current) for code in granted]
            return FixedTable(table_spec(endpoint), records)
        return self.store.table(division if division is not None else 0, endpoint)


#: (method, addressed by key) -> what answers it.
_ACTIONS: dict[tuple[str, bool], Callable[[Rest, Call], httpx.Response]] = {
    ("GET", False): Rest._list,
    ("GET", True): Rest._get,
    ("POST", False): Rest._create,
    ("PUT", True): Rest._update,
    ("DELETE", True): Rest._delete,
}
