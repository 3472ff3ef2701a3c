"""Hostile values for the property tests of every action and CLI entry point (issue 11).

``UNSENDABLE`` values have no JSON-on-the-wire form Exact could read (lone surrogates, nesting
past the limit up to 10,000 deep, non-finite and 1,000-bit-plus numbers): wherever one is put in
an input, the input is refused before any request. ``CORNERS`` are values that may be sent or
refused (every RFC 3339 corner, leap seconds, strings of megabytes): whichever, the answer is
classified. ``place`` puts a value somewhere in a valid input; ``as_json`` writes any of them as
JSON text (deep nesting without recursion).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "CORNERS",
    "ENDPOINT_NAMES",
    "SETTINGS",
    "UNSENDABLE",
    "WHERE",
    "as_json",
    "nested",
    "place",
]

#: Few examples (megabyte strings and 10,000-deep values are slow to draw), no database.
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)
#: Typed-in endpoint names that name no catalog entry however read: paths that climb out, encoded
#: or look-alike characters, queries, fragments, whole URLs, stray blanks, nothing at all.
ENDPOINT_NAMES = [
    "../oauth2/token",
    "crm/../../x",
    "crm%2FAccounts",
    "crm/Accounts?$top=1",
    "//evil.example/x",
    "https://evil.example",
    "crm/Аccounts",  # Cyrillic A
    "crm/Accounts ",
    "crm\\Accounts",
    "crm/Accounts#x",
    "",
]
#: Where ``place`` puts a value.
WHERE = st.sampled_from(["field", "data", "add"])


def nested(depth: int, leaf: Any = "x") -> Any:
    """``leaf`` inside ``depth`` alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
SURROGATES = st.tuples(st.text(max_size=8), _SURROGATE, st.text(max_size=8)).map("".join)
DEEP = st.integers(min_value=33, max_value=10_000).map(nested)
UNSENDABLE = st.one_of(
    SURROGATES,
    DEEP,
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=1025, max_value=5000).map(lambda bits: 2**bits),
    SURROGATES.map(lambda text: {text: 1}),  # as a key
    SURROGATES.map(lambda text: [1, {"k": [text]}]),
)

_TWO = st.integers(min_value=0, max_value=99).map("{:02d}".format)
_DATES = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31", "2024-02-29", "2023-02-29", "2024-13-01"]),
)
_OFFSETS = st.one_of(
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "", "+0100"]),
    st.tuples(st.sampled_from("+-"), _TWO, _TWO).map(lambda p: f"{p[0]}{p[1]}:{p[2]}"),
)
RFC3339 = st.builds(
    "{}{}{}:{}:{}{}{}".format,
    _DATES,
    st.sampled_from(["T", "t", " "]),
    _TWO,
    _TWO,
    st.one_of(_TWO, st.just("60")),
    st.one_of(st.just(""), st.integers(1, 12).map(lambda n: "." + "123456789012"[:n])),
    _OFFSETS,
)
CORNERS = st.one_of(
    RFC3339,
    _DATES.map(lambda day: f"{day}T23:59:60Z"),  # the leap second
    st.sampled_from([1, 5, 11]).flatmap(
        lambda megabytes: st.sampled_from(["x", "€"]).map(lambda c: c * (megabytes * 1_000_000))
    ),
)


def place(valid: dict[str, Any], where: str, key: str, value: Any) -> dict[str, Any]:
    """``valid`` with ``value`` put in: replacing a field (``field``), a member of ``data``
    (``data``), or added under ``key`` at the top or in ``data`` (``add``)."""
    changed = dict(valid)
    data = dict(changed["data"]) if isinstance(changed.get("data"), dict) else None
    if where == "data" and data:
        members = sorted(data)
        data[members[len(key) % len(members)]] = value
    elif where == "add" and data is not None:
        data[key or "extra"] = value
    elif where == "add":
        changed[key or "extra"] = value
    else:
        names = sorted(changed)
        changed[names[len(key) % len(names)]] = value
    if data is not None and where != "field":
        changed["data"] = data
    return changed


def as_json(value: Any) -> str:
    """JSON text for any value drawn here (NaN and Infinity as Python writes them)."""
    depth, inner = 0, value
    opened, closed = [], []
    while isinstance(inner, list | dict) and len(inner) == 1 and depth < 20_000:
        if isinstance(inner, list):
            opened.append("[")
            closed.append("]")
            inner = inner[0]
        else:
            ((name, inner),) = inner.items()
            opened.append("{" + json.dumps(name) + ":")
            closed.append("}")
        depth += 1
    return "".join(opened) + json.dumps(inner) + "".join(reversed(closed))
