"""exact-connector: the Exact Online connector plugin for workflow-automation engines.

Engines load :class:`Connector` through the ``workflow_automation.connectors`` entry point.
Heavy modules are imported on first use, so ``exact-connector --version`` stays instant.

``Connector.execute`` returns an :class:`ActionResult` and never raises for an Exact Online or
input problem; every other call raises an :class:`ExactConnectorError` of one of four families,
by what the caller should do: :class:`InputError` (fix the input), :class:`ConfigError` (fix the
configuration), :class:`TransientError` (retry later), :class:`SystemError_` (stop and look).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from exact_connector import redaction

__version__ = "0.1.0"

redaction.install()

if TYPE_CHECKING:
    from exact_connector.exceptions import (
        ConfigError,
        ExactConnectorError,
        InputError,
        SystemError_,
        TransientError,
    )
    from exact_connector.progress import ProgressEvent
    from exact_connector.receiver import verify_and_parse
    from exact_connector.results import ActionError, ActionResult, Meta, RateLimit
    from exact_connector.runtime import Connector
    from exact_connector.vault import Credential

__all__ = [
    "ActionError",
    "ActionResult",
    "ConfigError",
    "Connector",
    "Credential",
    "ExactConnectorError",
    "InputError",
    "Meta",
    "ProgressEvent",
    "RateLimit",
    "SystemError_",
    "TransientError",
    "__version__",
    "verify_and_parse",
]

_LAZY = {
    "ActionError": "exact_connector.results",
    "ActionResult": "exact_connector.results",
    "ConfigError": "exact_connector.exceptions",
    "Connector": "exact_connector.runtime",
    "Credential": "exact_connector.vault",
    "ExactConnectorError": "exact_connector.exceptions",
    "InputError": "exact_connector.exceptions",
    "Meta": "exact_connector.results",
    "ProgressEvent": "exact_connector.progress",
    "RateLimit": "exact_connector.results",
    "SystemError_": "exact_connector.exceptions",
    "TransientError": "exact_connector.exceptions",
    "verify_and_parse": "exact_connector.receiver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exact_connector' has no attribute {name!r}")
