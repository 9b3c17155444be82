"""Exact resume beyond the default method: a run stopped at a checkpoint and resumed ends with exactly the set an
uninterrupted run gives, whatever state the method or the loop carries from step to step."""

import json

import pytest
import torch
from helpers import method_and_set

from distill.config import DistillConfig, free_on_resume
from distill.data import load_task
from distill.loop import LoopConfig, run_loop
from distill.methods.base import Method, Options
from distill.methods.mtt import MTTOptions, expert_trajectory
from distill.synset import SyntheticSet

DC_OPTIONS = {"real_batch": 16, "outer_loop": 4, "inner_loop": 2}


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def test_dc_resumed_inside_an_outer_loop_goes_on_with_the_same_network(digits, tmp_path):
    """The network trained between the steps of one outer loop is checkpointed: resumed at step 6 (inside the loop
    of steps 4..7) the run used to start a fresh network there."""
    config = LoopConfig(iterations=10, lr_images=0.1, checkpoint_every=3, keep_best=False, seed=3)
    method, whole = method_and_set(digits, "dc", options=DC_OPTIONS)
    run_loop(method, whole, config, progress=False)
    method, first = method_and_set(digits, "dc", options=DC_OPTIONS)
    run_loop(method, first, LoopConfig(**{**config.__dict__, "iterations": 6}), checkpoint_dir=tmp_path,
             progress=False)
    method, second = method_and_set(digits, "dc", options=DC_OPTIONS)
    run_loop(method, second, config, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert torch.equal(whole.images, second.images)
    assert not torch.equal(whole.images, method_and_set(digits, "dc", options=DC_OPTIONS)[1].images)  # it moved


def test_cached_expert_trajectories_keep_the_networks_parameter_order(digits, tmp_path, monkeypatch):
    """Loaded from the cache, an expert's parameters came back sorted by name, so the first run (which trains the
    experts) and every later one summed MTT's loss in different orders and ended with different sets."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    options = MTTOptions(train_epochs=1, expert_batch=256)
    trained = expert_trajectory(digits, "convnet", "default", 0, options, None, progress=False)
    cached = expert_trajectory(digits, "convnet", "default", 0, options, None, progress=False)
    assert [list(epoch) for epoch in cached] == [list(epoch) for epoch in trained]
    assert list(trained[0]) != sorted(trained[0])  # the network's order is not alphabetical: the check can fail
    assert all(torch.equal(trained[e][k], cached[e][k]) for e in range(2) for k in trained[e])


class _Slope(Method):
    """Pushes the image down a gentle slope; the first time step 17 is computed its loss is not finite, so the
    divergence guard rolls back (to step 10, the last known-good state an uninterrupted run keeps)."""

    name = "slope"

    def __init__(self):
        super().__init__(config=None, options=Options())
        self.failed = False

    def loss(self, synset, step, rng):
        if step == 17 and not self.failed:
            self.failed = True
            return synset.images.sum() * float("nan")
        return (synset.images - 3.0).pow(2).sum()


def _toy_set():
    return SyntheticSet(torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1, dtype=torch.long),
                        {"num_classes": 2})


def test_the_guard_rolls_back_to_the_same_step_after_a_resume(tmp_path):
    config = LoopConfig(iterations=30, lr_images=0.05, checkpoint_every=5, keep_best=False)
    whole = _toy_set()
    result = run_loop(_Slope(), whole, config, progress=False)
    assert result.rollbacks == 1
    first = _toy_set()
    run_loop(_Slope(), first, LoopConfig(**{**config.__dict__, "iterations": 15}), checkpoint_dir=tmp_path,
             progress=False)
    second = _toy_set()
    resumed = run_loop(_Slope(), second, config, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert resumed.rollbacks == 1
    assert torch.equal(whole.images, second.images)
    assert json.dumps(result.history) == json.dumps(resumed.history)


@pytest.mark.parametrize("changes, pinned", [
    ({"method": "unroll"}, True),  # trains through the evaluation's augmentation and epochs
    ({"validation": "standard"}, True),  # validates, and so keeps sets, with them
    ({}, False),  # they only shape the final measurement: a finished run may be re-measured otherwise
])
def test_evaluation_options_are_free_on_resume_only_where_they_do_not_shape_the_steps(changes, pinned):
    free = free_on_resume(DistillConfig(**changes))
    assert ("eval_epochs" not in free and "eval_augment" not in free) == pinned
    assert "eval_nets" in free


def test_mtt_start_epochs_include_max_start_epoch(digits, monkeypatch, tmp_path):
    """As its option's comment says: start epochs run from 0 to max_start_epoch, both included."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    options = {"experts": 1, "train_epochs": 3, "max_start_epoch": 1, "expert_epochs": 2, "syn_steps": 1}
    method, synset = method_and_set(digits, "mtt", options=options)
    read = []

    class Recording(list):
        def __getitem__(self, index):
            read.append(index)
            return super().__getitem__(index)

    method.experts = [Recording(method.experts[0])]
    for seed in range(30):
        method.loss(synset, 0, torch.Generator().manual_seed(seed))
    starts = set(read[0::2])  # each loss reads its start epoch, then the epoch expert_epochs later
    assert starts == {0, 1} and set(read[1::2]) == {2, 3}


def test_cached_full_data_networks_keep_the_networks_parameter_order(digits, tmp_path, monkeypatch):
    """The cache behind teachers, victims and coreset features hands a network back in the order one trained here
    has, as MTT's expert cache does (safetensors returns the tensors sorted by name)."""
    from distill.train import SGDConfig, trained_network

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    recipe = SGDConfig(epochs=1, batch_size=256, lr=0.01, cosine=True, decay_at_half=False)
    trained = trained_network(digits, "convnet", 0, recipe, progress=False)
    cached = trained_network(digits, "convnet", 0, recipe, progress=False)
    assert list(cached) == list(trained) and list(trained) != sorted(trained)
    assert all(torch.equal(trained[k], cached[k]) for k in trained)


def test_an_unwritable_network_cache_warns_and_the_run_keeps_its_network(digits, tmp_path, monkeypatch):
    """DISTILL_CACHE in a folder nothing can be written to (a read-only home) used to end a run with a traceback
    after the whole distillation, when the full-data network was saved; the cache only saves time."""
    from distill.train import SGDConfig, trained_network

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DISTILL_CACHE", str(blocker / "models"))
    recipe = SGDConfig(epochs=1, batch_size=256, lr=0.01, cosine=True, decay_at_half=False)
    with pytest.warns(UserWarning, match="not cached and will be trained again"):
        trained = trained_network(digits, "lenet", 0, recipe, progress=False)
    assert trained and all(torch.isfinite(v).all() for v in trained.values())
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
