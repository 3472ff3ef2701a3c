"""Polling triggers: a poll hands over events and a new checkpoint; an acknowledgement advances it.

``connector.triggers.poll("record_changed", cred, inputs)`` reads the endpoint's sync feed after
the stored checkpoint and returns ``{ok, trigger, data: {events, checkpoint, more, resync}, meta}``;
nothing is stored. ``connector.triggers.ack(cred, checkpoint)`` stores the new position, and only
if nobody moved it since the poll began. An engine that dies between the two polls again and gets
the same events: each change reaches a workflow exactly once, counted at acknowledgement. Every
event carries a stable ``id`` (division, endpoint, key, row version) for engines that want to
check.

The position is kept per credential, trigger, division and endpoint, and per ``consumer`` when the
input names one: an engine passes its workflow's id there, so two workflows watching the same
endpoint each get every event, instead of whichever acknowledges first taking them.

Each poll also checks, at most hourly, whether the division moved database (its row versions then
restart); a move resyncs the feed from its beginning, and those events say ``resync: true``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exact_connector import webhooks
from exact_connector._sqlite import reset_after_fork
from exact_connector.budget import DEFAULT_INTERVAL, MOVE_CHECK_SECONDS, check_interval
from exact_connector.catalog import catalog
from exact_connector.changefeed import FIRST_TIMESTAMP, Batch, division_move_date, read_since
from exact_connector.checkpoints import CheckpointKey, CheckpointStore
from exact_connector.client import result_meta
from exact_connector.exceptions import ConfigError, ExactConnectorError, InputError
from exact_connector.feeds import DELETED, Feed, feed, feeds_for_topic

if TYPE_CHECKING:
    from exact_connector.client import ExactClient
    from exact_connector.runtime import Connector, CredentialRef

__all__ = ["POLLING_TRIGGERS", "REPLAY_WINDOW", "Triggers"]

#: Polling trigger id -> whether it reports deletions (else new and updated records).
POLLING_TRIGGERS = {"record_changed": False, "record_deleted": True}
_CHECKPOINT_PREFIX = "k1."
Work = Callable[["ExactClient"], dict[str, Any]]
_DEFAULT_LIMIT = 1_000
#: How long (seconds) a webhook delivery is remembered, so that the same one again wakes no poll.
REPLAY_WINDOW = 3_600.0
_DELIVERIES_KEPT = 10_000
_DELETED_FIELDS = ("ID", "EntityKey", "EntityType", "DeletedBy", "DeletedDate", "Division")


@dataclass(frozen=True, slots=True)
class _Poll:
    """One poll's question: which feed, where, from which stored position."""

    trigger: str
    feed: Feed
    division: int
    key: CheckpointKey
    version: int
    state: dict[str, Any]
    select: Sequence[str]


class Triggers:
    """``connector.triggers``: poll, acknowledge, reset, price, and turn webhooks into polls."""

    def __init__(self, connector: Connector, store: CheckpointStore | None = None) -> None:
        self._connector = connector
        self._store = store
        self._delivered: dict[str, float] = {}  # a delivery's digest -> when it woke polls
        self._delivered_lock = threading.Lock()
        reset_after_fork(self)

    def reset_after_fork(self) -> None:
        """In a forked child: the deliveries' lock afresh (a parent's thread may have held it)."""
        self._delivered_lock = threading.Lock()

    @property
    def store(self) -> CheckpointStore:
        """Where checkpoints live: the vault's, unless another store was given."""
        return self._store or self._connector.vault.checkpoints()

    def poll(self, trigger: str, ref: CredentialRef, inputs: dict[str, Any]) -> dict[str, Any]:
        """New events since the stored checkpoint, and the checkpoint that acknowledges them."""

        def work() -> tuple[CredentialRef, Callable[[ExactClient], dict[str, Any]]]:
            question = self._question(trigger, ref, inputs)
            return ref, lambda client: self._read(client, question, inputs)

        return self._envelope(trigger, work)

    def subscribe(self, ref: CredentialRef, inputs: dict[str, Any]) -> dict[str, Any]:
        """Subscribe the callback to the topic in the division, reusing an equal subscription."""
        return self._envelope("webhook", lambda: self._webhook(webhooks.subscribe, ref, inputs))

    def unsubscribe(self, ref: CredentialRef, inputs: dict[str, Any]) -> dict[str, Any]:
        """Remove the callback's subscription to the topic; done already when there is none."""
        return self._envelope("webhook", lambda: self._webhook(webhooks.unsubscribe, ref, inputs))

    def ack(self, ref: CredentialRef, checkpoint: str) -> bool:
        """Store a poll's checkpoint; False when another acknowledgement came first."""
        credential = self._connector.credentials.get(ref)
        key, version, state = _decode(checkpoint)
        if not key.startswith(credential.id + "/"):
            raise InputError.at("$.checkpoint", "checkpoint", "belongs to another credential")
        return self.store.advance(key, version, state)

    def reset(self, trigger: str, ref: CredentialRef, inputs: dict[str, Any]) -> bool:
        """Forget a trigger's checkpoint: its next poll starts as the first did. Only what names
        the checkpoint is checked (a select or interval the poll would refuse does not stop it)."""
        return self.store.reset(str(self._question(trigger, ref, inputs, reading=False).key))

    def wake(
        self, event: dict[str, Any], *, credential: CredentialRef | None = None
    ) -> list[dict[str, Any]]:
        """The polls a verified webhook event (``verify_and_parse(...).event``) asks for: "poll
        now", as ``{trigger, inputs}``; a lost delivery is caught by the next regular poll. An
        engine runs each with its own workflows' full inputs (their ``consumer`` among them).

        The same delivery again within :data:`REPLAY_WINDOW` (Exact delivering twice, or a
        captured one replayed: its signature still holds) asks for none: each poll costs an API
        call of the division's day. Remembered by this object, so per engine process.

        ``credential`` is the credential whose subscription's callback received the delivery.
        Exact subscribes per division and user, and a delivery names neither, so two credentials
        watching one division get identical deliveries: given the credential, each wakes its
        own polls. Without it, deliveries are told apart by their content alone.
        """
        receiver = None if credential is None else self._connector.credentials.get(credential).id
        if self._seen_before({"event": event, "credential": receiver}):
            return []
        division, action = event.get("division"), event.get("action")
        polls = []
        for found in feeds_for_topic(event.get("topic", "")):
            inputs = {"division": division, "endpoint": found.name}
            polls.append({"trigger": "record_changed", "inputs": inputs})
            if found.deletions and action == "Delete":
                polls.append({"trigger": "record_deleted", "inputs": inputs})
        return polls

    # -- internals -------------------------------------------------------------------------------

    def _seen_before(self, delivery: dict[str, Any]) -> bool:
        """Whether this very delivery woke polls within the replay window (it is remembered)."""
        text = json.dumps(delivery, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._connector.clock.now()
        with self._delivered_lock:
            delivered = self._delivered
            while delivered and next(iter(delivered.values())) <= now - REPLAY_WINDOW:
                del delivered[next(iter(delivered))]  # the oldest first: insertion order
            if digest in delivered:
                return True
            delivered[digest] = now
            if len(delivered) > _DELIVERIES_KEPT:
                del delivered[next(iter(delivered))]
        return False

    def _envelope(
        self, trigger: str, work: Callable[[], tuple[CredentialRef, Work]]
    ) -> dict[str, Any]:
        """Run checked work with a client: ``{ok, trigger, data | error, meta}``, never raising
        for an Exact Online or input problem."""
        started = time.monotonic()
        client: ExactClient | None = None
        try:
            ref, job = work()
            with self._connector.client(ref) as client:
                client.deadline = self._connector.clock.now() + self._connector.deadline_seconds
                data = job(client)
            return {
                "ok": True,
                "trigger": trigger,
                "data": data,
                "meta": result_meta(client, started),
            }
        except ExactConnectorError as error:
            return {
                "ok": False,
                "trigger": trigger,
                "error": error.to_dict(),
                "meta": result_meta(client, started),
            }

    def _webhook(
        self, operation: Callable[..., dict[str, Any]], ref: CredentialRef, inputs: dict[str, Any]
    ) -> tuple[CredentialRef, Work]:
        credential, division = self._connector.checked("webhook", ref, inputs)
        topic, callback = inputs["topic"], inputs["callback_url"]
        return credential, lambda client: operation(client, division, topic, callback)

    def _question(
        self, trigger: str, ref: CredentialRef, inputs: dict[str, Any], *, reading: bool = True
    ) -> _Poll:
        if trigger not in POLLING_TRIGGERS:
            self._connector.manifest.trigger(trigger)  # the precise error for an unknown id
            raise InputError.at("$.trigger", "not_polling", "is not a polling trigger")
        credential, division = self._connector.checked(trigger, ref, inputs)
        deletions = POLLING_TRIGGERS[trigger]
        watched = feed(inputs["endpoint"], deletions=deletions)
        select: Sequence[str] = ()
        if reading:
            check_interval(int(inputs.get("interval_seconds", DEFAULT_INTERVAL)))
            select = _DELETED_FIELDS if deletions else _selected(watched, inputs.get("select"))
        key = CheckpointKey(credential.id, trigger, division, watched.name, inputs.get("consumer"))
        stored = self.store.load(str(key))
        version, state = (stored.version, stored.state) if stored else (0, {})
        if reading and not _sound_state(state):  # a reset is what mends it
            raise ConfigError(
                "The trigger's stored checkpoint is damaged, so it cannot say where to go on.",
                details={"trigger": trigger, "endpoint": watched.name},
                hint="Reset the trigger: its next poll then starts again as its first did.",
            )
        return _Poll(trigger, watched, division, key, version, state, select)

    def _read(self, client: ExactClient, poll: _Poll, inputs: dict[str, Any]) -> dict[str, Any]:
        state = dict(poll.state)
        now = self._connector.clock.now()
        resync = False
        if now - float(state.get("move_checked_at", 0)) >= MOVE_CHECK_SECONDS:
            moved = division_move_date(client, poll.division)
            resync = "move_date" in state and state["move_date"] != moved
            state |= {"move_date": moved, "move_checked_at": now}
        if resync:
            state.pop("timestamp", None)
            state["resyncing"] = True
        limit = int(inputs.get("limit", _DEFAULT_LIMIT))
        deletions = POLLING_TRIGGERS[poll.trigger]
        endpoint = catalog().lookup(DELETED) if deletions else poll.feed.sync
        since = state.get("timestamp")
        events: list[dict[str, Any]] = []
        if since is None and inputs.get("start", "now") == "now" and "resyncing" not in state:
            batch = self._skip_to_head(client, endpoint, poll.division)
        else:
            batch = read_since(
                client, endpoint, poll.division, since or FIRST_TIMESTAMP, poll.select, limit=limit
            )
            resyncing = bool(state.get("resyncing"))
            documents = poll.feed.document_fields is not None and not deletions
            if documents and batch.more:
                page = max(limit, endpoint.page_size)  # the cut trims what reading on adds
                batch = _whole_documents(
                    batch,
                    poll.feed.key_field,
                    lambda after: read_since(
                        client, endpoint, poll.division, after, poll.select, limit=page
                    ),
                )
            events = [
                event
                for row in batch.rows
                if (event := _event(poll, row, deletions, resyncing)) is not None
            ]
            if documents:
                events = _per_document(events)
        state["timestamp"] = batch.last
        if not batch.more:
            state.pop("resyncing", None)
        checkpoint = _encode(str(poll.key), poll.version, state)
        return {
            "events": events,
            "checkpoint": checkpoint,
            "more": batch.more,
            "resync": resync or bool(state.get("resyncing")),
        }

    @staticmethod
    def _skip_to_head(client: ExactClient, endpoint: Any, division: int) -> Batch:
        """The feed's newest row version, read without events (a trigger starting "now")."""
        batch = Batch([], FIRST_TIMESTAMP, True, 0)
        while batch.more:
            batch = read_since(client, endpoint, division, batch.last, (), limit=_DEFAULT_LIMIT)
        return batch


def _selected(watched: Feed, chosen: list[str] | None) -> Sequence[str]:
    """The fields a poll reads: the person's choice (or all), checked against the change feed
    before anything is sent, and always those an event is made of (its key, Created and Modified
    for "new", the field that tells a shared feed's rows apart), so that a select never changes
    which events come or what they say."""
    if not chosen:
        return watched.fields
    chosen = watched.checked_fields(chosen)
    made_of = [watched.key_field, "Created", "Modified"]
    if watched.row_filter is not None:
        made_of.append(watched.row_filter[0])
    return [*chosen, *(n for n in made_of if n not in chosen and watched.sync.field(n))]


def _event(poll: _Poll, row: dict[str, Any], deleted: bool, resync: bool) -> dict[str, Any] | None:
    watched = poll.feed
    if deleted:
        if row.get("EntityType") != watched.entity_type:
            return None
        key, change = row.get("EntityKey"), "deleted"
    else:
        if watched.row_filter is not None and row.get(watched.row_filter[0]) not in (
            None,
            watched.row_filter[1],
        ):
            return None
        key = row.get(watched.key_field)
        if watched.document_fields is not None:  # a line's row: the document's fields alone
            row = {name: value for name, value in row.items() if name in watched.document_fields}
        created, modified = row.get("Created"), row.get("Modified")
        change = "new" if created is not None and created == modified else "updated"
    timestamp = row["Timestamp"]
    return {
        "id": f"{poll.division}:{watched.name}:{key}:{timestamp}",
        "change": change,
        "endpoint": watched.name,
        "division": poll.division,
        "key": key,
        "timestamp": timestamp,
        "resync": resync,
        "record": row,
    }


def _whole_documents(batch: Batch, key_field: str, read_after: Callable[[int], Batch]) -> Batch:
    """A batch of whole documents: it stops before the document its last rows belong to (its
    other lines may follow: the next poll reports it, once). A document that fills the batch
    alone is read on to its end (``read_after``, a page at a time), so it too is reported once;
    rows read beyond its end are left to the next poll, which keeps a poll within its limit."""
    rows, last, more, calls = list(batch.rows), batch.last, batch.more, batch.calls
    if not (more and rows):
        return batch
    document = rows[-1].get(key_field)
    cut = len(rows)
    while cut and rows[cut - 1].get(key_field) == document:
        cut -= 1
    if cut:
        return Batch(rows[:cut], int(rows[cut - 1]["Timestamp"]), True, calls)
    while more:
        after = read_after(last)
        calls += after.calls
        ends = next((i for i, row in enumerate(after.rows) if row.get(key_field) != document), None)
        if ends is not None:
            rows += after.rows[:ends]
            return Batch(rows, int(rows[-1]["Timestamp"]), True, calls)
        rows += after.rows
        last, more = max(last, after.last), after.more
        if not after.rows:  # the feed said more and had none: what it says now stands
            break
    return Batch(rows, last, more, calls)


def _per_document(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per document of a feed whose rows are lines: its last row's, in the place
    that row had (a document changed again later in the same poll is reported once, as its
    last version)."""
    last = {event["key"]: index for index, event in enumerate(events)}
    return [event for index, event in enumerate(events) if last[event["key"]] == index]


def _encode(key: str, version: int, state: dict[str, Any]) -> str:
    raw = json.dumps({"k": key, "v": version, "s": state}, separators=(",", ":"), sort_keys=True)
    return _CHECKPOINT_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: object) -> tuple[str, int, dict[str, Any]]:
    damaged = InputError.at("$.checkpoint", "checkpoint", "is not a checkpoint a poll returned")
    if not isinstance(token, str) or not token.startswith(_CHECKPOINT_PREFIX) or len(token) > 8000:
        raise damaged
    body = token[len(_CHECKPOINT_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise damaged from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("k"), str)
        or not isinstance(data.get("v"), int)
        or not isinstance(data.get("s"), dict)
        or not _sound_state(data["s"])
    ):
        raise damaged
    return data["k"], data["v"], data["s"]


def _sound_state(state: dict[str, Any]) -> bool:
    """Whether a checkpoint's state has the types a poll wrote: one edited by hand, or damaged
    on the way, would otherwise fail every later poll (a text where a number was, or a filter
    smuggled in as the row version Exact reads in ``Timestamp gt …``)."""
    timestamp = state.get("timestamp")
    checked = state.get("move_checked_at", 0)
    return (
        (timestamp is None or (type(timestamp) is int and timestamp >= 0))
        and type(checked) in (int, float)
        and math.isfinite(checked)
        and isinstance(state.get("move_date", ""), str)
        and isinstance(state.get("resyncing", False), bool)
    )
