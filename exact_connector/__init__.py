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

import re
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exact_connector import redaction


def _manifest_version() -> str:
    """The version, written once in ``connector.yaml`` (the wheel's copy, else the checkout's).

    Read with the pattern the build reads it with, so the package metadata says the same; it is
    not asked of ``importlib.metadata``, whose scan of the installed distributions costs more than
    the rest of ``exact-connector --version`` together.
    """
    here = Path(__file__).resolve().parent
    for manifest in (here / "_declarations" / "connector.yaml", here.parent / "connector.yaml"):
        try:
            found = re.search(r"(?m)^version: (?P<version>[^\s#]+)", manifest.read_text("utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if found is not None:
            return found["version"]
    return "0+unknown"


__version__ = _manifest_version()

redaction.install()

if TYPE_CHECKING:
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
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exact_connector' has no attribute {name!r}")
