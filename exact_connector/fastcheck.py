"""A compiled yes-or-no check in front of the full validator, for inputs checked again and again.

jsonschema walks a schema keyword by keyword for every instance: some 70-90 µs for an action's
input, a quarter of what a warm step adds to its HTTP call. ``fastjsonschema`` turns a schema
into straight-line Python once (about 12 ms) and then answers in about 5 µs. It only says
*valid*: anything else, and every error message, is the full validator's
(:mod:`exact_connector.validation`), so what a person reads never changes.

The two must never disagree on *valid*, so the compiled check is used only where they are known
to agree, and the rest goes to the full validator:

* the schema uses only the keywords listed in ``_KEYWORDS`` (a new keyword turns the fast path
  off for that schema instead of being ignored); ``format`` names only our own formats, which it
  is given; a ``pattern`` has no ``$`` but its final one (the two rewrite ``$`` differently);
  ``enum`` and ``const`` hold text (Python's ``True == 1`` is not JSON's), or numbers where the
  schema also says the value is a number;
* the instance is plain JSON as :func:`~exact_connector.validation.scan` reports it: no tuple (an
  array to fastjsonschema, not to us) and no float with an integral value (``1.0`` is an integer
  to draft 7 and not to our strict rule).

``tests/test_fastcheck.py`` checks the agreement on every bundled schema with generated inputs.
A schema is compiled only after it has been checked ``COMPILE_AFTER`` times in the process, so a
one-step process (``exact-connector run``) never pays for compiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exact_connector.validation import FORMATS

__all__ = ["COMPILE_AFTER", "compile_check"]

#: Full validations of one schema before its compiled check is built (12 ms, saving ~70 µs each).
COMPILE_AFTER = 32

_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "enum", "const", "pattern"}
    | {"format", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"}
    | {"uniqueItems", "items", "allOf", "anyOf", "not", "if", "then", "else"}
    | {"dependentSchemas", "minProperties"}
)
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "x-ui"}
    | {"x-error-message", "readOnly", "writeOnly", "deprecated"}
)
_ONE_SCHEMA = ("not", "if", "then", "else", "items", "additionalProperties")
_SCHEMA_LISTS = ("allOf", "anyOf")
_SCHEMA_MAPS = ("properties", "dependentSchemas")
_NUMERIC = frozenset({"integer", "number"})
_DRAFT7 = "http://json-schema.org/draft-07/schema#"

Check = Callable[[Any], bool]


def compile_check(schema: dict[str, Any]) -> Check | None:
    """A check that says True only for instances the full validator accepts; None where the
    schema uses something the compiled check may read differently."""
    if not _agrees(schema):
        return None
    import fastjsonschema  # only processes that validate the same schema many times load it

    try:
        compiled = fastjsonschema.compile(
            _draft7(schema),
            formats=FORMATS,
            use_default=False,  # a default must never be written into the caller's input
        )
    except Exception:  # a schema it cannot compile keeps the full validator alone
        return None

    def valid(instance: Any) -> bool:
        try:
            compiled(instance)
        except Exception:  # invalid, or anything odd: the full validator decides
            return False
        return True

    return valid


def _agrees(node: Any) -> bool:
    """Whether every keyword of ``node`` and its subschemas is one the two read alike."""
    if isinstance(node, bool):
        return True
    if not isinstance(node, dict) or not set(node) <= _KEYWORDS | _ANNOTATIONS:
        return False
    if "format" in node and node["format"] not in FORMATS:
        return False
    pattern = node.get("pattern", "")
    if not isinstance(pattern, str) or "$" in pattern.removesuffix("$") or pattern.endswith("\\$"):
        return False
    types = node.get("type", [])
    types = set(types) if isinstance(types, list) else {types}
    numeric = bool(types & _NUMERIC) and "boolean" not in types
    values = [*node.get("enum", []), *([node["const"]] if "const" in node else [])]
    if not all(_plain_value(value, numeric) for value in values):
        return False
    children = [node[key] for key in _ONE_SCHEMA if key in node]
    children += [child for key in _SCHEMA_LISTS for child in node.get(key, [])]
    children += [child for key in _SCHEMA_MAPS for child in node.get(key, {}).values()]
    return all(_agrees(child) for child in children)


def _plain_value(value: Any, numeric: bool) -> bool:
    if value is None or isinstance(value, str):
        return True
    return numeric and isinstance(value, int | float) and not isinstance(value, bool)


def _draft7(node: Any) -> Any:
    """The schema as draft 7 spells it: ``dependentSchemas`` is draft 7's ``dependencies``."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$id", "examples", "default", "x-ui"):
            continue
        if key == "$schema":
            result[key] = _DRAFT7
        elif key in ("enum", "const"):
            result[key] = value
        elif key in _SCHEMA_MAPS:
            name = "dependencies" if key == "dependentSchemas" else key
            result[name] = {name_: _draft7(child) for name_, child in value.items()}
        else:
            result[key] = _draft7(value)
    return result
