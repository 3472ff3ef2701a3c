"""One page of a list: where it starts, which rows it holds, and whether more follow.

Without ``$orderby`` a page resumes just after its ``$skiptoken`` with a bisect over the table's
key (or Timestamp) order, and a ``gt``/``ge``/``eq`` bound on that order in the filter moves the
start further; a filter then scans forward from there only, so a page costs O(page + skipped
non-matching rows), never O(table). ``$orderby`` has to read and sort every matching row, as it
does at Exact (which calls it slow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exact_connector.sandbox.filters import lower_bound
from exact_connector.sandbox.render import Readable
from exact_connector.sandbox.store import Key, Row

__all__ = ["ListPage", "count", "page"]

Test = Callable[[Row], bool] | None


@dataclass(frozen=True)
class ListPage:
    """The rows of one page, whether more rows match, and the last row's position (skiptoken)."""

    rows: list[tuple[Key, Row]]
    more: bool
    last: Any


def count(table: Readable, by_timestamp: bool, test: Test) -> int:
    """How many rows match (``$inlinecount``, ``/$count``)."""
    return sum(1 for _, row in table.scan(by_timestamp) if test is None or test(row))


def page(
    table: Readable,
    *,
    by_timestamp: bool,
    test: Test,
    filter_tree: Any,
    orderby: tuple[tuple[str, bool], ...],
    start: Any,
    limit: int,
    skip: int = 0,
) -> ListPage:
    """The page after ``start`` (a key, or a Timestamp when ``by_timestamp``), ``skip`` matching
    rows further on (``$skip``)."""
    position = _position(table, by_timestamp)
    if limit == 0:
        return ListPage([], False, None)
    if orderby:
        return _sorted(table, by_timestamp, test, orderby, start, limit + skip, position, skip)
    order_name = "Timestamp" if by_timestamp else table.spec.key_field
    inclusive = False
    bound = lower_bound(filter_tree, order_name) if order_name else None
    if bound is not None and (start is None or bound[0] > start):
        start, inclusive = bound
    rows: list[tuple[Key, Row]] = []
    for key, row in table.scan(by_timestamp, start, inclusive):
        if test is not None and not test(row):
            continue
        if skip:
            skip -= 1
            continue
        if len(rows) == limit:
            return ListPage(rows, True, position(rows[-1]))
        rows.append((key, row))
    return ListPage(rows, False, position(rows[-1]) if rows else None)


def _position(table: Readable, by_timestamp: bool) -> Callable[[tuple[Key, Row]], Any]:
    if by_timestamp:
        stamp = table.getter("Timestamp")
        return lambda pair: stamp(pair[1])
    return lambda pair: pair[0]


def _sort_key(value: Any) -> tuple[int, Any]:
    """Nulls first, text case-insensitively (SQL Server's order)."""
    return (0, 0) if value is None else (1, value.casefold() if isinstance(value, str) else value)


def _sorted(
    table: Readable,
    by_timestamp: bool,
    test: Test,
    orderby: tuple[tuple[str, bool], ...],
    start: Any,
    limit: int,
    position: Callable[[tuple[Key, Row]], Any],
    skip: int = 0,
) -> ListPage:
    rows = [(key, row) for key, row in table.scan(by_timestamp) if test is None or test(row)]
    for name, descending in reversed(orderby):
        read = table.getter(name)
        rows.sort(key=lambda pair: _sort_key(read(pair[1])), reverse=descending)
    first = 0
    if start is not None:
        positions = [position(pair) for pair in rows]
        first = positions.index(start) + 1 if start in positions else len(rows)
    chosen = rows[first + skip : first + limit]
    return ListPage(chosen, first + limit < len(rows), position(chosen[-1]) if chosen else None)
