"""``$filter`` as Exact reads it: tokenised, parsed, type-checked, compiled to a row test.

Supported: ``eq ne gt ge lt le and or not``, parentheses, ``guid'…'``, ``datetime'…'``, numbers
(with ``L``/``M``/``D`` suffixes), quoted strings with ``''`` escapes, ``null``, ``true``/``false``,
``substringof``, ``startswith``, ``endswith``, ``tolower`` and ``toupper``. Operands are checked
like WCF checks them (``ID eq 'abc'`` is an error, not an empty result). Text compares
case-insensitively and ignoring trailing spaces, as Exact's SQL Server does (so ``Country eq 'NL'``
finds the fixed-width ``'NL '``). Anything else is 400 "Error in query syntax." with the reason
phrase Exact sends. :func:`timestamp_only` is the one filter sync endpoints take.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exact_connector.sandbox.wire import SYNTAX_REASON, SandboxError

__all__ = [
    "Predicate",
    "datetime_value",
    "guid_value",
    "lower_bound",
    "parse_filter",
    "predicate",
    "syntax_error",
    "timestamp_only",
]

Predicate = Callable[[Any], bool]
Reader = Callable[[Any], Any]

_SYNTAX = "Error in query syntax."
_KINDS = {
    "Edm.String": "string",
    "Edm.Guid": "guid",
    "Edm.DateTime": "datetime",
    "Edm.Boolean": "bool",
    "Edm.Binary": "binary",
    **{
        t: "number"
        for t in (
            "Edm.Byte",
            "Edm.Int16",
            "Edm.Int32",
            "Edm.Int64",
            "Edm.Double",
            "Edm.Decimal",
            "Edm.Single",
        )
    },
}
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_MIRROR = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<guid>guid'(?P<g>[^']*)')
    | (?P<datetime>datetime'(?P<d>[^']*)')
    | (?P<string>'(?P<s>(?:[^']|'')*)')
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[LlMmDdFf]?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def syntax_error(message: str = _SYNTAX) -> SandboxError:
    """A 400 for a query Exact cannot parse."""
    return SandboxError(400, message, reason=SYNTAX_REASON)


# -- literals ------------------------------------------------------------------------------------


def guid_value(text: str) -> str:
    """The canonical form of a GUID literal's text, or a 400 like Exact's."""
    if not _GUID.fullmatch(text):
        raise SandboxError(400, f"Unrecognized 'Edm.Guid' literal 'guid'{text}''.")
    return str(uuid.UUID(text))


def datetime_value(text: str) -> int:
    """``datetime'2024-01-31T00:00:00'`` -> epoch ms (naive = UTC, the sandbox's one zone)."""
    if not re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?)?", text
    ):
        raise SandboxError(400, f"Unrecognized 'Edm.DateTime' literal 'datetime'{text}''.")
    try:
        moment = datetime.fromisoformat(text[:26])
    except ValueError:
        raise SandboxError(
            400, f"Unrecognized 'Edm.DateTime' literal 'datetime'{text}''."
        ) from None
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def _number(text: str) -> int | float:
    body = text.rstrip("LlMmDdFf")
    if text[-1:] in "Ll" or (re.fullmatch(r"-?[0-9]+", body) and text[-1:] not in "MmDdFf"):
        return int(body)
    return float(body)


# -- $filter -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    kind: str  # the value's kind: string guid datetime number bool binary null
    op: str  # lit, ref, call, cmp, and, or, not
    value: Any = None
    args: tuple[_Node, ...] = ()


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, str]) -> None:
        self.fields = fields
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip():
                    raise syntax_error()
                break
            position = match.end()
            group = match.lastgroup or ""
            inner = {"guid": "g", "datetime": "d", "string": "s"}.get(group)
            self.tokens.append((group, match.group(inner) if inner else match.group(group)))
        self.at = 0

    def parse(self) -> _Node:
        node = self._or()
        if self.at != len(self.tokens) or node.kind != "bool":
            raise syntax_error()
        return node

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def _take(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self._peek()
        if got_kind != kind or (value is not None and got != value):
            raise syntax_error()
        self.at += 1
        return got

    def _logic(self, word: str, inner: Callable[[], _Node]) -> _Node:
        node = inner()
        while self._peek() == ("name", word):
            self.at += 1
            right = inner()
            if node.kind != "bool" or right.kind != "bool":
                raise syntax_error()
            node = _Node("bool", word, args=(node, right))
        return node

    def _or(self) -> _Node:
        return self._logic("or", self._and)

    def _and(self) -> _Node:
        return self._logic("and", self._not)

    def _not(self) -> _Node:
        if self._peek() == ("name", "not"):
            self.at += 1
            inner = self._not()
            if inner.kind != "bool":
                raise syntax_error()
            return _Node("bool", "not", args=(inner,))
        return self._compare()

    def _compare(self) -> _Node:
        left = self._primary()
        kind, word = self._peek()
        if kind != "name" or word not in _COMPARE:
            return left
        self.at += 1
        right = self._primary()
        if not (left.kind == right.kind or "null" in (left.kind, right.kind)):
            kinds = f"'{left.kind}' and '{right.kind}'"
            raise SandboxError(400, f"Operator '{word}' incompatible with operand types {kinds}.")
        if word not in ("eq", "ne") and "bool" in (left.kind, right.kind):
            raise syntax_error()
        return _Node("bool", "cmp", word, (left, right))

    def _primary(self) -> _Node:
        kind, text = self._peek()
        self.at += 1
        if kind == "punct" and text == "(":
            node = self._or()
            self._take("punct", ")")
            return node
        if kind == "guid":
            return _Node("guid", "lit", guid_value(text))
        if kind == "datetime":
            return _Node("datetime", "lit", datetime_value(text))
        if kind == "string":
            return _Node("string", "lit", text.replace("''", "'"))
        if kind == "number":
            return _Node("number", "lit", _number(text))
        if kind != "name":
            raise syntax_error()
        if self._peek() == ("punct", "("):
            return self._call(text)
        constants = {"true": ("bool", True), "false": ("bool", False), "null": ("null", None)}
        if text in constants:
            return _Node(constants[text][0], "lit", constants[text][1])
        edm = self.fields.get(text)
        if edm is None or edm not in _KINDS:
            raise SandboxError(400, f"No property '{text}' exists in type at position {self.at}.")
        return _Node(_KINDS[edm], "ref", text)

    def _call(self, name: str) -> _Node:
        self._take("punct", "(")
        args = [self._or()]
        while self._peek() == ("punct", ","):
            self.at += 1
            args.append(self._or())
        self._take("punct", ")")
        signature = _FUNCTIONS.get(name)
        if signature is None or [a.kind for a in args] != list(signature[0]):
            raise syntax_error()
        return _Node(signature[1], "call", name, tuple(args))


def _fold(value: Any) -> Any:
    # SQL Server compares text ignoring case and trailing spaces: 'NL' eq a char(3) 'NL '.
    return value.rstrip(" ").casefold() if isinstance(value, str) else value


def _text_test(test: Callable[[str, str], bool]) -> Callable[[Any, Any], Any]:
    return lambda a, b: None if a is None or b is None else test(a.casefold(), b.casefold())


_FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "substringof": (("string", "string"), "bool"),
    "startswith": (("string", "string"), "bool"),
    "endswith": (("string", "string"), "bool"),
    "tolower": (("string",), "string"),
    "toupper": (("string",), "string"),
}
_APPLY: dict[str, Callable[..., Any]] = {
    "substringof": _text_test(lambda needle, hay: needle in hay),
    "startswith": _text_test(str.startswith),
    "endswith": _text_test(str.endswith),
    "tolower": lambda a: None if a is None else a.lower(),
    "toupper": lambda a: None if a is None else a.upper(),
}


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return (left is right) if op == "eq" else (left is not right) if op == "ne" else False
    return bool(_COMPARE[op](_fold(left), _fold(right)))


def _compile(node: _Node, read: Callable[[str], Reader]) -> Reader:
    if node.op == "lit":
        value = node.value
        return lambda row: value
    if node.op == "ref":
        return read(node.value)
    parts = [_compile(arg, read) for arg in node.args]
    if node.op == "and":
        left, right = parts
        return lambda row: bool(left(row)) and bool(right(row))
    if node.op == "or":
        left, right = parts
        return lambda row: bool(left(row)) or bool(right(row))
    if node.op == "not":
        inner = parts[0]
        return lambda row: not inner(row)
    if node.op == "cmp":
        left, right = parts
        op = node.value
        return lambda row: _compare(op, left(row), right(row))
    apply = _APPLY[node.value]
    return lambda row: apply(*(part(row) for part in parts))


def predicate(node: Any, read: Callable[[str], Reader]) -> Predicate:
    """A row test from a parsed ``$filter``; ``read(field)`` gives a reader of that field."""
    test = _compile(node, read)
    return lambda row: bool(test(row))


def lower_bound(node: Any, name: str) -> tuple[Any, bool] | None:
    """The highest ``name gt|ge|eq value`` bound the filter's top-level ``and`` chain implies.

    It lets a list start at that value with a bisect instead of scanning from the first row.
    """
    if not isinstance(node, _Node):
        return None
    if node.op == "and":
        found = [b for b in (lower_bound(arg, name) for arg in node.args) if b is not None]
        return max(found, key=lambda b: (b[0], not b[1])) if found else None
    if node.op != "cmp":
        return None
    left, right = node.args
    op = node.value
    if right.op == "ref" and left.op == "lit":
        left, right, op = right, left, _MIRROR[op]
    bounded = op in ("gt", "ge", "eq") and right.op == "lit" and right.value is not None
    if bounded and left.op == "ref" and left.value == name:
        return right.value, op != "gt"
    return None


def timestamp_only(node: Any) -> bool:
    """Whether a filter is ``Timestamp gt <number>``, the only one a sync endpoint accepts."""
    if not isinstance(node, _Node) or node.op != "cmp" or node.value != "gt":
        return False
    left, right = node.args
    return left.op == "ref" and left.value == "Timestamp" and right.kind == "number"


def timestamp_after(node: Any) -> int:
    """The row version of a ``Timestamp gt <number>`` filter (see :func:`timestamp_only`)."""
    return int(node.args[1].value)


def parse_filter(text: str, fields: Mapping[str, str]) -> Any:
    """A parsed, type-checked ``$filter`` over fields (name -> Edm type)."""
    return _Parser(text, fields).parse()
