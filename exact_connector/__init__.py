"""exact-connector: the Exact Online connector plugin for workflow-automation engines.

Engines load :class:`Connector` through the ``workflow_automation.connectors`` entry point.
``__all__`` is what an engine may use; each name is imported on first access, so importing the
package itself stays light (the CLI imports what its commands need).
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

from exact_connector import redaction

try:
    __version__ = metadata.version("exact-connector")  # written once: connector.yaml
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

redaction.install()

if TYPE_CHECKING:
    from exact_connector.client import ExactClient
    from exact_connector.exceptions import ExactConnectorError
    from exact_connector.limits import RateGovernor
    from exact_connector.runtime import Connector
    from exact_connector.sandbox import Sandbox
    from exact_connector.vault import Credential, Vault

__all__ = [
    "Connector",
    "Credential",
    "ExactClient",
    "ExactConnectorError",
    "RateGovernor",
    "Sandbox",
    "Vault",
    "__version__",
    "verify_and_parse",
]

_LAZY = {
    "Connector": "exact_connector.runtime",
    "Credential": "exact_connector.vault",
    "ExactClient": "exact_connector.client",
    "ExactConnectorError": "exact_connector.exceptions",
    "RateGovernor": "exact_connector.limits",
    "Sandbox": "exact_connector.sandbox",
    "Vault": "exact_connector.vault",
    "verify_and_parse": "exact_connector.receiver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exact_connector' has no attribute {name!r}")
