"""The package as `pip install` leaves it, away from the repository: what a user who never cloned it can run."""

import subprocess
import sys
from pathlib import Path

import distill

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


def test_readme_names_the_default_data_and_model_folders(monkeypatch):
    """An installed user with neither DISTILL_DATA nor DISTILL_CACHE set gets data and trained networks under
    ~/.cache/distill; the README's Data section must say where both go (the model cache was not mentioned)."""
    import re
    from pathlib import Path

    from distill.data import data_root
    from distill.train import cache_root

    monkeypatch.delenv("DISTILL_DATA", raising=False)
    monkeypatch.delenv("DISTILL_CACHE", raising=False)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Data\n", 1)[1].split("\n## ", 1)[0]
    said = {variable: Path(default).expanduser() for variable, default in
            re.findall(r"`\$(DISTILL_\w+)`, else `(~/[^`]+)`", section)}
    assert said == {"DISTILL_DATA": data_root(), "DISTILL_CACHE": cache_root()}


def test_readme_says_what_its_data_roots_are():
    """The README's commands set DISTILL_DATA=../shared/data, the data copy beside the repository's checkout; a user
    who installed the package has no such folder, so the prose must say what each such root is (it did not). The
    same holds for RESULTS.md, whose every row is such a command, and for the notes under docs/: each page says what
    the roots in its own commands are."""
    import re
    from pathlib import Path

    root_dir = Path(__file__).resolve().parents[1]
    readme = (root_dir / "README.md").read_text()
    assert re.search(r"DISTILL_DATA=(\S+)", readme), "the README no longer sets DISTILL_DATA in a command"
    for page in (root_dir / "README.md", root_dir / "RESULTS.md", *sorted((root_dir / "docs").glob("*.md"))):
        text = page.read_text()
        prose = [line for line in text.splitlines() if not line.startswith(("    ", "|"))]
        for root in set(re.findall(r"DISTILL_DATA=([^\s`]+)", text)):
            assert any(f"`{root}`" in line for line in prose), f"{page.name} never says what {root} is"


def test_typer_floor_is_one_that_works_with_the_click_pip_installs():
    """pyproject used to accept typer>=0.8, but typer before 0.16 breaks with click 8.2 and later (what pip picks
    beside an older typer that does not cap click): with typer 0.9 or 0.12 every `distill` command died with
    "TypeError: Secondary flag is not valid for non-boolean flag", with typer 0.15.3 `--help` did (checked with
    click 8.5.1). typer 0.15.4 caps click below 8.2 and 0.16.0 is the first to support it; 0.16.0 was checked with
    click 8.1.8, 8.2.1 and 8.5.1."""
    import re
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    floor = re.search(r'"typer>=([0-9.]+)"', pyproject)
    assert floor, "typer is no longer declared with a lower bound"
    assert tuple(int(part) for part in floor.group(1).split(".")) >= (0, 16)


def test_the_version_is_the_installed_packages():
    """`distill.__version__` is read from the installed metadata (pyproject.toml's), not typed a second time."""
    import tomllib
    from pathlib import Path

    import distill

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert distill.__version__ == pyproject["project"]["version"]


def test_eval_and_relabel_take_quiet_as_run_and_attack_do(tmp_path):
    """`--quiet` silences the progress bars of every command that trains (eval and relabel had no such option)."""
    from test_cli import cli, tiny_set

    synset = tiny_set(tmp_path)
    for args in (("eval", synset, "--protocol", "standard", "--nets", "1", "--epochs", "3"),
                 ("relabel", synset, "--out", tmp_path / "relabelled.safetensors")):
        loud = cli(*args) if args[0] == "eval" else None
        quiet = cli(*args, "--quiet")
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stderr == "", quiet.stderr
        if loud is not None:
            assert loud.returncode == 0 and "it/s]" in loud.stderr  # the bar --quiet hides


def test_a_held_result_names_the_python_keyword_beside_the_flag(tmp_path):
    """The same refusal reaches command-line and Python users, so it names both spellings (`--force`, `force=True`):
    the API's users were told to "pass --force", which no Python call takes."""
    import pytest

    from distill.output import prepare_output
    from distill.errors import DistillError

    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(DistillError, match=r"--force \(force=True\) to replace it or --resume \(resume=True\)"):
        with prepare_output(tmp_path, force=False, resume=False):
            pass


def test_the_package_declares_its_type_hints():
    """PEP 561: without py.typed in the installed package, type checkers ignore distill's annotations."""
    assert (Path(distill.__file__).parent / "py.typed").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\ndistill = ["py.typed"]' in pyproject  # or the wheel leaves it out
