"""The package's layers (pyproject.toml's import contracts) hold, and the contracts are not a formality: a copy of the
package with one forbidden import added breaks the contract that forbids it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path, package_parent: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the contracts in `root`/pyproject.toml, for the package found under `package_parent`."""
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                           "sys.exit(c(['--no-cache', '--no-logo']))"],
                          cwd=root, env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_import_contracts():
    result = lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


NO_METHOD = "The loop, evaluation, set file, data, models, reports and training import no particular method"


@pytest.mark.parametrize("module, line, broken", [
    ("loop.py", "import distill.methods.dd", NO_METHOD),
    ("evaluate.py", "from distill.methods import METHODS", NO_METHOD),
    ("presets.py", "import distill.config", "No import circles between the package's modules"),
    ("data/__init__.py", "import distill.models", "Data and models never import each other"),
    ("cli.py", "import distill.run", "The command line imports only the public API"),
    ("methods/base.py", "import distill.methods.frepo", "What a method is knows no particular method"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "src" / "distill", tmp_path / "src" / "distill",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "distill" / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0, result.stdout
    assert f"{broken} BROKEN" in " ".join(result.stdout.split()), result.stdout  # its name, wrapped to the terminal
