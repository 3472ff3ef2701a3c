"""The REST API: a URL becomes a catalog endpoint, then a list, a read, a create, an update or a
delete over the store, answered in Exact's envelopes.

Lists page 60 rows (1000 on bulk and sync endpoints) in key order (Timestamp order on sync ones)
and resume from ``$skiptoken`` with a bisect; a filter scans forward from there only, and a
``gt``/``ge`` bound on the order field moves the start too. ``$orderby`` sorts the filtered rows,
which costs what it costs at Exact: a full read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from exact_connector.catalog import Endpoint, catalog
from exact_connector.clock import Clock
from exact_connector.sandbox.counters import Counters
from exact_connector.sandbox.domain import REFERENCES
from exact_connector.sandbox.filters import lower_bound, predicate
from exact_connector.sandbox.oauth import AccessGrant
from exact_connector.sandbox.query import Options, parse_key, parse_options
from exact_connector.sandbox.render import Readable, Renderer, next_link, type_name, uri_literal
from exact_connector.sandbox.store import FixedTable, Key, Row, Store, Table, edm_type, table_spec
from exact_connector.sandbox.system import division_record, me_record
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


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, 0) if value is None else (1, value.casefold() if isinstance(value, str) else value)


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
        if method not in endpoint.methods:
            allow = ", ".join(sorted(endpoint.methods))
            raise SandboxError(
                405,
                f"The HTTP method '{method}' is not allowed on this resource.",
                headers={"Allow": allow},
            )
        table = self._table(endpoint, where.division, grant)
        prefix = (
            "/api/v1"
            + ("/beta" if where.beta else "")
            + (f"/{where.division}" if where.division is not None else "")
        )
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        collection = f"{base}{prefix}/{endpoint.id}"
        params = list(request.url.params.multi_items())
        if where.tail is not None:
            if method != "GET":
                raise SandboxError(
                    405, f"The HTTP method '{method}' is not allowed on this resource."
                )
            return self._tail(endpoint, table, where, params)
        keyed = where.key is not None
        if method == "GET":
            return (
                self._get(endpoint, table, where.key, collection, params)
                if keyed
                else self._list(endpoint, table, collection, params)
            )
        if not isinstance(table, Table):
            raise SandboxError(403, "The sandbox's administrations and user cannot be changed.")
        if method == "POST" and not keyed:
            return self._create(request, endpoint, table, where.division or 0, collection)
        if method == "PUT" and keyed:
            return self._update(request, endpoint, table, where.key or "", where.division or 0)
        if method == "DELETE" and keyed:
            key, _ = self._find(endpoint, table, where.key or "")
            table.delete(key, self._now_ms())
            return empty_response(204)
        raise SandboxError(405, f"The HTTP method '{method}' is not allowed on this address.")

    # -- reading ---------------------------------------------------------------------------------

    def _options(self, endpoint: Endpoint, params: list[tuple[str, str]], listing: bool) -> Options:
        fields = {f.name: kind for f in endpoint.fields if (kind := edm_type(f))}
        navigation = frozenset(f.name for f in endpoint.fields if not edm_type(f))
        needs_select = listing and endpoint.kind in ("bulk", "sync")
        return parse_options(
            params, fields, navigation, type_name(endpoint), require_select=needs_select
        )

    def _list(
        self, endpoint: Endpoint, table: Readable, collection: str, params: list[tuple[str, str]]
    ) -> httpx.Response:
        options = self._options(endpoint, params, listing=True)
        by_ts = endpoint.kind == "sync"
        order_name = "Timestamp" if by_ts else table.spec.key_field
        order_edm = "Edm.Int64" if by_ts or table.spec.key_field is None else table.spec.key_type
        test = predicate(options.filter, table.getter) if options.filter is not None else None
        limit = endpoint.page_size if options.top is None else min(endpoint.page_size, options.top)
        start = parse_key(options.skiptoken, order_edm) if options.skiptoken is not None else None
        if options.orderby:
            page, more, last = self._sorted_page(table, by_ts, test, options, start, limit)
        else:
            page, more, last = self._scan_page(
                table, by_ts, test, options, order_name, start, limit
            )
        body: dict[str, Any] = {}
        if options.inlinecount:
            body["__count"] = str(
                sum(1 for _, row in table.scan(by_ts) if test is None or test(row))
            )
        render = Renderer(endpoint, table, collection, options.select, options.expand)
        body["results"] = [render(row) for _, row in page]
        top_left = None if options.top is None else options.top - len(page)
        if more and (top_left is None or top_left > 0) and last is not None:
            body["__next"] = next_link(
                collection, options.params, uri_literal(last, order_edm), top_left
            )
        return json_response(200, {"d": body})

    @staticmethod
    def _scan_page(
        table: Readable,
        by_ts: bool,
        test: Any,
        options: Options,
        order_name: str | None,
        start: Any,
        limit: int,
    ) -> tuple[list[tuple[Key, Row]], bool, Any]:
        inclusive = False
        bound = lower_bound(options.filter, order_name) if order_name else None
        if bound is not None and (start is None or bound[0] > start):
            start, inclusive = bound
        page: list[tuple[Key, Row]] = []
        more = False
        for key, row in table.scan(by_ts, start, inclusive):
            if test is not None and not test(row):
                continue
            if len(page) == limit:
                more = True
                break
            page.append((key, row))
        if not page:
            return page, False, None
        last_row = page[-1][1]
        last = table.getter("Timestamp")(last_row) if by_ts else page[-1][0]
        return page, more, last

    @staticmethod
    def _sorted_page(
        table: Readable, by_ts: bool, test: Any, options: Options, start: Any, limit: int
    ) -> tuple[list[tuple[Key, Row]], bool, Any]:
        rows = [(key, row) for key, row in table.scan(by_ts) if test is None or test(row)]
        for name, descending in reversed(options.orderby):
            read = table.getter(name)
            rows.sort(key=lambda pair: _sort_key(read(pair[1])), reverse=descending)
        position = 0
        if start is not None:
            keys = [table.getter("Timestamp")(row) if by_ts else key for key, row in rows]
            position = keys.index(start) + 1 if start in keys else len(rows)
        page = rows[position : position + limit]
        last = None
        if page:
            last = table.getter("Timestamp")(page[-1][1]) if by_ts else page[-1][0]
        return page, position + limit < len(rows), last

    def _find(self, endpoint: Endpoint, table: Readable, literal: str) -> tuple[Key, Row]:
        key_name = endpoint.primary_key if isinstance(endpoint.primary_key, str) else None
        key_field = endpoint.field(key_name) if key_name else None
        edm = edm_type(key_field) if key_field is not None else ""
        if key_field is None or not edm:
            raise SandboxError(400, "This resource has no single key to address a record by.")
        value = parse_key(literal, edm)
        if key_field.name == "Timestamp" and table.spec.key_field != "Timestamp":
            found = table.by_timestamp(value)
        else:
            row = table.get(value)
            found = None if row is None else (value, row)
        if found is None:
            raise SandboxError(
                404, f"Resource not found for the segment '{endpoint.name.rsplit('/', 1)[-1]}'."
            )
        return found

    def _get(
        self,
        endpoint: Endpoint,
        table: Readable,
        literal: str | None,
        collection: str,
        params: list[tuple[str, str]],
    ) -> httpx.Response:
        options = self._options(endpoint, params, listing=False)
        _, row = self._find(endpoint, table, literal or "")
        return json_response(
            200, {"d": Renderer(endpoint, table, collection, options.select, options.expand)(row)}
        )

    def _tail(
        self, endpoint: Endpoint, table: Readable, where: Route, params: list[tuple[str, str]]
    ) -> httpx.Response:
        if where.tail == "$count" and where.key is None:
            options = self._options(endpoint, params, listing=False)
            test = predicate(options.filter, table.getter) if options.filter is not None else None
            count = sum(1 for _, row in table.scan(False) if test is None or test(row))
            return httpx.Response(
                200, headers={"Content-Type": "text/plain"}, content=str(count).encode()
            )
        field = endpoint.field(where.tail or "")
        if where.key is None or field is None or field.name != where.tail or edm_type(field):
            raise SandboxError(404, f"Resource not found for the segment '{where.tail}'.")
        _, row = self._find(endpoint, table, where.key)
        return json_response(200, {"d": {"results": list(table.getter(field.name)(row) or [])}})

    # -- writing ---------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def _references(self, table: Table, division: int, values: dict[str, Any]) -> None:
        for name, other in REFERENCES.get(table.spec.id, {}).items():
            value = values.get(name)
            if value is not None and self.store.table_by_id(division, other).get(value) is None:
                raise SandboxError(
                    400, f"Invalid reference: no {other} record has the ID given in '{name}'."
                )

    def _create(
        self,
        request: httpx.Request,
        endpoint: Endpoint,
        table: Table,
        division: int,
        collection: str,
    ) -> httpx.Response:
        values = check_write(endpoint, request.content, type_name(endpoint), creating=True)
        self._references(table, division, values)
        if table.spec.key_field in values and table.get(values[table.spec.key_field]) is not None:
            raise SandboxError(400, "A record with this key already exists.")
        key = table.insert(values, self._now_ms())
        self.counters.records_created[endpoint.id] += 1
        row = table.get(key)
        assert row is not None  # just inserted
        render = Renderer(endpoint, table, collection)
        full = "return=representation" in request.headers.get("prefer", "").replace(" ", "")
        record = render(row) if full else render.key_only(row)
        return json_response(201, {"d": record}, {"Location": render.uri(row)})

    def _update(
        self, request: httpx.Request, endpoint: Endpoint, table: Table, literal: str, division: int
    ) -> httpx.Response:
        key, _ = self._find(endpoint, table, literal)
        values = check_write(
            endpoint, request.content, type_name(endpoint), key=key, creating=False
        )
        self._references(table, division, values)
        table.update(key, values, self._now_ms())
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
