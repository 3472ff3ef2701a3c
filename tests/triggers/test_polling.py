"""The polling triggers against an in-process sandbox: each change handed over once, on ack."""

from __future__ import annotations

import pytest
from actions_harness import Bench
from trigger_harness import (
    ACCOUNTS,
    DIVISION,
    INVOICES,
    TIME_TRANSACTIONS,
    Exact,
    poll,
    poll_and_ack,
)

from exact_connector.triggers import REPLAY_WINDOW


def test_first_poll_starts_now_and_reports_nothing_old(bench: Bench) -> None:
    """A trigger starting "now" skips every existing record and then sees only new ones."""
    assert poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS) == []
    key = Exact(bench).new_account("Triggered B.V.")
    events = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    assert [(e["change"], e["key"]) for e in events] == [("new", key)]
    assert events[0]["record"]["Name"] == "Triggered B.V."
    assert poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS) == []


def test_start_beginning_reports_every_existing_record(bench: Bench) -> None:
    """ "beginning" hands over every record the feed has, then nothing more."""
    events = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, start="beginning")
    assert sorted(e["key"] for e in events) == sorted(
        r["ID"] for r in bench.sb.records(DIVISION, ACCOUNTS)
    )
    assert poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, start="beginning") == []


def test_update_is_reported_once_as_updated(bench: Bench) -> None:
    """Changing a record yields one "updated" event with the new values."""
    exact = Exact(bench)
    key = exact.new_account("Before B.V.")
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    exact.update(ACCOUNTS, key, {"Name": "After B.V."})
    events = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    assert [(e["change"], e["key"], e["record"]["Name"]) for e in events] == [
        ("updated", key, "After B.V.")
    ]


def test_unacknowledged_poll_hands_the_same_events_again(bench: Bench) -> None:
    """Without an ack the checkpoint stays: the next poll returns the same events, same ids."""
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    Exact(bench).new_account("Twice B.V.")
    first = poll(bench, "record_changed", endpoint=ACCOUNTS)
    second = poll(bench, "record_changed", endpoint=ACCOUNTS)
    assert [e["id"] for e in first["events"]] == [e["id"] for e in second["events"]]
    assert len(first["events"]) == 1


def test_only_the_first_of_two_acks_of_one_poll_advances(bench: Bench) -> None:
    """Two workers acknowledging the same poll: one wins, the other is told it lost."""
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    Exact(bench).new_account("Race B.V.")
    data = poll(bench, "record_changed", endpoint=ACCOUNTS)
    triggers = bench.connector.triggers
    assert triggers.ack(bench.credential_id, data["checkpoint"]) is True
    assert triggers.ack(bench.credential_id, data["checkpoint"]) is False


def test_two_workflows_watching_one_endpoint_each_get_every_event(bench: Bench) -> None:
    """Each workflow names itself (its consumer): one acknowledging does not take the events
    from the other, and each moves on at its own pace."""
    first, second = {"consumer": "workflow-1"}, {"consumer": "workflow-2"}
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **first)
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **second)
    exact = Exact(bench)
    created = exact.new_account("Shared B.V.")

    seen_first = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **first)
    later = exact.new_account("Later B.V.")
    seen_second = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **second)

    assert [e["key"] for e in seen_first] == [created]
    assert [e["key"] for e in seen_second] == [created, later]
    assert seen_second[0]["id"] == seen_first[0]["id"]
    assert [
        e["key"] for e in poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **first)
    ] == [later]
    assert poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, **second) == []


def test_without_a_consumer_polls_share_one_place_as_before(bench: Bench) -> None:
    """No consumer keeps the key checkpoints were stored under before there was one: an ack by
    one poller moves them all on, and a consumer's place is apart from it."""
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, consumer="workflow-3")
    created = Exact(bench).new_account("Once B.V.")

    assert [e["key"] for e in poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)] == [created]
    assert poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS) == []
    assert [
        e["key"]
        for e in poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, consumer="workflow-3")
    ] == [created]
    stored = bench.connector.vault.checkpoints()
    key = f"{bench.credential_id}/record_changed/{DIVISION}/{ACCOUNTS.lower()}"
    assert stored.load(key) is not None and stored.load(key + "#workflow-3") is not None


def test_an_invoice_is_one_event_keyed_by_the_invoice_whatever_its_lines(bench: Bench) -> None:
    """Exact's sync feed of sales invoices holds a row per line, whose ID is the line's: the
    event is the invoice, keyed by its InvoiceID (a key its endpoint finds), made of the
    invoice's fields, once however many lines it has."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    three, one = exact.new_invoice(lines=3), exact.new_invoice(lines=1)

    events = poll_and_ack(bench, "record_changed", endpoint=INVOICES)

    assert [(e["change"], e["key"]) for e in events] == [("new", three), ("new", one)]
    record = events[0]["record"]
    assert record["InvoiceID"] == three
    assert not {"ID", "LineNumber", "Item", "Quantity"} & set(record)
    found = bench.connector.execute(
        "list_or_get_endpoint",
        bench.credential_id,
        {"division": DIVISION, "endpoint": INVOICES, "id": three},
    )
    assert found["ok"] is True, found.get("error")
    exact.update(INVOICES, three, {"Description": "Changed"})
    changed = poll_and_ack(bench, "record_changed", endpoint=INVOICES, select=["Description"])
    assert [(e["change"], e["key"], e["record"]["Description"]) for e in changed] == [
        ("updated", three, "Changed")
    ]


def test_an_invoice_whose_lines_straddle_two_polls_is_reported_once(bench: Bench) -> None:
    """A poll reads a bounded number of rows; one that ends inside an invoice's lines leaves
    that invoice to the next poll, which reads all its lines: each invoice once, in order."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    invoices = [exact.new_invoice(lines=3) for _ in range(3)]

    reported, polls = [], 0
    while True:
        data = poll(bench, "record_changed", endpoint=INVOICES, limit=4)
        assert bench.connector.triggers.ack(bench.credential_id, data["checkpoint"])
        reported += [(e["change"], e["key"]) for e in data["events"]]
        polls += 1
        if not data["more"]:
            break

    assert reported == [("new", key) for key in invoices]
    assert polls == 3


@pytest.mark.parametrize("limit", [1, 2])
def test_an_invoice_with_more_lines_than_a_poll_reads_is_reported_once(
    bench: Bench, limit: int
) -> None:
    """A document that alone fills what a poll reads is read on to its last line: reported
    once, never again as "new" by the poll that reads the rest of its lines."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    invoices = [exact.new_invoice(lines=3) for _ in range(2)]

    reported = []
    for _ in range(10):
        data = poll(bench, "record_changed", endpoint=INVOICES, limit=limit)
        assert bench.connector.triggers.ack(bench.credential_id, data["checkpoint"])
        reported += [(e["change"], e["key"]) for e in data["events"]]
        if not data["more"]:
            break

    assert reported == [("new", key) for key in invoices]


def test_reading_on_through_a_long_document_costs_a_call_per_page_not_per_limit(
    bench: Bench,
) -> None:
    """Reading on to a document's last line asks for whole pages: a 120-line invoice polled
    with limit 1 costs two calls (the first row, then the rest), not one call per line."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    invoice = exact.new_invoice(lines=120)
    before = bench.calls

    data = poll(bench, "record_changed", endpoint=INVOICES, limit=1)

    assert [(e["change"], e["key"]) for e in data["events"]] == [("new", invoice)]
    assert bench.calls - before == 2


def test_reading_on_through_a_document_hands_over_no_more_than_the_limit(bench: Bench) -> None:
    """Reading on stops at the end of the document that filled the poll: the invoice after it,
    read in the same page, is left to the next poll, so a poll never hands over more than
    ``limit`` events."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    first, second = exact.new_invoice(lines=3), exact.new_invoice(lines=1)

    data = poll(bench, "record_changed", endpoint=INVOICES, limit=1)
    assert bench.connector.triggers.ack(bench.credential_id, data["checkpoint"])
    rest = poll_and_ack(bench, "record_changed", endpoint=INVOICES, limit=1)

    assert ([e["key"] for e in data["events"]], data["more"]) == ([first], True)
    assert [e["key"] for e in rest] == [second]


def test_time_transactions_are_watched_through_their_sync_twin(bench: Bench) -> None:
    """project/TimeTransactions reads sync/Project/TimeCostTransactions; one event per change."""
    poll_and_ack(bench, "record_changed", endpoint=TIME_TRANSACTIONS)
    key = Exact(bench).new_time_transaction(2.5)
    events = poll_and_ack(bench, "record_changed", endpoint=TIME_TRANSACTIONS)
    assert [(e["change"], e["key"], e["record"]["Quantity"]) for e in events] == [("new", key, 2.5)]


def test_deleted_record_reports_only_its_endpoints_deletions(bench: Bench) -> None:
    """record_deleted on time transactions sees their deletion, not an account's."""
    exact = Exact(bench)
    transaction = exact.new_time_transaction(1.0)
    account = exact.new_account("Gone B.V.")
    poll_and_ack(bench, "record_deleted", endpoint=TIME_TRANSACTIONS)
    exact.delete(TIME_TRANSACTIONS, transaction)
    exact.delete(ACCOUNTS, account)
    events = poll_and_ack(bench, "record_deleted", endpoint=TIME_TRANSACTIONS)
    assert [(e["change"], e["key"]) for e in events] == [("deleted", transaction)]
    accounts = poll_and_ack(bench, "record_deleted", endpoint=ACCOUNTS, start="beginning")
    assert [(e["change"], e["key"]) for e in accounts] == [("deleted", account)]


def test_division_move_resyncs_the_feed(bench: Bench) -> None:
    """After a move (row versions reset) the next check rereads every record, marked resync."""
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)
    bench.sb.move_division(DIVISION)
    bench.clock.advance(3_600)
    data = poll(bench, "record_changed", endpoint=ACCOUNTS)
    assert data["resync"] is True
    assert len(data["events"]) == bench.sb.count(DIVISION, ACCOUNTS)
    assert all(e["resync"] for e in data["events"])
    bench.connector.triggers.ack(bench.credential_id, data["checkpoint"])
    key = Exact(bench).new_account("After the move B.V.")
    assert [e["key"] for e in poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS)] == [key]


def test_a_large_change_set_is_handed_over_in_bounded_polls(bench: Bench) -> None:
    """With more changes than the limit, a poll says more and the next continues after it."""
    first = poll(bench, "record_changed", endpoint=ACCOUNTS, start="beginning", limit=100)
    assert first["more"] is True and len(first["events"]) == 100
    bench.connector.triggers.ack(bench.credential_id, first["checkpoint"])
    rest = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, start="beginning")
    seen = [e["key"] for e in first["events"]] + [e["key"] for e in rest]
    assert sorted(seen) == sorted(r["ID"] for r in bench.sb.records(DIVISION, ACCOUNTS))


@pytest.mark.parametrize(
    ("inputs", "path", "code"),
    [
        ({"endpoint": "crm/AccountClasses"}, "$.endpoint", "not_watchable"),
        ({"endpoint": "crm/Contacts", "trigger": "record_deleted"}, "$.endpoint", "no_deletions"),
        ({"endpoint": ACCOUNTS, "interval_seconds": 10}, "$.interval_seconds", "budget"),
        ({"endpoint": ACCOUNTS, "limit": 0}, "$.limit", "minimum"),
        ({"endpoint": ACCOUNTS, "consumer": "a/b"}, "$.consumer", "pattern"),
    ],
    ids=["no-sync-api", "no-deletion-code", "interval-exhausts-budget", "limit-zero", "consumer"],
)
def test_bad_trigger_input_is_refused_before_any_call(
    bench: Bench, inputs: dict[str, object], path: str, code: str
) -> None:
    """Input that cannot be polled is an input error naming the field; nothing is sent."""
    trigger = str(inputs.pop("trigger", "record_changed"))
    before = bench.calls
    result = bench.connector.triggers.poll(
        trigger, bench.credential_id, {"division": DIVISION, **inputs}
    )
    assert result["ok"] is False
    assert [(e["path"], e["code"]) for e in result["error"]["details"]["errors"]] == [(path, code)]
    assert bench.calls == before


def test_a_damaged_checkpoint_is_refused(bench: Bench) -> None:
    """An ack with something that is not a poll's checkpoint is an input error."""
    from exact_connector.exceptions import InputError

    with pytest.raises(InputError, match="checkpoint"):
        bench.connector.triggers.ack(bench.credential_id, "k1.not-base64!")


@pytest.mark.parametrize("select", [["Name"], ["ID", "Name"]], ids=["no-key", "key"])
def test_a_select_never_changes_which_events_come_or_what_they_say(
    bench: Bench, select: list[str]
) -> None:
    """A new account is "new" with its key whatever fields the person selected: the poll reads
    the key, Created and Modified itself (with ["Name"] it was an "updated" event keyed None)."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, select=select)
    key = exact.new_account("Selected B.V.")

    events = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, select=select)

    assert [(e["change"], e["key"], e["record"]["Name"]) for e in events] == [
        ("new", key, "Selected B.V.")
    ]


@pytest.mark.parametrize(
    "select", [["InvoiceID", "ShippingMethod"], ["InvoiceID", "NoSuchField"]], ids=str
)
def test_a_select_naming_a_field_the_change_feed_lacks_is_refused_before_any_call(
    bench: Bench, select: list[str]
) -> None:
    """ShippingMethod is a field of salesinvoice/SalesInvoices but not of its sync twin: every
    poll would be Exact's 400, counted toward its ten errors an hour. Refused at its place in
    the select, naming it, before anything is sent."""
    before = bench.calls

    result = bench.connector.triggers.poll(
        "record_changed",
        bench.credential_id,
        {"division": DIVISION, "endpoint": INVOICES, "select": select, "start": "beginning"},
    )

    assert result["ok"] is False
    [error] = result["error"]["details"]["errors"]
    assert (error["path"], error["code"]) == ("$.select[1]", "unknown_field")
    assert error["message"] == (
        f"{select[1]} is not available in the change feed of salesinvoice/SalesInvoices"
    )
    assert bench.calls == before


def test_a_checkpoint_is_reset_whatever_select_the_workflow_stored(bench: Bench) -> None:
    """Reset needs only what names the checkpoint: a stored select the poll now refuses (the
    old field picker offered ShippingMethod) does not keep a workflow from starting over."""
    inputs = {"division": DIVISION, "endpoint": INVOICES, "start": "beginning"}
    poll_and_ack(bench, "record_changed", endpoint=INVOICES)
    stored = {**inputs, "select": ["InvoiceID", "ShippingMethod"]}

    assert bench.connector.triggers.reset("record_changed", bench.credential_id, stored) is True


def test_a_select_is_spelt_the_way_the_change_feed_spells_it(bench: Bench) -> None:
    """A field chosen in another case reads the field, and the event names it Exact's way."""
    exact = Exact(bench)
    poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, select=["name"])
    key = exact.new_account("Spelt B.V.")

    events = poll_and_ack(bench, "record_changed", endpoint=ACCOUNTS, select=["name"])

    assert [(e["key"], e["record"].get("Name")) for e in events] == [(key, "Spelt B.V.")]


def test_a_cost_transaction_is_not_a_time_transaction_event_whatever_the_select(
    bench: Bench,
) -> None:
    """sync/Project/TimeCostTransactions holds both: the Type that tells them apart is read
    even when the select leaves it out."""
    poll_and_ack(bench, "record_changed", endpoint=TIME_TRANSACTIONS, select=["ID", "Quantity"])
    table = bench.sb.store.table_by_id(DIVISION, TIME_TRANSACTIONS)
    some = bench.sb.records(DIVISION, TIME_TRANSACTIONS)[0]
    bench.clock.advance(1)
    values = {name: some[name] for name in ("Item", "Project", "Quantity")}
    table.insert({**values, "Type": 2}, int(bench.clock.now() * 1000))

    events = poll_and_ack(
        bench, "record_changed", endpoint=TIME_TRANSACTIONS, select=["ID", "Quantity"]
    )

    assert events == []


def _delivery(key: str, created_on: str = "2026-01-01T00:00:05") -> dict[str, object]:
    """An event as verify_and_parse gives it for a change to an account."""
    return {
        "topic": "Accounts",
        "division": DIVISION,
        "action": "Update",
        "key": key,
        "endpoint": f"https://start.exactonline.nl/api/v1/{DIVISION}/crm/Accounts(guid'{key}')",
        "created_on": created_on,
        "client_id": "app",
    }


def test_the_same_webhook_delivery_again_wakes_no_poll(bench: Bench) -> None:
    """Exact delivering twice, or a captured delivery replayed (its signature still holds),
    asks for no second poll within the replay window: each poll costs one of the division's
    calls. Another delivery does wake one, and so does the same one after the window."""
    triggers = bench.connector.triggers
    wanted = [{"trigger": "record_changed", "inputs": {"division": DIVISION, "endpoint": ACCOUNTS}}]
    first = _delivery("9b1d2c3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e")

    assert triggers.wake(first) == wanted
    assert triggers.wake(dict(first)) == []
    assert (
        triggers.wake(_delivery("9b1d2c3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e", "2026-01-01T00:00:09"))
        == wanted
    )
    bench.clock.advance(REPLAY_WINDOW)
    assert triggers.wake(first) == wanted


def test_one_delivery_to_each_of_two_credentials_wakes_each_ones_polls(bench: Bench) -> None:
    """Exact subscribes per division and user, and its deliveries name neither: two credentials
    of one app watching one division get identical deliveries. Told which credential's callback
    received it, wake treats each as its own; the same one again to the same credential (by id
    or by name) still wakes nothing."""
    triggers = bench.connector.triggers
    app = bench.sb.demo_app
    other = bench.connector.credentials.begin(
        {
            "connector_name": "second user",
            "auth_type": "oauth2_authorization_code",
            "server_url": bench.server_url,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": app.redirect_uris[0],
        }
    )
    wanted = [{"trigger": "record_changed", "inputs": {"division": DIVISION, "endpoint": ACCOUNTS}}]
    delivery = _delivery("9b1d2c3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e")

    assert triggers.wake(delivery, credential=bench.credential_id) == wanted
    assert triggers.wake(dict(delivery), credential=other.id) == wanted
    assert triggers.wake(dict(delivery), credential="properties") == []
    assert triggers.wake(dict(delivery), credential=other) == []


def test_a_document_read_on_to_its_end_keeps_what_the_feed_last_said() -> None:
    """Reading on through one document stops when the feed hands over no more rows, and the
    batch then says what the feed said last (no more), not what the first page said."""
    from exact_connector.changefeed import Batch
    from exact_connector.triggers import _whole_documents

    rows = [{"InvoiceID": "A", "Timestamp": 5}, {"InvoiceID": "A", "Timestamp": 6}]
    asked: list[int] = []

    def read_after(after: int) -> Batch:
        asked.append(after)
        return Batch([], after, False, 1)

    whole = _whole_documents(Batch(rows, 6, True, 1), "InvoiceID", read_after)

    assert (whole.rows, whole.last, whole.more, whole.calls) == (rows, 6, False, 2)
    assert asked == [6]
