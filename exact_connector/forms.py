"""Generated forms: JSON Schema plus ``x-ui`` hints -> an ordered form spec, rjsf, field errors.

A form is the credential form (``credentials``) or the input form of an action (its id). The spec
is derived from the bundled schema alone, so an engine, this module and the CLI always agree.
Secrets are marked once, with ``writeOnly: true``; their widget, masking and
:func:`secret_fields` all follow from that mark.

The Data Manager's field schema (``schemas/defs/time_transaction_fields.json``) is generated from
the endpoint catalog by ``python -m exact_connector.forms --regenerate``, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exact_connector.catalog import Endpoint, catalog
from exact_connector.exceptions import FieldError, InputError
from exact_connector.manifest import CREDENTIALS, Manifest, load_manifest
from exact_connector.schemas import SCHEMA_BASE, declarations_root

__all__ = [
    "DATA_MANAGER_FILE",
    "data_manager_schema",
    "form_spec",
    "rjsf",
    "secret_fields",
    "validate",
]

#: The widget a field gets when its schema names none, by (format) then by (type).
_WIDGET_BY_FORMAT = {"uuid": "guid", "date": "date", "date-time": "datetime"}
_WIDGET_BY_TYPE = {
    "integer": "number",
    "number": "number",
    "boolean": "checkbox",
    "object": "field-picker",
    "array": "field-picker",
}
#: Our widget -> react-jsonschema-form's built-in widget (None: rjsf's default for the type).
_RJSF_WIDGET = {
    "text": "text",
    "password": "password",
    "select": "select",
    "combobox": "text",
    "guid": "text",
    "date": "date",
    "datetime": "datetime",
    "number": "updown",
    "textarea": "textarea",
    "checkbox": "checkbox",
    "field-picker": None,
}
_RJSF_OPTIONS = ("widget", "options_from", "depends_on", "advanced", "group")


def _schema(name: str, manifest: Manifest) -> dict[str, Any]:
    if name == CREDENTIALS:
        return manifest.credentials_schema
    try:
        return manifest.action(name).input_schema
    except InputError:
        raise InputError(
            "There is no form with that name; use credentials or an action id.",
            errors=[
                {"path": "$.form", "code": "unknown", "message": "is not a form of this connector"}
            ],
            hint="Forms: " + ", ".join(manifest.form_names()) + ".",
        ) from None


def _ordered(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    properties: dict[str, Any] = schema.get("properties", {})
    order = [n for n in schema.get("x-ui", {}).get("order", []) if n in properties]
    order += [n for n in properties if n not in order]
    return [(n, properties[n]) for n in order]


def _widget(prop: dict[str, Any]) -> str:
    if prop.get("writeOnly"):
        return "password"
    named = prop.get("x-ui", {}).get("widget")
    if named:
        return str(named)
    if "enum" in prop:
        return "select"
    if prop.get("format") in _WIDGET_BY_FORMAT:
        return _WIDGET_BY_FORMAT[prop["format"]]
    kind = prop.get("type")
    return _WIDGET_BY_TYPE.get(kind, "text") if isinstance(kind, str) else "text"


def _conditionally_required(schema: dict[str, Any]) -> set[str]:
    return {
        field
        for clause in schema.get("allOf", [])
        for field in clause.get("then", {}).get("required", [])
    }


def _field(name: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
    ui = prop.get("x-ui", {})
    depends = ui.get("depends_on")
    options = None
    if "enum" in prop:
        labels = ui.get("enum_labels") or [str(v) for v in prop["enum"]]
        pairs = zip(prop["enum"], labels, strict=True)
        options = [{"value": value, "label": label} for value, label in pairs]
    return {
        "name": name,
        "label": prop.get("title", name),
        "help": ui.get("help", prop.get("description")),
        "widget": _widget(prop),
        "required": required,
        "default": prop.get("default"),
        "options": options,
        "options_from": ui.get("options_from"),
        "secret": bool(prop.get("writeOnly")),
        "visible_when": (
            {"field": next(iter(depends)), "equals": next(iter(depends.values()))}
            if depends
            else None
        ),
        "advanced": bool(ui.get("advanced")),
        "group": ui.get("group"),
        "placeholder": ui.get("placeholder"),
        "examples": list(prop.get("examples", [])),
    }


def form_spec(name: str, manifest: Manifest | None = None) -> dict[str, Any]:
    """The form ``name`` as deterministic JSON: its fields in order, with every UI hint."""
    manifest = manifest or load_manifest()
    schema = _schema(name, manifest)
    required = set(schema.get("required", [])) | _conditionally_required(schema)
    return {
        "name": name,
        "title": schema.get("title", name),
        "description": schema.get("description"),
        "schema_id": schema.get("$id"),
        "fields": [_field(n, prop, n in required) for n, prop in _ordered(schema)],
    }


def secret_fields(name: str, manifest: Manifest | None = None) -> tuple[str, ...]:
    """The form's secret (``writeOnly``) fields in form order: what to mask and encrypt."""
    schema = _schema(name, manifest or load_manifest())
    return tuple(n for n, prop in _ordered(schema) if prop.get("writeOnly"))


def validate(name: str, data: Any, manifest: Manifest | None = None) -> list[FieldError]:
    """Every problem with a submission of form ``name``; messages never contain submitted values."""
    manifest = manifest or load_manifest()
    schema_id = _schema(name, manifest)["$id"]
    return manifest.schemas.errors(schema_id, data)


# --- react-jsonschema-form -----------------------------------------------------------------------


def _strip_hints(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_hints(v) for k, v in node.items() if k not in ("x-ui", "x-error-message")}
    if isinstance(node, list):
        return [_strip_hints(item) for item in node]
    return node


def _ui_schema(schema: dict[str, Any]) -> dict[str, Any]:
    ui: dict[str, Any] = {}
    hints = schema.get("x-ui", {})
    if "properties" in schema:
        ui["ui:order"] = [n for n, _ in _ordered(schema)]
        for name, prop in _ordered(schema):
            if isinstance(prop, dict) and (child := _ui_schema(prop)):
                ui[name] = child
        return ui | (
            {"ui:options": _rjsf_options(hints, schema)} if hints.keys() - {"order"} else {}
        )
    widget = _RJSF_WIDGET.get(_widget(schema))
    if widget:
        ui["ui:widget"] = widget
    if "help" in hints:
        ui["ui:help"] = hints["help"]
    if "placeholder" in hints:
        ui["ui:placeholder"] = hints["placeholder"]
    if "enum_labels" in hints:
        ui["ui:enumNames"] = list(hints["enum_labels"])
    ui["ui:options"] = _rjsf_options(hints, schema)
    return ui


def _rjsf_options(hints: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    options = {k: hints[k] for k in _RJSF_OPTIONS if k in hints}
    options["widget"] = _widget(schema)
    return options


def rjsf(name: str, manifest: Manifest | None = None) -> dict[str, Any]:
    """The form for react-jsonschema-form: a self-contained 2020-12 schema and a uiSchema."""
    schema = _schema(name, manifest or load_manifest())
    return {"schema": _strip_hints(schema), "uiSchema": _ui_schema(schema)}


# --- the Data Manager, derived from the catalog --------------------------------------------------

DATA_MANAGER_ENDPOINT = "project/TimeTransactions"
DATA_MANAGER_FILE = "schemas/defs/time_transaction_fields.json"

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
    "date-time": "2024-05-01T09:00:00Z",
}
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
}


def _writable_field(name: str, edm_type: str, mandatory: bool) -> dict[str, Any]:
    note = " Required when creating." if mandatory else ""
    prop: dict[str, Any] = {"title": name, "description": f"Exact field {name} ({edm_type}).{note}"}
    if name in _ENUMS:
        values, labels = zip(*_ENUMS[name], strict=True)
        hints = {"widget": "select", "enum_labels": list(labels)}
        return {
            **prop,
            "type": "integer",
            "enum": list(values),
            "examples": [values[0]],
            "x-ui": hints,
        }
    schema = _EDM_SCHEMA.get(edm_type, {"type": "string"})
    field = {**prop, **schema, "examples": [_EXAMPLES[schema.get("format", schema["type"])]]}
    if name in _LOOKUPS:
        field["x-ui"] = {"widget": "combobox", "options_from": _LOOKUPS[name]}
    return field


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
            f"Generated from the endpoint catalog entry {endpoint.id} by "
            "python -m exact_connector.forms --regenerate; do not edit by hand. fields: the "
            "writable, non-obsolete fields; create: with the fields Exact requires; update: at "
            "least one field; record: a record as returned (ISO dates without a zone)."
        ),
        "$defs": {
            "fields": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    f.name: _writable_field(f.name, f.type, f.mandatory) for f in writable
                },
                "x-ui": {"order": [f.name for f in writable]},
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m exact_connector.forms --regenerate [--check]`` for the generated schema file."""
    parser = argparse.ArgumentParser(prog="python -m exact_connector.forms")
    parser.add_argument("--regenerate", action="store_true", required=True)
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args(argv)
    root = declarations_root()
    if not isinstance(root, Path):
        parser.error("the declarations are not in a directory that can be written")
    target = root / DATA_MANAGER_FILE
    text = render_data_manager()
    current = target.read_text("utf-8") if target.is_file() else None
    if args.check:
        print(f"{DATA_MANAGER_FILE}: {'current' if current == text else 'out of date'}")
        return 0 if current == text else 1
    target.write_text(text, "utf-8")
    print(f"{DATA_MANAGER_FILE}: {'unchanged' if current == text else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
