"""The engine-facing object: ``Connector``.

For now it exposes the declarations (manifest and forms); credentials, Test Connect and
``execute`` join it as those modules land.
"""

from __future__ import annotations

from typing import Any

from exact_connector import forms
from exact_connector.manifest import Manifest, load_manifest

__all__ = ["Connector"]


class Connector:
    """The Exact Online connector as an engine loads it (entry point ``exact-online``)."""

    def __init__(self, *, manifest: Manifest | None = None) -> None:
        self._manifest = manifest if manifest is not None else load_manifest()

    @classmethod
    def open(cls) -> Connector:
        """The connector with this package's own declarations."""
        return cls()

    @property
    def manifest(self) -> Manifest:
        """The validated declarations: actions, auth types, regions, token policy."""
        return self._manifest

    def form_spec(self, name: str) -> dict[str, Any]:
        """The form ``credentials`` or an action id's input form, as ordered fields."""
        return forms.form_spec(name, self._manifest)

    def __repr__(self) -> str:
        return f"Connector(id={self._manifest.id!r}, version={self._manifest.version!r})"
