"""The package as `pip install` leaves it, away from the repository: what a user who never cloned it can run."""

import subprocess
import sys

from test_cli import assert_user_error


def python_m(*args, cwd):
    return subprocess.run([sys.executable, "-m", "distill", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_python_dash_m_distill_is_the_command(tmp_path):
    """`python -m distill` works as the `distill` script does (it used to fail: no `__main__` module), including
    its one-line user errors, run from a folder that is not the repository."""
    shown = python_m("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "run" in shown.stdout and "eval" in shown.stdout
    assert_user_error(python_m("show", tmp_path / "absent.safetensors", cwd=tmp_path), "no such file")
