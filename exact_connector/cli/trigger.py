"""``trigger poll|run|budget|reset|subscribe|unsubscribe``: the triggers from the command line.

``trigger poll NAME`` prints each new event as one JSON line, flushes, and only then
acknowledges: a run that dies before the end leaves the checkpoint where it was, and the next run
prints the same events again. The checkpoint lives in the vault, or in ``--state FILE``. A poll
that fails prints its error on stderr, as every command does: stdout carries events only.
``trigger run`` polls until stopped (or ``--polls`` times), at the trigger's interval, at once
while more events wait.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import datetime
from typing import Any

from exact_connector.budget import DEFAULT_INTERVAL, check_interval
from exact_connector.checkpoints import FileCheckpoints
from exact_connector.cli import bounded, command, group
from exact_connector.cli._output import fail_with, print_json
from exact_connector.cli.connect import read_input
from exact_connector.cli.vault import open_vault, vault_options
from exact_connector.exceptions import Category, ConcurrentUpdate, InputError
from exact_connector.manifest import load_manifest
from exact_connector.runtime import Connector
from exact_connector.triggers import Triggers
from exact_connector.validation import Validator, field_errors, json_path
from exact_connector.vault.store import crash_point

__all__ = ["register"]

#: Where ``interval_seconds`` is declared: ``budget`` and ``run`` read it themselves, before a poll.
_INTERVAL = ("schemas/defs/poll_settings.json", "#/$defs/interval_seconds")


def register(subparsers: Any) -> None:
    """Add the ``trigger`` command group."""
    commands = group(subparsers, "trigger")
    scoped = vault_options()

    def trigger_command(
        name: str, help_text: str, handler: Any, *, credential: bool = True
    ) -> argparse.ArgumentParser:
        parents = [scoped] if credential else []
        parser = command(commands, name, handler, *parents, summary=help_text)
        if name not in ("subscribe", "unsubscribe"):
            parser.add_argument("name", help="trigger id, e.g. record_changed")
        if credential:
            parser.add_argument("--credential", required=True, help="connector name or id")
        parser.add_argument("--input", required=True, metavar="FILE", help="JSON input, - stdin")
        if credential and name not in ("subscribe", "unsubscribe"):
            parser.add_argument("--state", metavar="FILE", help="keep checkpoints in this file")
        return parser

    trigger_command("poll", "print new events as JSON lines, then acknowledge them", _poll)
    run = trigger_command("run", "poll at the trigger's interval until stopped", _run)
    run.add_argument(
        "--polls", type=bounded(1, 10**9, "--polls"), metavar="N", help="stop after N polls"
    )
    budget = trigger_command(
        "budget", "API calls a day the poll interval costs", _budget, credential=False
    )
    budget.add_argument(
        "--feeds",
        type=int,
        default=1,
        metavar="N",
        help="how many feeds of one division are polled at this interval (default 1)",
    )
    trigger_command("reset", "forget the checkpoint: the next poll starts afresh", _reset)
    trigger_command("subscribe", "subscribe a webhook callback (reuses an equal one)", _subscribe)
    trigger_command(
        "unsubscribe", "remove a webhook subscription (none: done already)", _unsubscribe
    )


class _Failed(Exception):
    """A poll answered with an error envelope (already printed on stderr); exit with its code."""

    def __init__(self, code: int, error: dict[str, Any]) -> None:
        self.code, self.error = code, error

    @property
    def passes(self) -> bool:
        """Whether waiting may mend it (Exact unreachable a while, the minute's calls used)."""
        return self.error.get("category") == Category.TRANSIENT.value


def _triggers(args: argparse.Namespace) -> Triggers:
    connector = Connector(vault=open_vault(args))
    store = FileCheckpoints(args.state) if getattr(args, "state", None) else None
    return Triggers(connector, store)


def _poll_once(triggers: Triggers, args: argparse.Namespace, inputs: dict[str, Any]) -> bool:
    """One poll, its events printed and flushed, then acknowledged; whether more are waiting."""
    result = triggers.poll(args.name, args.credential, inputs)
    if not result["ok"]:  # stdout carries events only: the error goes where every CLI error goes
        raise _Failed(fail_with(result["error"]), result["error"])
    data = result["data"]
    for event in data["events"]:
        sys.stdout.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
    crash_point("trigger.before_ack")
    if not triggers.ack(args.credential, data["checkpoint"]):
        raise ConcurrentUpdate(
            "Another poll of this trigger was acknowledged first; these events were printed "
            "by both.",
            hint="Run one poller per trigger, credential and division.",
        )
    return bool(data["more"])


def _poll(args: argparse.Namespace) -> int:
    try:
        _poll_once(_triggers(args), args, read_input(args.input))
    except _Failed as failed:
        return failed.code
    return 0


def _run(args: argparse.Namespace) -> int:
    inputs = read_input(args.input)
    interval = _interval(inputs)
    triggers = _triggers(args)
    for count in itertools.count(1):
        try:
            more = _poll_once(triggers, args, inputs)
        except _Failed as failed:
            # "Until stopped": a failure that passes with time (Exact unreachable for a while,
            # the day's calls used) is printed and the next poll waits for it; others end the run.
            if not failed.passes or (args.polls is not None and count >= args.polls):
                return failed.code
            time.sleep(max(interval, _seconds_until(failed.error.get("retry_at"))))
            continue
        if args.polls is not None and count >= args.polls:
            return 0
        if not more:
            time.sleep(interval)
    return 0  # pragma: no cover - the loop above only ends by returning


def _seconds_until(moment: object) -> float:
    """Seconds from now until an ISO 8601 ``retry_at`` (0 when absent or past)."""
    if not isinstance(moment, str):
        return 0.0
    try:
        return max(0.0, datetime.fromisoformat(moment).timestamp() - time.time())
    except ValueError:
        return 0.0


def _budget(args: argparse.Namespace) -> int:
    trigger = load_manifest().trigger(args.name)  # a mistyped trigger is refused at $.trigger
    inputs = read_input(args.input)
    # The poll's own input, or just its interval: a field the trigger has not ("interval" for
    # "interval_seconds") is refused, as the poll would, not read as the default interval.
    known = trigger.input_schema.get("properties", {})
    unknown = [name for name in inputs if name not in known]
    if unknown:
        extra = "is not an allowed field"
        raise InputError.of(
            [
                {"path": json_path([n]), "code": "additionalProperties", "message": extra}
                for n in unknown
            ]
        )
    cost = check_interval(_interval(inputs), feeds=args.feeds)
    print_json(cost.to_dict())
    return 0


def _interval(inputs: dict[str, Any]) -> int:
    """The input's ``interval_seconds`` (300 if absent), checked against its schema first."""
    value = inputs.get("interval_seconds", DEFAULT_INTERVAL)
    document, pointer = _INTERVAL
    schema = load_manifest().schemas.resolver(document).lookup(pointer).contents
    errors = field_errors(Validator(schema).iter_errors(value), "$.interval_seconds")
    if errors:
        raise InputError(
            f"Invalid value at $.interval_seconds: {errors[0]['message']}.", errors=errors
        )
    return int(value)


def _reset(args: argparse.Namespace) -> int:
    forgotten = _triggers(args).reset(args.name, args.credential, read_input(args.input))
    print_json({"reset": forgotten})
    return 0


def _webhook(args: argparse.Namespace, subscribe: bool) -> int:
    triggers = _triggers(args)
    inputs = read_input(args.input)
    operation = triggers.subscribe if subscribe else triggers.unsubscribe
    result = operation(args.credential, inputs)
    if not result["ok"]:
        return fail_with(result["error"])
    print_json(result["data"])
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    return _webhook(args, subscribe=True)


def _unsubscribe(args: argparse.Namespace) -> int:
    return _webhook(args, subscribe=False)
