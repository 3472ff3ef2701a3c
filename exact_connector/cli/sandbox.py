"""``exact-connector sandbox``: run the Exact Online simulator on 127.0.0.1 until interrupted.

It prints, one ``name: value`` per line, the base URL and the demo app's client id, client secret
and redirect URI: what the credential form needs to connect to it. The secret is the sandbox's own
(it exists only in this simulator), which is why this one command prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from types import FrameType

from exact_connector.cli import bounded, cannot_listen, command
from exact_connector.sandbox import Sandbox, serve

__all__ = ["register"]

DEFAULT_PORT = 8975


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` command."""
    parser = command(
        subparsers,
        "sandbox",
        run,
        description="Serve an embedded Exact Online (OAuth, REST API, rate limits) on loopback "
        "until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--port",
        type=bounded(0, 65535, "--port"),
        default=DEFAULT_PORT,
        help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generated data (default 1)"
    )
    parser.add_argument(
        "--rows",
        type=bounded(0, 1_000_000, "--rows"),
        default=150,
        metavar="N",
        help="records per endpoint and division (default 150)",
    )
    parser.add_argument(
        "--limits",
        choices=("on", "off"),
        default="on",
        help="enforce Exact's 60/minute and 5000/day limits and the error budget (default on)",
    )
    parser.add_argument(
        "--auto-consent",
        action="store_true",
        help="grant every administration at once instead of showing the consent page",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit 0."""
    sandbox = Sandbox(
        seed=args.seed, rows=args.rows, limits=args.limits == "on", auto_consent=args.auto_consent
    )
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with contextlib.ExitStack() as stack:
            try:
                base_url = stack.enter_context(serve(sandbox, port=args.port))
            except OSError as error:  # only the port's: a failed write to stdout is not
                raise cannot_listen("The sandbox", args.port, error) from None
            app = sandbox.demo_app
            lines = {
                "base_url": base_url,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
                "divisions": ",".join(str(code) for code in sandbox.divisions),
                "limits": args.limits,
            }
            sys.stdout.write("".join(f"{name}: {value}\n" for name, value in lines.items()))
            sys.stdout.flush()
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.stderr.write("sandbox stopped\n")
    return 0
