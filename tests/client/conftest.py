"""Fixtures for the client tests: ``world`` (in-process sandbox) and ``wire`` (over loopback)."""

from __future__ import annotations

from client_harness import wire, world

__all__ = ["wire", "world"]
