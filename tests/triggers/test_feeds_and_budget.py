"""Which endpoints can be watched, which webhook topics wake them, and what polling costs."""

from __future__ import annotations

import pytest

from exact_connector.budget import DAILY_CALLS, check_interval, poll_cost
from exact_connector.catalog import catalog
from exact_connector.exceptions import InputError
from exact_connector.feeds import feed, feeds, feeds_for_topic
from exact_connector.manifest import load_manifest
from exact_connector.options import serve_options


def test_every_sync_endpoint_but_deleted_is_a_feed() -> None:
    """The catalog's sync endpoints (sync/Deleted aside) are exactly the watchable feeds."""
    expected = {e.id for e in catalog() if e.service == "sync" and e.id != "sync/Deleted"}
    assert {f.sync.id for f in feeds().values()} == expected


@pytest.mark.parametrize(
    ("name", "sync", "deletions"),
    [
        ("crm/Accounts", "sync/CRM/Accounts", True),
        ("project/TimeTransactions", "sync/Project/TimeCostTransactions", True),
        ("project/Projects", "sync/Project/Projects", True),
        ("crm/Contacts", "sync/CRM/Contacts", False),
    ],
)
def test_feeds_name_their_sync_twin(name: str, sync: str, deletions: bool) -> None:
    """A feed reads its endpoint's sync twin; deletions only where the EntityType is known."""
    found = feed(name.upper())
    assert (found.name, found.sync.id, found.deletions) == (name, sync, deletions)


def test_every_webhook_topic_in_the_form_wakes_a_feed() -> None:
    """Each topic the webhook form offers wakes exactly one watchable feed."""
    topics = load_manifest().trigger("webhook").input_schema["properties"]["topic"]["enum"]
    assert all(len(feeds_for_topic(topic)) == 1 for topic in topics)
    assert feeds_for_topic("NoSuchTopic") == []


@pytest.mark.parametrize(
    ("interval", "idle_calls"), [(60, 1464), (300, 312), (900, 120), (3600, 48), (86400, 2)]
)
def test_idle_cost_per_day(interval: int, idle_calls: int) -> None:
    """Idle polls plus the hourly move check (every poll, when polls are rarer)."""
    assert poll_cost(interval).idle_calls_per_day == idle_calls


def test_an_interval_that_exhausts_the_day_is_refused_with_the_shortest_safe_one() -> None:
    """17 s would use 5,000+ calls a day; 18 s is the shortest that leaves some."""
    assert poll_cost(18).idle_calls_per_day < DAILY_CALLS <= poll_cost(17).idle_calls_per_day
    with pytest.raises(InputError) as raised:
        check_interval(17)
    assert raised.value.errors[0]["path"] == "$.interval_seconds"
    assert "18 seconds" in raised.value.hint
    assert check_interval(18).interval_seconds == 18


@pytest.mark.parametrize("interval", [0, -5, 86_401, 2.5, True])
def test_an_interval_that_is_no_number_of_seconds_is_an_input_error(interval: object) -> None:
    """check_interval itself refuses what the schema refuses, not only its callers: 0 was a
    ZeroDivisionError and -5 a negative cost that passed."""
    with pytest.raises(InputError) as raised:
        check_interval(interval, path="$.every")  # type: ignore[arg-type]
    assert [(e["path"], e["code"]) for e in raised.value.errors] == [("$.every", "range")]


@pytest.mark.parametrize("count", [0, -3, 2.5, True, "2"], ids=repr)
def test_a_feed_count_that_is_no_whole_number_from_one_is_an_input_error(count: object) -> None:
    """check_interval refuses a feed count it cannot price: -3 gave a negative cost that passed."""
    with pytest.raises(InputError) as raised:
        check_interval(300, feeds=count)  # type: ignore[arg-type]
    assert [(e["path"], e["code"]) for e in raised.value.errors] == [("$.feeds", "range")]


def test_more_feeds_than_even_daily_polls_can_pay_for_is_an_input_error() -> None:
    """2,500 feeds polled once a day use the whole day: an input error naming the most one
    division can pay for (it was a bare StopIteration), whatever the interval."""
    assert check_interval(86_400, feeds=2_499).idle_calls_per_day < DAILY_CALLS
    with pytest.raises(InputError) as raised:
        check_interval(300, feeds=2_500)
    assert [(e["path"], e["code"]) for e in raised.value.errors] == [("$.feeds", "budget")]
    assert "too many feeds" in str(raised.value) and "2499" in raised.value.hint


# -- the trigger form's field picker ---------------------------------------------------------------


def _picked(endpoint: str) -> list[str]:
    return [
        option["value"]
        for option in serve_options("feed_fields", None, None, {"endpoint": endpoint})
    ]


@pytest.mark.parametrize("name", sorted(feeds()))
def test_the_field_picker_offers_what_the_change_feed_reads_and_the_trigger_takes(
    name: str,
) -> None:
    """Every field the trigger form offers is one its poll accepts (the picker used to offer
    the regular endpoint's fields, some of which the sync twin lacks: a poll naming one was
    refused), and of a feed of document lines only the document's fields."""
    watched = feed(name)
    offered = _picked(name)
    assert offered
    assert watched.checked_fields(offered) == offered
    if watched.document_fields is not None:
        assert set(offered) <= watched.document_fields


def test_the_field_picker_of_invoices_leaves_out_fields_their_feed_lacks() -> None:
    """The invoice endpoint has ShippingMethod and SelectionCode; its change feed has neither."""
    invoices = catalog().lookup("salesinvoice/SalesInvoices")
    assert invoices.field("ShippingMethod") and invoices.field("SelectionCode")
    offered = _picked("salesinvoice/SalesInvoices")
    assert "ShippingMethod" not in offered and "SelectionCode" not in offered
    assert {"InvoiceID", "InvoiceTo", "Modified"} <= set(offered)


def test_the_field_picker_of_an_endpoint_that_cannot_be_watched_says_so() -> None:
    with pytest.raises(InputError) as caught:
        _picked("read/project/HoursByDate")
    assert caught.value.errors[0]["path"] == "$.endpoint"
