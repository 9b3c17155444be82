"""benchmarks/common.py's run_setting, the one place every named benchmark writes its results and its set."""

import importlib
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_a_second_seed_keeps_its_own_set_and_leaves_the_committed_one(monkeypatch, tmp_path):
    """`methods.py NAME --seed 1` once copied its set over benchmarks/artifacts/NAME.safetensors, the committed set
    that NAME's results file describes, while writing its numbers to NAME-seed1.json."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("common")
    monkeypatch.setattr(common, "HERE", tmp_path)
    (tmp_path / "artifacts").mkdir()
    committed = tmp_path / "artifacts" / "digits-random-ipc1.safetensors"
    committed.write_bytes(b"the committed set")
    options = dict(dataset="digits", method="random", arch="mlp", ipc=1, eval_nets=1)
    result = common.run_setting("digits-random-ipc1", options, "a command", artifact="digits-random-ipc1", seed=1)
    assert result["name"] == "digits-random-ipc1-seed1"
    assert committed.read_bytes() == b"the committed set"
    assert (tmp_path / "artifacts" / "digits-random-ipc1-seed1.safetensors").is_file()
    assert (tmp_path / "results" / "digits-random-ipc1-seed1.json").is_file()
