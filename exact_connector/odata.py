"""OData v2 details of Exact Online: key and filter literals, ``/Date(ms)/``, envelopes.

Everything that turns a user's value into URL text goes through :func:`key_literal` or
:func:`filter_literal`; both accept only values whose rendering cannot change the URL's structure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from exact_connector.exceptions import ExactError, InputError

__all__ = [
    "DATE_PATTERN",
    "KEY_LITERAL",
    "KEY_TYPES",
    "Page",
    "Shaper",
    "canonical_guid",
    "canonical_integer",
    "filter_literal",
    "filter_names",
    "key_literal",
    "key_value",
    "location_key",
    "normalize",
    "parse_date",
    "record_normalizer",
    "unwrap_page",
    "unwrap_record",
]

_GUID = re.compile(
    r"(?:urn:uuid:)?(\{)?([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})(?(1)\})",
    re.ASCII | re.IGNORECASE,
)
#: A GUID already as :func:`canonical_guid` writes it (what every earlier answer holds).
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.A)
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
#: Characters never allowed in a string key: they would change the URL's path or query.
_STRING_KEY_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\?#%]")
_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "Edm.Byte": (0, 2**8 - 1),
    "Edm.Int16": (0, 2**15 - 1),
    "Edm.Int32": (0, 2**31 - 1),
    "Edm.Int64": (0, 2**63 - 1),
}
#: What :func:`key_literal` renders: guid'…', an integer, a quoted string, datetime'…'.
KEY_LITERAL = re.compile(
    r"guid'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'"
    r"|[0-9]{1,19}"
    r"|'(?:[^'\x00-\x1f\x7f/\\?#%]|''){1,400}'"
    r"|datetime'[0-9T:.\-]{10,35}'",
    re.ASCII,
)
#: The Edm types :func:`key_literal` can write a key of (Exact's ``php:*`` keys have no literal).
KEY_TYPES = frozenset({"Edm.Guid", "Edm.String", "Edm.DateTime", *_INTEGER_RANGES})
DATE_PATTERN = re.compile(r"/Date\((-?[0-9]{1,15})([+-][0-9]{4})?\)/", re.ASCII)
_EPOCH = datetime(1970, 1, 1)
_MAX_STRING_KEY = 200


def canonical_guid(value: object, path: str = "$.id") -> str:
    """Lower-case hyphenated GUID; braces, ``urn:uuid:``, upper case and no hyphens accepted."""
    if isinstance(value, str) and _CANONICAL_GUID.fullmatch(value):
        return value
    if not isinstance(value, str) or not (match := _GUID.fullmatch(value)):
        raise InputError.at(
            path,
            "format",
            "expected a GUID written as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits)",
        )
    return str(uuid.UUID(match.group(2)))


def canonical_integer(value: object, path: str = "$.id", edm_type: str = "Edm.Int64") -> int:
    """A non-negative integer from an int or a string of ASCII digits, range-checked by type."""
    low, high = _INTEGER_RANGES.get(edm_type, _INTEGER_RANGES["Edm.Int64"])
    if isinstance(value, bool):
        raise InputError.at(path, "type", "expected a whole number")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise InputError.at(
                path, "format", "expected a whole number written with the digits 0-9"
            )
        value = int(value)
    if not isinstance(value, int):
        raise InputError.at(path, "type", "expected a whole number")
    if not low <= value <= high:
        raise InputError.at(path, "range", f"expected a number from {low} to {high}")
    return value


def _string_literal(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError.at(path, "type", "expected a non-empty text value")
    if len(value) > _MAX_STRING_KEY or _STRING_KEY_FORBIDDEN.search(value):
        raise InputError.at(path, "format", "text contains characters that are not allowed here")
    return "'" + value.replace("'", "''") + "'"


def _datetime_literal(value: object, path: str) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9T:.+\-Z]{10,35}", value, re.ASCII):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InputError.at(path, "format", "expected an ISO 8601 date or date-time") from None
    else:
        raise InputError.at(path, "format", "expected an ISO 8601 date or date-time")
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment
            raise InputError.at(path, "range", "expected a date-time from year 1 to 9999") from None
    return f"datetime'{moment.isoformat(timespec='seconds')}'"


def key_literal(value: object, edm_type: str | None, path: str = "$.id") -> str:
    """The text between the parentheses of ``Endpoint(…)`` for a key of this Edm type."""
    if edm_type == "Edm.Guid":
        return f"guid'{canonical_guid(value, path)}'"
    if edm_type in _INTEGER_RANGES:
        return str(canonical_integer(value, path, edm_type))
    if edm_type == "Edm.String":
        return _string_literal(value, path)
    if edm_type == "Edm.DateTime":
        return _datetime_literal(value, path)
    raise InputError.at(
        path, "unsupported_key", "this endpoint's key type cannot be addressed by ID"
    )


def location_key(location: str, collection_path: str) -> str | None:
    """The key literal of the record a ``Location`` header points at in ``collection_path``
    (``…/TimeTransactions(guid'…')``), if it is one :func:`key_literal` could have written."""
    try:
        path = unquote(urlsplit(location).path)
    except ValueError:  # not a URL (an unclosed IPv6 bracket, say): no key can be read from it
        return None
    if not (path.startswith(collection_path + "(") and path.endswith(")")):
        return None
    literal = path[len(collection_path) + 1 : -1]
    return literal if KEY_LITERAL.fullmatch(literal) else None


def key_value(literal: str) -> str | int:
    """The value a :data:`KEY_LITERAL` writes: ``guid'…'`` and ``datetime'…'`` as their text,
    ``'it''s'`` as ``it's``, digits as a number."""
    if literal.isdigit():
        return int(literal)
    if literal.startswith("'"):
        return literal[1:-1].replace("''", "'")
    return literal[literal.index("'") + 1 : -1]


def filter_literal(value: object, edm_type: str, path: str = "$.filter") -> str:
    """A ``$filter`` literal for a value compared with a field of this Edm type."""
    if value is None:
        return "null"
    if edm_type == "Edm.Boolean":
        if not isinstance(value, bool):
            raise InputError.at(path, "type", "expected true or false")
        return "true" if value else "false"
    if edm_type in ("Edm.Double", "Edm.Decimal", "Edm.Single"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError.at(path, "type", "expected a number")
        return repr(float(value)) if isinstance(value, float) else str(value)
    if edm_type == "Edm.String":
        if not isinstance(value, str) or re.search(r"[\x00-\x1f\x7f]", value):
            raise InputError.at(path, "type", "expected text without control characters")
        return "'" + value.replace("'", "''") + "'"
    return key_literal(value, edm_type, path)


#: The words of a ``$filter`` expression (OData v2): a quoted string ('' inside), a number (with
#: its type suffix), a name, punctuation. Anything else stops :func:`filter_names` from judging.
_FILTER_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[LlMmDdFf]?)(?![A-Za-z0-9_])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[()/,-])",
    re.ASCII,
)
#: Operators and constants of OData v2's ``$filter`` (INF and NaN are doubles): not properties.
_FILTER_WORDS = frozenset(
    {"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "add", "sub", "mul", "div", "mod"}
    | {"true", "false", "null", "inf", "nan"}
)


def filter_names(text: str) -> list[tuple[int, str]] | None:
    """The properties a ``$filter`` expression names (for ``Account/Name``, ``Account``), each
    with where it starts, in order; None if it uses syntax this reader does not know (Exact then
    judges it alone).

    Not properties: operators and constants, function names (a name before ``(``), literal
    prefixes (``guid'…'``, ``datetime'…'``: a name right before a quote), later path segments
    and anything inside a string literal.
    """
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        match = _FILTER_TOKEN.match(text, position)
        if match is None:
            return None
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(), match.start()))
        position = match.end()
    names = []
    for index, (kind, word, start) in enumerate(tokens):
        if kind != "name" or word.lower() in _FILTER_WORDS:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is not None and following[0] == "string" and following[2] == start + len(word):
            continue  # guid'…', datetime'…', X'…'
        if following is not None and following[1] == "(":
            continue  # a function: substringof(…), year(…)
        if index > 0 and tokens[index - 1][1] == "/":
            continue  # a property of the navigation property before it
        names.append((start, word))
    return names


def parse_date(text: str) -> str | None:
    """``/Date(ms)/`` as ISO 8601 (Exact's wall-clock time, so no zone unless one is given)."""
    plain = _plain_date(text)
    return None if plain is text else plain


def _plain_date(text: str) -> str:
    """``text`` as :func:`parse_date` writes it if it is a date, else ``text`` itself.

    This runs for every date of every listed record: the usual ``/Date(ms)/`` is tested once and
    written by integer arithmetic and tables, its calendar date (shared by many rows) cached.
    """
    if text[:6] != "/Date(":
        return text
    body = text[6:-2]
    try:
        if text[-2:] == ")/" and body.isdigit() and body.isascii():
            days, rest = divmod(int(body), 86_400_000)
            minute, rest = divmod(rest, 60_000)
            second, milli = divmod(rest, 1000)
            return f"{_iso_day(days)}{_CLOCK[minute]}{_SECONDS[second]}{_MILLIS[milli]}"
        if match := DATE_PATTERN.fullmatch(text):
            return _signed_or_zoned(int(match.group(1)), match.group(2))
    except (OverflowError, ValueError):  # beyond year 9999 (or int()'s 4,300 digits): as sent
        pass
    return text


def _signed_or_zoned(milliseconds: int, offset: str | None) -> str:
    moment = _EPOCH + timedelta(milliseconds=milliseconds)
    if offset:
        minutes = int(offset[1:3]) * 60 + int(offset[3:])
        zone = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
        moment = (moment.replace(tzinfo=UTC)).astimezone(zone)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)


#: The time of day by table: "THH:MM:" for each minute of a day, "SS", and ".mmm" ("" for 0).
_CLOCK = tuple(f"T{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}" for second in range(60))
_MILLIS = ("", *(f".{milli:03d}" for milli in range(1, 1000)))


@lru_cache(maxsize=1 << 14)  # the calendar dates of some 45 years, a few MB at most
def _iso_day(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).date().isoformat()


class Page:
    """One list page: its records, the absolute ``__next`` link and ``__count`` if sent."""

    __slots__ = ("count", "next", "records")

    def __init__(self, records: list[dict[str, Any]], next: str | None, count: int | None) -> None:
        self.records = records
        self.next = next
        self.count = count


def _shape_error() -> ExactError:
    return ExactError(
        "Exact Online answered with JSON of an unexpected shape.",
        details={"expected": "an object with a 'd' member"},
    )


def unwrap_page(payload: object) -> Page:
    """Records of ``{"d":{"results":[…]}}`` or ``{"d":[…]}`` (or one ``{"d":{…}}`` record)."""
    if not isinstance(payload, dict) or "d" not in payload:
        raise _shape_error()
    body = payload["d"]
    if isinstance(body, list):
        return Page([r for r in body if isinstance(r, dict)], None, None)
    if not isinstance(body, dict):
        raise _shape_error()
    if "results" in body and isinstance(body["results"], list):
        count = body.get("__count")
        next_link = body.get("__next")
        return Page(
            [r for r in body["results"] if isinstance(r, dict)],
            next_link if isinstance(next_link, str) else None,
            int(count) if isinstance(count, str | int) and str(count).isdigit() else None,
        )
    return Page([body], None, None)


def unwrap_record(payload: object) -> dict[str, Any]:
    """The single record of ``{"d":{…}}``, ``{"d":{"results":[r]}}`` or ``{"d":[r]}``."""
    if isinstance(payload, dict) and isinstance(payload.get("d"), dict):
        body = payload["d"]
        if not isinstance(body.get("results"), list):
            return dict(body)
    records = unwrap_page(payload).records
    if len(records) != 1:
        raise _shape_error()
    return records[0]


def normalize(value: Any) -> Any:
    """Exact's JSON made plain: ISO dates, no ``__metadata``/``__deferred``, expanded lists."""
    kind = type(value)
    if kind is dict:
        if len(value) == 1 and type(value.get("results")) is list:
            return [normalize(item) for item in value["results"]]
        return _normalize_record(value)
    if kind is list:
        return [normalize(item) for item in value]
    if kind is str:
        return _plain_date(value)
    return value


#: What a list's records are made into, a page at a time (in place where it can).
Shaper = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def record_normalizer(
    dates: Iterable[str], collections: Iterable[str], known: Iterable[str]
) -> Shaper:
    """:func:`normalize` for a page of records of one endpoint whose field types are known.

    Only the fields that can hold a date or a navigation property are looked at, and the records
    are changed in place, in the list given (they are the caller's, fresh from the JSON parser);
    the list is returned. A record carrying a field outside ``known`` (Exact adds fields without
    notice) takes the generic path. A page at a time, not a record: a list's records are shaped
    in one loop, with no call per record (a 60-row page spends about a tenth of its time here).
    """
    date_names, navigation_names = tuple(dates), tuple(collections)
    expected = frozenset(known) | {"__metadata"}

    def plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, record in enumerate(records):
            if not expected.issuperset(record):
                records[index] = _normalize_record(record)
                continue
            record.pop("__metadata", None)
            for name in navigation_names:
                value = record.get(name)
                if type(value) is dict:
                    if "__deferred" in value:
                        del record[name]
                    else:
                        record[name] = normalize(value)
            for name in date_names:
                value = record.get(name)
                if type(value) is str:
                    record[name] = _plain_date(value)
        return records

    return plain


def _normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    # One pass with the scalar cases inline: this runs for every field of every listed record.
    plain: dict[str, Any] = {}
    for key, item in record.items():
        kind = type(item)
        if kind is str:
            item = _plain_date(item)
        elif kind is dict:
            if key == "__metadata" or "__deferred" in item:
                continue
            item = normalize(item)
        elif kind is list:
            item = [normalize(element) for element in item]
        plain[key] = item
    return plain
