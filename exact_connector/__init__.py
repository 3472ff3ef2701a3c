"""exact-connector: the Exact Online connector plugin for workflow-automation engines.

Engines load :class:`Connector` through the ``workflow_automation.connectors`` entry point.
``__all__`` is what an engine may use; each name is imported on first access, so importing the
package itself stays light (the CLI imports what its commands need).

``Connector.execute`` returns an :class:`ActionResult` and never raises for an Exact Online or
input problem; every other call raises an :class:`ExactConnectorError` of one of four families,
by what the caller should do: :class:`InputError` (fix the input), :class:`ConfigError` (fix the
configuration), :class:`TransientError` (retry later), :class:`SystemError_` (stop and look).
"""

from __future__ import annotations

import os

# Importing the package reads one small file and nothing else (``exact-connector --version`` is
# answered from here); ``typing`` is left out for that reason, and each exported name below is
# imported on first access. Log redaction is installed by the modules that handle secrets or make
# HTTP clients, as they are imported (:mod:`exact_connector.redaction`).
TYPE_CHECKING = False


def _manifest_version() -> str:
    """The version, written once in ``connector.yaml`` (the wheel's copy, else the checkout's).

    It is not asked of ``importlib.metadata``, whose scan of the installed distributions costs
    more than the rest of ``exact-connector --version`` together.
    """
    here = os.path.dirname(os.path.realpath(__file__))
    for manifest in (
        os.path.join(here, "_declarations", "connector.yaml"),
        os.path.join(os.path.dirname(here), "connector.yaml"),
    ):
        try:
            with open(manifest, encoding="utf-8") as handle:
                found = _version_in(handle.read())
        except (OSError, UnicodeDecodeError):
            continue
        if found is not None:
            return found
    return "0+unknown"


def _version_in(text: str) -> str | None:
    """What the build's pattern ``(?m)^version: (?P<version>[^\\s#]+)`` finds first in ``text``
    (so the package metadata says the same), found without importing ``re``."""
    for line in text.split("\n"):
        if line.startswith("version: "):
            value = line[len("version: ") :]
            end = next((i for i, c in enumerate(value) if c.isspace() or c == "#"), None)
            if value[:end]:
                return value[:end]
    return None


__version__ = _manifest_version()

if TYPE_CHECKING:
    from typing import Any

    from exact_connector.client import ExactClient
    from exact_connector.exceptions import (
        ConfigError,
        ExactConnectorError,
        InputError,
        SystemError_,
        TransientError,
    )
    from exact_connector.limits import RateGovernor
    from exact_connector.progress import ProgressEvent
    from exact_connector.receiver import verify_and_parse
    from exact_connector.results import ActionError, ActionResult, Meta, RateLimit
    from exact_connector.runtime import Connector
    from exact_connector.sandbox import Sandbox
    from exact_connector.vault import Credential, Vault

__all__ = [
    "ActionError",
    "ActionResult",
    "ConfigError",
    "Connector",
    "Credential",
    "ExactClient",
    "ExactConnectorError",
    "InputError",
    "Meta",
    "ProgressEvent",
    "RateGovernor",
    "RateLimit",
    "Sandbox",
    "SystemError_",
    "TransientError",
    "Vault",
    "__version__",
    "verify_and_parse",
]

_LAZY = {
    "ActionError": "exact_connector.results",
    "ActionResult": "exact_connector.results",
    "ConfigError": "exact_connector.exceptions",
    "Connector": "exact_connector.runtime",
    "Credential": "exact_connector.vault",
    "ExactClient": "exact_connector.client",
    "ExactConnectorError": "exact_connector.exceptions",
    "InputError": "exact_connector.exceptions",
    "Meta": "exact_connector.results",
    "ProgressEvent": "exact_connector.progress",
    "RateGovernor": "exact_connector.limits",
    "RateLimit": "exact_connector.results",
    "Sandbox": "exact_connector.sandbox",
    "SystemError_": "exact_connector.exceptions",
    "TransientError": "exact_connector.exceptions",
    "Vault": "exact_connector.vault",
    "verify_and_parse": "exact_connector.receiver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exact_connector' has no attribute {name!r}")
