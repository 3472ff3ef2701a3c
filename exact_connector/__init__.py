"""exact-connector: the Exact Online connector plugin for workflow-automation engines.

Engines load :class:`Connector` through the ``workflow_automation.connectors`` entry point.
Heavy modules are imported on first use, so ``exact-connector --version`` stays instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from exact_connector import redaction

__version__ = "0.1.0"

redaction.install()

if TYPE_CHECKING:
    from exact_connector.runtime import Connector

__all__ = ["Connector", "__version__", "verify_and_parse"]

_LAZY = {"Connector": "exact_connector.runtime", "verify_and_parse": "exact_connector.receiver"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exact_connector' has no attribute {name!r}")
