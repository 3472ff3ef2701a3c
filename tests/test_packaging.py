"""Specification of the wheel: an installed (non-editable) copy works with no source tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TITLES = [
    "Create Project Time Transactions",
    "Delete Endpoint with ID",
    "List or Get Endpoint",
    "Update Project Time Transaction",
]
PROBE = """
import json, importlib.metadata, exact_connector
from exact_connector.schemas import declarations_root
(point,) = {e.value: e for e in importlib.metadata.entry_points(
    group="workflow_automation.connectors", name="exact-online")}.values()
connector = point.load()()
print(json.dumps({"file": exact_connector.__file__, "root": str(declarations_root()),
                  "id": connector.manifest.id}))
"""


def _run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=True
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the built wheel; dependencies come from this venv via a .pth."""
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp, REPO, cwd=tmp)
    (wheel,) = tmp.glob("exact_connector-*.whl")
    _run(sys.executable, "-m", "venv", tmp / "v", cwd=tmp)
    _run(tmp / "v/bin/pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = tmp / "v" / "lib" / version / "site-packages"
    # A path line in a .pth is added to sys.path; the .pth files found there are not run, so the
    # editable install of this checkout stays out and the wheel's copy is the one imported.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp / "v"


@pytest.mark.slow
def test_wheel_copy_is_imported_with_its_declarations(installed: Path, tmp_path: Path) -> None:
    """The venv imports the wheel's package, finds _declarations in it, and the entry point loads."""
    result = _run(installed / "bin/python", "-c", PROBE, cwd=tmp_path)
    probe = json.loads(result.stdout)
    assert Path(probe["file"]).is_relative_to(installed)
    assert probe["root"].endswith("exact_connector/_declarations")
    assert Path(probe["root"]).is_relative_to(installed)
    assert probe["id"] == "exact-online"


@pytest.mark.slow
def test_installed_cli_prints_the_manifest(installed: Path, tmp_path: Path) -> None:
    """exact-connector manifest --json works from a directory outside the repository."""
    assert not tmp_path.is_relative_to(REPO)
    result = _run(installed / "bin/exact-connector", "manifest", "--json", cwd=tmp_path)
    assert [a["title"] for a in json.loads(result.stdout)["actions"]] == TITLES


@pytest.mark.slow
def test_installed_cli_prints_the_credential_form(installed: Path, tmp_path: Path) -> None:
    """exact-connector form credentials --json works from the installed wheel too."""
    result = _run(installed / "bin/exact-connector", "form", "credentials", "--json", cwd=tmp_path)
    fields = json.loads(result.stdout)["fields"]
    assert [f["name"] for f in fields][:5] == [
        "connector_name",
        "auth_type",
        "server_url",
        "client_id",
        "client_secret",
    ]


@pytest.mark.slow
def test_wheel_ships_the_ui_page_built_by_npm(installed: Path) -> None:
    """The build hook ran npm: the ui bundle is in the wheel, found by the installed package."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed; the wheel is built without the ui page by design")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    static = installed / "lib" / version / "site-packages" / "exact_connector" / "ui" / "static"
    assert sorted(p.name for p in static.iterdir()) == ["app.css", "app.js"]
    assert (static / "app.js").stat().st_size > 100_000  # React, RJSF and the app, minified
