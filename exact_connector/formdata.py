"""The one transform between what a person submits in an RJSF form and an action's input.

The RJSF form (:mod:`exact_connector.rjsf`) differs from the input schema in a few places, each
undone here: Data Manager rows become fields (:mod:`exact_connector.datamanager`), a field shown
only for another field's value is left out while that value is not chosen, and an empty optional
value (``None``, ``""``, ``[]``) is left out. Form data is first checked against the form's own
schema, so every problem is reported at its path in the form data, never with its value.
"""

from __future__ import annotations

from typing import Any

from exact_connector import datamanager, hints
from exact_connector.exceptions import FieldError, InputError
from exact_connector.rjsf import as_form_value, form_schema
from exact_connector.validation import (
    FORMAT_CHECKER,
    Validator,
    field_errors,
    json_path,
    unsendable,
)

__all__ = ["to_form_data", "to_input"]

#: The static form schema's validator for each input schema seen (manifests are loaded once).
_validators: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = id(schema)
    if key not in _validators:
        form, _ = form_schema(schema)
        _validators[key] = (schema, Validator(form, format_checker=FORMAT_CHECKER))
    return _validators[key][1]


def to_input(schema: dict[str, Any], form_data: Any) -> dict[str, Any]:
    """The form data of the form built from ``schema`` as input for ``schema``.

    Raises :class:`InputError` listing every problem, each at its path in the form data.
    """
    required = set(schema.get("required", [])) | hints.conditionally_required(schema)
    if isinstance(form_data, dict):  # what an empty input leaves behind is not a value
        form_data = {k: v for k, v in form_data.items() if k in required or not _empty(v)}
    errors = unsendable(form_data) or field_errors(_validator(schema).iter_errors(form_data))
    if not isinstance(form_data, dict):
        raise InputError("The form data is not valid.", errors=errors)
    properties = dict(hints.ordered(schema))
    reported = {error["path"] for error in errors}
    errors += [
        {"path": path, "code": "unknown", "message": "is not a field of this form"}
        for path in (json_path([key]) for key in form_data if key not in properties)
        if path not in reported  # a closed form's schema has said so already
    ]
    if errors:
        raise InputError("The form data is not valid.", errors=_sorted(errors))
    result: dict[str, Any] = {}
    for name, prop in properties.items():
        value = form_data.get(name)
        condition = hints.depends_on(prop)
        hidden = condition is not None and form_data.get(condition[0]) != condition[1]
        if name not in form_data or hidden:
            continue
        if hints.is_picker(prop) and isinstance(value, dict):
            value, found = datamanager.to_input(value, prop, json_path([name]))
            errors += found
        result[name] = value
    if errors:
        raise InputError("The form data is not valid.", errors=_sorted(errors))
    return result


def to_form_data(schema: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Valid input for ``schema`` as the data of its form: the inverse of :func:`to_input`
    (a value the input may give in two types is given in the one the form's field holds)."""
    fields = form_schema(schema)[0]["properties"]
    return {
        name: datamanager.from_input(inputs[name], prop)
        if hints.is_picker(prop)
        else as_form_value(fields.get(name, {}), inputs[name])
        for name, prop in hints.ordered(schema)
        if name in inputs
    }


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _sorted(errors: list[FieldError]) -> list[FieldError]:
    return sorted(errors, key=lambda error: (error["path"], error["code"]))
