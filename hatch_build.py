"""Wheel build hook: the ``exact-connector ui`` page, built from frontend/ when Node.js is present.

The bundle (``app.js``, ``app.css``) is never committed. When ``npm`` is on PATH it is built from
the committed ``package.json`` and lock file (``npm ci`` only when ``node_modules`` is missing)
and shipped as ``exact_connector/ui/static``; without Node.js the wheel is built without it and
``exact-connector ui`` says how to get the page.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = ("app.js", "app.css")


class UiBundleHook(BuildHookInterface):  # type: ignore[type-arg]
    """Build frontend/ and force-include its app bundle into the wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        frontend = Path(self.root) / "frontend"
        npm = shutil.which("npm")
        if npm is None or not (frontend / "package.json").exists():
            sys.stderr.write("exact-connector: Node.js not found; the wheel has no ui page\n")
            return
        if not (frontend / "node_modules").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=frontend, check=True)  # noqa: S603
        subprocess.run([npm, "run", "build"], cwd=frontend, check=True)  # noqa: S603
        for name in BUNDLE:
            source = frontend / "dist" / name
            build_data["force_include"][str(source)] = f"exact_connector/ui/static/{name}"
