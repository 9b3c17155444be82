"""The poisoning attack: its objective, its option checks, and a tiny end-to-end run on the bundled digits."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import distill
from distill.errors import DistillError
from distill.methods.attack import attack_objective
from distill.config import AttackConfig

from test_cli import assert_user_error, cli


def test_targeted_objective_is_cross_entropy_with_the_attacked_class_relabelled():
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 2, 3, 1])
    expected = F.cross_entropy(logits[labels != 2], labels[labels != 2]) + F.cross_entropy(
        logits[labels == 2], torch.tensor([3, 3]))
    assert torch.allclose(attack_objective(2, 3)(logits, labels), expected)


def test_forget_objective_falls_as_the_true_class_loses_probability():
    labels = torch.tensor([2, 2, 0])
    confident = torch.tensor([[0.0, 0, 5, 0], [0, 0, 5, 0], [5, 0, 0, 0]])
    confused = confident.clone()
    confused[:2, 2] = -5.0
    forget = attack_objective(2, None)
    assert forget(confused, labels) < forget(confident, labels)
    assert math.isfinite(forget(torch.tensor([[0.0, 0, 50, 0]] * 2 + [[5.0, 0, 0, 0]]), labels).item())


@pytest.mark.parametrize("options, message", [({"attacked": 3, "target": 3}, "differ"),
                                              ({"attacked": 12}, "--attacked"), ({"ipc": 0}, "--ipc")])
def test_bad_attack_options(options, message):
    with pytest.raises(DistillError, match=message):
        AttackConfig(dataset="digits", **options).validate()


def test_attack_cli_rejects_target_equal_to_attacked(tmp_path):
    assert_user_error(cli("attack", "--dataset", "digits", "--attacked", "4", "--target", "4", "--out", tmp_path / "o"),
                      "differ")


def test_tiny_attack_end_to_end(tmp_path):
    out = tmp_path / "attack"
    result = cli("attack", "--dataset", "digits", "--attacked", "3", "--target", "8", "--iterations", "30",
                 "--craft-victims", "2", "--eval-victims", "2", "--real-batch", "128", "--out", out, "--quiet",
                 timeout=900)
    assert result.returncode == 0, result.stderr
    assert "distilled poison" in result.stdout and "label flip (best)" in result.stdout
    assert "label flip (≤ harm)" in result.stdout
    poison = distill.load(out / "synset.safetensors")
    assert poison.meta["method"] == "attack" and poison.meta["init"] == "loaded"
    assert poison.meta["attack"] == {"attacked": 3, "target": 8, "mode": "targeted"}
    assert (poison.labels == 8).all()  # it starts from (and reshapes) the label-flipping poison
    summary = json.loads((out / "summary.json").read_text())["results"]
    held = summary["held_out"]
    assert held["n_victims"] == 2 and len(held["confusion_after"]) == 10
    # before the poison the victims are well trained: the attacked class is mostly right, nothing is a success yet
    assert held["before_attacked_acc"]["mean"] > 0.8 and held["before_success"]["mean"] < 0.1
    # the two label-flip baselines: the best-scoring rate, and the most successful rate within the poison's harm
    sweep = summary["label_flip_sweep"]
    assert summary["label_flip"]["lr"] == max(sweep, key=lambda r: r["score"])["lr"]
    matched = summary["label_flip_matched"]
    budget = matched["damage_budget"]
    assert budget == max(held["others_drop"]["mean"], 0.0)
    row = next(r for r in sweep if r["lr"] == matched["lr"])
    assert row["held_out_others_drop"] == matched["others_drop"]["mean"]
    gentle = [r for r in sweep if r["held_out_others_drop"] <= budget]
    assert row == (max(gentle, key=lambda r: r["held_out_success"]) if gentle
                   else min(sweep, key=lambda r: r["held_out_others_drop"]))
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def attack_config_of(command: list[str], monkeypatch) -> AttackConfig:
    """The configuration a `distill attack` command line crafts with, from the command itself (the crafting is
    replaced by a stand-in that keeps its configuration and stops)."""
    import sys

    from distill import api
    from distill.cli import main

    class Stop(Exception):
        pass

    seen = {}

    def keep(config, **_kwargs):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(api, "attack", keep)  # what the command calls
    monkeypatch.setattr(sys, "argv", command)
    with pytest.raises(Stop):
        main()
    return seen["config"]


def test_show_prints_the_attack_command_that_crafts_a_poison_again(monkeypatch, tmp_path):
    import shlex
    from dataclasses import asdict, replace

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "artifacts" / "mnist-attack-3to8.safetensors"
    poison = distill.load(path)
    shown = cli("show", path)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("re-run:"))
    words = shlex.split(line.removeprefix("re-run:"))
    assert words[:2] == ["distill", "attack"] and "--out" in words
    assert asdict(attack_config_of(words, monkeypatch)) == asdict(AttackConfig(**poison.meta["config"]))

    forgetting = replace(AttackConfig(**poison.meta["config"]), target=None, seed=7)
    poison.meta["config"] = asdict(forgetting)
    words = shlex.split(cli("show", distill.save(poison, tmp_path / "forget.safetensors")).stdout
                        .split("re-run:")[1])
    assert "--forget" in words and asdict(attack_config_of(words, monkeypatch)) == asdict(forgetting)

    older = {k: v for k, v in asdict(forgetting).items() if k != "eval_victims"}  # a version before the field
    poison.meta["config"] = older
    words = shlex.split(cli("show", distill.save(poison, tmp_path / "older.safetensors")).stdout.split("re-run:")[1])
    assert asdict(attack_config_of(words, monkeypatch)) == asdict(AttackConfig(**older))  # its default, as crafted

    poison.meta["config"] = asdict(replace(forgetting, nets_per_step=2))  # set from Python: no option gives it
    assert "re-run:" not in cli("show", distill.save(poison, tmp_path / "python.safetensors")).stdout


def test_varied_and_unseen_victim_recipes_train_differently_and_never_overlap(monkeypatch):
    """The crafting pool's five recipes and the held-out pool's four are disjoint in what they change; victim s trains
    by recipe s mod the count, each with its own SGD settings and augmentation."""
    from distill.data import load_task
    from distill.methods import attack as attack_module

    task = load_task("digits")
    crafting = [(r.training(task), r.augment) for r in attack_module.CRAFTING_RECIPES]
    unseen = [(r.training(task), r.augment) for r in attack_module.UNSEEN_RECIPES]
    assert len(set(crafting)) == 5 and len(set(unseen)) == 4 and not set(crafting) & set(unseen)
    calls = []
    monkeypatch.setattr(attack_module, "trained_network",
                        lambda task, arch, seed, config, progress, augment: calls.append((seed, config, augment)))
    attack_module.victim_pool(task, "lenet", range(1000, 1006), progress=False, recipes="unseen")
    for seed, config, augment in calls:
        recipe = attack_module.UNSEEN_RECIPES[seed % 4]
        assert config == recipe.training(task) and (augment is None) == (recipe.augment == "")


@pytest.mark.parametrize("options, message", [({"victim_recipes": "many"}, "--victim-recipes"),
                                              ({"eval_recipes": "other"}, "--eval-recipes")])
def test_bad_recipe_options(options, message):
    with pytest.raises(DistillError, match=message):
        AttackConfig(dataset="digits", **options).validate()
