"""A method's own options (`--opt key=value`) are range-checked when they are parsed: a count below 1, a step size
that is not a positive number or a choice that does not exist is one line before any data loads or network trains,
rather than a traceback deep in a run or a run that silently does something else (`real_batch=-3` sliced off
images). Every method's defaults and every shipped preset still pass."""

import subprocess
import sys

import pytest

import distill
import distill.run
from distill import presets
from distill.config import DistillConfig, resolve
from distill.errors import DistillError
from distill.methods import METHODS, get_method
from distill.methods.base import parse_options

BAD_OPTIONS = [
    ("dm", {"real_batch": 0}, "real_batch"),
    ("dm", {"real_batch": -3}, "real_batch"),
    ("dc", {"outer_loop": -2}, "outer_loop"),
    ("dc", {"inner_loop": -1}, "inner_loop"),
    ("dc", {"lr_net": float("nan")}, "lr_net"),
    ("dc", {"train_batch": 0}, "train_batch"),
    ("dsa", {"lr_net": float("inf")}, "lr_net"),
    ("dsa", {"real_batch": 0}, "real_batch"),
    ("mtt", {"experts": 0}, "experts"),
    ("mtt", {"syn_steps": 0}, "syn_steps"),
    ("mtt", {"syn_batch": -1}, "syn_batch"),
    ("mtt", {"expert_epochs": 0}, "expert_epochs"),
    ("mtt", {"max_start_epoch": -1}, "max_start_epoch"),
    ("mtt", {"expert_lr": 0.0}, "expert_lr"),
    ("mtt", {"expert_batch": -5}, "expert_batch"),
    ("frepo", {"ridge": -1.0}, "ridge"),
    ("frepo", {"ridge": float("nan")}, "ridge"),
    ("frepo", {"model_lr": 0.0}, "model_lr"),
    ("frepo", {"pool_size": 0}, "pool_size"),
    ("frepo", {"online_steps": -1}, "online_steps"),
    ("frepo", {"real_batch": 0}, "real_batch"),
    ("frepo", {"ce_scale": -10.0}, "ce_scale"),
    ("frepo", {"teacher_temperature": float("inf")}, "teacher_temperature"),
]


@pytest.mark.parametrize("method, options, name", BAD_OPTIONS)
def test_out_of_range_options_are_refused_when_parsed(method, options, name):
    with pytest.raises(DistillError, match=f"{method}: --opt {name} must be"):
        parse_options(get_method(method), options)


@pytest.mark.parametrize("method, options, name", [("dm", {"real_batch": "0"}, "real_batch"),
                                                   ("dc", {"lr_net": "nan"}, "lr_net"),
                                                   ("mtt", {"experts": "0"}, "experts"),
                                                   ("frepo", {"ridge": "-1"}, "ridge")])
def test_distill_refuses_them_before_any_data_loads(monkeypatch, method, options, name):
    """As `--opt` gives them (strings); `load_task` failing the test proves nothing was read or trained first."""
    monkeypatch.setattr(distill.run, "load_task", lambda *a, **k: pytest.fail("data loaded before the refusal"))
    with pytest.raises(DistillError, match=f"--opt {name} must be"):
        distill.distill(dataset="digits", method=method, iterations=2, options=options, evaluate=False,
                        progress=False)


def test_zero_is_accepted_where_it_has_a_meaning():
    """dc's loop lengths (0: the paper's value), mtt's start epoch (0: always the first) and batch (0: all)."""
    dc = parse_options(get_method("dc"), {"outer_loop": "0", "inner_loop": "0"})
    assert (dc.outer_loop, dc.inner_loop) == (0, 0)
    mtt = parse_options(get_method("mtt"), {"max_start_epoch": "0", "syn_batch": "0"})
    assert (mtt.max_start_epoch, mtt.syn_batch) == (0, 0)


def test_mtt_start_epochs_past_the_trajectory_are_refused():
    with pytest.raises(DistillError, match="max_start_epoch \\+ expert_epochs"):
        parse_options(get_method("mtt"), {"train_epochs": "3", "max_start_epoch": "2", "expert_epochs": "2"})


def test_every_methods_defaults_and_every_preset_still_validate():
    for name, factory in METHODS.items():
        parse_options(factory, {})  # the defaults
        if name not in ("attack", "adapt"):  # each has its own command and configuration
            DistillConfig(**resolve(method=name)).validate()
    for dataset, method, ipc in presets.PRESETS:
        DistillConfig(**resolve(dataset=dataset, method=method, ipc=ipc)).validate()


def test_the_command_line_refuses_a_bad_option_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "distill.cli", "run", "--dataset", "digits", "--method", "dm",
                             "--opt", "real_batch=0", "--iterations", "2", "--out", str(tmp_path / "run"), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "real_batch" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
