"""The connector's JSON Schemas: one registry, cached validators, errors that never echo a value.

Every file under ``schemas/`` has the ``$id`` ``SCHEMA_BASE + <its path under schemas/>``, so a
relative ``$ref`` resolves exactly as the files lie on disk (the host is an identifier, never
fetched). Validation differs from plain jsonschema in three deliberate ways: formats are enforced
(``uuid``, ``date-time``, ``date``, ``uri``, checked with the standard library because
``rfc3339-validator`` and ``rfc3987`` are not dependencies), ``pattern`` follows ECMA-262 so ``$``
is the end of the text (Python's ``$`` also matches before a final newline: ``"12\\n"`` would pass),
and ``integer`` means a JSON integer, so ``1.0`` and ``1e3`` are rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from exact_connector.exceptions import FieldError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from referencing._core import Resolver

__all__ = [
    "FORMAT_CHECKER",
    "SCHEMA_BASE",
    "SchemaSet",
    "Validator",
    "declarations_root",
    "ecma_pattern",
    "field_errors",
    "json_path",
    "merge",
    "problem",
    "schema_set",
    "uri_for",
]

SCHEMA_BASE = "https://schemas.exact-connector.dev/"
SCHEMAS_DIR = "schemas"

#: Keywords that describe rather than constrain; on a ``$ref`` they may override the target's.
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "x-ui", "x-error-message", "$comment"}
    | {"readOnly", "writeOnly", "deprecated"}
)


def declarations_root() -> Traversable:
    """Where ``connector.yaml`` and ``schemas/`` are: in the installed wheel, else the source tree.

    The wheel force-includes both under ``exact_connector/_declarations``; an editable install or a
    checkout has them next to the package.
    """
    packaged = resources.files("exact_connector") / "_declarations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent


# --- formats, checked with the standard library -------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I | re.A)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.A)
_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))",
    re.A,
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-\[\]_a-z~]*", re.A)


def _is_date(text: str) -> bool:
    try:
        return bool(_DATE.fullmatch(text)) and date.fromisoformat(text) is not None
    except ValueError:
        return False


def _is_date_time(text: str) -> bool:
    """RFC 3339 ``date-time``: a full date, a full time and a mandatory offset."""
    match = _DATE_TIME.fullmatch(text)
    if match is None or not _is_date(match.group(1)):
        return False
    hour, minute, second = (int(match.group(i)) for i in (2, 3, 4))
    offset_ok = match.group(7) is None or (int(match.group(7)) < 24 and int(match.group(8)) < 60)
    return hour < 24 and minute < 60 and second <= 60 and offset_ok  # 60: a leap second


def _is_uri(text: str) -> bool:
    """An absolute RFC 3986 URI in ASCII, with well-formed percent escapes and port."""
    if not _URI.fullmatch(text) or re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return False
    try:
        urlsplit(text).port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return False
    return True


FORMATS = {
    "uuid": lambda text: bool(_UUID.fullmatch(text)),
    "date": _is_date,
    "date-time": _is_date_time,
    "uri": _is_uri,
}


def _format_checker() -> Any:
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        # Non-strings pass: the type keyword reports those (as the specification says).
        checker.checks(name)(lambda value, check=check: not isinstance(value, str) or check(value))
    return checker


FORMAT_CHECKER = _format_checker()


# --- the validator class -------------------------------------------------------------------------


@cache
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an ECMA-262 ``pattern``: an unescaped ``$`` outside a class ends the text."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield ValidationError("does not match the pattern")


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
Validator: Any = validators.extend(  # type: ignore[no-untyped-call]  # untyped in the stubs
    Draft202012Validator, validators={"pattern": _pattern}, type_checker=_TYPES
)


# --- errors without values -----------------------------------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.A)
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_MESSAGES: dict[str, Callable[[Any], str]] = {
    "type": lambda v: "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in _as_list(v)),
    "enum": lambda v: "must be one of the listed values",
    "const": lambda v: f"must be {json.dumps(v)}",
    "pattern": lambda v: "is not in the expected form",
    "format": lambda v: f"must be a valid {v}",
    "minLength": lambda v: f"must be at least {v} characters long",
    "maxLength": lambda v: f"must be at most {v} characters long",
    "minimum": lambda v: f"must be at least {v}",
    "maximum": lambda v: f"must be at most {v}",
    "exclusiveMinimum": lambda v: f"must be more than {v}",
    "exclusiveMaximum": lambda v: f"must be less than {v}",
    "minItems": lambda v: f"must have at least {v} items",
    "maxItems": lambda v: f"must have at most {v} items",
    "uniqueItems": lambda v: "must not repeat an item",
    "minProperties": lambda v: f"must have at least {v} field" + ("s" if v != 1 else ""),
    "maxProperties": lambda v: f"must have at most {v} fields",
    "not": lambda v: "is not allowed here",
    "anyOf": lambda v: "does not match any of the allowed forms",
    "oneOf": lambda v: "must match exactly one of the allowed forms",
}
#: Keywords whose errors are about the object's members, so a member's own message does not apply.
_MEMBER_KEYWORDS = frozenset({"required", "additionalProperties", "dependentRequired"})


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def json_path(parts: Any, root: str = "$", *, reveal: bool = False) -> str:
    """``$.data.Quantity`` from path parts.

    A key that is not a plain name could be anything a user typed, so it shows as ``[*]`` unless
    ``reveal`` (for paths in our own files) asks for it quoted.
    """
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _SAFE_KEY.fullmatch(str(part)):
            text += f".{part}"
        else:
            text += f"[{json.dumps(str(part))}]" if reveal else "[*]"
    return text


def field_errors(errors: Any, root: str = "$", *, reveal: bool = False) -> list[FieldError]:
    """Every jsonschema error as ``{path, code, message}``, built from the schema side only.

    ``error.message`` is never used: jsonschema writes the instance's value into it.
    """
    result: dict[tuple[str, str], FieldError] = {}
    for error in errors:
        keyword = str(error.validator)
        where = json_path(error.absolute_path, root, reveal=reveal)
        for path, message in _describe(error, keyword, where, reveal):
            result.setdefault((path, keyword), {"path": path, "code": keyword, "message": message})
    return [result[key] for key in sorted(result)]


def _describe(error: Any, keyword: str, where: str, reveal: bool) -> list[tuple[str, str]]:
    schema, value, instance = error.schema, error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, dict):
        return [(json_path([n], where), "is required") for n in value if n not in instance]
    if keyword == "dependentRequired":
        return [(where, "is missing a field that goes with another field")]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = schema.get("properties", {})
        extras = [key for key in instance if key not in known]
        return [
            (json_path([key], where, reveal=reveal), "is not an allowed field") for key in extras
        ]
    if keyword == "pattern" and reveal:  # our own file: the pattern helps and holds no secret
        return [(where, f"does not match {value}")]
    custom = schema.get("x-error-message") if isinstance(schema, dict) else None
    if custom and keyword not in _MEMBER_KEYWORDS:
        return [(where, str(custom))]
    describe = _MESSAGES.get(keyword)
    return [(where, describe(value) if describe else f"fails the {keyword} rule")]


# --- the loaded set ------------------------------------------------------------------------------


def _json_trouble(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"is not valid JSON (line {error.lineno}, column {error.colno})"
    return "has a duplicate key" if str(error) == "duplicate key" else "is not valid UTF-8 JSON"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _walk_files(node: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    """Every ``*.json`` file under ``node`` as ``(path relative to the root, file)``, sorted."""
    for child in sorted(node.iterdir(), key=lambda child: child.name):
        relative = f"{prefix}/{child.name}"
        if child.is_dir():
            yield from _walk_files(child, relative)
        elif child.name.endswith(".json"):
            yield relative, child


@dataclass
class SchemaSet:
    """All schemas of one declarations root, their registry and validators."""

    root: Traversable
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[FieldError] = field(default_factory=list)
    registry: Registry[Any] = field(default_factory=Registry)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: Traversable) -> SchemaSet:
        """Read every schema file; unreadable ones are recorded in ``problems``, not raised."""
        loaded = cls(root)
        folder = root / SCHEMAS_DIR
        files = list(_walk_files(folder, SCHEMAS_DIR)) if folder.is_dir() else []
        if not files:
            loaded.problems.append(problem(SCHEMAS_DIR, "$", "missing", "no schema files found"))
        for relative, file in files:
            try:
                document = json.loads(file.read_text("utf-8"), object_pairs_hook=_no_duplicates)
            except (ValueError, UnicodeDecodeError) as error:
                loaded.problems.append(problem(relative, "$", "json", _json_trouble(error)))
                continue
            if not isinstance(document, dict):
                loaded.problems.append(problem(relative, "$", "type", "must be a JSON object"))
                continue
            loaded.documents[relative] = document
        resources_ = [
            (uri_for(relative), Resource.from_contents(doc, default_specification=DRAFT202012))
            for relative, doc in loaded.documents.items()
        ]
        loaded.registry = Registry().with_resources(resources_)
        return loaded

    def schema(self, ref: str) -> dict[str, Any]:
        """A whole schema document by ``$id`` or by path (``schemas/credentials.schema.json``)."""
        uri = ref if ref.startswith(SCHEMA_BASE) else uri_for(ref)
        contents = self.registry.contents(uri)
        if not isinstance(contents, dict):
            raise KeyError(ref)
        return contents

    def validator(self, ref: str) -> Any:
        """A cached validator for a schema, with the format checker.

        It validates the bundled schema: following a ``$ref`` into a document that names its
        ``$schema`` would make jsonschema switch to its stock class and drop our rules.
        """
        if ref not in self._validators:
            self._validators[ref] = Validator(self.bundle(ref), format_checker=FORMAT_CHECKER)
        return self._validators[ref]

    def errors(
        self, ref: str, instance: Any, root: str = "$", *, reveal: bool = False
    ) -> list[FieldError]:
        """Every reason ``instance`` fails the schema, as value-free field errors."""
        return field_errors(self.validator(ref).iter_errors(instance), root, reveal=reveal)

    def resolver(self, ref: str) -> Resolver[Any]:
        """A resolver rooted at a schema document, for following its ``$ref``s."""
        uri = ref if ref.startswith(SCHEMA_BASE) else uri_for(ref)
        return self.registry.resolver(base_uri=uri)

    def bundle(self, ref: str) -> dict[str, Any]:
        """A self-contained copy of a schema: every ``$ref`` inlined, no ``$defs`` left."""
        document = self.schema(ref)
        bundled = _inline(document, self.resolver(ref), depth=0)
        return {"$schema": document.get("$schema"), "$id": document.get("$id"), **bundled}

    def dangling_refs(self) -> list[FieldError]:
        """Every ``$ref`` in every document that does not resolve."""
        found = []
        for relative, document in self.documents.items():
            resolver = self.resolver(relative)
            for path, ref in _refs(document, []):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    where = json_path(path, reveal=True)
                    found.append(problem(relative, where, "$ref", "does not resolve"))
        return found


def uri_for(relative: str) -> str:
    """The ``$id`` a schema file must have: its path under ``schemas/``, after ``SCHEMA_BASE``."""
    return SCHEMA_BASE + relative.removeprefix(f"{SCHEMAS_DIR}/")


def problem(file: str, path: str, code: str, message: str) -> FieldError:
    """A problem in one of our files: the file, a JSON path in it, a code and a message."""
    return {"file": file, "path": path, "code": code, "message": message}


def _refs(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield [*path, "$ref"], node["$ref"]
        for key, value in node.items():
            if key not in ("enum", "const", "examples", "default"):
                yield from _refs(value, [*path, key])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, [*path, index])


def merge(target: Any, siblings: dict[str, Any]) -> Any:
    """``$ref`` target plus its siblings as one schema (``x-ui`` merged key by key).

    Annotations on the referring side win. Any other keyword present on both sides with different
    values keeps both, under ``allOf``, so validation is unchanged.
    """
    if not isinstance(target, dict):
        return {"allOf": [target, siblings]} if siblings else target
    clash = [
        k for k in siblings if k in target and k not in ANNOTATIONS and siblings[k] != target[k]
    ]
    if clash:
        notes = {k: v for k, v in siblings.items() if k in ANNOTATIONS}
        rest = {k: v for k, v in siblings.items() if k not in ANNOTATIONS}
        return {**notes, "allOf": [target, rest]}
    merged = {**target, **siblings}
    if "x-ui" in target and "x-ui" in siblings:
        merged["x-ui"] = {**target["x-ui"], **siblings["x-ui"]}
    return merged


def _inline(node: Any, resolver: Resolver[Any], depth: int) -> Any:
    if depth > 64:
        raise RecursionError("schema references nest too deeply (a $ref cycle?)")
    if isinstance(node, list):
        return [_inline(item, resolver, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        resolved = resolver.lookup(node["$ref"])
        target = _inline(resolved.contents, resolved.resolver, depth + 1)
        siblings = {k: _inline(v, resolver, depth + 1) for k, v in node.items() if k != "$ref"}
        return merge(target, siblings)
    skip = ("$defs", "$id", "$schema")
    return {
        key: value
        if key in ("enum", "const", "examples", "default")
        else _inline(value, resolver, depth + 1)
        for key, value in node.items()
        if key not in skip
    }


@cache
def _default_set() -> SchemaSet:
    return SchemaSet.load(declarations_root())


def schema_set(root: Traversable | None = None) -> SchemaSet:
    """The schemas of ``root`` (default: this package's declarations, loaded once)."""
    return _default_set() if root is None else SchemaSet.load(root)
