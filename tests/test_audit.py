"""`distill audit`: a set that makes trained networks forget one class is flagged, with that class named, whatever
its header says; a clean set of the same size is not. Exit 1 for a flagged set, 0 for a clean one, 2 for a bad file."""

import json
from pathlib import Path

import pytest
import torch

import distill
from distill.data import load_task
from distill.synset import SyntheticSet, save
from test_cli import assert_user_error, cli

ARTIFACTS = Path(__file__).resolve().parents[1] / "benchmarks" / "artifacts"


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def hand_made(task, labels: torch.Tensor, images: torch.Tensor, path: Path) -> Path:
    """A set without a learned schedule (as dm makes), its header claiming nothing about poisons: a file from
    elsewhere."""
    meta = {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": list(task.spec.mean),
            "std": list(task.spec.std), "method": "dm", "arch": "lenet", "ipc": 2, "steps": 1, "epochs": 1,
            "init": "random"}
    return save(SyntheticSet(images, labels, meta), path)


def real_images(task, classes: list[int]) -> torch.Tensor:
    picks, used = [], {c: 0 for c in set(classes)}
    for c in classes:
        picks.append(int((task.train_y == c).nonzero().flatten()[used[c]]))
        used[c] += 1
    return task.train_x[picks].clone()


def test_a_label_flipping_set_is_flagged_and_names_its_class(digits, tmp_path):
    """Two real images of every class, the 3s labelled 8: fine-tuning on them teaches trained networks that 3s are
    8s and leaves the other classes mostly alone."""
    classes = [c for c in range(10) for _ in range(2)]
    labels = torch.tensor([8 if c == 3 else c for c in classes])
    path = hand_made(digits, labels, real_images(digits, classes), tmp_path / "flip.safetensors")
    done = cli("audit", path, "--json", timeout=900)
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)
    assert found["flagged"] and found["harmed_class"] == 3 and found["score"] >= found["threshold"]
    assert max(found["harmed_goes_to"], key=found["harmed_goes_to"].get) == "8"
    assert found["label_agreement"][8] <= 0.5 + 1e-9  # half the images labelled 8 are 3s to the networks
    assert found["header_says"] is None  # nothing in the file said so
    assert found["accuracy_after"][3] < found["accuracy_before"][3] - found["threshold"]


def test_a_clean_set_of_the_same_size_passes(digits, tmp_path):
    classes = [c for c in range(10) for _ in range(2)]
    path = hand_made(digits, torch.tensor(classes), real_images(digits, classes), tmp_path / "clean.safetensors")
    done = cli("audit", path, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "clean: no class is singled out" in done.stdout
    assert all(score < 0.2 for score in distill.audit(path, progress=False).class_scores)


def test_the_committed_poison_is_flagged_through_its_learned_steps():
    done = cli("audit", ARTIFACTS / "mnist-attack-3to8.safetensors", "--nets", "1", "--quiet", timeout=900)
    assert done.returncode == 1, done.stderr
    assert "FLAGGED: a poison harming class '3'" in done.stdout
    assert "by its learned steps" in done.stdout and "made by distill attack" in done.stdout


@pytest.mark.parametrize(("args", "fragment"), [(["--nets", "0"], "--nets must be at least 1"),
                                                 (["--threshold", "1.5"], "--threshold is a share")])
def test_bad_audit_options_are_one_line(tmp_path, args, fragment):
    path = hand_made(load_task("digits"), torch.arange(10).repeat(2), torch.zeros(20, 1, 8, 8),
                     tmp_path / "s.safetensors")
    assert_user_error(cli("audit", path, *args), fragment)
