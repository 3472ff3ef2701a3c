"""``read_json`` parses with orjson and falls back to the standard library: every body must give
exactly what ``response.json()`` gives (the same values, types, key order and signs), and every
body the standard library refuses must be refused as an ``ExactError`` that does not echo it."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exact_connector.exceptions import ExactError
from exact_connector.pagination import read_json

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats()
    | st.text()
    | st.sampled_from(["\ud800", "\udfff", "\x00", "/Date(1760931779467)/", "é€😀"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)


def _outcome(read: Any) -> tuple[str, str]:
    """What reading gave, in a form that tells 1 from 1.0, -0.0 from 0.0 and NaN from NaN."""
    try:
        value = read()
    except (ExactError, ValueError) as error:
        return ("refused", type(error).__name__ if isinstance(error, ExactError) else "ExactError")
    return ("read", json.dumps(value, allow_nan=True))


def _agree(content: bytes) -> None:
    response = httpx.Response(200, content=content, headers={"content-type": "application/json"})
    expected = _outcome(lambda: json.loads(content))
    assert _outcome(lambda: read_json(response)) == expected


@settings(max_examples=400, deadline=None)
@given(
    value=_VALUES,
    ascii_only=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"]),
    spacing=st.sampled_from([None, 2]),
)
def test_any_json_text_reads_as_the_standard_library_reads_it(
    value: Any, ascii_only: bool, encoding: str, spacing: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=spacing)
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:  # a lone surrogate written raw: no encoding can carry it
        content = text.encode("utf-8", "surrogatepass")
    _agree(content)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, cut=st.integers(min_value=0), junk=st.binary(max_size=4))
def test_damaged_bodies_are_refused_or_read_alike(value: Any, cut: int, junk: bytes) -> None:
    content = json.dumps(value).encode()
    cut %= len(content) + 1
    _agree(content[:cut] + junk + content[cut:])


@pytest.mark.parametrize(
    "content",
    [
        b'{"d": {"results": [], "__next": "x"}}',
        b"\xef\xbb\xbf" + b'{"a": 1}',  # a byte-order mark
        '{"a": "é"}'.encode("utf-16"),
        b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
        b'{"s": "\\ud800"}',  # an escaped lone surrogate
        b'{"n": NaN, "i": Infinity, "m": -Infinity}',
        b'{"a": 1, "a": 2}',  # the last of duplicate keys wins
        b'{"f": 1e400, "g": -0.0, "h": -0, "k": 1E2, "z": 0.1}',
        b" \n\t[1, 2.5, true, null] \r\n",
        b"[" * 300 + b"]" * 300,
        b'{"a": 1} trailing',
        b"",
        b"<html>not json</html>",
        b'{"a": "\xff"}',  # not UTF-8
        b'"\\u0000"',
    ],
)
def test_edge_bodies(content: bytes) -> None:
    _agree(content)


def test_a_refusal_names_the_status_and_length_not_the_body() -> None:
    response = httpx.Response(502, content=b"<h1>secret-ish page</h1>")
    with pytest.raises(ExactError) as caught:
        read_json(response)
    assert caught.value.details == {"status": 502, "content_type": "", "length": 24}
    assert "secret" not in str(caught.value)


def test_nan_is_still_a_float() -> None:
    value = read_json(httpx.Response(200, content=b"[NaN]"))
    assert math.isnan(value[0])
