"""The connector's JSON Schemas: where they are, one registry, cached validators, bundling.

Every file under ``schemas/`` has the ``$id`` ``SCHEMA_BASE + <its path under schemas/>``, so a
relative ``$ref`` resolves exactly as the files lie on disk (the host is an identifier, never
fetched). How instances are checked (formats, patterns, value-free errors) is
:mod:`exact_connector.validation`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from exact_connector.exceptions import FieldError
from exact_connector.fastcheck import COMPILE_AFTER, Check, compile_check
from exact_connector.validation import (
    FORMAT_CHECKER,
    Validator,
    field_errors,
    json_path,
    scan,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from referencing._core import Resolver

__all__ = [
    "SCHEMA_BASE",
    "SchemaSet",
    "declarations_root",
    "merge",
    "problem",
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
    #: Per schema: how often it was checked, and its compiled check once built (None: none can be).
    _checked: dict[str, int] = field(default_factory=dict, repr=False)
    _fast: dict[str, Check | None] = field(default_factory=dict, repr=False)

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
        """Every reason ``instance`` fails the schema, as value-free field errors.

        A value that could not be sent whatever the schema says (see :func:`unsendable`) is
        reported alone: the schema is not applied to it. A schema checked often gets a compiled
        check that answers "valid" quickly (:mod:`exact_connector.fastcheck`); every error still
        comes from the full validator.
        """
        problems, plain = scan(instance, root)
        if problems:
            return problems
        if plain and (check := self._fast_check(ref)) is not None and check(instance):
            return []
        return field_errors(self.validator(ref).iter_errors(instance), root, reveal=reveal)

    def _fast_check(self, ref: str) -> Check | None:
        if ref in self._fast:
            return self._fast[ref]
        seen = self._checked[ref] = self._checked.get(ref, 0) + 1
        if seen < COMPILE_AFTER:
            return None
        self._fast[ref] = check = compile_check(self.bundle(ref))
        return check

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
