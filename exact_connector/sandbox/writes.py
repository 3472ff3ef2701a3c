"""What a POST or PUT may carry, checked the way Exact checks it, converted to stored values.

Unknown properties, read-only ones (and ``Timestamp``, which the server keeps), create-only ones
on an update, values of the wrong Edm type and missing mandatory fields each answer 400 with an
Exact-style message naming the property, never echoing the value.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from exact_connector.catalog import Endpoint, Field
from exact_connector.odata import DATE_PATTERN
from exact_connector.sandbox.domain import WRITABLE_VALUES
from exact_connector.sandbox.negotiate import BAD_BODY
from exact_connector.sandbox.store import edm_type
from exact_connector.sandbox.wire import SandboxError

__all__ = ["check_write"]

_SERVER_KEPT = frozenset({"Timestamp"})
_RANGES = {
    "Edm.Byte": (0, 255),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}
_GUID = re.compile(
    r"\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?"
)
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]{5,16})?(Z|[+-][0-9]{2}:[0-9]{2})?")


def _date(value: str) -> int | None:
    match = DATE_PATTERN.fullmatch(value)
    if match:
        return int(match.group(1))
    if not _ISO.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def _convert(value: Any, edm: str) -> tuple[bool, Any]:
    """(ok, stored value) for a JSON value written to a field of this Edm type."""
    if value is None:
        return True, None
    if edm in ("Edm.String", "Edm.Binary"):
        return isinstance(value, str), value
    if edm == "Edm.Guid":
        ok = isinstance(value, str) and _GUID.fullmatch(value) is not None
        return ok, str(uuid.UUID(value.strip("{}"))) if ok else None
    if edm == "Edm.Boolean":
        return isinstance(value, bool), value
    if edm in _RANGES:
        low, high = _RANGES[edm]
        return isinstance(value, int) and not isinstance(
            value, bool
        ) and low <= value <= high, value
    if edm in ("Edm.Double", "Edm.Decimal", "Edm.Single"):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value), value
    if edm == "Edm.DateTime":
        stamp = _date(value) if isinstance(value, str) else None
        return stamp is not None, stamp
    return False, None


def _refuse(message: str) -> SandboxError:
    return SandboxError(400, message)


def _field(endpoint: Endpoint, name: str, type_name: str) -> Field:
    found = endpoint.field(name)
    if found is None or found.name != name:
        raise _refuse(
            f"The property '{name}' does not exist on type '{type_name}'. "
            "Make sure to only use property names that are defined by the type."
        )
    return found


def check_write(
    endpoint: Endpoint, payload: Any, type_name: str, *, key: Any = None, creating: bool
) -> dict[str, Any]:
    """The validated, converted values of a POST (``creating``) or PUT body."""
    if not isinstance(payload, dict):
        raise _refuse(BAD_BODY)
    values: dict[str, Any] = {}
    allowed = WRITABLE_VALUES.get(endpoint.id, {})
    for name, value in payload.items():
        if name == "__metadata":
            continue
        field = _field(endpoint, name, type_name)
        values[name] = _checked(field, value, key, creating)
        if name in allowed and value is not None and value not in allowed[name]:
            choices = ", ".join(f"{v} ({label})" for v, label in allowed[name].items())
            raise _refuse(f"Property '{name}' must be one of {choices}.")
    for field in endpoint.fields:
        required = field.mandatory or (creating and field.key and edm_type(field) == "Edm.String")
        # A create must carry every mandatory field; an update may leave one out, not empty it.
        given = field.name in values
        if required and (given or creating) and values.get(field.name) in (None, ""):
            raise _refuse(f"Field '{field.name}' is mandatory.")
    return values


def _checked(field: Field, value: Any, key: Any, creating: bool) -> Any:
    name, edm = field.name, edm_type(field)
    if field.key:
        if not creating:
            ok, converted = _convert(value, edm)
            if not ok or converted != key:
                raise _refuse(f"Property '{name}' is the key; it cannot be changed.")
            return converted
        if edm != "Edm.String":
            raise _refuse(f"Property '{name}' is read-only: Exact assigns it.")
    elif field.readonly or name in _SERVER_KEPT:
        raise _refuse(f"Property '{name}' is read-only.")
    elif field.post_only and not creating:
        raise _refuse(f"Property '{name}' can only be set when the record is created.")
    if not edm:
        if field.collection and (
            value is None or (isinstance(value, list) and all(isinstance(v, dict) for v in value))
        ):
            return value
        raise _refuse(f"Property '{name}' cannot be written this way.")
    ok, converted = _convert(value, edm)
    if not ok:
        raise _refuse(
            f"Error processing request stream. The value of property '{name}' is not a valid {edm}."
        )
    return converted
