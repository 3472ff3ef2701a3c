"""The sandbox's curated public API."""

from __future__ import annotations

import exact_connector.sandbox as sandbox


def test_exported_names_are_pinned() -> None:
    """The package exports exactly these names, sorted."""
    assert sandbox.__all__ == [
        "DEMO_REDIRECT_URI",
        "FAULT_KINDS",
        "Counters",
        "Event",
        "Fault",
        "Faults",
        "ManualClock",
        "Sandbox",
        "SandboxApp",
        "SandboxServer",
        "serve",
    ]
    assert all(hasattr(sandbox, name) for name in sandbox.__all__)


def test_sandbox_imports_only_catalog_odata_and_clock_from_the_runtime() -> None:
    """The sandbox is an independent oracle: no runtime module but catalog, odata, clock.

    And redaction: the registry its secrets are reported to (so logs and the test scanner know
    them), which holds no logic the sandbox could share by mistake.
    """
    import ast
    from pathlib import Path

    allowed = {
        "exact_connector.catalog",
        "exact_connector.odata",
        "exact_connector.clock",
        "exact_connector.redaction",
    }
    package = Path(sandbox.__file__).parent
    imported = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    runtime = {name for name in imported if name.startswith("exact_connector")}
    outside = {name for name in runtime if not name.startswith("exact_connector.sandbox")}
    assert outside == allowed
