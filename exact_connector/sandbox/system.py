"""The records Exact derives from who is signed in: ``current/Me`` and the division lists.

They are not stored but built per request and served from a :class:`FixedTable`:
``system/Divisions`` lists the divisions the token was granted, ``system/AllDivisions`` and
``hrm/Divisions`` all of the user's, ``current/Me`` the one user.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from exact_connector.sandbox.seed import ANCHOR_MS, DAY_MS, World, guid_from, salt_of
from exact_connector.sandbox.store import Getter, Key, Row, TableSpec

__all__ = ["FixedTable", "division_record", "me_record"]

_CUSTOMER_NAME = "Sandbox Accountancy B.V."
_CUSTOMER_CODE = f"{1:>18}"


def _customer(world: World) -> str:
    return guid_from(salt_of(world.seed, "customer"), 0)


def me_record(
    world: World, current_division: int, employee: str | None, now: float
) -> dict[str, Any]:
    """The signed-in user, as ``current/Me`` returns it."""
    user = world.user
    return {
        "UserID": user.user_id,
        "AccountingDivision": current_division,
        "CurrentDivision": current_division,
        "CustomerCode": _CUSTOMER_CODE,
        "DivisionCustomer": _customer(world),
        "DivisionCustomerCode": _CUSTOMER_CODE,
        "DivisionCustomerName": _CUSTOMER_NAME,
        "Email": user.email,
        "EmployeeID": employee,
        "FirstName": user.first_name,
        "FullName": user.full_name,
        "Gender": "V",
        "Initials": f"{user.first_name[0]}.",
        "IsClientUser": False,
        "IsEmployeeSelfServiceUser": False,
        "IsMyFirmLiteUser": False,
        "IsMyFirmPortalUser": False,
        "IsOEIMigrationMandatory": False,
        "IsStarterUser": False,
        "Language": "NL",
        "LanguageCode": "nl-NL",
        "LastName": user.last_name,
        "Legislation": 1,
        "Nationality": "NL",
        "PackageCode": "SANDBOX",
        "ServerTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "ServerUtcOffset": 0,
        "UserName": user.user_name,
    }


def division_record(
    world: World, code: int, current_division: int, moved: int | None = None
) -> dict[str, Any]:
    """One administration, as the division lists return it (``moved``: last database move)."""
    user = world.user
    opened = ANCHOR_MS - 3 * 365 * DAY_MS
    return {
        "Code": code,
        "BlockingStatus": 0,
        "City": "Utrecht",
        "Country": "NL",
        "Created": opened,
        "Creator": user.user_id,
        "CreatorFullName": user.full_name,
        "Currency": "EUR",
        "Current": code == current_division,
        "Customer": _customer(world),
        "CustomerCode": _CUSTOMER_CODE,
        "CustomerName": _CUSTOMER_NAME,
        "Description": world.divisions[code],
        "DivisionMoveDate": moved,
        "Hid": code,
        "IsDossierDivision": False,
        "IsHRDivision": False,
        "IsMainDivision": code == next(iter(world.divisions)),
        "IsPracticeDivision": False,
        "Legislation": "NL",
        "Modified": ANCHOR_MS,
        "Modifier": user.user_id,
        "ModifierFullName": user.full_name,
        "StartDate": opened,
        "Status": 1,
    }


class FixedTable:
    """A few records derived from the sandbox's settings (``current/Me``, the division lists)."""

    def __init__(self, spec: TableSpec, records: list[dict[str, Any]]) -> None:
        self.spec = spec
        key = spec.key_field or ""
        self._rows: dict[Key, Row] = {record[key]: record for record in records}
        self._order: list[Key] = sorted(self._rows)

    def getter(self, name: str) -> Getter:
        """A reader of one field."""
        return lambda row: row.get(name) if isinstance(row, dict) else None

    def get(self, key: Key) -> Row | None:
        """The record with this key."""
        return self._rows.get(key)

    def by_timestamp(self, timestamp: int) -> tuple[Key, Row] | None:
        """Derived records have no row version."""
        return None

    def scan(
        self, by_timestamp: bool, start: Any = None, inclusive: bool = False
    ) -> Iterator[tuple[Key, Row]]:
        """Records in key order."""
        position = (
            0 if start is None else (bisect_left if inclusive else bisect_right)(self._order, start)
        )
        for key in self._order[position:]:
            yield key, self._rows[key]
