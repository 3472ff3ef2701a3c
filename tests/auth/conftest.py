"""Fixtures for the OAuth tests: ``world`` and ``wire`` from ``tests/client/client_harness.py``."""

from __future__ import annotations

import sys
from pathlib import Path

# One harness serves both directories. This one is collected first, so it puts the harness's
# directory on the import path itself (spawned children inherit the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from client_harness import wire, world

__all__ = ["wire", "world"]
