"""Feature regression (`frepo`): the closed-form regression is the ridge regression it claims to be, the loss reaches
the pixels and the labels, and its online pool of networks is saved in checkpoints so resume stays exact."""

import json
import math

import pytest
import torch
from torch.nn import functional as F

import distill
from distill.data import load_task
from distill.errors import DistillError
from distill.loop import LoopConfig, run_loop, step_generator
from distill.methods import frepo as frepo_module
from distill.methods.frepo import regression_loss
from helpers import method_and_set


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def frepo(task, **options):
    return method_and_set(task, "frepo", **options)


def test_regression_loss_is_the_ridge_regressions_squared_error():
    gen = torch.Generator().manual_seed(0)
    syn, real = torch.randn(6, 20, generator=gen, dtype=torch.float64), torch.randn(30, 20, generator=gen,
                                                                                    dtype=torch.float64)
    targets = torch.softmax(torch.randn(6, 4, generator=gen, dtype=torch.float64), 1)
    labels = torch.randint(4, (30,), generator=gen)
    lam = 0.1 * (syn * syn).sum(1).mean()
    # primal ridge regression: W = (X^T X + lam I)^-1 X^T Y, the same fit as the kernel form
    weights = torch.linalg.solve(syn.T @ syn + lam * torch.eye(20, dtype=torch.float64), syn.T @ targets)
    expected = ((real @ weights - F.one_hot(labels, 4)) ** 2).sum(1).mean()
    assert regression_loss(syn, targets, real, labels, ridge=0.1).item() == pytest.approx(expected.item(), rel=1e-9)



def test_cross_entropy_loss_scores_the_same_regression_with_scaled_logits():
    gen = torch.Generator().manual_seed(2)
    syn, real = torch.randn(6, 20, generator=gen, dtype=torch.float64), torch.randn(30, 20, generator=gen,
                                                                                    dtype=torch.float64)
    targets = F.one_hot(torch.arange(6) % 4, 4).double()
    labels = torch.randint(4, (30,), generator=gen)
    lam = 0.1 * (syn * syn).sum(1).mean()
    predictions = real @ torch.linalg.solve(syn.T @ syn + lam * torch.eye(20, dtype=torch.float64), syn.T @ targets)
    got = regression_loss(syn, targets, real, labels, ridge=0.1, loss="ce", ce_scale=7.0)
    assert got.item() == pytest.approx(F.cross_entropy(7.0 * predictions, labels).item(), rel=1e-9)
    assert got.item() != pytest.approx(regression_loss(syn, targets, real, labels, ridge=0.1).item(), rel=1e-3)


def test_probability_targets_are_scored_as_given_and_one_hot_ones_as_labels():
    gen = torch.Generator().manual_seed(3)
    syn, real = torch.randn(6, 20, generator=gen, dtype=torch.float64), torch.randn(30, 20, generator=gen,
                                                                                    dtype=torch.float64)
    targets = torch.softmax(torch.randn(6, 4, generator=gen, dtype=torch.float64), 1)
    labels = torch.randint(4, (30,), generator=gen)
    soft = torch.softmax(torch.randn(30, 4, generator=gen, dtype=torch.float64), 1)
    lam = 0.1 * (syn * syn).sum(1).mean()
    predictions = real @ torch.linalg.solve(syn.T @ syn + lam * torch.eye(20, dtype=torch.float64), syn.T @ targets)
    assert regression_loss(syn, targets, real, soft, ridge=0.1).item() == pytest.approx(
        ((predictions - soft) ** 2).sum(1).mean().item(), rel=1e-9)
    assert regression_loss(syn, targets, real, F.one_hot(labels, 4).double(), ridge=0.1).item() == pytest.approx(
        regression_loss(syn, targets, real, labels, ridge=0.1).item(), rel=1e-12)


def test_teacher_targets_are_the_full_data_networks_softened_predictions_on_the_real_batch(digits, monkeypatch):
    """With real_targets=teacher the regression is scored against the teacher's predictions on the very batch it saw,
    not against the batch's labels."""
    scored = {}

    def spy(*args, **kwargs):
        scored["targets"] = args[3]
        return regression_loss(*args, **kwargs)

    monkeypatch.setattr(frepo_module, "regression_loss", spy)
    losses = {}
    for targets in ("onehot", "teacher"):
        method, synset = frepo(digits, options={"real_targets": targets, "teacher_temperature": 2.0, "real_batch": 64})
        losses[targets] = method.loss(synset, 0, step_generator(0, 0)).item()
        gen = step_generator(0, 0)  # the step's draws: a pool network, then the real batch
        torch.randint(len(method.pool), (1,), generator=gen)
        idx = torch.randint(len(digits.train_x), (64,), generator=gen)
        if targets == "onehot":
            assert method.teacher is None and torch.equal(scored["targets"], digits.train_y[idx])
            continue
        teacher, params = method.teacher
        expected = (torch.func.functional_call(teacher, params, (digits.train_x[idx],)) / 2.0).softmax(1)
        assert torch.allclose(scored["targets"], expected, atol=1e-5)
        assert (scored["targets"].argmax(1) == digits.train_y[idx]).float().mean() >= 0.9  # a teacher that knows
    assert losses["teacher"] != pytest.approx(losses["onehot"], rel=1e-3)


def test_bad_real_targets_or_teacher_temperature_are_refused_before_any_work(digits):
    with pytest.raises(DistillError, match="real_targets must be one of onehot, teacher"):
        frepo(digits, options={"real_targets": "soft"})
    with pytest.raises(DistillError, match="teacher_temperature must be positive"):
        frepo(digits, options={"real_targets": "teacher", "teacher_temperature": 0})


def test_an_unknown_loss_is_refused_before_any_work(digits):
    with pytest.raises(DistillError, match="loss must be one of mse, ce"):
        frepo(digits, options={"loss": "hinge"})

def test_regression_is_perfect_when_real_is_synthetic():
    gen = torch.Generator().manual_seed(1)
    syn = torch.randn(5, 40, generator=gen, dtype=torch.float64)
    labels = torch.arange(5)
    # five images, forty features: the regression interpolates its own images
    assert regression_loss(syn, F.one_hot(labels, 5).double(), syn, labels, ridge=1e-9).item() < 1e-6


def test_loss_reaches_pixels_and_learned_labels(digits):
    method, synset = frepo(digits, learn_labels=True)
    loss = method.loss(synset, 0, step_generator(0, 0))
    grads = torch.autograd.grad(loss, [synset.images, synset.label_logits])
    assert all(g.abs().sum() > 0 for g in grads)


def test_pool_networks_train_on_the_set_and_are_renewed(digits):
    method, synset = frepo(digits, options={"pool_size": 2, "online_steps": 2})
    before = [{k: v.clone() for k, v in p.items()} for p in method.pool]
    ages = list(method.ages)
    method.loss(synset, 0, step_generator(0, 0))
    changed = [i for i in range(2) if any(not torch.equal(before[i][k], method.pool[i][k]) for k in before[i])]
    assert len(changed) == 1  # the one network used this step took one step (or, if it was old, was renewed)
    i = changed[0]
    assert method.ages[i] in (ages[i] + 1, 0)


def test_online_steps_zero_scores_every_step_on_a_fresh_random_network(digits):
    """Random-feature regression (RFAD's and KIP's features): no network is trained on the set, and the one a step
    used is replaced by a new random one, so no network serves twice."""
    method, synset = frepo(digits, options={"pool_size": 2, "online_steps": 0})
    fresh = method._fresh(torch.Generator().manual_seed(123))
    seen = [method.pool[0]["features.0.weight"].clone(), method.pool[1]["features.0.weight"].clone()]
    for step in range(4):
        rng = step_generator(0, step)
        peek = rng.get_state()
        used = int(torch.randint(2, (1,), generator=rng))
        rng.set_state(peek)
        params = {k: v.clone() for k, v in method.pool[used].items()}
        loss = method.loss(synset, step, rng)
        assert torch.isfinite(loss)
        replaced = method.pool[used]
        assert method.ages == [0, 0]
        weights = [k for k in params if params[k].dim() > 1]  # biases may start at zero in every draw
        assert weights and all(not torch.equal(params[k], replaced[k]) for k in weights)  # a new draw
        assert replaced.keys() == fresh.keys() and all(replaced[k].shape == fresh[k].shape for k in fresh)
        assert not any(torch.equal(replaced["features.0.weight"], w) for w in seen)
        seen.append(replaced["features.0.weight"].clone())


def test_several_networks_a_step_score_their_mean_loss_and_each_trains_once(digits):
    options = {"pool_size": 3, "online_steps": 5, "real_batch": 16}
    method, synset = frepo(digits, options={**options, "nets_per_step": 2})
    before = [{k: v.clone() for k, v in p.items()} for p in method.pool]
    ages = list(method.ages)
    rng = step_generator(0, 0)
    # what the step will draw: two distinct networks, then the real batch
    peek = rng.get_state()
    used = torch.randperm(3, generator=rng)[:2].tolist()
    idx = torch.randint(len(digits.train_x), (16,), generator=rng)
    rng.set_state(peek)
    expected = torch.stack([method._network_loss(before[i], synset.images, synset.target_probabilities(),
                                                 digits.train_x[idx], digits.train_y[idx]) for i in used]).mean()
    loss = method.loss(synset, 0, rng)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    changed = [i for i in range(3) if any(not torch.equal(before[i][k], method.pool[i][k]) for k in before[i])]
    assert sorted(changed) == sorted(used)
    assert all(method.ages[i] == ages[i] + 1 for i in used)


@pytest.mark.parametrize("nets", [0, 4])
def test_nets_per_step_beyond_the_pool_is_refused_before_any_work(digits, nets):
    with pytest.raises(DistillError, match="nets_per_step"):
        frepo(digits, options={"pool_size": 3, "nets_per_step": nets})


def test_resume_restores_the_pool_exactly(digits, tmp_path):
    options = {"real_batch": 32, "pool_size": 3, "online_steps": 4}
    config = LoopConfig(iterations=6, lr_images=0.01, checkpoint_every=3, keep_best=False)
    method, whole = frepo(digits, options=options)
    run_loop(method, whole, config, progress=False)
    method, first = frepo(digits, options=options)
    run_loop(method, first, LoopConfig(**{**config.__dict__, "iterations": 3}), checkpoint_dir=tmp_path, progress=False)
    method, second = frepo(digits, options=options)
    run_loop(method, second, config, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert torch.allclose(whole.images, second.images, atol=1e-6)
    assert not math.isclose(float((whole.images - frepo(digits)[1].images).detach().abs().sum()), 0.0)  # it did move


def test_bfloat16_real_features_give_nearly_the_float32_gradient(digits, monkeypatch):
    monkeypatch.setattr(frepo_module, "native_bfloat16", lambda device: True)  # run it even where it is emulated
    grads = {}
    for dtype in ("float32", "bfloat16"):
        method, synset = frepo(digits, options={"real_dtype": dtype, "real_batch": 128})
        loss = method.loss(synset, 0, step_generator(0, 0))
        grads[dtype] = torch.autograd.grad(loss, synset.images)[0].flatten()
    assert not torch.equal(grads["float32"], grads["bfloat16"])  # the real batch really ran in bfloat16
    assert F.cosine_similarity(grads["float32"], grads["bfloat16"], 0) > 0.999


def test_bfloat16_falls_back_to_float32_with_a_warning_where_it_would_be_emulated(digits, monkeypatch):
    monkeypatch.setattr(frepo_module, "native_bfloat16", lambda device: False)
    method, synset = frepo(digits, options={"real_dtype": "float32", "real_batch": 128})
    expected = torch.autograd.grad(method.loss(synset, 0, step_generator(0, 0)), synset.images)[0]
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        method, synset = frepo(digits, options={"real_dtype": "bfloat16", "real_batch": 128})
    got = torch.autograd.grad(method.loss(synset, 0, step_generator(0, 0)), synset.images)[0]
    assert torch.equal(expected, got)


def test_a_run_records_the_float32_fallback_beside_the_bfloat16_it_was_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(frepo_module, "native_bfloat16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        run = distill.distill(dataset="digits", method="frepo", iterations=1, keep_best=False, out=tmp_path,
                              options={"real_dtype": "bfloat16", "real_batch": 32}, evaluate=False, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["options"]["real_dtype"] == "bfloat16"
    assert summary["results"]["effective_options"] == run.results["effective_options"] == {"real_dtype": "float32"}
    asked = distill.distill(dataset="digits", method="frepo", iterations=1, keep_best=False,
                            options={"real_dtype": "float32", "real_batch": 32}, evaluate=False, progress=False)
    assert asked.results["effective_options"] == {}  # nothing changed, nothing recorded


def test_an_unknown_real_dtype_is_refused_before_any_work(digits):
    with pytest.raises(DistillError, match="real_dtype must be one of float32, bfloat16"):
        frepo(digits, options={"real_dtype": "float16"})
