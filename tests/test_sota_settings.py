"""Each issue-5 experiment (benchmarks/sota.py) must still name what its committed results file ran. The settings go
through the shipped presets, which merge a run's `options` into their own, so a preset that gains an option would
otherwise change an older experiment's meaning without anyone noticing (it happened: the MNIST preset's bfloat16 and
1,024-image batch leaked into the settings written before them)."""

import importlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from distill import presets
from distill.api import DistillConfig
from helpers import full_options

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def effective(config: dict) -> dict:
    """A run's configuration with every default filled in: older results files leave out options that did not
    exist yet (teacher labels) or that kept their default (most method options)."""
    full = {**asdict(DistillConfig()), **{k: v for k, v in config.items() if v is not None}}
    full["options"] = full_options(full["method"], full["options"])
    return full


def test_each_experiment_resolves_to_the_configuration_its_results_file_ran(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # benchmarks/sota.py imports its neighbour common.py
    sota = importlib.import_module("sota")
    checked = 0
    for name, setting in sota.SETTINGS.items():
        path = BENCHMARKS / "results" / f"{name}.json"
        if not path.is_file():  # a setting not run yet
            continue
        ran = json.loads(path.read_text())["config"]
        options = {"iterations": sota.NO_STEP_CAP, **setting["options"], "max_minutes": ran["max_minutes"],
                   "seed": ran["seed"]}
        now = effective(presets.resolve(**options))
        expected = effective(ran)
        assert {k: now[k] for k in now if now[k] != expected.get(k)} == {}, name
        checked += 1
    assert checked >= 20  # the committed experiments are found, so the loop above is not vacuous


def test_effective_fills_defaults_but_keeps_what_differs():
    ran = {"dataset": "mnist", "method": "frepo", "ipc": 1, "options": {"real_batch": 1024}, "teacher_labels": None}
    full = effective(ran)
    assert full["teacher_labels"] == DistillConfig().teacher_labels
    assert full["options"]["real_batch"] == 1024 and full["options"]["real_dtype"] == "float32"


@pytest.mark.parametrize("setting, given", [("fashion-mnist-unroll-ipc1-from-frepo", {}),
                                            ("mnist-unroll-ipc1-from-frepo", {}),
                                            ("mnist-unroll-ipc1-from-unroll", {"iterations": 40})])
def test_the_unroll_stage_as_the_readme_runs_it_is_the_benchmarked_one(monkeypatch, setting, given):
    """`distill run --dataset D --ipc 1 --method unroll --image-init SET` (the README's second stage; the MNIST third
    stage adds `--iterations 40`) must repeat the committed stage: the method's defaults, with the dataset's and the
    options the README gives, are its setting."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    stage = importlib.import_module("sota").SETTINGS[setting]["options"]
    resolved = presets.resolve(dataset=stage["dataset"], ipc=1, method="unroll", image_init=stage["image_init"],
                               **given)
    assert {k: (resolved[k], v) for k, v in stage.items() if resolved[k] != v} == {}
