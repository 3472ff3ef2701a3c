"""A form for react-jsonschema-form (RJSF): a schema it draws as one input per field, its uiSchema,
and the messages a person reads instead of the validator's.

Built from a form's bundled schema and its ``x-ui`` hints, with these choices:

- ``ui:widget`` holds only RJSF's own widget names; the connector's hints (its own widget
  vocabulary, option sources, groups) stay under ``x-ui`` in the uiSchema, where RJSF never reads.
- A field with alternatives (``anyOf``, several types) is drawn as its first: division is an
  integer.
- Labelled choices are ``oneOf`` of ``{const, title}`` (RJSF draws a dropdown); choices whose label
  is their value are ``examples`` (RJSF draws a text input with suggestions, so typing still works).
- A field shown only for another field's value (``depends_on``) lives in an ``if``/``then`` clause:
  RJSF shows it while the condition holds.
- An optional list has no ``minItems`` (RJSF would add an empty item); the form-data transform
  leaves an empty list out.
- Date-times are datetime-local text inputs: RJSF's datetime widget would convert the wall-clock
  time a person picks to UTC, and Exact stores wall-clock times.
- The Data Manager becomes fixed required fields plus picked rows (:func:`datamanager.picker_form`).
- ``errorMessages`` maps the schema location of each rule with an ``x-error-message`` to it; an
  engine's ``transformErrors`` swaps it in, so no raw pattern reaches a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from exact_connector import datamanager, hints
from exact_connector.options import LIVE_SOURCES

__all__ = ["Offered", "Options", "document", "form_schema"]


class Offered(NamedTuple):
    """What a field's option source gave: its options, and a note for the person (or None)."""

    options: list[dict[str, Any]]
    note: str | None = None


Options = Mapping[str, Offered]
"""Resolved option sources by the ``options_from`` text that asked for them."""

#: The connector's widget -> RJSF's built-in widget (None: RJSF's default for the type).
_RJSF_WIDGET: dict[str, str | None] = {
    "text": "text",
    "password": "password",
    "select": "select",
    "combobox": "text",
    "guid": "text",
    "date": "date",
    "datetime": "text",
    "number": "updown",
    "textarea": "textarea",
    "checkbox": None,  # RJSF's own choice for a boolean; naming it repeats the label in RJSF 5
    "field-picker": None,
}
#: What a field drawn as a dropdown gets while it has nothing to list (no credential yet).
_UNLISTED = {"integer": "updown", "number": "updown"}
#: RJSF options by the connector's widget, on top of the widget name.
_RJSF_OPTIONS: dict[str, dict[str, Any]] = {
    "datetime": {"inputType": "datetime-local"},
    "textarea": {"rows": 3},
}
#: Connector hints copied into the uiSchema's ``x-ui`` for engines that want them.
_KEPT_HINTS = ("options_from", "depends_on", "group", "advanced")
#: Schema keywords the form does not carry: hints go to the uiSchema, examples are documentation.
_DROPPED = frozenset({"x-ui", "examples", "anyOf", "$id"})
_DATE_TIME_MESSAGE = "must be a date and a time"


def form_schema(
    schema: dict[str, Any], options: Options | None = None, values: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form's schema (``x-error-message`` still in) and uiSchema, with ``options`` filled in.

    ``values`` become the top-level fields' defaults, so the form opens on the values it was
    resolved for.
    """
    return _object(schema, options or {}, values or {})


def document(
    schema: dict[str, Any],
    options: Options | None = None,
    values: Mapping[str, Any] | None = None,
    warnings: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """``{schema, uiSchema, errorMessages, warnings}``: what an engine hands to RJSF."""
    form, ui = form_schema(schema, options, values)
    messages: dict[str, str] = {}
    _collect_messages(form, "#", messages)
    return {
        "schema": _strip(form),
        "uiSchema": ui,
        "errorMessages": messages,
        "warnings": list(warnings or []),
    }


def _object(
    schema: dict[str, Any], options: Options, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    required = set(schema.get("required", [])) | hints.conditionally_required(schema)
    pairs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for name, prop in hints.ordered(schema):
        if hints.is_picker(prop):
            pairs[name] = _picker(prop, options)
        else:
            pairs[name] = _field(prop, options, name in required)
        if name in values and not prop.get("writeOnly"):  # a secret never goes back out
            given = pairs[name][0]
            given["default"] = as_form_value(given, values[name])
            _keep_chosen_record(given, prop)
    shown = {name: prop for name, prop in hints.ordered(schema) if not hints.depends_on(prop)}
    form: dict[str, Any] = {
        key: schema[key]
        for key in ("$schema", "title", "description", "type", "dependentSchemas")
        if key in schema
    }
    if (help_text := hints.help_text(schema)) is not None:
        form["description"] = help_text
    form["required"] = [name for name in schema.get("required", []) if name in shown]
    form["properties"] = {name: pairs[name][0] for name in shown}
    clauses: dict[tuple[str, str], dict[str, Any]] = {}
    for name, prop in hints.ordered(schema):
        condition = hints.depends_on(prop)
        if condition is None:
            continue
        field, value = condition
        clause = clauses.setdefault(
            (field, repr(value)),
            {
                "if": {"properties": {field: {"const": value}}, "required": [field]},
                "then": {"properties": {}, "required": []},
            },
        )
        clause["then"]["properties"][name] = pairs[name][0]
        if name in required:
            clause["then"]["required"].append(name)
    if clauses:
        form["allOf"] = list(clauses.values())
    elif "additionalProperties" in schema:  # fields of a clause are not "properties" here
        form["additionalProperties"] = schema["additionalProperties"]
    ui: dict[str, Any] = {"ui:order": list(pairs)} | {name: pairs[name][1] for name in pairs}
    return form, ui


def _picker(prop: dict[str, Any], options: Options) -> tuple[dict[str, Any], dict[str, Any]]:
    required = set(prop.get("required", []))
    fields = {name: _field(field, options, name in required) for name, field in hints.ordered(prop)}
    form, ui = datamanager.picker_form(prop, fields)
    form.pop("x-ui", None)
    form["description"] = hints.help_text(prop)
    return form, ui | {"x-ui": _connector_hints(prop)}


def _connector_hints(prop: dict[str, Any]) -> dict[str, Any]:
    given = prop.get("x-ui", {})
    return {"widget": hints.widget(prop)} | {k: given[k] for k in _KEPT_HINTS if k in given}


def _field(
    prop: dict[str, Any], options: Options, required: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = hints.widget(prop)
    form = {key: value for key, value in prop.items() if key not in _DROPPED}
    if prop.get("anyOf"):
        form = prop["anyOf"][0] | form
    if isinstance(form.get("type"), list):
        form["type"] = "string" if "string" in form["type"] else form["type"][0]
    if (help_text := hints.help_text(prop)) is not None:
        form["description"] = help_text
    labels = prop.get("x-ui", {}).get("enum_labels")
    if "enum" in form and labels:
        choices = zip(form.pop("enum"), labels, strict=True)
        form["oneOf"] = [{"const": value, "title": label} for value, label in choices]
    if form.get("type") == "array" and not required:
        form.pop("minItems", None)
    offered = options.get(prop.get("x-ui", {}).get("options_from", ""))
    if offered is not None:
        _offer(form, offered.options)
        if offered.note:
            form["description"] = f"{form.get('description', '')} {offered.note}".strip()
    if ours == "datetime":
        form.pop("format", None)
        form |= {"pattern": datamanager.LOCAL_DATE_TIME, "x-error-message": _DATE_TIME_MESSAGE}
    ui: dict[str, Any] = {}
    if "oneOf" in form:
        widget: str | None = "select"
    elif ours == "select" and "enum" not in form:
        widget = _UNLISTED.get(str(form.get("type")), "text")
    else:
        widget = _RJSF_WIDGET.get(ours)
    if widget:
        ui["ui:widget"] = widget
    placeholder = prop.get("x-ui", {}).get("placeholder")
    if placeholder and (widget != "select" or labels):  # a typing hint, not a list's first line
        ui["ui:placeholder"] = placeholder
    if ours in _RJSF_OPTIONS and widget != "select":
        ui["ui:options"] = dict(_RJSF_OPTIONS[ours])
    if form.get("type") == "array":  # each item is one input; "Select Fields-1" says nothing more
        ui["items"] = {"ui:options": {"label": False}}
    ui["x-ui"] = _connector_hints(prop)
    return form, ui


def as_form_value(field: dict[str, Any], value: Any) -> Any:
    """``value`` as a form field of one type holds it, where the input allows two: a division
    given as digits is the number, a record key that is a number is its digits."""
    kind = field.get("type")
    if kind == "integer" and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if kind == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _keep_chosen_record(form: dict[str, Any], prop: Mapping[str, Any]) -> None:
    """A stored step reopened on a record its live list no longer shows (the list gives the
    newest or first 60) keeps that record as a choice: without it the form would open invalid,
    and offer no way to keep it. A division no longer granted stays out (it is refused)."""
    source = str(prop.get("x-ui", {}).get("options_from", "")).partition("?")[0]
    listed = [choice.get("const") for choice in form.get("oneOf", [])]
    if source in _LIVE_RECORDS and listed and form["default"] not in listed:
        form["oneOf"].append({"const": form["default"], "title": str(form["default"])})


#: The live lists that show only some of the records (divisions show all that are granted).
_LIVE_RECORDS = frozenset({"records", *LIVE_SOURCES})


def _offer(form: dict[str, Any], offered: list[dict[str, Any]]) -> None:
    """Put resolved options into a field: a dropdown when they carry labels, else suggestions
    (their values of the field's type: a record key listed as a number is offered as text)."""
    target = form["items"] if form.get("type") == "array" else form
    unique: dict[str, dict[str, Any]] = {}
    for option in offered:  # one option per value: oneOf demands that exactly one matches
        unique.setdefault(repr(option["value"]), option)
    offered = list(unique.values())
    if not offered:
        return
    values = [as_form_value(target, option["value"]) for option in offered]
    if all(str(option["label"]) == str(option["value"]) for option in offered):
        target["examples"] = values
        return
    target["oneOf"] = [
        {"const": value, "title": str(option["label"])}
        for value, option in zip(values, offered, strict=True)
    ]
    for keyword in ("format", "pattern", "minimum", "maximum", "minLength", "maxLength"):
        target.pop(keyword, None)  # the listed values are the rule now


def _collect_messages(node: Any, pointer: str, found: dict[str, str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("x-error-message"), str):
            found[pointer] = node["x-error-message"]
        for key, value in node.items():
            if key not in ("const", "default", "examples", "enum"):
                escaped = str(key).replace("~", "~0").replace("/", "~1")
                _collect_messages(value, f"{pointer}/{escaped}", found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _collect_messages(item, f"{pointer}/{index}", found)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "x-error-message"}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node
