"""G16: following __next safely: whole lists, foreign links, loops, the page cap, cursors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from client_harness import ACCOUNTS, DIVISION, OTHER_DIVISION, World, advance, endpoint
from pydantic import SecretStr

from exact_connector.client import ExactClient
from exact_connector.exceptions import InputError, PaginationError, PaginationLinkRejected
from exact_connector.limits import RateGovernor
from exact_connector.pagination import AHEAD_GAP, Cursor, Pager, cursor_key

KEY = cursor_key(SecretStr("paging tests' client secret"), "paging-credential")


def _pager(client: ExactClient, **options: object) -> Pager:
    accounts = endpoint()
    url = client.url(accounts, DIVISION, params={"$select": "ID,Name"})
    return Pager(client, accounts, DIVISION, url, **options)  # type: ignore[arg-type]


def _rewrite_next(world: World, change: Callable[[str, int], str]) -> None:
    """Every answer with a ``__next`` gets ``change(link, page_number)`` instead."""
    pages = [0]

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if not request.url.path.startswith("/api/v1/"):
            return None
        response = call()
        payload = json.loads(response.read())
        pages[0] += 1
        link = payload["d"].get("__next")
        if link:
            payload["d"]["__next"] = change(link, pages[0])
        return httpx.Response(response.status_code, json=payload)

    world.app.tamper = tamper


def test_g16_a_three_page_list_is_collected_whole(world: World) -> None:
    """150 accounts in pages of 60, 60, 30: every record once; the cursor ends at None."""
    pager = _pager(world.client())
    ids = [record["ID"] for record in pager]
    assert len(ids) == len(set(ids)) == 150
    assert set(ids) == {row["ID"] for row in world.sb.records(DIVISION, ACCOUNTS)}
    assert pager.pages == 3
    assert pager.cursor() is None


def test_g16_a_cursor_resumes_exactly_where_reading_stopped(world: World) -> None:
    """Stop after 70 records (mid-page), resume from the encoded cursor: the other 80, no repeat."""
    client = world.client()
    pager = _pager(client)
    first = []
    for record in pager:
        first.append(record["ID"])
        if len(first) == 70:
            break
    cursor = pager.cursor()
    # After the 70th record's key, not "10 rows into page 2": see the deletion test below.
    assert cursor is not None and cursor.skip == 0
    assert cursor.target.endswith(quote(f"guid'{first[-1]}'", safe=""))
    text = cursor.encode(KEY)
    accounts = endpoint()
    start = client.url(accounts, DIVISION, params={"$select": "ID,Name"})
    decoded = Cursor.decode(text, key=KEY, endpoints={accounts.id}, division=DIVISION)
    rest = [record["ID"] for record in Pager.resume(client, accounts, start, DIVISION, decoded)]
    assert len(rest) == 80
    assert set(first) | set(rest) == {row["ID"] for row in world.sb.records(DIVISION, ACCOUNTS)}


@pytest.mark.parametrize(
    ("division", "name"), [(OTHER_DIVISION, ACCOUNTS), (DIVISION, "crm/Contacts")]
)
def test_g16_a_cursor_for_another_list_is_refused(world: World, division: int, name: str) -> None:
    """A cursor only resumes the endpoint and division it was made for."""
    text = Cursor(ACCOUNTS, DIVISION, "/api/v1/100001/crm/Accounts?$skiptoken=x").encode(KEY)
    with pytest.raises(InputError) as caught:
        Cursor.decode(text, key=KEY, endpoints={endpoint(name).id}, division=division)
    assert caught.value.errors[0]["path"] == "$.cursor"


def test_g16_a_next_link_to_another_host_is_rejected(world: World) -> None:
    """The sandbox's foreign_next fault: PAGINATION_LINK_REJECTED; the foreign host sees nothing."""
    world.sb.faults.add("foreign_next", path_contains="crm/Accounts")
    pager = _pager(world.client())
    read = []
    with pytest.raises(PaginationLinkRejected) as caught:
        read.extend(pager)
    assert caught.value.code == "pagination_link_rejected"
    assert read == []  # the link is checked before the page's records are handed out
    assert {seen.url.host for seen in world.app.seen} == {"start.exactonline.nl"}


@pytest.mark.parametrize(
    "change",
    [
        lambda link: link.replace("/crm/Accounts", "/crm/Contacts"),
        lambda link: link.replace("/api/v1/100001/crm/Accounts", "/api/oauth2/token"),
        lambda link: link.replace("https://start.exactonline.nl", "http://start.exactonline.nl"),
        lambda link: link.replace("https://", "https://user:pw@"),
        lambda link: link.replace("start.exactonline.nl", "start.exactonline.nl:8443"),
        lambda link: link.replace("https://start.exactonline.nl", "//evil.example"),
        lambda link: str(httpx.URL(link).copy_set_param("$select", "ID,Name,Phone")),
        lambda link: str(httpx.URL(link).copy_add_param("$format", "atom")),
        lambda link: link.split("?")[0],
    ],
    ids=[
        "other-endpoint",
        "token-endpoint",
        "http",
        "userinfo",
        "port",
        "scheme-relative",
        "changed-select",
        "extra-option",
        "no-skiptoken",
    ],
)
def test_g16_a_next_link_leaving_the_list_is_rejected(
    world: World, change: Callable[[str], str]
) -> None:
    """Another path, scheme, port, userinfo or query: rejected, and nothing is sent there."""
    _rewrite_next(world, lambda link, _page: change(link))
    with pytest.raises(PaginationLinkRejected):
        list(_pager(world.client()))
    assert len(world.app.api_calls()) == 1


def test_g16_the_same_next_link_twice_is_a_loop(world: World) -> None:
    """Page 2 points back at page 2: stopped with PAGINATION_ERROR after two requests."""
    first_link: list[str] = []

    def loop(link: str, page: int) -> str:
        if page == 1:
            first_link.append(link)
        return first_link[0]

    _rewrite_next(world, loop)
    with pytest.raises(PaginationError) as caught:
        list(_pager(world.client()))
    assert "twice" in caught.value.message
    assert len(world.app.api_calls()) == 2


def test_g16_more_pages_than_the_cap_stops_with_an_error(world: World) -> None:
    """page_cap=2 on a three-page list: PAGINATION_ERROR before the third request."""
    pager = _pager(world.client(), page_cap=2)
    with pytest.raises(PaginationError) as caught:
        list(pager)
    assert caught.value.details["pages"] == 2
    assert len(world.app.api_calls()) == 2


def test_a_cursor_signed_for_another_connection_is_refused() -> None:
    """Issue 11 item 11: the signature binds a cursor to the credential whose key made it."""
    text = Cursor(ACCOUNTS, DIVISION, "/api/v1/100001/crm/Accounts?$skiptoken=x").encode(KEY)
    other = cursor_key(SecretStr("another client secret"), "another-credential")

    with pytest.raises(InputError) as caught:
        Cursor.decode(text, key=other, endpoints={ACCOUNTS}, division=DIVISION)

    assert caught.value.errors[0]["message"] == "it was changed, or made for another connection"


# --- pages reserved ahead: one rate-limit transaction for several pages of a list read quickly --


@pytest.fixture
def onlooker(world: World, tmp_path: Path) -> Iterator[tuple[ExactClient, RateGovernor]]:
    """A client whose governor keeps its state in a file, and another process's view of it."""
    path = tmp_path / "limits.db"
    client = world.client(governor=RateGovernor(path, clock=world.clock))
    other = RateGovernor(path, clock=world.clock)
    yield client, other
    client.governor.close()
    other.close()


def _reserved(client: ExactClient, other: RateGovernor) -> int:
    """Calls of this minute counted in the shared state: made, or reserved and not made yet."""
    return 60 - other.snapshot(client.client_id, DIVISION).minute_remaining


def test_a_list_read_quickly_reserves_its_next_pages_and_gives_back_the_rest(
    onlooker: tuple[ExactClient, RateGovernor],
) -> None:
    """Page 2 of 150 accounts reserves itself and 7 more (the list's length is not known); page 3
    comes from that lease, and the list's end gives back the 6 not used."""
    client, other = onlooker
    records = iter(_pager(client))
    for _ in range(61):
        next(records)
    assert _reserved(client, other) == 1 + 8
    assert len(list(records)) == 89
    assert _reserved(client, other) == 3


def test_a_list_left_early_gives_back_the_pages_it_reserved(
    onlooker: tuple[ExactClient, RateGovernor],
) -> None:
    client, other = onlooker
    records = iter(_pager(client))
    for _ in range(61):
        next(records)
    records.close()  # the reader stopped (a generator dropped is closed the same way)
    assert _reserved(client, other) == 2


def test_a_list_read_slowly_reserves_one_page_at_a_time(
    world: World, onlooker: tuple[ExactClient, RateGovernor]
) -> None:
    """More than AHEAD_GAP between pages (records being worked on): nothing is held unused."""
    client, other = onlooker
    records = iter(_pager(client))
    for number in range(1, 121):
        next(records)
        if number % 60 == 0:
            advance(world.clock, AHEAD_GAP + 0.5)
    assert _reserved(client, other) == 2
    next(records)
    assert _reserved(client, other) == 3


@pytest.mark.parametrize(("limit", "reserved"), [(100, 2), (150, 3), (121, 3)])
def test_a_limit_bounds_the_pages_reserved_ahead(
    onlooker: tuple[ExactClient, RateGovernor], limit: int, reserved: int
) -> None:
    """A reader taking ``limit`` records reserves no page it will not read."""
    client, other = onlooker
    pager = _pager(client)
    pager.limit = limit
    records = iter(pager)
    for _ in range(61):
        next(records)
    assert _reserved(client, other) == reserved


def test_a_list_waiting_for_the_next_minute_still_reserves_ahead(
    onlooker: tuple[ExactClient, RateGovernor],
) -> None:
    """The wait for a minute's calls is not the reader's time: with the minute spent by another
    process after page 1, page 2 waits for the next minute and reserves 8 there."""
    client, other = onlooker
    records = iter(_pager(client))
    next(records)
    for _ in range(59):
        other.acquire(client.client_id, DIVISION, ACCOUNTS, deadline=None)
    assert _reserved(client, other) == 60
    for _ in range(60):
        next(records)
    assert _reserved(client, other) == 8  # the new minute: page 2 and 7 ahead


@pytest.mark.parametrize("stop", [0, 1, 59, 60, 61, 119, 120, 149])
def test_a_cursor_taken_anywhere_resumes_with_exactly_the_rest(world: World, stop: int) -> None:
    """Page boundaries included: what was read and what the cursor resumes are the whole list,
    in order, once each."""
    client = world.client()
    pager = _pager(client)
    read = []
    records = iter(pager)
    for _ in range(stop):
        read.append(next(records)["ID"])
    cursor = pager.cursor()
    assert cursor is not None
    accounts = endpoint()
    start = client.url(accounts, DIVISION, params={"$select": "ID,Name"})
    rest = [record["ID"] for record in Pager.resume(client, accounts, start, DIVISION, cursor)]
    whole = [record["ID"] for record in _pager(client)]
    assert read + rest == whole


def test_a_cursor_of_a_resumed_list_continues_after_what_it_read(world: World) -> None:
    """Resumed after 70 records and read 5 more: the next cursor continues after the 75th (and
    one of a list resumed by an older cursor, 10 rows into page 2, counts the rows it skipped)."""
    client = world.client()
    whole = [record["ID"] for record in _pager(client)]
    records = iter(pager := _pager(client))
    for _ in range(70):
        next(records)
    accounts = endpoint()
    start = client.url(accounts, DIVISION, params={"$select": "ID,Name"})
    cursor = pager.cursor()
    assert cursor is not None
    resumed = Pager.resume(client, accounts, start, DIVISION, cursor)
    assert resumed.cursor() == cursor  # nothing read yet: where it starts
    rows = iter(resumed)
    for _ in range(5):
        next(rows)
    after = resumed.cursor()
    assert after is not None
    rest = [record["ID"] for record in Pager.resume(client, accounts, start, DIVISION, after)]
    assert rest == whole[75:]

    page_two = start.copy_set_param("$skiptoken", f"guid'{whole[59]}'")
    older = Cursor(cursor.endpoint, DIVISION, page_two.raw_path.decode(), 10)
    by_offset = Pager.resume(client, accounts, start, DIVISION, older)
    assert [record["ID"] for record in by_offset] == whole[70:]


def _delete(world: World, record_id: str) -> None:
    """A person deletes the record in Exact, outside the list."""
    token = world.sb.issue_tokens()["access_token"]
    url = f"https://start.exactonline.nl/api/v1/{DIVISION}/{ACCOUNTS}(guid'{record_id}')"
    answer = world.sb(httpx.Request("DELETE", url, headers={"Authorization": f"Bearer {token}"}))
    assert answer.status_code == 204, answer.text


@pytest.mark.parametrize("stop", [10, 70, 130])
def test_a_record_deleted_after_it_was_read_costs_the_cursor_no_other(
    world: World, stop: int
) -> None:
    """A workflow reads a batch, deletes (or archives) what it read, and continues with the
    cursor: it gets every other record. The cursor used to say "so many rows into this page",
    and a deleted row before that point made it skip a record nobody had seen (page 1, 2, and
    the last page, which has no next link to learn the token's form from)."""
    client = world.client()
    whole = [record["ID"] for record in _pager(client)]
    records = iter(pager := _pager(client))
    read = [next(records)["ID"] for _ in range(stop)]
    cursor = pager.cursor()
    assert cursor is not None
    for record_id in read[-3:]:
        _delete(world, record_id)
    accounts = endpoint()
    start = client.url(accounts, DIVISION, params={"$select": "ID,Name"})
    rest = [record["ID"] for record in Pager.resume(client, accounts, start, DIVISION, cursor)]
    assert rest == whole[stop:]


def test_two_threads_listing_one_endpoint_leave_only_the_calls_they_made(
    world: World, onlooker: tuple[ExactClient, RateGovernor]
) -> None:
    """Reserve-ahead is per endpoint and shared by the process's threads: whichever list ends
    first gives back what is held, the other reserves again; in the end the state counts the 6
    pages read and nothing more."""
    client, other = onlooker
    second = world.client(governor=client.governor)
    results: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def read(name: str, reader: ExactClient) -> None:
        start.wait()
        results[name] = [record["ID"] for record in _pager(reader)]

    threads = [
        threading.Thread(target=read, args=(name, reader))
        for name, reader in (("first", client), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results["first"]) == len(results["second"]) == 150
    assert _reserved(client, other) == 6
