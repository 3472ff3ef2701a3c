"""How an instance is checked: enforced formats, ECMA-262 patterns, strict integers, and field
errors built from paths and keywords only, so a submitted value (a secret, say) is never echoed.

Formats (``uuid``, ``date-time``, ``date``, ``uri``) are checked with the standard library because
``rfc3339-validator`` and ``rfc3987`` are not dependencies. A ``date-time`` is one Exact Online
reads: RFC 3339 without the leap second (Exact, like Python, has no 23:59:60), either letter case,
and also Exact's own wall-clock form without an offset (see :func:`parse_date_time`).
``pattern`` follows ECMA-262, so ``$`` is the end of the text (Python's ``$`` also matches before a
final newline: ``"12\\n"`` would pass), and ``integer`` means a JSON integer, so ``1.0`` and ``1e3``
are rejected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from exact_connector.exceptions import FieldError

__all__ = [
    "FORMATS",
    "FORMAT_CHECKER",
    "MAX_DEPTH",
    "Validator",
    "ecma_pattern",
    "field_errors",
    "json_path",
    "parse_date_time",
    "scan",
    "unsendable",
]


# --- formats, checked with the standard library -------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I | re.A)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.A)
_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]+)?)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))?)?",
    re.A,
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-\[\]_a-z~]*", re.A)


def _is_date(text: str) -> bool:
    try:
        return bool(_DATE.fullmatch(text)) and date.fromisoformat(text) is not None
    except ValueError:
        return False


def parse_date_time(text: str) -> datetime | None:
    """A date-time as Exact Online reads one, as a datetime; ``None`` for anything else.

    Exact stores wall-clock times, and its answers (and so the connector's lists) write them
    without an offset: ``2024-05-01T09:00:00``. That form is accepted as well as RFC 3339's, which
    has an offset (``Z``, ``+02:00``: the result is then aware), and so are the minutes without
    seconds and a day alone (its midnight), as a person writes them. Not a leap second: no
    datetime (and no Exact field) holds one.
    """
    match = _DATE_TIME.fullmatch(text)
    if match is None or not _is_date(match.group(1)):
        return None
    hour, minute, second = (int(match.group(i) or 0) for i in (2, 3, 4))
    zone, offset_hours, offset_minutes = match.group(6, 7, 8)
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset: timezone | None = None
    if zone is not None:
        offset = UTC
        if offset_hours is not None:
            if int(offset_hours) > 23 or int(offset_minutes) > 59:
                return None
            shift = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
            offset = timezone(-shift if zone.startswith("-") else shift)
    micro = int((match.group(5) or ".0")[1:7].ljust(6, "0"))
    day = date.fromisoformat(match.group(1))
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=offset)


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
    "date-time": lambda text: parse_date_time(text) is not None,
    "uri": _is_uri,
}


def _format_checker() -> Any:
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        # Non-strings pass: the type keyword reports those (as the specification says).
        checker.checks(name)(lambda value, check=check: not isinstance(value, str) or check(value))
    return checker


FORMAT_CHECKER = _format_checker()


# --- what no schema can say: values that cannot be sent ----------------------------------------

#: Nesting deeper than this is refused before any validator recurses into it (no input needs more).
MAX_DEPTH = 32
#: An integer wider than this has no JSON number Exact Online (or a float) could read.
_MAX_INT_BITS = 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def unsendable(instance: Any, root: str = "$", max_depth: int = MAX_DEPTH) -> list[FieldError]:
    """What makes ``instance`` impossible to check or to send, before a schema is applied.

    Nesting beyond ``max_depth`` (a validator would exhaust the stack), text that is not Unicode
    (a lone surrogate: it has no UTF-8 form), in values and in keys, numbers that are not finite or
    too wide to write. Walked without recursion; the first problem of each kind is enough.
    """
    if isinstance(instance, str):  # a name or an id, checked on every step
        return [] if _is_unicode(instance) else scan(instance, root, max_depth)[0]
    return scan(instance, root, max_depth)[0]


def scan(
    instance: Any, root: str = "$", max_depth: int = MAX_DEPTH
) -> tuple[list[FieldError], bool]:
    """:func:`unsendable`'s problems, and whether ``instance`` is plain JSON: only objects with
    text keys, lists, text, booleans, null, integers and floats that are not whole numbers (what
    :mod:`exact_connector.fastcheck` may judge). One walk for both."""
    found: dict[str, FieldError] = {}
    plain = True
    stack: list[tuple[Any, list[str | int]]] = [(instance, [])]
    while stack and len(found) < len(_SCALAR_PROBLEMS) + 1:
        value, path = stack.pop()
        problem = _scalar_problem(value)
        if problem is None and isinstance(value, dict | list | tuple):
            plain = plain and not isinstance(value, tuple)
            if len(path) >= max_depth:
                problem = ("depth", f"nests more than {max_depth} levels deep")
            else:
                items = value.items() if isinstance(value, dict) else enumerate(value)
                stack += ((item, [*path, key]) for key, item in items)
                bad_keys = isinstance(value, dict) and not all(map(_is_unicode, value))
                problem = ("encoding", "has a key that is not valid Unicode") if bad_keys else None
                plain = plain and (not isinstance(value, dict) or all(map(_is_text, value)))
        elif not isinstance(value, _PLAIN_SCALARS) or _whole_float(value):
            plain = False
        if problem is not None:
            code, message = problem
            found.setdefault(
                code, {"path": json_path(path, root), "code": code, "message": message}
            )
    problems = sorted(found.values(), key=lambda error: (error["path"], error["code"]))
    return problems, plain and not problems


_PLAIN_SCALARS = (str, int, float, type(None))


def _whole_float(value: object) -> bool:
    return isinstance(value, float) and value.is_integer()


def _is_text(key: object) -> bool:
    return isinstance(key, str)


_SCALAR_PROBLEMS = {
    "encoding": "is not valid Unicode",
    "number": "must be a finite number no wider than 1024 bits",
}


def _scalar_problem(value: Any) -> tuple[str, str] | None:
    if isinstance(value, str):
        bad = not _is_unicode(value)
        code = "encoding"
    elif isinstance(value, float):
        bad, code = not math.isfinite(value), "number"
    elif isinstance(value, int) and not isinstance(value, bool):
        bad, code = value.bit_length() > _MAX_INT_BITS, "number"
    else:
        return None
    return (code, _SCALAR_PROBLEMS[code]) if bad else None


def _is_unicode(text: object) -> bool:
    """False for text with a lone surrogate: it has no UTF-8 form, so it cannot be sent."""
    return not (isinstance(text, str) and _SURROGATE.search(text))


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
_FORMAT_MESSAGES = {
    "uuid": "must be an ID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "date-time": "must be a date and time that exist, such as 2024-05-01T09:00:00 (Exact's local "
    "time), or a day such as 2024-05-01",
    "date": "must be a day that exists, such as 2024-05-01",
    "uri": "must be a full web address such as https://example.com/callback",
}
_MESSAGES: dict[str, Callable[[Any], str]] = {
    "type": lambda v: "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in _as_list(v)),
    "const": lambda v: f"must be {json.dumps(v)}",
    "pattern": lambda v: "is not in the expected form",
    "format": lambda v: _FORMAT_MESSAGES.get(v, f"must be a valid {v}"),
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
    if keyword == "enum" and isinstance(value, list):
        return [(where, _one_of(value, schema))]
    describe = _MESSAGES.get(keyword)
    return [(where, describe(value) if describe else f"fails the {keyword} rule")]


#: The most values an enum error lists; past this the form's list is the place to look.
_ENUM_LISTED = 12


def _one_of(values: list[Any], schema: Any) -> str:
    """The schema's own values (never the one submitted), with the form's labels where it has
    them: ``must be one of 1 (Draft), 2 (Rejected), 10 (Submitted)``."""
    if not values or len(values) > _ENUM_LISTED:
        return "must be one of the listed values"
    ui = schema.get("x-ui") if isinstance(schema, dict) else None
    labels = ui.get("enum_labels") if isinstance(ui, dict) else None
    if not isinstance(labels, list) or len(labels) != len(values):
        labels = [None] * len(values)
    written = [
        json.dumps(value, ensure_ascii=False) + (f" ({label})" if isinstance(label, str) else "")
        for value, label in zip(values, labels, strict=True)
    ]
    return "must be one of " + ", ".join(written)
