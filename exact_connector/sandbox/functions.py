"""Function endpoints: parameters in, an answer computed from them out — not tables.

Exact's "Function Details" endpoints (catalog kind ``function``, ``parameterized_get``) are OData
service operations: their parameters come in the query string as literals (``'text'``,
``datetime'…'``), and they answer one value or a collection computed from them. The catalog does
not capture the parameters (API-FACTS, Uncertainties 8), so the sandbox implements the ones the
facts name, and every other function endpoint keeps answering from its seeded table:

* ``users/UserHasRights?endpoint='Logistics/Items'&action='GET'`` (API-FACTS §4 "Rights check",
  KB "Tips and Tricks") answers one boolean in OData v2's single-result form,
  ``{"d":{"UserHasRights":true}}``: true when the endpoint exists and allows the action, since the
  sandbox's one user holds every right the catalog describes.
* ``read/project/HoursByDate?checkDate=datetime'2025-06-02'`` (API-FACTS §5 names it a GET function
  taking parameters; ``checkDate`` per Uncertainties 8) answers the hours booked on that date as
  HoursByDate records built from ``project/TimeTransactions`` (the sandbox has one user, so every
  booking is theirs), with ``$select``, ``$filter`` and paging as on any list.

A missing or malformed parameter answers 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exact_connector.catalog import Endpoint, catalog
from exact_connector.sandbox.filters import datetime_value
from exact_connector.sandbox.query import parse_key
from exact_connector.sandbox.seed import DAY_MS
from exact_connector.sandbox.store import Store, table_spec
from exact_connector.sandbox.system import FixedTable
from exact_connector.sandbox.wire import SandboxError

__all__ = ["function_table", "single_result"]

_ACTIONS = frozenset({"GET", "POST", "PUT", "DELETE"})
_BY_STATUS = {1: "Draft", 2: "Rejected", 10: "Submitted", 20: "Approved"}
_NON_BILLABLE = 4  # project type "Non billable" (API-FACTS §5, project/Projects)


def _parameter(params: Mapping[str, str], name: str, edm: str) -> Any:
    if name not in params:
        raise SandboxError(400, f"The function parameter '{name}' is missing.")
    text = params[name]
    if edm == "Edm.DateTime":
        match = re.fullmatch(r"datetime'([^']*)'", text)
        if match is None:
            raise SandboxError(400, f"Unrecognized 'Edm.DateTime' literal '{text}' in '{name}'.")
        return datetime_value(match.group(1))
    return parse_key(text, edm)


# -- users/UserHasRights ---------------------------------------------------------------------------


def _user_has_rights(params: Mapping[str, str]) -> dict[str, Any]:
    target = _parameter(params, "endpoint", "Edm.String")
    action = str(_parameter(params, "action", "Edm.String")).upper()
    if action not in _ACTIONS:
        raise SandboxError(400, "The function parameter 'action' must be GET, POST, PUT or DELETE.")
    endpoint = catalog().get(target) if isinstance(target, str) else None
    return {"UserHasRights": endpoint is not None and endpoint.supports(action)}


_SINGLE: dict[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
    "users/userhasrights": _user_has_rights,
}


def single_result(endpoint: Endpoint, params: Mapping[str, str]) -> dict[str, Any] | None:
    """``{"UserHasRights": …}`` for a function that answers one value, else None."""
    answer = _SINGLE.get(endpoint.id.lower())
    return answer(params) if answer is not None else None


# -- read/project/HoursByDate --------------------------------------------------------------------


@dataclass(frozen=True)
class _Hours:
    """Reads the records HoursByDate is built from, in one division."""

    store: Store
    division: int

    def table(self, name: str) -> Any:
        return self.store.table_by_id(self.division, name)

    def value(self, name: str, key: Any, field: str) -> Any:
        return self.table(name).value(key, field)


def _hours_record(hours: _Hours, index: int, get: Callable[[str], Any]) -> dict[str, Any]:
    quantity, status = get("Quantity") or 0, get("HourStatus")
    billable = hours.value("project/Projects", get("Project"), "Type") != _NON_BILLABLE
    record: dict[str, Any] = {}
    for kind in _BY_STATUS.values():
        counted = quantity if _BY_STATUS.get(status) == kind else 0
        record[f"Hours{kind}"] = counted
        record[f"Hours{kind}Billable"] = counted if billable else 0
    day = get("Date")
    return {
        "Id": index + 1,
        "AccountCode": hours.value("crm/Accounts", get("Account"), "Code"),
        "AccountId": get("Account"),
        "AccountName": get("AccountName"),
        "Activity": get("Activity"),
        "ActivityDescription": get("ActivityDescription"),
        "Date": day,
        "EntryId": get("ID"),
        **record,
        "ItemCode": hours.value("logistics/Items", get("Item"), "Code"),
        "ItemDescription": get("ItemDescription"),
        "ItemId": get("Item"),
        "Notes": get("Notes"),
        "ProjectCode": get("ProjectCode"),
        "ProjectDescription": get("ProjectDescription"),
        "ProjectId": get("Project"),
        "WeekNumber": datetime.fromtimestamp(day / 1000, UTC).isocalendar().week if day else None,
    }


def _hours_by_date(
    endpoint: Endpoint, store: Store, division: int, params: Mapping[str, str]
) -> FixedTable:
    day = _parameter(params, "checkDate", "Edm.DateTime") // DAY_MS
    hours = _Hours(store, division)
    bookings = hours.table("project/TimeTransactions")
    records: list[dict[str, Any]] = []
    for _, row in bookings.scan(False):
        date = bookings.getter("Date")(row)
        if date is not None and date // DAY_MS == day:

            def get(name: str, row: Any = row) -> Any:
                return bookings.getter(name)(row)

            records.append(_hours_record(hours, len(records), get))
    return FixedTable(table_spec(endpoint), records)


_TABLES: dict[str, Callable[[Endpoint, Store, int, Mapping[str, str]], FixedTable]] = {
    "read/project/hoursbydate": _hours_by_date,
}


def function_table(
    endpoint: Endpoint, store: Store, division: int, params: Mapping[str, str]
) -> FixedTable | None:
    """The records a collection-valued function answers for these parameters, else None."""
    build = _TABLES.get(endpoint.id.lower())
    return build(endpoint, store, division, params) if build is not None else None
