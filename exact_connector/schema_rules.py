"""The house rules of this package's schema files, checked with the 2020-12 meta-schema.

The ``$id`` is the file's path under ``SCHEMA_BASE``; ``x-ui`` hints
use the vocabulary of ``defs/x_ui.json``; an object with properties says whether it is open
(``additionalProperties``); and no property is the schema ``false`` (jsonschema drops the path of
such an error, so use ``{"not": {}}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from exact_connector.schemas import SchemaSet, problem, uri_for
from exact_connector.validation import field_errors, json_path

if TYPE_CHECKING:
    from collections.abc import Iterator

    from exact_connector.exceptions import FieldError

__all__ = ["check_schemas", "in_file"]

X_UI_FILE = "schemas/defs/x_ui.json"
_OPENNESS = frozenset({"additionalProperties", "unevaluatedProperties"})


def in_file(file: str, errors: list[FieldError]) -> list[FieldError]:
    """``errors`` found in ``file``, each saying so."""
    return [{"file": file, **error} for error in errors]


def _subschemas(
    node: Any, path: list[str | int]
) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    """Every object in a schema document that is a schema (values of enum, const... excluded)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs", "patternProperties", "dependentSchemas"):
                for name, child in value.items() if isinstance(value, dict) else ():
                    yield from _subschemas(child, [*path, key, name])
            elif key in ("allOf", "anyOf", "oneOf", "prefixItems") and isinstance(value, list):
                for index, child in enumerate(value):
                    yield from _subschemas(child, [*path, key, index])
            elif key in ("items", "not", "if", "then", "else", "additionalProperties", "contains"):
                yield from _subschemas(value, [*path, key])


def _house_rules(file: str, document: dict[str, Any], x_ui: Any) -> list[FieldError]:
    """The rules of this package's schema files; safe on any shape (the meta-schema judges it)."""
    found: list[FieldError] = []
    if document.get("$id") != uri_for(file):
        where = json_path(["$id"], reveal=True)
        found.append(problem(file, where, "$id", f"must be {uri_for(file)}"))
    for path, schema in _subschemas(document, []):
        properties = _mapping(schema.get("properties"))
        for name in [n for n, child in properties.items() if child is False]:
            where = json_path([*path, "properties", name], reveal=True)
            found.append(problem(file, where, "false_schema", 'use {"not": {}} instead of false'))
        if schema.get("type") == "object" and properties and not (_OPENNESS & schema.keys()):
            where = json_path(path, reveal=True)
            found.append(problem(file, where, "additionalProperties", "must say if it is open"))
        if "x-ui" in schema:
            found += _hint_rules(file, [*path, "x-ui"], schema, x_ui)
    return found


def _hint_rules(
    file: str, path: list[str | int], schema: dict[str, Any], x_ui: Any
) -> list[FieldError]:
    at = json_path(path, reveal=True)
    hints = schema["x-ui"]
    found = in_file(file, field_errors(x_ui.iter_errors(hints), at, reveal=True)) if x_ui else []
    hints = _mapping(hints)
    order, labels = hints.get("order"), hints.get("enum_labels")
    names = sorted(_mapping(schema.get("properties")))
    if isinstance(order, list) and sorted(map(str, order)) != names:
        found.append(problem(file, at, "order", "must list every property exactly once"))
    if isinstance(labels, list) and len(labels) != len(schema.get("enum") or []):
        found.append(problem(file, at, "enum_labels", "must have one label per enum value"))
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def check_schemas(schemas: SchemaSet) -> list[FieldError]:
    """Every problem in the schema files: meta-schema, dangling ``$ref``s, house rules."""
    meta = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    found: list[FieldError] = [*schemas.problems, *schemas.dangling_refs()]
    for file, document in schemas.documents.items():
        found += in_file(file, field_errors(meta.iter_errors(document), reveal=True))
    # The hint vocabulary is itself a schema file; use it only if that file is sound.
    sound = X_UI_FILE in schemas.documents and all(p["file"] != X_UI_FILE for p in found)
    x_ui = schemas.validator(X_UI_FILE) if sound else None
    for file, document in schemas.documents.items():
        found += _house_rules(file, document, x_ui)
    return found or _cycles(schemas)


def _cycles(schemas: SchemaSet) -> list[FieldError]:
    """Schemas are bundled (every ``$ref`` inlined) for engines, so a ``$ref`` may not recurse."""
    found = []
    for file in schemas.documents:
        try:
            schemas.bundle(file)
        except RecursionError:
            found.append(
                problem(file, "$", "$ref", "refers back to itself; schemas cannot recurse")
            )
    return found
