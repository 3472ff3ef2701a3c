"""Reading a schema's ``x-ui`` hints: field order, the widget, what is conditional.

Every form output (the JSON form spec, the react-jsonschema-form document, the form-data
transform) reads the hints through these few functions, so they agree on what a field is.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "conditionally_required",
    "depends_on",
    "help_text",
    "is_picker",
    "ordered",
    "widget",
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


def ordered(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The object's properties in form order: ``x-ui.order`` first, then the rest as declared."""
    properties: dict[str, Any] = schema.get("properties", {})
    order = [n for n in schema.get("x-ui", {}).get("order", []) if n in properties]
    order += [n for n in properties if n not in order]
    return [(n, properties[n]) for n in order]


def widget(prop: dict[str, Any]) -> str:
    """The field's widget in the connector's own vocabulary (``defs/x_ui.json``)."""
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


def help_text(prop: dict[str, Any]) -> str | None:
    """The sentence a person reads about the field: its ``x-ui.help``, else its description."""
    text = prop.get("x-ui", {}).get("help", prop.get("description"))
    return str(text) if text is not None else None


def depends_on(prop: dict[str, Any]) -> tuple[str, Any] | None:
    """``(field, value)`` when the field is shown only while another field has that value."""
    condition = prop.get("x-ui", {}).get("depends_on")
    return next(iter(condition.items())) if condition else None


def conditionally_required(schema: dict[str, Any]) -> set[str]:
    """Fields an ``allOf`` ``if``/``then`` clause makes required."""
    return {
        field
        for clause in schema.get("allOf", [])
        for field in clause.get("then", {}).get("required", [])
    }


def is_picker(prop: dict[str, Any]) -> bool:
    """The Data Manager: an object whose fields a person picks one at a time."""
    return prop.get("type") == "object" and widget(prop) == "field-picker"
