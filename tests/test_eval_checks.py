"""What evaluation, relabelling and saving refuse or normalise before any training: a poison (a set for networks
already trained), a network named in another spelling or not at all, a cross-architecture network's initialiser, and
a set made in memory that `load` would refuse."""

from pathlib import Path

import pytest
import torch

import distill
from distill.config import DistillConfig
from distill.start import initial_synset
from distill.data import load_task
from distill.errors import DistillError
from distill.evaluate import evaluate_set
from distill.synset import SyntheticSet, describe, load, save
from distill.train import SGDConfig

POISON = Path(__file__).resolve().parents[1] / "benchmarks/artifacts/mnist-attack-3to8.safetensors"
QUICK = SGDConfig(epochs=2)  # the standard protocol's training, cut short: what is tested is how networks start


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


@pytest.fixture(scope="module")
def lenet_set(digits):
    """Ten real digits as `distill run` starts them: dd, LeNet, its fixed network and schedule, xavier init."""
    return initial_synset(DistillConfig(), digits, progress=False).detached()


def _valid_meta() -> dict:
    return {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": [0.5], "std": [0.5],
            "method": "dm", "arch": "convnet", "ipc": 1, "steps": 1, "epochs": 1, "init": "random"}


# Defect 5: a poison is applied to networks already trained; fresh networks trained on it measure nothing.

def test_a_poison_is_refused_by_evaluation_and_relabelling_but_still_shown(tmp_path):
    poison = load(POISON)
    assert poison.meta["init"] == "loaded"
    with pytest.raises(DistillError, match=r"poison \(init 'loaded'\).*`distill show`.*`distill attack`"):
        distill.evaluate(POISON, n_nets=1, progress=False)
    with pytest.raises(DistillError, match="fresh networks trained on it measure nothing"):
        distill.evaluate(poison, protocol="standard", arch="convnet", n_nets=1, progress=False)
    out = tmp_path / "relabelled.safetensors"
    with pytest.raises(DistillError, match=r"poison \(init 'loaded'\).*teacher's labels would undo the attack"):
        distill.relabel(POISON, out, progress=False)
    assert not out.exists()
    shown = describe(poison)  # `distill show` reads the poison's recorded effect, which is what it is for
    assert shown["init"] == "loaded" and shown["results"]["held_out_success"]["mean"] > 0.9


# Defect 6: the network is named once, spelt as the registry spells it, before anything compares it.

def test_the_network_is_normalised_and_validated_before_the_schedule_check(lenet_set):
    spelt = distill.evaluate(lenet_set, arch="LeNet", n_nets=1, progress=False)
    plain = distill.evaluate(lenet_set, arch="lenet", n_nets=1, progress=False)
    assert (spelt.protocol, spelt.arch) == ("fixed", "lenet")  # the set's own schedule, not "belongs to lenet"
    assert spelt.accuracies == plain.accuracies and 0.0 < spelt.accuracy_mean <= 1.0
    assert spelt.to_dict()["arch"] == "lenet"  # what --json echoes
    with pytest.raises(DistillError, match="unknown network 'bogus'; choose one of"):
        distill.evaluate(lenet_set, arch="bogus", n_nets=1, progress=False)


# Defect 7: a set's initialiser belongs to the network it was distilled with, not to the networks it is moved to.

def test_a_cross_architecture_network_starts_from_its_own_initialiser(digits, lenet_set):
    assert lenet_set.meta["init_scheme"] == "xavier"
    own = evaluate_set(lenet_set, digits, "standard", "lenet", n_nets=1, sgd=QUICK, progress=False)
    other = evaluate_set(lenet_set, digits, "standard", "convnet", n_nets=1, sgd=QUICK, progress=False)
    assert own.detail["init_scheme"] == "xavier" and other.detail["init_scheme"] == "default"
    as_default = evaluate_set(lenet_set, digits, "standard", "convnet", n_nets=1, sgd=QUICK, progress=False,
                              init_scheme="default")
    assert other.accuracies == as_default.accuracies  # the same networks: PyTorch's default start, not xavier
    convnet_set = initial_synset(DistillConfig(method="dm", arch="convnet", init="random"), digits,
                                 progress=False).detached()
    assert convnet_set.meta["init_scheme"] == "default"
    moved = evaluate_set(convnet_set, digits, "standard", "LeNet", n_nets=1, sgd=QUICK, progress=False)
    assert (moved.arch, moved.detail["init_scheme"]) == ("lenet", "xavier")


# Defect 8: save writes only what load reads back, and evaluation checks a set made in memory as load checks a file.

def test_save_refuses_what_load_would_refuse_and_writes_nothing(tmp_path):
    images, labels = torch.randn(10, 1, 8, 8), torch.arange(10)
    cases = [
        (SyntheticSet(images, labels, {"dataset": "digits", "num_classes": 10}), r"lacks image_shape, mean, std"),
        (SyntheticSet(images, torch.tensor([*range(9), 12]), _valid_meta()), r"labels outside 0\.\.9"),
        (SyntheticSet(images.index_fill(0, torch.tensor([3]), float("nan")), labels, _valid_meta()),
         "images contain NaN or infinity"),
    ]
    for i, (synset, message) in enumerate(cases):
        path = tmp_path / f"set{i}.safetensors"
        with pytest.raises(DistillError, match=f"cannot save {path}: .*{message}"):
            save(synset, path)
    assert list(tmp_path.iterdir()) == []  # not even a temporary file
    tuple_shape = SyntheticSet(images, labels, {**_valid_meta(), "image_shape": (1, 8, 8)})  # stored as a list
    back = load(save(tuple_shape, tmp_path / "good.safetensors"))
    assert back.meta["image_shape"] == [1, 8, 8] and torch.equal(back.images, images)


def test_evaluation_checks_a_set_made_in_memory_before_training(digits):
    images, labels = digits.train_x[:10].clone(), torch.arange(10)
    cases = [
        (SyntheticSet(images, labels, {"dataset": "digits", "num_classes": 10}), r"lacks image_shape, mean, std"),
        (SyntheticSet(images, torch.tensor([*range(9), 12]), _valid_meta()), r"labels outside 0\.\.9"),
        (SyntheticSet(torch.randn(10, 1, 9, 9), labels, _valid_meta()), r"images have shape \[10, 1, 9, 9\]"),
    ]
    for synset, message in cases:  # these used to fail as IndexError / "mat1 and mat2 shapes cannot be multiplied"
        with pytest.raises(DistillError, match=f"the set to evaluate: .*{message}"):
            distill.evaluate(synset, protocol="standard", n_nets=1, epochs=1, progress=False)
        with pytest.raises(DistillError, match=message):
            evaluate_set(synset, digits, "standard", n_nets=1, sgd=QUICK, progress=False)
    good = evaluate_set(SyntheticSet(images, labels, _valid_meta()), digits, "standard", n_nets=1, sgd=QUICK,
                        progress=False)
    assert good.n_nets == 1 and 0.0 <= good.accuracy_mean <= 1.0
