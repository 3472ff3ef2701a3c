"""How ``list_or_get_endpoint`` reads a list: fields checked, a faster twin chosen, the pager built.

The fields of ``select`` and ``order_by`` are checked against the catalog and spelled its way; a
bulk or sync twin answers the same question in fewer calls; a cursor resumes on the endpoint it was
made on; records come back untouched or normalised by their field types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

from exact_connector.catalog import Endpoint, catalog
from exact_connector.exceptions import (
    ExactRejected,
    FieldError,
    InputError,
    NotFound,
    UnknownEndpoint,
)
from exact_connector.odata import Shaper, filter_names, normalize, record_normalizer
from exact_connector.pagination import Cursor, Pager

if TYPE_CHECKING:
    from exact_connector.actions import Step

__all__ = [
    "Reading",
    "checked_filter",
    "field_names",
    "filter_demanded",
    "list_errors",
    "pager",
    "selected_fields",
    "shaper",
]

_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}", re.ASCII)
_ORDER_TERM = re.compile(r"([A-Za-z][A-Za-z0-9_]{0,79})(?: (asc|desc))?", re.ASCII | re.IGNORECASE)
_DATE_TYPES = frozenset({"Edm.DateTime", "Edm.DateTimeOffset"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_T = TypeVar("_T")
#: The one filter Exact's sync endpoints take (API-FACTS, "Sync feed": only Timestamp, ``gt``).
_SYNC_FILTER = re.compile(r"\s*Timestamp gt [0-9]{1,19}L?\s*", re.ASCII)
_NO_RECORD: dict[str, Any] = {}  # next()'s default: a list that has none


@contextmanager
def list_errors(endpoint: Endpoint, data: dict[str, Any]) -> Iterator[None]:
    """Exact's refusals of a list, restated where the person's fix is clearer.

    A 404 to a list of a typed endpoint means Exact has no such endpoint: no key could miss. A 400
    about a filter to an unfiltered list of an endpoint with a sync API is Exact's mandatory
    filter (API-FACTS §3): the person's fix is the filter field, so it is named.
    """
    try:
        yield
    except ExactRejected as error:
        if not _wants_a_filter(endpoint, data, error):
            raise
        message = str(error.details.get("exact_message", ""))
        raise ExactRejected(
            f"Exact Online lists {endpoint.id} only with a filter: {message}",
            errors=[{"path": "$.filter", "code": "filter_required", "message": "add a filter"}],
            details={k: v for k, v in error.details.items() if k != "errors"},
            hint="Add a filter (for example on Modified or Code) and run the step again.",
        ) from None
    except NotFound as error:
        if catalog().get(endpoint.id) is not None:
            # A list has no ID to check: the endpoint (retired or renamed, API-FACTS §6) or the
            # division is what the person can look at.
            raise NotFound(
                f"Exact Online answered 404 to the list of {endpoint.id}.",
                errors=[
                    {"path": "$.endpoint", "code": "not_found", "message": "Exact answered 404"}
                ],
                details={k: v for k, v in error.details.items() if k != "errors"},
                hint="Check the endpoint and the division: Exact may have retired or renamed "
                "this endpoint, or this connection may not reach the division.",
            ) from None
        raise UnknownEndpoint(
            f"Exact Online has no endpoint {endpoint.id} (it answered 404 to the list).",
            errors=[{"path": "$.endpoint", "code": "unknown", "message": "Exact answered 404"}],
            details={k: v for k, v in error.details.items() if k != "errors"},
        ) from None


def filter_demanded(error: ExactRejected) -> bool:
    """Whether Exact's refusal names a missing ``$filter`` (its mandatory filter, API-FACTS §3:
    lists of the regular and bulk endpoints that have a sync API; Exact sets the rule per app)."""
    return "filter" in str(error.details.get("exact_message", "")).lower()


def _wants_a_filter(endpoint: Endpoint, data: dict[str, Any], error: ExactRejected) -> bool:
    """Whether Exact refused an unfiltered list for want of a ``$filter``."""
    return (
        not data.get("filter")
        and catalog().sync_api(endpoint) is not None
        and filter_demanded(error)
    )


class Reading:
    """The records of ``list_or_get_endpoint``'s list, read by :attr:`pager`, shaped.

    Where Exact refuses the first page of an unfiltered list for want of a filter (its mandatory
    filter, which it sets per app), the list is read again from the endpoint's sync twin, which
    takes none, and the connection remembers the endpoint (``ExactClient.filter_required``): its
    later plain lists go to the sync twin at once. Only a refused first page is read again: no
    record has been handed out yet.
    """

    def __init__(self, step: Step, endpoint: Endpoint, data: dict[str, Any]) -> None:
        self._step, self._endpoint, self._data = step, endpoint, data
        self.pager = self._open()

    def _open(self) -> Pager:
        made, select = pager(self._step, self._endpoint, self._data)
        made.shape = shaper(made.endpoint, bool(self._data.get("raw")), select)
        made.limit = self._data.get("limit")
        return made

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The pager's records; its first page is read here (no generator in between: a list's
        every record passes through what this returns)."""
        records = iter(self.pager)
        try:
            first = next(records)
        except StopIteration:
            return records
        except ExactRejected as error:
            if not self._read_from_sync(error):
                raise
            records = iter(self.pager)
            first = next(records, _NO_RECORD)
            if first is _NO_RECORD:
                return records
        return chain((first,), records)

    def _read_from_sync(self, error: ExactRejected) -> bool:
        """Whether the refused list is now read from the sync twin (see the class)."""
        refused = self.pager
        if refused.pages or refused.endpoint.kind == "sync":
            return False
        if not _wants_a_filter(self._endpoint, self._data, error):
            return False
        self._step.client.filter_required.add(self._endpoint.id.lower())
        self.pager = self._open()
        if self.pager.endpoint.kind == "sync":
            return True
        self.pager = refused  # no sync twin answers this list (an order, a missing field)
        return False


def shaper(endpoint: Endpoint, raw: bool, select: list[str]) -> Shaper:
    """How a list's records are returned, a page at a time: untouched, or normalised by the
    endpoint's field types (only the selected fields when a select was sent)."""
    if raw:
        return _untouched
    if not endpoint.fields:  # a typed endpoint the catalog does not describe
        return _normalized
    key = (id(endpoint), tuple(select))
    made = _SHAPERS.get(key)
    if made is not None and made[0] is endpoint:
        return made[1]
    chosen = set(select)
    fields = [f for f in endpoint.fields if f.name in chosen] if chosen else list(endpoint.fields)
    shape = record_normalizer(
        dates=(f.name for f in fields if f.type in _DATE_TYPES or f.type.startswith("php:")),
        collections=(f.name for f in fields if f.navigation),
        known=(f.name for f in fields),
    )
    if len(_SHAPERS) >= _SHAPERS_KEPT:
        _SHAPERS.clear()
    _SHAPERS[key] = (endpoint, shape)
    return shape


def _untouched(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return records


def _normalized(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [normalize(record) for record in records]


#: Normalisers by endpoint (held, so its ``id`` is not reused) and selected fields: a single
#: record's step would otherwise spend as long making one as using it.
_SHAPERS: dict[tuple[int, tuple[str, ...]], tuple[Endpoint, Shaper]] = {}
_SHAPERS_KEPT = 512


def field_names(
    endpoint: Endpoint,
    names: Sequence[str],
    path: str,
    absent: str = "{name} is not a field of {endpoint}",
    *,
    listed: bool = True,
) -> list[str]:
    """Field names checked against the endpoint (canonical spelling); unknown ones refused at
    their place in ``path`` (at ``path`` itself when not ``listed``: names from one text),
    saying ``absent`` (``{name}`` and ``{endpoint}`` filled in) and the field meant where one
    is close. Every name is checked before the refusal."""
    result, errors = [], []
    for index, name in enumerate(names):
        where = f"{path}[{index}]" if listed else path
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            message = "a field name uses letters, digits and _ only"
            errors.append({"path": where, "code": "pattern", "message": message})
            continue
        field_ = endpoint.field(name)
        if endpoint.fields and field_ is None:
            message = absent.format(name=name, endpoint=endpoint.id) + _guess(endpoint, name)
            errors.append({"path": where, "code": "unknown_field", "message": message})
            continue
        result.append(field_.name if field_ is not None else name)
    if errors:
        raise InputError.of(errors)
    return result


def _guess(endpoint: Endpoint, name: str) -> str:
    """`` (did you mean Quantity?)`` for a name close to one of the endpoint's fields, else ""."""
    known = {f.name.lower(): f.name for f in endpoint.fields}
    close = get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    return f" (did you mean {known[close[0]]}?)" if close else ""


def selected_fields(endpoint: Endpoint, select: list[str] | None) -> list[str]:
    """The ``select`` input's field names, checked and canonically spelt (empty: all fields)."""
    return field_names(endpoint, select or [], "$.select")


def checked_filter(endpoint: Endpoint, text: str) -> tuple[str, list[str]]:
    """A ``$filter`` expression with its field names canonically spelt (Exact reads them
    case-sensitively), and those fields. A name the endpoint does not have is refused before any
    call (every such name, in one error): Exact would answer 400 and count it toward its lockout.

    An expression this reader cannot follow, or an endpoint the catalog lists no fields of, is
    left to Exact as written (nothing refused, no fields returned).
    """
    names = filter_names(text) if endpoint.fields else None
    fields: list[str] = []
    unknown: list[FieldError] = []
    for start, name in reversed(names or ()):
        field_ = endpoint.field(name)
        if field_ is None:
            message = f"{name} is not a field of {endpoint.id}{_guess(endpoint, name)}"
            unknown.insert(0, {"path": "$.filter", "code": "unknown_field", "message": message})
            continue
        text = text[:start] + field_.name + text[start + len(name) :]
        fields.insert(0, field_.name)
    if unknown:
        raise InputError.of(unknown)
    return text, fields


def _order_by(endpoint: Endpoint, text: str) -> str:
    """``order_by`` as Exact reads it: each term's field canonically spelt, its direction kept."""
    terms, names = [], []
    for part in text.split(","):
        match = _ORDER_TERM.fullmatch(part.strip())
        if match is None:
            raise InputError.at("$.order_by", "pattern", "write fields as 'Name asc, Date desc'")
        names.append(match.group(1))
        terms.append(match.group(2))
    spelt = field_names(endpoint, names, "$.order_by", listed=False)  # one text field
    return ",".join(f"{n} {d.lower()}" if d else n for n, d in zip(spelt, terms, strict=True))


class _ListFields(NamedTuple):
    """A list's select, filter and order, checked and spelt as the endpoint spells them."""

    select: list[str]
    filter: str | None
    order: str | None
    #: The fields the filter and the order name: a twin read instead must have them too.
    compared: list[str]


def _checked_fields(endpoint: Endpoint, data: dict[str, Any]) -> _ListFields:
    """``select``, ``filter`` and ``order_by`` checked against the endpoint asked for; every
    field of the three it lacks is refused in one error (each check alone stops at its own input,
    and a person would meet the mistakes one run at a time)."""
    if data.get("filter") and _CONTROL.search(data["filter"]):
        raise InputError.at("$.filter", "pattern", "control characters are not allowed")
    errors: list[FieldError] = []

    def checked(check: Callable[[], _T]) -> _T | None:
        try:
            return check()
        except InputError as error:
            errors.extend(error.errors)
            return None

    select = checked(lambda: selected_fields(endpoint, data.get("select")))
    filtered = (
        checked(lambda: checked_filter(endpoint, data["filter"])) if data.get("filter") else None
    )
    order = checked(lambda: _order_by(endpoint, data["order_by"])) if data.get("order_by") else None
    if errors or select is None:
        raise InputError.of(errors)
    compared = list(filtered[1]) if filtered else []
    compared += [term.split(" ")[0] for term in order.split(",")] if order else []
    return _ListFields(select, filtered[0] if filtered else None, order, compared)


def _list_target(
    endpoint: Endpoint,
    data: dict[str, Any],
    fields: _ListFields,
    resumed: str | None = None,
    filter_required: bool = False,
) -> tuple[Endpoint, list[str]]:
    """The endpoint to page through, preferring a bulk or sync twin that answers the same question.

    A twin pages 1000 rows a call instead of 60. Bulk answers any list of its regular endpoint; sync
    is ordered by its own Timestamp, so it is used only for a plain full list (no filter, no order).
    Both require ``$select``: without one, every scalar field of the regular endpoint is selected.
    A twin must also have the fields the list filters and orders by (``fields.compared``). A list
    resumed from a cursor stays on the endpoint the cursor was made on (``resumed``), whatever the
    limit is now. Where the app must filter its lists (``filter_required``), a plain list goes to
    the sync twin, however short: the regular and bulk endpoints would refuse it.
    """
    select, compared = fields.select, fields.compared
    limit = data.get("limit")
    if endpoint.kind in ("bulk", "sync"):  # asked for by name: Exact refuses them without $select
        return endpoint, select or _scalar_fields(endpoint)
    plain = not data.get("filter") and not data.get("order_by")
    short = resumed is None and limit is not None and limit <= endpoint.page_size
    if short and plain and filter_required:
        short = False
    if endpoint.kind != "regular" or short or resumed == endpoint.id:
        return endpoint, select
    kinds: tuple[Literal["bulk", "sync"], ...] = ("bulk",)
    if plain:
        kinds = ("sync",) if filter_required else ("bulk", "sync")
    wanted = select or _scalar_fields(endpoint)
    for twin in _same_rows_twins(endpoint, kinds):
        fits = wanted and all(twin.field(n) for n in [*wanted, *compared])
        if fits and resumed in (None, twin.id):
            return twin, wanted
    return endpoint, select


def _same_rows_twins(
    endpoint: Endpoint, kinds: tuple[Literal["bulk", "sync"], ...] = ("bulk", "sync")
) -> list[Endpoint]:
    """The endpoint's twins whose rows are its records. Exact's sync twins of orders, invoices
    and quotations (``sync/SalesInvoice/SalesInvoices``…) hold one row per line, with the
    header's fields repeated: they carry a ``LineNumber`` their regular endpoint has not, and a
    list read from them would repeat a document per line and leave out one without lines."""
    twins = (catalog().twin(endpoint, kind) for kind in kinds)
    return [
        twin
        for twin in twins
        if twin is not None and (twin.field("LineNumber") is None or endpoint.field("LineNumber"))
    ]


def _list_endpoints(endpoint: Endpoint) -> set[str]:
    """The endpoints a list of ``endpoint`` may be read from: itself and its twins."""
    return {endpoint.id, *(twin.id for twin in _same_rows_twins(endpoint))}


def _order_field(target: Endpoint) -> str | None:
    """The field a list of ``target`` with no ``$orderby`` is in the order of, as it spells it:
    a sync feed's row version, else a single key (None: a composite key, or neither known)."""
    name = "Timestamp" if target.kind == "sync" else target.primary_key
    field_ = target.field(name) if isinstance(name, str) else None
    return field_.name if field_ is not None else None


def _selects(target: str, name: str) -> bool:
    """Whether the ``$select`` of a cursor's page link names ``name``."""
    selected = parse_qs(urlsplit(target).query).get("$select", [""])[0]
    return name.lower() in (field.lower() for field in selected.split(","))


def _scalar_fields(endpoint: Endpoint) -> list[str]:
    return [f.name for f in endpoint.fields if not f.navigation]


def pager(step: Step, endpoint: Endpoint, data: dict[str, Any]) -> tuple[Pager, list[str]]:
    """The pager over the endpoint (or its twin), and the fields it selects (empty: all)."""
    cursor = None
    if data.get("cursor"):
        cursor = Cursor.decode(
            data["cursor"],
            key=step.cursor_key,
            endpoints=_list_endpoints(endpoint),
            division=step.division,
        )
    # Filter and order fields are checked against the endpoint asked for, and spelt as it spells
    # them; a twin is used only if it has them too.
    fields = _checked_fields(endpoint, data)
    filter_text, order = fields.filter, fields.order
    filter_required = endpoint.id.lower() in step.client.filter_required
    resumed = cursor.endpoint if cursor else None
    target, select = _list_target(endpoint, data, fields, resumed, filter_required)
    params: dict[str, str] = {}
    # A cursor continues after the last record handed out, by the field the list is in the order
    # of: a sync feed's row version, else (no order asked for) the key. That field is read even
    # when the select leaves it out, and taken out of the records again; without it a cursor
    # would count rows, and skip one unseen record per record deleted meanwhile.
    # A cursor made before this (its select without the field) resumes by page and offset.
    hidden = _order_field(target) if select and order is None else None
    if hidden is not None and hidden.lower() in {name.lower() for name in select}:
        hidden = None
    if hidden is not None and cursor is not None and not _selects(cursor.target, hidden):
        hidden = None
    if select:
        params["$select"] = ",".join([*select, hidden] if hidden else select)
    if filter_text is not None:
        if target.kind == "sync" and not _SYNC_FILTER.fullmatch(data["filter"]):
            raise InputError.at(
                "$.filter", "sync_filter", "a sync endpoint takes only 'Timestamp gt <number>'"
            )
        params["$filter"] = filter_text
    if order is not None:
        params["$orderby"] = order
    # No $top for a limit: a full page costs the same one call and lets the cursor resume.
    first = step.client.url(target, step.division, None, params)
    if target is not endpoint:
        step.audit["list_endpoint"] = target.id
    if cursor is not None:
        pager = Pager.resume(
            step.client, target, first, step.division, cursor, deadline=step.deadline
        )
    else:
        pager = Pager(step.client, target, step.division, first, deadline=step.deadline)
    pager.hidden = hidden
    return pager, select
