"""The layering contracts in pyproject.toml hold for the tree, and a new import against them fails the check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assets", "quality", "warehouse", "pipelines")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` over the packages under `root`, as CI would run it (no cache, so no stale graph)."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--config", str(root / "pyproject.toml")]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)


def test_layering_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_new_import_against_the_layers_breaks_the_contracts(tmp_path):
    """The transforms' layer importing storage, and a cycle between two warehouse modules, are both refused."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    calendar = tmp_path / "assets" / "calendar.py"
    calendar.write_text(calendar.read_text() + "\n\ndef _storage():\n    import warehouse.versions\n")
    versions = tmp_path / "warehouse" / "versions.py"
    versions.write_text(versions.read_text() + "\n\ndef _cycle():\n    import warehouse.lake\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "assets import neither warehouse nor quality BROKEN" in result.stdout
    assert "assets.calendar -> warehouse.versions" in result.stdout
    assert "No import cycles between sibling modules BROKEN" in result.stdout
