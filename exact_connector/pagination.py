"""Following Exact's ``__next`` links safely, one page in memory at a time.

A next link is followed only if it stays on the same origin and the same endpoint path, keeps the
query the list started with, and carries a ``$skiptoken`` not seen before; the number of pages is
capped. Where a list stops (a ``limit`` reached mid-page, say) is an opaque, signed, resumable
cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import length_hint
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from pydantic import SecretStr

from exact_connector.exceptions import (
    ExactError,
    InputError,
    PaginationError,
    PaginationLinkRejected,
)
from exact_connector.limits import LEASE_MAX
from exact_connector.odata import Shaper, unwrap_page
from exact_connector.progress import PageFetched, emit

if TYPE_CHECKING:
    from exact_connector.catalog import Endpoint
    from exact_connector.client import ExactClient

__all__ = ["DEFAULT_PAGE_CAP", "Cursor", "Pager", "cursor_key", "read_json"]

DEFAULT_PAGE_CAP = 5_000
#: A list whose reader asks for the next page within ``AHEAD_GAP`` seconds of the last reserves up
#: to ``AHEAD_PAGES`` more with it (one rate-limit transaction for several pages); a reader taking
#: longer reserves one page at a time, so no call is held unused while records are worked on.
AHEAD_PAGES = LEASE_MAX - 1
AHEAD_GAP = 1.0
_CURSOR_PREFIX = "c2."
#: The longest cursor: a page link as long as Exact's URLs may be (6,000 characters), with the
#: endpoint, division and skip, in base64 and signed, comes to about 8,190 (the action's schema
#: says the same).
CURSOR_MAX_LENGTH = 8192
_KEPT_PARAMS = ("$select", "$filter", "$orderby", "$expand")
_ALLOWED_PARAMS = frozenset({*_KEPT_PARAMS, "$top", "$skiptoken", "$inlinecount"})
#: Nineteen digits in a row: the shortest integer orjson could read as a float.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def read_json(response: httpx.Response) -> Any:
    """The JSON body, or an :class:`ExactError` that does not echo what came instead.

    orjson reads it (in half the standard library's time: 3% of a 60-row page's cost, with the
    check below), except where it would read it differently: a body with a run of 19 digits (an
    integer past 64 bits, which orjson makes a float) goes to the standard library, as does one
    orjson refuses and the standard library reads (a byte-order mark, UTF-16, an escaped lone
    surrogate, NaN). Every body gives what ``response.json()`` gives.
    """
    content = response.content
    if _LONG_NUMBER not in content.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        raise ExactError(
            "Exact Online answered with a body that is not JSON.",
            details={
                "status": response.status_code,
                "content_type": response.headers.get("content-type", ""),
                "length": len(response.content),
            },
        ) from None


@lru_cache(maxsize=256)
def cursor_key(client_secret: SecretStr, credential_id: str) -> bytes:
    """The key a credential's cursors are signed with: derived from its client secret, so a
    cursor is only good for the connection that made it, and nobody without the secret can
    make one (HMAC keeps the secret from being learnt from the key or the signatures).

    Derived once per credential and kept (every step needs it; the secret is in memory anyway).
    """
    label = f"exact-connector/cursor/v2/{credential_id}".encode()
    return hmac.new(client_secret.get_secret_value().encode(), label, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a list stopped: the page URL's path and query, and how many of its rows were read.

    As text it is signed (HMAC-SHA256 with :func:`cursor_key`): an edited cursor is refused, never
    followed to other rows.
    """

    endpoint: str
    division: int
    target: str
    skip: int = 0

    def encode(self, key: bytes) -> str:
        """Opaque, signed text for ``next_cursor``."""
        raw = json.dumps(
            {"e": self.endpoint, "d": self.division, "t": self.target, "s": self.skip},
            separators=(",", ":"),
        ).encode()
        return f"{_CURSOR_PREFIX}{_b64(raw)}.{_b64(_signature(key, raw))}"

    @classmethod
    def decode(cls, text: str, *, key: bytes, endpoints: Collection[str], division: int) -> Cursor:
        """Parse a cursor given back by a user: signed with ``key``, made for one of
        ``endpoints`` (a list and its bulk or sync twin) and for this division."""

        def invalid(message: str) -> InputError:
            return InputError(
                f"The cursor cannot be used: {message}.",
                errors=[{"path": "$.cursor", "code": "cursor", "message": message}],
            )

        if (
            not isinstance(text, str)
            or not text.startswith(_CURSOR_PREFIX)
            or len(text) > CURSOR_MAX_LENGTH
        ):
            raise invalid("it is not a cursor returned by this action")
        body, _, signature = text[len(_CURSOR_PREFIX) :].partition(".")
        try:
            raw, mac = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise invalid("it is damaged") from None
        if not hmac.compare_digest(mac, _signature(key, raw)):
            raise invalid("it was changed, or made for another connection")
        data = json.loads(raw)  # signed by us: our own JSON
        if data.get("e") not in endpoints or data.get("d") != division:
            raise invalid("it was made for another endpoint or division")
        return cls(data["e"], division, data["t"], data["s"])


def _signature(key: bytes, raw: bytes) -> bytes:
    return hmac.new(key, _CURSOR_PREFIX.encode() + raw, hashlib.sha256).digest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pager:
    """Iterates the records of a list across pages, holding one page at a time."""

    def __init__(
        self,
        client: ExactClient,
        endpoint: Endpoint,
        division: int,
        url: httpx.URL,
        *,
        skip: int = 0,
        deadline: float | None = None,
        page_cap: int = DEFAULT_PAGE_CAP,
    ) -> None:
        self._client = client
        self.endpoint = endpoint
        self._division = division
        self._first = url
        self._skip = skip
        self._deadline = deadline
        self._page_cap = page_cap
        # Where reading stands: this page's URL, the next page's, its size; the rows taken once
        # its records are all handed out, and those not handed out yet (a list iterator knows
        # how many are left, so nothing is counted per record).
        self._page: tuple[httpx.URL | None, httpx.URL | None, int] = (url, url, skip + 1)
        self._taken_at_end = skip
        self._records: list[dict[str, Any]] = []  # this page's, as handed out
        self._rest: Iterator[dict[str, Any]] = iter([])
        self.pages = 0
        self.rows = 0
        self.count: int | None = None
        #: What a page's records are made into before they are handed out (None: as parsed).
        self.shape: Shaper | None = None
        #: How many records the caller takes at most (None: all), to reserve no pages beyond.
        self.limit: int | None = None
        #: A field selected only for the cursor (a sync feed's row version the caller did not
        #: ask for): taken out of each record before it is shaped, and kept for :meth:`cursor`.
        self.hidden: str | None = None
        self._hidden_values: list[Any] = []

    @classmethod
    def resume(
        cls,
        client: ExactClient,
        endpoint: Endpoint,
        first: httpx.URL,
        division: int,
        cursor: Cursor,
        **options: Any,
    ) -> Pager:
        """Continue where ``cursor`` stopped; it must belong to the list ``first`` starts."""
        try:
            url = _Links(first).check(first.join(cursor.target), None)
        except PaginationLinkRejected:
            raise InputError(
                "The cursor continues a list with another select, filter or order.",
                errors=[{"path": "$.cursor", "code": "cursor", "message": "made for another list"}],
                hint="Pass the same select, filter and order_by as the call that returned the "
                "cursor, or leave the cursor out to start the list again.",
            ) from None
        return cls(client, endpoint, division, url, skip=cursor.skip, **options)

    def cursor(self) -> Cursor | None:
        """Where the records read so far end, or None when the list is exhausted.

        Within a page of a list in key or row-version order, it is the page's link with the skip
        token of the last record handed out, when the page's own last record gives its next
        link's token the same way (Exact's token is the last row's key, or a sync feed's row
        version): a record handed out and then deleted, or changed (a sync feed moves it to its
        end), shifts no row the cursor has not reached. Otherwise it is the page and how many of
        its rows were taken.
        """
        url, next_url, size = self._page
        taken = self._taken_at_end - length_hint(self._rest)
        if taken >= size:  # this page is used up: continue at the next one
            url, taken = next_url, 0
        if url is None:
            return None
        if taken and "$orderby" not in url.params:
            learnt = next_url.params.get("$skiptoken") if next_url is not None else None
            token = self._token_after(taken, learnt)
            if token is not None:
                url, taken = url.copy_set_param("$skiptoken", token), 0
        return Cursor(self.endpoint.id, self._division, url.raw_path.decode("ascii"), taken)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        url: httpx.URL | None = self._first
        skip = self._skip
        seen: set[str] = set()
        links = _Links(self._first)
        clock = self._client.clock
        read_at: float | None = None
        reserved = False
        try:
            while url is not None:
                if self.pages >= self._page_cap:
                    raise PaginationError(
                        f"The list passed the cap of {self._page_cap} pages and was stopped.",
                        details={"endpoint": self.endpoint.id, "pages": self.pages},
                    )
                # The reader's time since the last page (not the wait for a minute's calls).
                quick = read_at is not None and clock.now() - read_at <= AHEAD_GAP
                ahead = self._ahead() if quick else 0
                reserved = reserved or ahead > 0
                response = self._client.request(
                    "GET",
                    url,
                    endpoint=self.endpoint,
                    division=self._division,
                    deadline=self._deadline,
                    ahead=ahead,
                )
                read_at = clock.now()
                self.pages += 1
                page = unwrap_page(read_json(response))
                if page.count is not None:
                    self.count = page.count
                next_url = links.check(page.next, seen) if page.next else None
                records = page.records
                self.rows += len(records)
                event = PageFetched(self.endpoint.id, len(records), self.rows, self.pages)
                emit(self._client.progress, event)
                if self.hidden is not None:
                    hidden = self.hidden
                    self._hidden_values = [record.pop(hidden, None) for record in records]
                rows = records[skip:] if skip else records
                if self.shape is not None:
                    rows = self.shape(rows)
                self._page, self._records = (url, next_url, len(records)), records
                self._taken_at_end, self._rest = max(skip, len(records)), iter(rows)
                yield from self._rest
                url, skip = next_url, 0
        finally:
            if reserved:  # pages reserved ahead and not read: the list ended, or its reader left
                self._client.release_ahead(self.endpoint, self._division)

    def _token_after(self, taken: int, token: str | None) -> str | None:
        """The skip token that continues after this page's record ``taken - 1``, from the field
        the list is in the order of (a sync feed's row version, else the key): written as
        ``token`` (the next link's) is from the page's last record, or on the last page (no link
        to learn from) as an OData key of that field's type. None if the field gives none in a
        form this knows (``guid'…'``, ``'…'``, ``12``, ``12L``), or a record lacks it."""
        if not 0 < taken <= len(self._records):
            return None
        if self.hidden is not None:
            values = self._hidden_values
            last, wanted = {self.hidden: values[-1]}, {self.hidden: values[taken - 1]}
        else:
            last, wanted = self._records[-1], self._records[taken - 1]
        # The field the list is in the order of: a sync feed's row version, else the key.
        key = self.endpoint.primary_key
        if self.endpoint.kind == "sync":
            key = "Timestamp"
        for name in (key,) if isinstance(key, str) else ():
            value, after = last.get(name), wanted.get(name)
            if value is None or after is None:
                continue
            if token is None:
                described = self.endpoint.field(name)
                form = _TYPED_TOKENS.get(described.type) if described is not None else None
                if form is not None:
                    return form(after)
            elif (form := _token_form(token)) is not None and form(value) == token:
                return form(after)
        return None

    def _ahead(self) -> int:
        """How many pages after the one about to be read this list may still need."""
        size = self._page[2]
        if size <= 0:
            return 0
        rows_left = None
        if self.count is not None:
            rows_left = self.count - self.rows
        if self.limit is not None:
            wanted = self.limit - (self.rows - self._skip)
            rows_left = wanted if rows_left is None else min(rows_left, wanted)
        pages = AHEAD_PAGES + 1 if rows_left is None else -(-rows_left // size)
        return max(0, min(pages, self._page_cap - self.pages) - 1)


class _Links:
    """Checks the next links of one list: each must stay on the list's origin, path and query
    (what is compared of the first URL is taken from it once, not at every page)."""

    __slots__ = ("_kept", "_place")

    def __init__(self, first: httpx.URL) -> None:
        self._place = (first.scheme, first.host, first.port, first.path)
        params = first.params
        self._kept = [(name, params.get(name)) for name in _KEPT_PARAMS]

    def check(self, link: str | httpx.URL, seen: set[str] | None) -> httpx.URL:
        """The link as a URL if it may be followed, else rejected; ``seen``: the skip tokens of
        the pages so far (None to check only the place and query)."""
        try:
            url = httpx.URL(link)
        except (httpx.InvalidURL, TypeError):
            raise PaginationLinkRejected("The paging link is not a valid URL.") from None
        if (
            (url.scheme, url.host, url.port, url.path) != self._place
            or url.userinfo
            or url.fragment
        ):
            raise PaginationLinkRejected(
                "The paging link points to another host or endpoint; the list was stopped.",
                details={"host": url.host},
            )
        params = url.params
        if not _ALLOWED_PARAMS.issuperset(params.keys()) or any(
            params.get(name) != value for name, value in self._kept
        ):
            raise PaginationLinkRejected(
                "The paging link changed the list's query; it was stopped."
            )
        if seen is not None:
            token = params.get("$skiptoken")
            if not token:
                raise PaginationLinkRejected("The paging link has no $skiptoken; it was stopped.")
            if token in seen:
                raise PaginationError(
                    "The server sent the same page link twice; paging was stopped to avoid a loop.",
                    details={"pages": len(seen)},
                )
            seen.add(token)
        return url


def _token_form(token: str) -> Callable[[object], str] | None:
    """How a skip token like ``token`` is written from a value."""
    if token.startswith("guid'"):
        return _TYPED_TOKENS["Edm.Guid"]
    if token.startswith("'"):
        return _TYPED_TOKENS["Edm.String"]
    if token[-1:] in ("L", "l") and token[:-1].isdigit():
        return lambda value: f"{value}{token[-1]}"
    if token.isdigit():
        return str
    return None


#: Skip tokens as OData writes keys of each type (Exact's: ``guid'…'``, ``493115L``).
_TYPED_TOKENS: dict[str, Callable[[object], str]] = {
    "Edm.Guid": lambda value: f"guid'{value}'",
    "Edm.String": lambda value: "'" + str(value).replace("'", "''") + "'",
    "Edm.Int64": lambda value: f"{value}L",
    "Edm.Int32": str,
}
