"""The REST API: a URL becomes a catalog endpoint, then a list, a read, a create, an update or a
delete over the store, answered in Exact's envelopes.

Lists page 60 rows (1000 on bulk and sync endpoints) in key order (Timestamp order on sync ones);
:mod:`~exact_connector.sandbox.listing` finds the page. ``current/Me`` and the division lists are
derived from the sandbox's settings (:mod:`~exact_connector.sandbox.system`) and read-only;
function endpoints answer from their parameters (:mod:`~exact_connector.sandbox.functions`).

``$expand`` lists a parent's lines from their own table (:mod:`~exact_connector.sandbox.links`), and
a POST may carry new lines inline (Exact's deep insert): they are checked with the parent, before
anything is stored. A write to a line of a document (an order, invoice or quotation) saves the
document, as Exact's does: it gets a new ``Modified`` and row version. Sync endpoints take only a
``Timestamp gt`` filter (API-FACTS, "Sync feed").

Two switches model what the facts leave open. ``mandatory_filter``: Exact demands a ``$filter`` on
lists of the regular and bulk endpoints that have a sync API (API-FACTS §3, KB "API limits"), but
the fields of the docs' "Filter" column were not captured, so which lists fail cannot be known;
when on, a list without any ``$filter`` there answers 400 (off by default). ``bare_arrays``: Exact
sometimes answers ``{"d":[…]}`` (recorded for a logistics/Items record; API-FACTS §4 "Envelope"),
when is not documented; when on, every answer without ``__next`` or ``__count`` takes that form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import httpx

from exact_connector.catalog import Endpoint, catalog
from exact_connector.clock import Clock
from exact_connector.sandbox.counters import Counters
from exact_connector.sandbox.domain import REFERENCES
from exact_connector.sandbox.filters import predicate, timestamp_after, timestamp_only
from exact_connector.sandbox.functions import function_table, single_result
from exact_connector.sandbox.history import takes_skip
from exact_connector.sandbox.links import Link, child_links, document_lines, document_of, group_by
from exact_connector.sandbox.listing import count, page
from exact_connector.sandbox.negotiate import count_acceptable, read_payload
from exact_connector.sandbox.oauth import AccessGrant
from exact_connector.sandbox.query import Options, parse_key, parse_options
from exact_connector.sandbox.render import Readable, Renderer, next_link, type_name, uri_literal
from exact_connector.sandbox.routes import Route
from exact_connector.sandbox.store import Key, Row, Store, Table, edm_type, table_spec
from exact_connector.sandbox.system import FixedTable, division_record, me_record
from exact_connector.sandbox.webhooks import SUBSCRIPTIONS, SandboxWebhooks
from exact_connector.sandbox.wire import SandboxError, empty_response, json_response
from exact_connector.sandbox.writes import check_write

__all__ = ["Rest"]

_DIVISION_LISTS = frozenset({"system/divisions", "system/alldivisions", "hrm/divisions"})
#: Row versions per document in a feed whose rows are lines (the most lines a document shows).
_LINE_VERSIONS = 1000


@dataclass(frozen=True)
class Call:
    """One authorised API request, resolved: its endpoint, table and collection URI."""

    request: httpx.Request
    where: Route
    endpoint: Endpoint
    table: Readable
    collection: str
    params: list[tuple[str, str]]
    grant: AccessGrant

    @property
    def division(self) -> int:
        """The division in the URL (0 for the few endpoints without one)."""
        return self.where.division or 0


class Rest:
    """Generic CRUD over the store for every catalog endpoint, plus the derived system lists."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        counters: Counters,
        current_division: int,
        *,
        mandatory_filter: bool = False,
        bare_arrays: bool = False,
        webhooks: SandboxWebhooks | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.store = store
        self.clock = clock
        self.counters = counters
        self.current_division = current_division
        self.mandatory_filter = mandatory_filter
        self.bare_arrays = bare_arrays

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
        params = list(request.url.params.multi_items())
        arguments = dict(params)
        if (single := single_result(endpoint, arguments)) is not None:
            return self._envelope({"d": single})
        table = self._table(endpoint, where.division, grant, arguments)
        if method != "GET" and not isinstance(table, Table):
            raise SandboxError(403, "The sandbox's administrations and user cannot be changed.")
        collection = f"{self._api_base(request, where)}/{endpoint.id}"
        return action(self, Call(request, where, endpoint, table, collection, params, grant))

    @staticmethod
    def _api_base(request: httpx.Request, where: Route) -> str:
        beta = "/beta" if where.beta else ""
        division = f"/{where.division}" if where.division is not None else ""
        base = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        return f"{base}/api/v1{beta}{division}"

    def _envelope(self, payload: dict[str, Any]) -> httpx.Response:
        """``{"d":…}``; in bare-array mode a record or a page without ``__next``/``__count``
        becomes ``{"d":[…]}``."""
        body = payload["d"]
        if self.bare_arrays and isinstance(body, dict) and not {"__next", "__count"} & set(body):
            if isinstance(body.get("results"), list):
                payload = {"d": body["results"]}
            elif "__metadata" in body:
                payload = {"d": [body]}
        return json_response(200, payload)

    # -- reading ---------------------------------------------------------------------------------

    @staticmethod
    def _options(call: Call, listing: bool) -> Options:
        endpoint = call.endpoint
        fields = {f.name: kind for f in endpoint.fields if (kind := edm_type(f))}
        navigation = frozenset(f.name for f in endpoint.fields if not edm_type(f))
        needs_select = listing and endpoint.kind in ("bulk", "sync")
        return parse_options(
            call.params,
            fields,
            navigation,
            type_name(endpoint),
            require_select=needs_select,
            skip_allowed=takes_skip(endpoint),
        )

    def _check_filter(self, endpoint: Endpoint, options: Options) -> None:
        if endpoint.kind == "sync" and options.filter is not None:
            if not timestamp_only(options.filter):
                message = "Sync endpoints can only be filtered with 'Timestamp gt <timestamp>'."
                raise SandboxError(400, message)
        elif (
            self.mandatory_filter
            and options.filter is None
            and catalog().sync_api(endpoint) is not None
        ):
            message = "A $filter is mandatory on this endpoint. Add a $filter to the query string."
            raise SandboxError(400, message)

    def _expanded(self, call: Call, names: frozenset[str]) -> dict[str, Lines]:
        """For each expanded property, a reader of a row's lines as records."""
        links = child_links(call.table.spec.id)
        return {
            name: self._lines(call, links[name]) if name in links else _stored(call.table, name)
            for name in names
        }

    def _lines(self, call: Call, link: Link) -> Lines:
        """A parent row's lines, read from the child table (grouped once per request)."""
        child = catalog().lookup(link.child)
        lines = self.store.table_by_id(call.division, link.child)
        render = Renderer(child, lines, f"{self._api_base(call.request, call.where)}/{child.id}")
        groups = group_by(lines.scan(False), lines.getter(link.field))
        key = call.table.getter(call.table.spec.key_field or "")
        return lambda row: [render(line) for line in groups.get(key(row), [])]

    def _list(self, call: Call) -> httpx.Response:
        options = self._options(call, listing=True)
        table, endpoint = call.table, call.endpoint
        self._check_filter(endpoint, options)
        if (lines := self._per_line(call, options.select)) is not None:
            return self._list_lines(call, options, lines)
        by_ts = endpoint.kind == "sync"
        order_edm = "Edm.Int64" if by_ts or table.spec.key_field is None else table.spec.key_type
        test = predicate(options.filter, table.getter) if options.filter is not None else None
        if table.spec.id.lower() == SUBSCRIPTIONS:  # an app sees its own subscriptions only
            test = _of_app(table, call.grant.family.app.client_id, test)
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
            skip=options.skip,
        )
        body: dict[str, Any] = {}
        if options.inlinecount:
            body["__count"] = str(count(table, by_ts, test))
        expanded = self._expanded(call, options.expand)
        render = Renderer(endpoint, table, call.collection, options.select, expanded)
        body["results"] = [render(row) for _, row in found.rows]
        top_left = None if options.top is None else options.top - len(found.rows)
        if found.more and (top_left is None or top_left > 0):
            skiptoken = uri_literal(found.last, order_edm)
            body["__next"] = next_link(call.collection, options.params, skiptoken, top_left)
        return self._envelope({"d": body})

    def _per_line(self, call: Call, select: tuple[str, ...] | None) -> Lines | None:
        """A document's rows in its sync feed, when that feed holds one row per line.

        Exact's sync twins of orders, invoices and quotations carry a ``LineNumber`` their regular
        endpoint lacks: each row is one line, with the document's fields repeated, and a
        document without lines has no row. Here a row is the document as rendered, with the
        line's own fields (``ID``, ``LineNumber``, ``Item``…) from the line table.
        """
        endpoint = call.endpoint
        links = document_lines(call.table.spec.id) if endpoint.kind == "sync" else []
        if not links:
            return None
        link, origin = links[0], catalog().lookup(links[0].parent)
        wanted = set(select) if select is not None and "*" not in select else None
        child = catalog().lookup(link.child)
        line_fields = [
            f.name
            for f in endpoint.fields
            if origin.field(f.name) is None
            and child.field(f.name) is not None
            and (wanted is None or f.name in wanted)
        ]
        lines = self.store.table_by_id(call.division, link.child)
        render_line = Renderer(child, lines, call.collection, line_fields or ["LineNumber"])
        render = Renderer(endpoint, call.table, call.collection, select)
        groups = group_by(lines.scan(False), lines.getter(link.field))
        key = call.table.getter(origin.primary_key if isinstance(origin.primary_key, str) else "")

        def rows(row: Row) -> list[dict[str, Any]]:
            document = render(row)
            return [
                document | {name: line[name] for name in line_fields if name in line}
                for line in map(render_line, groups.get(key(row), []))
            ]

        return rows

    def _list_lines(self, call: Call, options: Options, lines: Lines) -> httpx.Response:
        """A page of a feed whose rows are lines, in row-version order; ``__count`` is of the
        rows the filter keeps, as on other lists."""
        since = timestamp_after(options.filter) if options.filter is not None else None
        after = since
        if options.skiptoken is not None:
            after = max(after or 0, int(parse_key(options.skiptoken, "Edm.Int64")))
        limit = call.endpoint.page_size if options.top is None else options.top
        limit = min(limit, call.endpoint.page_size)
        found = list(islice(_line_rows(call.table, lines, after), limit + 1))
        body: dict[str, Any] = {"results": [record for _, record in found[:limit]]}
        if options.inlinecount:
            body["__count"] = str(sum(1 for _ in _line_rows(call.table, lines, since)))
        top_left = None if options.top is None else options.top - len(body["results"])
        if len(found) > limit and (top_left is None or top_left > 0):
            skiptoken = uri_literal(found[limit - 1][0], "Edm.Int64")
            body["__next"] = next_link(call.collection, options.params, skiptoken, top_left)
        return self._envelope({"d": body})

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
        if found is not None and table.spec.id.lower() == SUBSCRIPTIONS:
            mine = _of_app(table, call.grant.family.app.client_id, None)
            found = found if mine(found[1]) else None  # another app's: not there, for this one
        if found is None:
            segment = endpoint.name.rsplit("/", 1)[-1]
            raise SandboxError(404, f"Resource not found for the segment '{segment}'.")
        return found

    def _get(self, call: Call) -> httpx.Response:
        options = self._options(call, listing=False)
        _, row = self._find(call)
        expanded = self._expanded(call, options.expand)
        render = Renderer(call.endpoint, call.table, call.collection, options.select, expanded)
        return self._envelope({"d": render(row)})

    def _tail(self, call: Call) -> httpx.Response:
        tail, endpoint = call.where.tail, call.endpoint
        if tail == "$count" and call.where.key is None:
            count_acceptable(call.request)
            options = self._options(call, listing=False)
            table = call.table
            test = predicate(options.filter, table.getter) if options.filter is not None else None
            text = str(count(table, False, test)).encode()
            return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=text)
        field = endpoint.field(tail or "")
        if call.where.key is None or field is None or field.name != tail or edm_type(field):
            raise SandboxError(404, f"Resource not found for the segment '{tail}'.")
        _, row = self._find(call)
        lines = self._expanded(call, frozenset({field.name}))[field.name](row)
        return self._envelope({"d": {"results": lines}})

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
        payload = read_payload(call.request, call.endpoint)
        values = check_write(call.endpoint, payload, type_name(call.endpoint), creating=True)
        self._references(call, values)
        key_field = table.spec.key_field
        if key_field in values and table.get(values[key_field]) is not None:
            raise SandboxError(400, "A record with this key already exists.")
        lines = self._new_lines(call, values)
        if table.spec.id.lower() == SUBSCRIPTIONS and self.webhooks is not None:
            self.webhooks.validate(values.get("CallbackURL"), values.get("Topic"))
            values["ClientID"] = call.grant.family.app.client_id
            values["UserID"] = self.store.world.user.user_id  # per app and user (API-FACTS)
        now = self._now_ms()
        key = table.insert(values, now)
        for link, line in lines:
            self.store.table_by_id(call.division, link.child).insert({**line, link.field: key}, now)
        self.counters.records_created[call.endpoint.id] += 1
        self._notify(call, "Create", key)
        self._save_documents(call, _document(table, key))
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
        payload = read_payload(call.request, call.endpoint)
        values = check_write(
            call.endpoint, payload, type_name(call.endpoint), key=key, creating=False
        )
        self._references(call, values)
        was = _document(table, key)
        table.update(key, values, self._now_ms())
        self._notify(call, "Update", key)
        self._save_documents(call, was, _document(table, key))
        return empty_response(204)

    def _new_lines(self, call: Call, values: dict[str, Any]) -> list[tuple[Link, dict[str, Any]]]:
        """Lines given inline with a new parent, checked as their own endpoint checks them."""
        lines = []
        for name, link in child_links(call.table.spec.id).items():
            given = values.pop(name, None) or []
            child = catalog().lookup(link.child)
            for line in given:
                # The parent's key is not known yet: a placeholder passes the link's checks.
                with_link = {**line, link.field: _PLACEHOLDER_KEY}
                checked = check_write(child, with_link, type_name(child), creating=True)
                checked.pop(link.field)
                lines.append((link, checked))
        return lines

    def _delete(self, call: Call) -> httpx.Response:
        table = call.table
        assert isinstance(table, Table)
        key, _ = self._find(call)
        was = _document(table, key)
        table.delete(key, self._now_ms())
        self._notify(call, "Delete", key)
        self._save_documents(call, was)
        return empty_response(204)

    def _save_documents(self, call: Call, *keys: Key | None) -> None:
        """The documents a write to their lines changed are saved, as Exact saves a document
        with its lines: a new ``Modified`` and row version, so each of its rows in the sync
        feed comes again, after every row before. Subscribers hear of an update."""
        link = document_of(call.table.spec.id)
        if link is None:
            return
        endpoint = catalog().lookup(link.parent)
        documents = self.store.table_by_id(call.division, link.parent)
        collection = f"{self._api_base(call.request, call.where)}/{endpoint.id}"
        saved = replace(call, endpoint=endpoint, table=documents, collection=collection)
        for key in dict.fromkeys(keys):
            if key is not None and documents.get(key) is not None:
                documents.update(key, {}, self._now_ms())
                self._notify(saved, "Update", key)

    def _notify(self, call: Call, action: str, key: Key) -> None:
        """Hand a change to the webhook deliveries of the division's subscriptions."""
        if self.webhooks is None:
            return
        subscriptions = self.store.table_by_id(call.division, SUBSCRIPTIONS)
        found = [subscriptions.record(row) for _, row in subscriptions.scan(False)]
        if found:
            uri = f"{call.collection}({uri_literal(key, call.table.spec.key_type)})"
            self.webhooks.changed(found, call.table.spec.id, action, key, uri)

    # -- the derived system lists ----------------------------------------------------------------

    def _table(
        self,
        endpoint: Endpoint,
        division: int | None,
        grant: AccessGrant,
        arguments: dict[str, str],
    ) -> Readable:
        computed = function_table(endpoint, self.store, division or 0, arguments)
        if computed is not None:
            return computed
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
            moves = self.store.moves
            records = [division_record(world, code, current, moves.get(code)) for code in granted]
            return FixedTable(table_spec(endpoint), records)
        return self.store.table(division if division is not None else 0, endpoint)


_PLACEHOLDER_KEY = "00000000-0000-0000-0000-000000000000"
#: A parent row -> its lines, as records.
Lines = Callable[[Row], list[dict[str, Any]]]


def _line_rows(
    table: Readable, lines: Lines, after: int | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a feed whose rows are lines, after a row version, with their versions.

    A line's row version is its document's times :data:`_LINE_VERSIONS`, plus its place: a
    document saved, or one of its lines written (which saves it), gives each of its rows a new
    one, after every row before, as Exact's row per line would.
    """
    version_of = table.getter("Timestamp")
    start = None if after is None else after // _LINE_VERSIONS
    for _, row in table.scan(True, start, inclusive=True):
        base = int(version_of(row)) * _LINE_VERSIONS
        for place, record in enumerate(lines(row)[:_LINE_VERSIONS]):
            if after is None or base + place > after:
                if "Timestamp" in record:
                    record["Timestamp"] = base + place
                yield base + place, record


def _document(table: Table, key: Key) -> Key | None:
    """The document a line belongs to, when the table holds lines of documents."""
    link = document_of(table.spec.id)
    return None if link is None else table.value(key, link.field)


def _stored(table: Readable, name: str) -> Lines:
    """Lines a collection without a table of its own holds: what a write stored, if anything."""
    read = table.getter(name)
    return lambda row: list(read(row) or [])


#: (method, addressed by key) -> what answers it.
_ACTIONS: dict[tuple[str, bool], Callable[[Rest, Call], httpx.Response]] = {
    ("GET", False): Rest._list,
    ("GET", True): Rest._get,
    ("POST", False): Rest._create,
    ("PUT", True): Rest._update,
    ("DELETE", True): Rest._delete,
}


def _of_app(
    table: Readable, client_id: str, test: Callable[[Row], bool] | None
) -> Callable[[Row], bool]:
    """``test`` (or none), narrowed to the rows of one app: Exact keeps webhook subscriptions per
    app, and one app cannot see or remove another's."""
    owner = table.getter("ClientID")
    if test is None:
        return lambda row: owner(row) == client_id
    return lambda row: owner(row) == client_id and test(row)
