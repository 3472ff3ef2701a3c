"""``python -m exact_connector`` runs the CLI."""

from __future__ import annotations

import sys

from exact_connector.cli import console

sys.exit(console())
