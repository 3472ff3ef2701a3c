"""The OData query options of a list or read: ``$select``, ``$filter``, ``$orderby``, ``$top``,
``$skiptoken``, ``$inlinecount``, ``$expand``, checked strictly against the endpoint's fields.

Unknown ``$`` options, ``$skip`` where the endpoint does not take it (those released after 1 March
2017 page with ``$skiptoken`` only: :mod:`~exact_connector.sandbox.history`), unknown properties
and malformed values answer 400 as Exact does; bulk and sync lists need ``$select``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exact_connector.sandbox.filters import guid_value, parse_filter, syntax_error
from exact_connector.sandbox.wire import SandboxError

__all__ = ["Options", "parse_key", "parse_options"]

_KNOWN = frozenset(
    {
        "$select",
        "$filter",
        "$orderby",
        "$top",
        "$skip",
        "$skiptoken",
        "$inlinecount",
        "$expand",
        "$format",
    }
)


def parse_key(text: str, edm: str) -> Any:
    """A key literal (``guid'…'``, ``12``, ``12L``, ``'EUR'``) for a key of this Edm type."""
    if edm == "Edm.Guid":
        match = re.fullmatch(r"guid'([^']*)'", text)
        if match is None:
            raise SandboxError(400, f"Unrecognized 'Edm.Guid' literal '{text}'.")
        return guid_value(match.group(1))
    if edm == "Edm.String":
        if not re.fullmatch(r"'(?:[^']|'')*'", text):
            raise SandboxError(400, f"Unrecognized 'Edm.String' literal '{text}'.")
        return text[1:-1].replace("''", "'")
    if not re.fullmatch(r"[0-9]{1,19}L?", text):
        raise SandboxError(400, f"Unrecognized '{edm}' literal '{text}'.")
    return int(text.rstrip("L"))


# -- the options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The query options of one list or get request, checked against the endpoint's fields."""

    select: tuple[str, ...] | None = None
    filter: Any = None
    orderby: tuple[tuple[str, bool], ...] = ()
    top: int | None = None
    skiptoken: str | None = None
    inlinecount: bool = False
    expand: frozenset[str] = frozenset()
    params: tuple[tuple[str, str], ...] = field(default=())
    skip: int = 0


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise syntax_error()
    return names


def parse_options(
    params: Sequence[tuple[str, str]],
    fields: Mapping[str, str],
    navigation: frozenset[str],
    type_name: str,
    *,
    require_select: bool = False,
    skip_allowed: bool = False,
) -> Options:
    """Check and parse the ``$`` options; ``fields`` maps scalar names to Edm types."""
    seen: dict[str, str] = {}
    for name, value in params:
        if not name.startswith("$"):
            continue
        if name not in _KNOWN:
            raise SandboxError(
                400,
                f"The query parameter '{name}' begins with a system-reserved '$' character"
                " but is not recognized.",
            )
        if name in seen:
            raise SandboxError(400, f"Query option '{name}' was specified more than once.")
        seen[name] = value
    if "$skip" in seen and not skip_allowed:
        raise SandboxError(400, "$skip is not supported on this endpoint. Use $skiptoken to page.")
    if not re.fullmatch(r"[0-9]{1,9}", seen.get("$skip", "0")):
        raise syntax_error()
    if seen.get("$format", "json") != "json":
        raise SandboxError(400, "Only $format=json is supported.")
    select = None
    if "$select" in seen:
        select = tuple(_names(seen["$select"]))
        for name in select:
            if name != "*" and name not in fields and name not in navigation:
                raise SandboxError(400, f"No property '{name}' exists in type '{type_name}'.")
    top = None
    if "$top" in seen:
        if not re.fullmatch(r"[0-9]{1,9}", seen["$top"]):
            raise syntax_error()
        top = int(seen["$top"])
    if require_select and select is None and top != 1:
        raise SandboxError(400, "Please add a $select or a $top=1 statement to the query string.")
    orderby = []
    for part in _names(seen["$orderby"]) if "$orderby" in seen else []:
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise syntax_error()
        if words[0] not in fields:
            raise SandboxError(400, f"No property '{words[0]}' exists in type '{type_name}'.")
        orderby.append((words[0], len(words) == 2 and words[1] == "desc"))
    expand = frozenset(_names(seen["$expand"])) if "$expand" in seen else frozenset()
    if not expand <= navigation:
        raise SandboxError(400, f"Only navigation properties of '{type_name}' can be expanded.")
    count = seen.get("$inlinecount", "none")
    if count not in ("allpages", "none"):
        raise syntax_error()
    parsed = parse_filter(seen["$filter"], fields) if "$filter" in seen else None
    return Options(
        select,
        parsed,
        tuple(orderby),
        top,
        seen.get("$skiptoken"),
        count == "allpages",
        expand,
        tuple(params),
        int(seen.get("$skip", "0")),
    )
