"""Time, injectable: every wait and every expiry check in the package reads a :class:`Clock`.

Production uses :class:`SystemClock`. Tests use :class:`ManualClock` (time moves only when told,
``sleep`` advances it instantly) or :class:`ScaledClock` (time runs N times faster than real time,
so threads really wait, briefly). The sandbox takes the same object, so both sides agree on "now".
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall-clock seconds since the epoch (UTC), and a way to wait."""

    def now(self) -> float:
        """Seconds since 1970-01-01T00:00:00Z."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when advanced; ``sleep`` advances it at once. Thread-safe."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class ScaledClock:
    """Real time sped up by ``factor`` from ``start``: a minute passes in 60/factor real seconds.

    ``anchor`` is the real wall-clock time at which this clock reads ``start``; processes given the
    same ``start`` and ``anchor`` agree on the time. Without it the clock starts now, in-process.
    """

    def __init__(
        self, factor: float, start: float = 1_767_225_600.0, anchor: float | None = None
    ) -> None:
        self.factor = factor
        self.start = start
        self.anchor = time.time() if anchor is None else anchor
        self._offset = self.anchor - time.time() + time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self._offset) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)
