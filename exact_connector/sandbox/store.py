"""The in-memory records of every division: one table per Exact resource, seeded lazily.

A regular endpoint and its bulk and sync twins share one table (``bulk/CRM/Accounts`` lists the
records of ``crm/Accounts``); so does ``sync/Project/TimeCostTransactions`` with
``project/TimeTransactions``. A table is created, with its seeded keys only, the first time a
division touches it, so 455 endpoints cost nothing until used. Rows are kept in key order and in
``Timestamp`` order (a write moves a row to the end, like Exact's row versions), so a page can
resume from a skiptoken with a bisect: O(page), not O(table).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from exact_connector.catalog import Endpoint, Field, catalog
from exact_connector.sandbox.domain import (
    AUTO,
    COMPUTED,
    CREATE_DEFAULTS,
    INHERIT,
    LOOKUPS,
    NORMALIZE,
    PADDED,
    generator_for,
    pad,
)
from exact_connector.sandbox.links import child_links, link_generator, parent_link
from exact_connector.sandbox.seed import (
    BY_TYPE,
    FieldContext,
    Generator,
    World,
    guid_from,
    key_generator,
    salt_of,
)

__all__ = ["Key", "Row", "Store", "Table", "TableSpec", "edm_type", "table_spec"]

Key = str | int
#: A seeded row that was never written is just its index; a written row is a dict of its fields.
Row = int | dict[str, Any]
#: Reads one field of any row of a table.
Getter = Callable[[Row], Any]

_TYPE_ALIASES = {
    "php:string": "Edm.String",
    "php:int": "Edm.Int32",
    "php:float": "Edm.Double",
    "php:bool": "Edm.Boolean",
}
_KEY_TYPES = frozenset(
    {"Edm.Guid", "Edm.String", "Edm.Byte", "Edm.Int16", "Edm.Int32", "Edm.Int64"}
)
#: Endpoints that list another table's records although the catalog names no origin for them.
_ALIASES = {"sync/project/timecosttransactions": "project/TimeTransactions"}
#: Tables that start empty whatever the default size: they fill as the sandbox is used.
_START_EMPTY = frozenset({"sync/deleted", "webhooks/webhooksubscriptions"})
#: ``sync/Deleted`` EntityType codes the facts name (API-FACTS, "Sync feed"); others stay null.
#: Time and cost transactions share 14 (TimeCostTransactions): the log does not tell them apart.
_ENTITY_TYPES = {
    "crm/accounts": 2,
    "project/timetransactions": 14,
    "project/costtransactions": 14,
    "project/projects": 21,
}
TS_BASE = 1_000_000


def edm_type(field: Field) -> str:
    """A field's Edm type, with the catalog's ``php:*`` spellings mapped; "" for navigation."""
    if field.collection:
        return ""
    kind = _TYPE_ALIASES.get(field.type, field.type)
    return kind if kind.startswith("Edm.") else ""


@dataclass(frozen=True)
class TableSpec:
    """The shape of one table: the scalar fields of all its endpoints, and its key."""

    id: str
    fields: dict[str, str]
    key_field: str | None
    key_type: str


@cache
def _layout() -> tuple[dict[str, TableSpec], dict[str, str]]:
    members: dict[str, list[Endpoint]] = {}
    for endpoint in catalog():
        members.setdefault(_table_id(endpoint).lower(), []).append(endpoint)
    specs: dict[str, TableSpec] = {}
    owner: dict[str, str] = {}
    for table_id, endpoints in members.items():
        head = catalog().get(table_id) or endpoints[0]
        fields: dict[str, str] = {}
        for endpoint in [head, *endpoints]:
            for field in endpoint.fields:
                kind = edm_type(field)
                if kind:
                    fields.setdefault(field.name, kind)
        key = head.key_field
        key_name = key.name if key is not None and fields.get(key.name) in _KEY_TYPES else None
        specs[table_id] = TableSpec(
            head.id, fields, key_name, fields.get(key_name or "", "Edm.Int64")
        )
        owner |= {endpoint.id.lower(): table_id for endpoint in endpoints}
    return specs, owner


def _table_id(endpoint: Endpoint) -> str:
    alias = _ALIASES.get(endpoint.id.lower())
    if alias is not None:
        return alias
    origin = catalog().origin(endpoint)
    return origin.id if origin is not None else endpoint.id


def table_spec(endpoint: Endpoint) -> TableSpec:
    """The table an endpoint reads and writes."""
    specs, owner = _layout()
    return specs[owner[endpoint.id.lower()]]


class Table:
    """The records behind one endpoint and its twins, in one division."""

    def __init__(self, store: Store, division: int, spec: TableSpec, rows: int) -> None:
        self.spec = spec
        self.division = division
        self._store = store
        world = store.world
        if spec.key_field == "Timestamp":
            keys: list[Key] = list(range(TS_BASE, TS_BASE + rows))
        else:
            make = key_generator(spec.key_type, salt_of(world.seed, division, spec.id, "key"))
            keys = [make(i) for i in range(rows)]
        self._seed_keys = keys
        self._rows: dict[Key, Row] = dict(zip(keys, range(rows), strict=True))
        self._order: list[Key] = sorted(keys)
        self._ts = list(range(TS_BASE, TS_BASE + rows))
        self._ts_key: dict[int, Key] = dict(zip(self._ts, keys, strict=True))
        self._next_ts = TS_BASE + rows
        self._serial = rows
        self._new_salt = salt_of(world.seed, division, spec.id, "new")
        self._lookups = LOOKUPS.get(spec.id, {})
        self._computed = COMPUTED.get(spec.id, {})
        self._stored = [
            n for n in spec.fields if n not in self._lookups and n not in self._computed
        ]
        self._padded = {n: w for n, w in PADDED.items() if spec.fields.get(n) == "Edm.String"}
        self._generators: dict[str, Generator] | None = None
        self._getters: dict[str, Getter] = {}

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def seeded(self) -> int:
        """How many rows were seeded."""
        return len(self._seed_keys)

    def seed_key(self, index: int) -> Key:
        """The key of seeded row ``index`` (deleted or not)."""
        return self._seed_keys[index]

    def get(self, key: Key) -> Row | None:
        """The row with this key."""
        return self._rows.get(key)

    def by_timestamp(self, timestamp: int) -> tuple[Key, Row] | None:
        """The row whose current ``Timestamp`` this is."""
        key = self._ts_key.get(timestamp)
        return None if key is None else (key, self._rows[key])

    def value(self, key: Any, name: str) -> Any:
        """One field of the record with this key; None when there is no such record."""
        row = self._rows.get(key) if key is not None else None
        return None if row is None else self.getter(name)(row)

    def getter(self, name: str) -> Getter:
        """A fast reader of one field for any row of this table."""
        found = self._getters.get(name)
        if found is None:
            found = self._getters[name] = self._build_getter(name)
        return found

    def record(self, row: Row) -> dict[str, Any]:
        """Every scalar field of a row, internal values (dates in epoch ms)."""
        return {name: self.getter(name)(row) for name in self.spec.fields}

    def scan(
        self, by_timestamp: bool, start: Any = None, inclusive: bool = False
    ) -> Iterator[tuple[Key, Row]]:
        """Rows in key (or Timestamp) order, from just after ``start`` (or at it, if inclusive)."""
        order: list[Any] = self._ts if by_timestamp else self._order
        position = 0
        if start is not None:
            position = (bisect_left if inclusive else bisect_right)(order, start)
        while position < len(order):
            key = self._ts_key[order[position]] if by_timestamp else order[position]
            yield key, self._rows[key]
            position += 1

    # -- writing -------------------------------------------------------------------------------

    def insert(self, values: Mapping[str, Any], now_ms: int) -> Key:
        """Create a record from validated values; returns its key."""
        table, world = self.spec.id, self._store.world
        row: dict[str, Any] = {name: BY_TYPE.get(self.spec.fields[name]) for name in self._stored}
        row |= self._normalized({**CREATE_DEFAULTS.get(table, {}), **values})
        for name, (link, other, there) in INHERIT.get(table, {}).items():
            if row.get(name) is None:
                row[name] = self._store.table_by_id(self.division, other).value(row[link], there)
        self._serial += 1
        for name, assign in AUTO.get(table, {}).items():
            if not row.get(name):
                row[name] = assign(self._serial)
        user, division_name = world.user, world.divisions.get(self.division)
        audit = {
            "Created": now_ms, "Modified": now_ms, "Creator": user.user_id,
            "Modifier": user.user_id, "CreatorFullName": user.full_name,
            "ModifierFullName": user.full_name, "Division": self.division,
            "DivisionDescription": division_name, "DivisionName": division_name,
        }  # fmt: skip
        row |= {name: value for name, value in audit.items() if name in self.spec.fields}
        timestamp = self._take_timestamp()
        # A Timestamp key (sync/Deleted) is the row version just taken, never a default 0.
        given = self.spec.key_field not in (None, "Timestamp")
        key = row.get(self.spec.key_field) if given and self.spec.key_field else None
        if key is None:
            key = self._new_key(timestamp)
        if self.spec.key_field is not None:
            row[self.spec.key_field] = key
        row["Timestamp"] = timestamp
        self._rows[key] = row
        insort(self._order, key)
        self._ts.append(timestamp)
        self._ts_key[timestamp] = key
        return key

    def update(self, key: Key, values: Mapping[str, Any], now_ms: int) -> None:
        """Change a record: new values, new Modified, a new Timestamp (it moves to the end)."""
        row = self._materialize(key)
        row |= self._normalized(values)
        user = self._store.world.user
        audit = {"Modified": now_ms, "Modifier": user.user_id, "ModifierFullName": user.full_name}
        row |= {name: value for name, value in audit.items() if name in self.spec.fields}
        self._drop_timestamp(row["Timestamp"])
        row["Timestamp"] = timestamp = self._take_timestamp()
        self._ts.append(timestamp)
        self._ts_key[timestamp] = key

    def delete(self, key: Key, now_ms: int) -> None:
        """Remove a record and its lines; sync/Deleted learns of each."""
        for link in child_links(self.spec.id).values():
            lines = self._link(link.child)
            read = lines.getter(link.field)
            for line_key in [k for k, row in lines.scan(False) if read(row) == key]:
                lines.delete(line_key, now_ms)
        row = self._rows.pop(key)
        del self._order[bisect_left(self._order, key)]
        self._drop_timestamp(self.getter("Timestamp")(row))
        if self.spec.id.lower() not in _START_EMPTY:
            deleted = self._store.table_by_id(self.division, "sync/Deleted")
            entity = key if isinstance(key, str) and self.spec.key_type == "Edm.Guid" else None
            values = {
                "DeletedBy": self._store.world.user.user_id,
                "DeletedDate": now_ms,
                "EntityType": _ENTITY_TYPES.get(self.spec.id.lower()),
            }
            deleted.insert({**values, "EntityKey": entity, "ID": deleted.new_guid()}, now_ms)

    def renumber(self, base: int) -> None:
        """Give every row a new row version from ``base`` on, as a database move does."""
        keys = [self._ts_key[timestamp] for timestamp in self._ts]
        rows = [self._materialize(key) for key in keys]
        self._ts = list(range(base, base + len(keys)))
        if self.spec.key_field == "Timestamp":  # sync/Deleted is keyed by its row version
            keys = list(self._ts)
            self._rows = dict(zip(keys, rows, strict=True))
            self._order = list(keys)
        for timestamp, row in zip(self._ts, rows, strict=True):
            row["Timestamp"] = timestamp
        self._ts_key = dict(zip(self._ts, keys, strict=True))
        self._next_ts = base + len(keys)

    def new_guid(self) -> str:
        """A fresh GUID, deterministic per sandbox seed and table."""
        return guid_from(self._new_salt, self._serial + self._next_ts)

    # -- internals -----------------------------------------------------------------------------

    def _normalized(self, values: Mapping[str, Any]) -> dict[str, Any]:
        rules = NORMALIZE.get(self.spec.id, {})
        normalized = {
            name: rules[name](value) if name in rules else value for name, value in values.items()
        }
        for name, width in self._padded.items():
            if isinstance(normalized.get(name), str):
                normalized[name] = normalized[name].ljust(width)
        return normalized

    def _materialize(self, key: Key) -> dict[str, Any]:
        row = self._rows[key]
        if isinstance(row, dict):
            return row
        full = {name: self.getter(name)(row) for name in self._stored}
        full["Timestamp"] = self.getter("Timestamp")(row)
        self._rows[key] = full
        return full

    def _take_timestamp(self) -> int:
        timestamp, self._next_ts = self._next_ts, self._next_ts + 1
        return timestamp

    def _drop_timestamp(self, timestamp: int) -> None:
        del self._ts[bisect_left(self._ts, timestamp)]
        del self._ts_key[timestamp]

    def _new_key(self, timestamp: int) -> Key:
        kind = self.spec.key_type
        if self.spec.key_field == "Timestamp" or self.spec.key_field is None:
            return timestamp
        if kind == "Edm.Guid":
            return self.new_guid()
        if kind == "Edm.String":
            return f"K{self._serial:05d}"
        numbers = [key for key in self._order[-1:] if isinstance(key, int)]
        return (numbers[0] if numbers else 0) + 1

    def _build_getter(self, name: str) -> Getter:
        if name == "Timestamp":
            return lambda row: TS_BASE + row if isinstance(row, int) else row.get("Timestamp")
        if name in self._lookups:
            link_field, other, there = self._lookups[name]
            link = self.getter(link_field)
            target = self._store.table_by_id(self.division, other)
            return lambda row: target.value(link(row), there)
        if name in self._computed:
            compute = self._computed[name]
            return lambda row: compute(lambda field: self.getter(field)(row))
        if name == self.spec.key_field:
            seeded = self._seed_keys
            return lambda row: seeded[row] if isinstance(row, int) else row[name]
        generate = self._generators_by_name().get(name)
        if generate is None:
            return lambda row: None if isinstance(row, int) else row.get(name)
        width = self._padded.get(name)
        if width is not None:
            unpadded = generate
            generate = lambda i: pad(unpadded(i), width)  # noqa: E731
        return lambda row: generate(row) if isinstance(row, int) else row.get(name)

    def _generators_by_name(self) -> dict[str, Generator]:
        if self._generators is None:
            specs = _layout()[0]
            generators: dict[str, Generator] = {}
            for name, kind in self.spec.fields.items():
                if name not in self._stored:
                    continue
                parent = parent_link(self.spec.id, name)
                if parent is not None:  # a line belongs to a parent of the same division
                    generators[name] = link_generator(self._link(parent))
                    continue
                context = FieldContext(
                    self._store.world, self.division, self.spec.id, name, kind, self._link
                )
                generators[name] = generator_for(context, specs)
            self._generators = generators
        return self._generators

    def _link(self, table_id: str) -> Table:
        return self._store.table_by_id(self.division, table_id)


class Store:
    """Every table of every division, created on first use."""

    def __init__(
        self, world: World, rows: int = 150, rows_per_table: Mapping[str, int] | None = None
    ) -> None:
        self.world = world
        self.rows = rows
        self._sizes = {name.lower(): size for name, size in (rows_per_table or {}).items()}
        self._tables: dict[tuple[int, str], Table] = {}
        #: Division -> when it last moved database (epoch ms); see :meth:`move`.
        self.moves: dict[int, int] = {}

    def move(self, division: int, now_ms: int, base: int) -> None:
        """The division moved database: its row versions restart at ``base``."""
        self.moves[division] = now_ms
        for (code, _), table in self._tables.items():
            if code == division:
                table.renumber(base)

    def table(self, division: int, endpoint: Endpoint) -> Table:
        """The table behind an endpoint in a division."""
        return self.table_by_id(division, table_spec(endpoint).id)

    def table_by_id(self, division: int, table_id: str) -> Table:
        """A table by its id (the id of its regular endpoint, any case)."""
        slot = (division, table_id.lower())
        table = self._tables.get(slot)
        if table is None:
            spec = _layout()[0][slot[1]]
            default = 0 if slot[1] in _START_EMPTY else self.rows
            size = self._sizes.get(slot[1], default)
            table = self._tables[slot] = Table(self, division, spec, size)
        return table
