"""Reading a sync feed from a row version on: ``$filter=Timestamp gt {n}L``, 1,000 rows a call.

Exact orders a sync endpoint's rows by ``Timestamp`` (a row version, not a time; API-FACTS, "Sync
feed"), so rows read in order up to any point end at a safe place to resume: the highest
``Timestamp`` read. A batch stops after ``limit`` rows (or at the end of the feed) without asking
for a page it will not use, so an idle poll costs one call and 1,000 changes cost one.

Whether a division moved database, which resets its row versions, is read from
``system/Divisions.DivisionMoveDate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exact_connector.catalog import catalog
from exact_connector.exceptions import ExactError
from exact_connector.odata import normalize, unwrap_page
from exact_connector.pagination import Pager, read_json

if TYPE_CHECKING:
    from exact_connector.catalog import Endpoint
    from exact_connector.client import ExactClient

__all__ = ["FIRST_TIMESTAMP", "Batch", "division_move_date", "read_since"]

#: Where a feed read from its beginning starts (API-FACTS: "first call ``Timestamp gt 1``").
FIRST_TIMESTAMP = 1


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows read from a feed, the row version to resume after, and whether more are waiting."""

    rows: list[dict[str, Any]]
    last: int
    more: bool
    calls: int


def read_since(
    client: ExactClient,
    endpoint: Endpoint,
    division: int,
    since: int,
    select: Iterable[str],
    *,
    limit: int,
    deadline: float | None = None,
) -> Batch:
    """At most ``limit`` rows changed after row version ``since``, in row-version order."""
    fields = list(dict.fromkeys(["Timestamp", *select]))
    params = {"$select": ",".join(fields), "$filter": f"Timestamp gt {since}L"}
    url = client.url(endpoint, division, params=params)
    pager = Pager(client, endpoint, division, url, deadline=deadline)
    pager.limit = limit
    rows: list[dict[str, Any]] = []
    last = since
    before = client.stats.api_calls
    for record in pager:
        timestamp = record.get("Timestamp")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp <= last:
            raise ExactError(
                f"{endpoint.id} answered rows out of row-version order; the poll was stopped.",
                details={"endpoint": endpoint.id},
            )
        last = timestamp
        rows.append(normalize(record))
        if len(rows) >= limit:
            break
    more = len(rows) >= limit and pager.cursor() is not None
    return Batch(rows, last, more, client.stats.api_calls - before)


def division_move_date(client: ExactClient, division: int, deadline: float | None = None) -> str:
    """When the division last moved database (ISO text), or "" when it never did."""
    endpoint = catalog().lookup("system/Divisions")
    params = {"$select": "Code,DivisionMoveDate", "$filter": f"Code eq {division}"}
    url = client.url(endpoint, division, params=params)
    response = client.request("GET", url, endpoint=endpoint, division=division, deadline=deadline)
    for record in unwrap_page(read_json(response)).records:
        if record.get("Code") == division:
            return str(normalize(record.get("DivisionMoveDate")) or "")
    return ""
