"""A run's progress while it happens: newline-delimited JSON the page reads as it arrives.

The page asks for it with ``Accept: application/x-ndjson``. Each line is one JSON object:
``{"progress": {rows, pages, calls, waiting}}`` after every call, page and rate-limit wait
(:class:`~exact_connector.progress.Tally`), then exactly one last line, ``{"answer": ...}`` or
``{"error": {...}, "status": N}`` with the status the plain JSON answer would have had. The work
runs in the thread pool; its events cross to the event loop through a queue, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from exact_connector.exceptions import ExactConnectorError, SystemError_
from exact_connector.progress import Progress, ProgressEvent, Tally

__all__ = ["MEDIA_TYPE", "streamed", "wants_stream"]

MEDIA_TYPE = "application/x-ndjson"
_log = logging.getLogger("exact_connector.ui")


def wants_stream(accept: str) -> bool:
    """Whether an ``Accept`` header asks for the progress stream."""
    return MEDIA_TYPE in accept.lower()


def streamed(
    work: Callable[[Progress], Any], status: Callable[[ExactConnectorError], int]
) -> StreamingResponse:
    """Run ``work(progress)`` off the loop; stream its progress, then its answer or error."""

    async def lines() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        tally = Tally()

        def put(line: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, line)

        def hear(event: ProgressEvent) -> None:
            tally.update(event)
            put({"progress": tally.to_dict()})

        def run() -> None:
            line: dict[str, Any]
            try:
                line = {"answer": work(hear)}
            except ExactConnectorError as error:
                line = {"error": error.to_dict(), "status": status(error)}
            except Exception:  # a bug: logged here, never shown to the page as a traceback
                _log.exception("a streamed run failed")
                failed = SystemError_("The run failed inside the connector.")
                line = {"error": failed.to_dict(), "status": 500}
            put(line)
            put(None)

        running = asyncio.ensure_future(run_in_threadpool(run))
        while (line := await queue.get()) is not None:
            yield json.dumps(line) + "\n"
        await running

    return StreamingResponse(lines(), media_type=MEDIA_TYPE)
