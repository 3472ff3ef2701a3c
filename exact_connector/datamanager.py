"""The Data Manager: the time-transaction fields a person fills, named and explained for people.

Its schema file (``schemas/defs/time_transaction_fields.json``) is generated from the endpoint
catalog and the label table below by ``python -m exact_connector.forms --regenerate``; never edit
it by hand. The labels and help restate facts from Exact Online's documentation of
ProjectTimeTransactions in our own words; the Exact name stays visible as a secondary hint.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from exact_connector.catalog import Endpoint, catalog
from exact_connector.exceptions import FieldError
from exact_connector.hints import ordered as _ordered
from exact_connector.schemas import SCHEMA_BASE
from exact_connector.validation import json_path, parse_date_time

__all__ = [
    "DATA_MANAGER_ENDPOINT",
    "DATA_MANAGER_FILE",
    "FIELD",
    "FIELDS",
    "LABELS",
    "Label",
    "data_manager_schema",
    "from_input",
    "picker_form",
    "render_data_manager",
    "to_input",
]

DATA_MANAGER_ENDPOINT = "project/TimeTransactions"
DATA_MANAGER_FILE = "schemas/defs/time_transaction_fields.json"


class Label(NamedTuple):
    """How a person sees one field: its label, one sentence of help, a widget if not the default."""

    label: str
    help: str
    widget: str | None = None


#: Every writable field of a time transaction, in words a person uses, in the order a person
#: reads them (the form's order; the catalog's is alphabetical).
LABELS: dict[str, Label] = {
    "Project": Label("Project", "The project the hours are booked on."),
    "Item": Label("Hour type", "The hour type: an item of type time, such as consultancy."),
    "Quantity": Label("Hours", "The number of hours worked."),
    "Date": Label("Date", "The day the hours were worked."),
    "Employee": Label("Employee", "The employee who worked the hours."),
    "StartTime": Label("Start time", "When the work started."),
    "EndTime": Label("End time", "When the work ended."),
    "Notes": Label("Notes", "Free text about the work.", "textarea"),
    "HourStatus": Label("Status", "Draft, Rejected or Submitted for approval."),
    "Account": Label("Customer", "The customer (an account) the hours are recorded for."),
    "Activity": Label(
        "Activity", "The project activity (a work breakdown structure element), by its ID."
    ),
    "Subscription": Label("Subscription", "The subscription the hours belong to, by its ID."),
    "SubscriptionAccount": Label(
        "Subscription customer", "The customer (an account) of that subscription."
    ),
    "Currency": Label("Currency", "The currency of the amount, as a code such as EUR."),
    "Attachment": Label("Attachment", "A document attached to the hours, by its ID."),
    "EntryNumber": Label("Entry number", "A number that groups hours entered together."),
    "ErrorText": Label("Error text", "A message left by Exact's background processing."),
}

#: Edm type -> JSON Schema for a value that is written; integers carry their Edm range.
_EDM_SCHEMA: dict[str, dict[str, Any]] = {
    "Edm.Guid": {"type": "string", "format": "uuid"},
    "Edm.DateTime": {"type": "string", "format": "date-time"},
    "Edm.Double": {"type": "number"},
    "Edm.Decimal": {"type": "number"},
    "Edm.Single": {"type": "number"},
    "Edm.Byte": {"type": "integer", "minimum": 0, "maximum": 255},
    "Edm.Int16": {"type": "integer", "minimum": -32768, "maximum": 32767},
    "Edm.Int32": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "Edm.Int64": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "Edm.Boolean": {"type": "boolean"},
    "Edm.String": {"type": "string"},
}
_EXAMPLES: dict[str, Any] = {
    "string": "Text",
    "number": 1.5,
    "integer": 1,
    "boolean": True,
    "uuid": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "date-time": "2024-05-01T09:00:00",
}
#: What a date-time field means to Exact (API-FACTS, "Dates"), said where it is filled in.
_WALL_CLOCK_HELP = (
    "Exact's local time, such as 2024-05-01T09:00:00; a UTC offset is dropped, not converted."
)
_GUID_ERROR = "must be an ID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301"
#: Values Exact accepts on POST/PUT where the catalog only knows the type (API-FACTS section 5).
_ENUMS: dict[str, tuple[tuple[int, str], ...]] = {
    "HourStatus": ((1, "Draft"), (2, "Rejected"), (10, "Submitted")),
}
#: GUID fields a person picks from a live list of the division's records instead of typing.
_LOOKUPS = {
    "Account": "accounts?division={division}",
    "Employee": "employees?division={division}",
    "Item": "hour_types?division={division}",
    "Project": "projects?division={division}",
    "SubscriptionAccount": "accounts?division={division}",
}


def _writable_field(name: str, edm_type: str) -> dict[str, Any]:
    label = LABELS.get(name, Label(name, "A field of the time transaction."))
    hint = f" Exact name: {name}." if label.label != name else ""
    about = f"{label.help} {_WALL_CLOCK_HELP}" if edm_type == "Edm.DateTime" else label.help
    prop: dict[str, Any] = {"title": label.label, "description": about + hint}
    if name in _ENUMS:
        values, labels = zip(*_ENUMS[name], strict=True)
        hints = {"widget": "select", "enum_labels": list(labels)}
        return {**prop, "type": "integer", "enum": list(values), "examples": [1], "x-ui": hints}
    schema = _EDM_SCHEMA.get(edm_type, {"type": "string"})
    field = {**prop, **schema, "examples": [_EXAMPLES[schema.get("format", schema["type"])]]}
    if schema.get("format") == "uuid":
        field["x-error-message"] = _GUID_ERROR
    ui = {"widget": label.widget} if label.widget else {}
    if name in _LOOKUPS:
        ui["options_from"] = _LOOKUPS[name]
    if ui:
        field["x-ui"] = ui
    return field


def _reading_order(name: str) -> int:
    return list(LABELS).index(name) if name in LABELS else len(LABELS)


def _record_field(edm_type: str) -> dict[str, Any]:
    kind = _EDM_SCHEMA.get(edm_type, {"type": "string"})["type"]
    return {"type": [kind, "null"]}


def data_manager_schema(endpoint: Endpoint | None = None) -> dict[str, Any]:
    """The Data Manager's schema for time transactions, derived from the catalog."""
    endpoint = endpoint or catalog().lookup(DATA_MANAGER_ENDPOINT)
    writable = endpoint.writable_fields
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + DATA_MANAGER_FILE.removeprefix("schemas/"),
        "title": "Time transaction fields",
        "description": (
            f"Generated from the endpoint catalog entry {endpoint.id} and the labels in "
            "exact_connector/datamanager.py by python -m exact_connector.forms --regenerate; do "
            "not edit by hand. fields: the writable, non-obsolete fields; create: with the fields "
            "Exact requires; update: at least one field; record: a record as returned (ISO dates "
            "without a zone)."
        ),
        "$defs": {
            "fields": {
                "type": "object",
                "additionalProperties": False,
                "properties": {f.name: _writable_field(f.name, f.type) for f in writable},
                "x-ui": {"order": sorted((f.name for f in writable), key=_reading_order)},
            },
            "create": {
                "$ref": "#/$defs/fields",
                "required": [f.name for f in writable if f.mandatory],
            },
            "update": {"$ref": "#/$defs/fields", "minProperties": 1},
            "record": {
                "type": "object",
                "additionalProperties": True,
                "required": [endpoint.primary_key] if isinstance(endpoint.primary_key, str) else [],
                "properties": {f.name: _record_field(f.type) for f in endpoint.fields},
            },
        },
    }


def render_data_manager() -> str:
    """The exact text of the generated file."""
    return json.dumps(data_manager_schema(), indent=2, ensure_ascii=False) + "\n"


# --- the Data Manager in a form: fixed required fields, the rest picked one row at a time ---------

#: The form's list of picked fields, and each row's chosen field; its value sits under its name.
FIELDS = "fields"
FIELD = "field"
#: A date-time as a browser's datetime-local input gives it: the wall-clock time, no zone.
LOCAL_DATE_TIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,3})?)?$"

Pair = tuple[dict[str, Any], dict[str, Any]]
"""A field in a form: its schema and its uiSchema."""


def _choice_title(name: str, schema: dict[str, Any]) -> str:
    label = str(schema.get("title", name))
    return label if label == name else f"{label} ({name})"


def picker_form(data: dict[str, Any], fields: dict[str, Pair]) -> Pair:
    """The Data Manager as react-jsonschema-form draws it, from each field's own form pair.

    Required fields are fixed inputs; every other field is a row of the ``fields`` list whose
    ``field`` dropdown (human labels) decides, through an ``if``/``then`` clause, which input the
    row shows. The rows are a shape of the form only: :func:`to_input` turns them into fields.
    """
    required = [name for name in fields if name in data.get("required", [])]
    optional = [name for name in fields if name not in required]
    rows: dict[str, Any] = {
        "type": "array",
        "title": "More fields" if required else "Fields to change",
        "description": "Add a field, choose which one, and fill it in; each field once.",
        "items": {
            "type": "object",
            "required": [FIELD],
            "properties": {
                FIELD: {
                    "type": "string",
                    "title": "Field",
                    "oneOf": [
                        {"const": name, "title": _choice_title(name, fields[name][0])}
                        for name in optional
                    ],
                }
            },
            "allOf": [
                {
                    "if": {"properties": {FIELD: {"const": name}}, "required": [FIELD]},
                    "then": {"properties": {name: fields[name][0]}, "required": [name]},
                }
                for name in optional
            ],
        },
    }
    if not required and data.get("minProperties"):
        rows["minItems"] = data["minProperties"]
    schema = {key: data[key] for key in ("title", "description", "x-ui") if key in data} | {
        "type": "object",
        "required": [*required, FIELDS] if rows.get("minItems") else required,
        "properties": {**{name: fields[name][0] for name in required}, FIELDS: rows},
    }
    row_ui = {"ui:order": [FIELD, "*"], "ui:options": {"label": False}}
    row_ui |= {name: fields[name][1] for name in optional}
    ui = {"ui:order": [*required, FIELDS]} | {name: fields[name][1] for name in required}
    ui[FIELDS] = {"ui:options": {"orderable": False}, "items": row_ui}
    return schema, ui


def _is_date_time(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "date-time"


def to_input(
    form: dict[str, Any], data: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """The Data Manager's form value (already valid for its form schema) as the action's ``data``.

    A field chosen twice is an error at the later row. A datetime-local value gets its seconds:
    the wall-clock time as written, the form Exact reads and answers with.
    """
    properties = data["properties"]
    fields = {name: value for name, value in form.items() if name != FIELDS}
    errors: list[FieldError] = []
    first_row: dict[str, int] = {}
    for index, row in enumerate(form.get(FIELDS, [])):
        name = row[FIELD]
        if name in fields:
            where_first = json_path([FIELDS, first_row[name]], where) if name in first_row else None
            errors.append(
                {
                    "path": json_path([FIELDS, index, FIELD], where),
                    "code": "duplicate",
                    "message": "is chosen twice; keep one row for "
                    + (f"it (see {where_first})" if where_first else "this field"),
                }
            )
            continue
        first_row[name] = index
        fields[name] = row[name]
    for name, value in fields.items():
        if _is_date_time(properties.get(name, {})) and isinstance(value, str):
            seconds = "" if value.count(":") > 1 else ":00"
            fields[name] = written = f"{value}{seconds}"
            if parse_date_time(written) is None:  # the form's pattern checks only the digits
                at = [FIELDS, first_row[name], name] if name in first_row else [name]
                errors.append(
                    {
                        "path": json_path(at, where),
                        "code": "format",
                        "message": "must be a date and time that exist (no 30 February, 24:00 "
                        "or :60)",
                    }
                )
    return fields, errors


def _local_date_time(moment: datetime) -> str:
    """A date-time as the form's datetime-local field holds it: the wall-clock time written (its
    offset dropped, as the action drops it), milliseconds at most."""
    text = moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
    return text.removesuffix(".000")


def from_input(value: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The action's ``data`` (valid input) as the Data Manager's form value; inverse of to_input."""
    required = set(data.get("required", []))
    fixed: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for name, prop in _ordered(data):
        if name not in value:
            continue
        item = value[name]
        if _is_date_time(prop) and (moment := parse_date_time(item)) is not None:
            item = _local_date_time(moment)
        if name in required:
            fixed[name] = item
        else:
            rows.append({FIELD: name, name: item})
    return {**fixed, FIELDS: rows}
