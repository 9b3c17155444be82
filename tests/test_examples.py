"""The plain-PyTorch example (examples/train_plain.py) trains as distill evaluates, without importing distill: its
hand-written DC augmentation must be the very transformation distill's `--augment dc` applies. Also the benchmark
scripts' own rules: which committed set may be called best, and what a teacher sweep compares."""

import argparse
import hashlib
import importlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import distill
from distill.config import DistillConfig, resolve
from distill.start import file_sha256
from distill.augment import AugmentParams, augmentation_for

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_plain.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_plain", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_examples_dc_augmentation_is_distills():
    example = load_example()
    torch.manual_seed(0)
    x = torch.randn(48, 1, 28, 28)
    drawn = example.draw_dc(len(x))
    assert set(drawn["op"].tolist()) == {0, 1, 2}  # every operation is exercised
    dc = augmentation_for("dc", "mnist")
    assert dc.ops == ["crop", "scale", "rotate"]
    # distill keeps crop positions as uniforms that become whole pixels: floor(u * 9) - 4
    params = AugmentParams(ops=tuple(dc.ops), op_of_image=drawn["op"], crop=(drawn["shift"] + 4.5) / 9,
                           scale=drawn["scale"], angle=drawn["angle"])
    expected = dc.apply(x, params)
    got = example.augment_dc(x, drawn)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, x, atol=1e-3)  # and it did transform the images



def test_the_examples_dsa_augmentation_is_distills_for_every_operation():
    example = load_example()
    torch.manual_seed(1)
    x = torch.randn(32, 1, 28, 28)
    dsa = augmentation_for("dsa", "fashion-mnist")
    for op in ("color", "crop", "cutout", "flip", "scale", "rotate"):
        drawn = example.draw_dsa(len(x), (op,))
        side = 14
        params = AugmentParams(ops=(op,), brightness=drawn["brightness"], saturation=drawn["saturation"],
                               contrast=drawn["contrast"], crop=(drawn["shift"] + 4.5) / 9,
                               cutout=(drawn["cutout"] + side // 2 + 0.5) / (28 + 1 - side % 2), flip=drawn["flip"],
                               scale=drawn["scale"], angle=drawn["angle"])
        got = example.augment_dsa(x, drawn)
        assert torch.allclose(got, dsa.apply(x, params), atol=1e-5), op
        assert not torch.allclose(got, x, atol=1e-3), op

def test_each_best_set_is_the_most_accurate_measured_one_and_its_plain_check_trained_that_file(monkeypatch):
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(root))  # benchmarks/run.py imports its neighbour common.py
    settings = importlib.import_module("run").load_settings().values()  # plain checks: benchmarks/settings/best.toml
    sources = {s.artifact: s.source for s in settings if s.kind == "plain"}
    assert set(sources) == {"mnist-best-ipc1", "fmnist-best-ipc1", "cifar10-best-ipc1"}
    results = [json.loads(p.read_text()) for p in (root / "results").glob("*.json")]
    for name, source in sources.items():
        plain = json.loads((root / "results" / f"plain-{name}.json").read_text())
        assert plain["source"] == source
        assert plain["sha256"] == hashlib.sha256((root / "artifacts" / f"{name}.safetensors").read_bytes()).hexdigest()
        chosen = next(r for r in results if r["name"] == source)
        rivals = [r for r in results if r.get("dataset") == chosen["dataset"] and r.get("ipc") == 1
                  and r.get("init") == "random" and r.get("protocol") == "standard" and "source" not in r
                  and not r.get("config", {}).get("seed")]  # another seed repeats a setting to show its spread; picking
        # the luckiest seed by its test score would be choosing on the test split
        # the preset rows compete; an experiment (benchmarks/settings/sota.toml) that wins must first become a preset,
        # unless
        # the validation split chose against it: a committed teacher-label sweep of the source's set in which the
        # experiment's blend scored lower on validation than the blend the preset took
        best_preset = max((r for r in rivals if "change" not in r), key=lambda r: r["accuracy_mean"])
        if "change" in chosen:  # a later stage refining the best preset's committed set, ahead of it on validation
            started = distill.load(root / "artifacts" / f"{source}.safetensors").meta["started_from"]
            while started["path"] != f"benchmarks/artifacts/{best_preset['name']}.safetensors":  # back through
                started = distill.load(root.parent / started["path"]).meta["started_from"]  # the earlier stages
            assert started["sha256"] == file_sha256(root / "artifacts" / f"{best_preset['name']}.safetensors")
            assert chosen["validation"]["mean"] > best_preset["validation"]["mean"]
            assert chosen["validation"]["epochs"] == best_preset["validation"]["epochs"]
        else:
            assert best_preset["name"] == source
        for rival in (r for r in rivals if r["accuracy_mean"] > chosen["accuracy_mean"]):
            assert_lost_on_validation(rival, chosen, root / "results")
        # plain PyTorch reaches what distill measured, within the spread of five networks
        assert abs(plain["accuracy_mean"] - chosen["accuracy_mean"]) < 0.02


def blend(config: dict) -> tuple:
    defaults = DistillConfig()  # for results files that predate teacher labels
    return (config.get("teacher_labels", defaults.teacher_labels),
            config.get("teacher_temperature", defaults.teacher_temperature))


def assert_lost_on_validation(rival: dict, chosen: dict, results: Path) -> None:
    """`rival` beats `chosen` on the test split; that is allowed only when `chosen` is above it on the validation split:
    in a committed sweep over `chosen`'s set, the blend `chosen` takes scored higher than `rival`'s blend of the same
    set, or than `rival`'s own set, measured by experiments/validate.py with the same evaluation; or both results
    files carry experiments/validate.py's measurement with the same evaluation, and `chosen`'s is higher."""
    assert "lost_on_validation_to" in rival, f"{rival['name']} beats {chosen['name']}: promote it"
    if rival["lost_on_validation_to"] == chosen["name"]:  # both sets measured by experiments/validate.py
        protocol = lambda r: (r["config"]["eval_augment"] or "none", r["validation"]["epochs"], r["n_eval_nets"])  # noqa: E731
        assert protocol(rival) == protocol(chosen)
        assert rival["validation"]["mean"] < chosen["validation"]["mean"]
        return
    sweep = json.loads((results / f"{rival['lost_on_validation_to']}.json").read_text())
    assert sweep["set"] == chosen["name"]
    picked = (sweep["chosen"]["weight"], sweep["chosen"]["temperature"])
    assert picked == blend(chosen["config"])
    validation = {(b["weight"], b["temperature"]): b["validation"]["mean"] for b in sweep["blends"]}
    if "validation" in rival:  # another set: its own validation, from networks trained as the sweep's were
        trained = (rival["config"]["eval_augment"] or "none", rival["validation"]["epochs"], rival["n_eval_nets"])
        assert trained == (sweep["eval_augment"], sweep["eval_epochs"], sweep["n_eval_nets"])
        assert rival["validation"]["mean"] < validation[picked]
    else:
        assert validation[blend(rival["config"])] < validation[picked]


def test_teacher_sweep_blends_must_include_the_set_as_distilled(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "experiments"))
    parse_blends = importlib.import_module("teacher_sweep").parse_blends
    assert parse_blends("0:2,0.5:4") == ((0.0, 2.0), (0.5, 4.0))
    for bad in ("0.5:4", "0:2,half:4", "0"):  # no comparison row; not a number; no temperature
        with pytest.raises(argparse.ArgumentTypeError):
            parse_blends(bad)


def test_the_readmes_python_calls_are_valid_configurations():
    """The README's `distill.distill(...)` examples must still be runs distill accepts: when MNIST's default method
    became the best measured one (frepo, random networks), its fixed-init example without `method="dd"` was refused.
    Each call's options are resolved and validated as the call would; nothing is run."""
    import ast
    import re


    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    calls = [node for block in blocks for node in ast.walk(ast.parse(block))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "distill.distill"]
    assert calls, "the README's Python example no longer calls distill.distill"
    for call in calls:
        options = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != "out"}
        DistillConfig(**resolve(**options)).validate()
    attacks = [node for block in blocks for node in ast.walk(ast.parse(block))
               if isinstance(node, ast.Call) and ast.unparse(node.func) == "distill.attack"]
    assert attacks, "the README's Python example no longer calls distill.attack"
    for call in attacks:  # its attack example too
        distill.AttackConfig(**{k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != "out"}).validate()


def test_the_examples_cifar10_test_split_is_distills_whitened_with_the_sets_own_matrix():
    """A set on ZCA-whitened CIFAR-10 carries its matrix: the example reads CIFAR-10's test batch, normalises and
    whitens it with that matrix exactly as `distill eval` does (any symmetric matrix serves to check the plumbing)."""
    from distill.data import data_root, get_spec, load_task

    example = load_example()
    spec = get_spec("cifar10")
    generator = torch.Generator().manual_seed(0)
    half = torch.randn(3072, 3072, generator=generator) / 3072
    zca = half + half.T
    task = load_task("cifar10", zca=zca)
    x, y = example.prepared_test_split(data_root() / "cifar10", {"zca": zca}, list(spec.mean), list(spec.std))
    assert torch.equal(y, task.test_y)
    # the same float32 products, chunked differently: rounding of 3,072-term sums of values of order 1e-2
    assert torch.allclose(x, task.test_x, rtol=0, atol=1e-5)
