"""What may go into a request: the division segment, key literals, query options and bodies.

:class:`~exact_connector.client.ExactClient` builds every URL and body through these checks, so a
value that passed no schema (an engine calling the client directly, say) still cannot change a
URL's structure, crash the JSON encoder, or overwhelm Exact. Exact's own size limits (API-FACTS §3
"Sizes": a body of at most 10 MB, a URL of at most 6,000 characters after encoding) are refused
here, before sending, naming the input that made the request too large.
"""

from __future__ import annotations

import json as jsonlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from exact_connector.exceptions import InputError
from exact_connector.odata import KEY_LITERAL
from exact_connector.validation import MAX_DEPTH, unsendable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "MAX_URL_LENGTH",
    "checked_key",
    "checked_length",
    "division_segment",
    "encode_body",
    "query_options",
]

MAX_BODY_BYTES = 10_000_000  # Exact's "10 MB", read as the smaller (decimal) number of bytes
MAX_URL_LENGTH = 6_000  # characters of the whole URL, after encoding
MAX_BODY_DEPTH = MAX_DEPTH  # Exact's deepest documents (orders with lines) are three levels deep
_DIVISION = re.compile(r"[0-9]{1,10}", re.ASCII)
_MAX_DIVISION = 2**31 - 1
#: Query options the client sends, each with the check its value must pass.
_QUERY_OPTIONS: dict[str, re.Pattern[str]] = {
    "$select": re.compile(r"[A-Za-z0-9_,/]{1,4000}", re.ASCII),
    "$expand": re.compile(r"[A-Za-z0-9_,/]{1,1000}", re.ASCII),
    "$orderby": re.compile(r"[A-Za-z0-9_, /]{1,1000}", re.ASCII),
    "$filter": re.compile(r"[^\x00-\x1f\x7f]{1,4000}"),
    "$top": re.compile(r"[1-9][0-9]{0,3}|10000", re.ASCII),
    "$skip": re.compile(r"0|[1-9][0-9]{0,5}", re.ASCII),
    "$skiptoken": re.compile(r"[^\x00-\x1f\x7f]{1,400}"),
    "$inlinecount": re.compile(r"allpages|none", re.ASCII),
}
#: Where a query option comes from in an action's input, to name it when the URL is too long.
_INPUT_PATHS = {"$filter": "$.filter", "$select": "$.select", "$orderby": "$.order_by"}


def division_segment(division: object) -> str:
    """ASCII digits in range; ``int()`` would also take full-width digits, ' 12 ', '1_000'."""
    if isinstance(division, bool) or not isinstance(division, int | str):
        raise InputError.at("$.division", "type", "expected a division number")
    text = str(division) if isinstance(division, int) else division
    if not _DIVISION.fullmatch(text) or not 0 < int(text) <= _MAX_DIVISION:
        raise InputError.at("$.division", "format", "expected a division number (digits 0-9)")
    return str(int(text))


def checked_key(key_literal: object) -> str:
    """A key literal exactly as :func:`~exact_connector.odata.key_literal` renders one."""
    if not isinstance(key_literal, str) or not KEY_LITERAL.fullmatch(key_literal):
        raise InputError.at("$.id", "format", "not a key this endpoint can be addressed by")
    return key_literal


def query_options(params: Mapping[str, str]) -> dict[str, str]:
    """The query options, each one this client sends and with a value of the expected shape."""
    for name, value in params.items():
        check = _QUERY_OPTIONS.get(name)
        path = f"$.params.{name.lstrip('$')}" if isinstance(name, str) else "$.params"
        if check is None:
            raise InputError.at(path, "unknown_option", "not a query option this client sends")
        if not isinstance(value, str) or not check.fullmatch(value):
            raise InputError.at(path, "format", "the value has a shape this option does not take")
    return dict(params)


def checked_length(url: str, params: Mapping[str, str] | None = None) -> str:
    """The URL, if Exact accepts its length; else the input that made it long is named."""
    if len(url) <= MAX_URL_LENGTH:
        return url
    longest = max(params or {}, key=lambda name: len(quote(str((params or {})[name]))), default="")
    path = _INPUT_PATHS.get(longest, f"$.params.{longest.lstrip('$')}" if longest else "$.id")
    raise InputError.at(
        path,
        "url_length",
        f"makes the request URL {len(url)} characters long; Exact Online accepts at most "
        f"{MAX_URL_LENGTH}, so shorten it or split the step",
    )


def encode_body(body: Any) -> bytes:
    """JSON for the wire, refusing what would crash the encoder or overwhelm Exact."""
    problems = unsendable(body, "$.data", MAX_BODY_DEPTH)
    if problems:
        raise InputError(f"Invalid value at {problems[0]['path']}.", errors=problems)
    try:
        text = jsonlib.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InputError.at("$.data", "type", "holds a value JSON cannot carry") from None
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_BODY_BYTES:
        raise InputError.at("$.data", "size", "larger than the 10 MB Exact Online accepts")
    return encoded
