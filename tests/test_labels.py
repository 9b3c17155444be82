"""Learned soft labels (`--learn-labels`): the hypergradient reaches them, the loop optimises and resumes them
exactly, and the saved set carries them as probabilities that every protocol trains with."""

import math

import pytest
import torch

import distill
from distill.config import DistillConfig, resolve
from distill.data import load_task
from distill.errors import DistillError
from distill.loop import LoopConfig, run_loop
from distill.models import create_model, init_params
from distill.train import unroll_schedule
from helpers import method_and_set


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def dd_with_labels(task, **options):
    return method_and_set(task, "dd", learn_labels=True, options={"real_batch": 64}, **options)


def test_label_hypergradient_matches_finite_differences():
    model = create_model("mlp", (1, 4, 4), 3).double()
    params = {k: v.double() for k, v in init_params(model, torch.Generator().manual_seed(1)).items()}
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=gen)
    logits = torch.randn(3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    step, lrs = torch.zeros(3, dtype=torch.long), torch.tensor([0.3, 0.2], dtype=torch.float64)
    real_x, real_y = torch.randn(20, 1, 4, 4, dtype=torch.float64, generator=gen), torch.randint(3, (20,),
                                                                                                 generator=gen)

    def outer(label_logits):
        trained = unroll_schedule(model, params, images, label_logits.softmax(1), step, lrs, 1, 2, create_graph=True)
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, trained, (real_x,)), real_y)

    (grad,) = torch.autograd.grad(outer(logits), [logits])
    eps = 1e-6
    for i in range(9):
        d = torch.zeros(9, dtype=torch.float64)
        d[i] = eps
        fd = (outer(logits + d.view(3, 3)) - outer(logits - d.view(3, 3))) / (2 * eps)
        assert abs(fd.item() - grad.view(-1)[i].item()) < 1e-6


def test_labels_start_soft_at_the_true_class_and_the_loop_moves_them(digits):
    method, synset = dd_with_labels(digits)
    start = synset.targets().detach().clone()
    assert torch.equal(start.argmax(1), synset.labels)
    assert torch.allclose(start.max(1).values, torch.full((10,), 0.9, dtype=start.dtype))
    assert "label_logits" in synset.named_trainable()
    run_loop(method, synset, LoopConfig(iterations=5, lr_labels=0.1), progress=False)
    moved = synset.targets().detach()
    assert (moved - start).abs().max() > 1e-3
    assert torch.allclose(moved.sum(1), torch.ones(10), atol=1e-6)


def test_label_learning_resumes_exactly(digits, tmp_path):
    config = LoopConfig(iterations=6, lr_labels=0.1, checkpoint_every=3, keep_best=False)
    method, whole = dd_with_labels(digits)
    run_loop(method, whole, config, progress=False)
    method, first = dd_with_labels(digits)
    run_loop(method, first, LoopConfig(**{**config.__dict__, "iterations": 3}), checkpoint_dir=tmp_path,
             progress=False)
    method, second = dd_with_labels(digits)
    run_loop(method, second, config, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert torch.allclose(whole.label_logits, second.label_logits, atol=1e-6)
    assert torch.allclose(whole.images, second.images, atol=1e-6)


def test_saved_set_carries_probabilities_and_trains_with_them(tmp_path):
    run = distill.distill(dataset="digits", method="dd", learn_labels=True, lr_labels=0.1, iterations=20, eval_every=10,
                          eval_nets=1, options={"real_batch": 64}, out=tmp_path / "o", progress=False)
    stored = distill.load(tmp_path / "o" / "synset.safetensors")
    assert stored.labels.dtype == torch.float32 and stored.labels.shape == (10, 10)
    assert torch.allclose(stored.labels.sum(1), torch.ones(10), atol=1e-5)
    assert torch.equal(stored.hard_labels(), torch.arange(10))
    assert not torch.allclose(stored.labels.max(1).values, torch.full((10,), 0.9), atol=1e-4)  # they were learned
    assert stored.meta["config"]["learn_labels"] is True
    again = distill.evaluate(stored, progress=False)  # the fixed protocol trains with the stored soft labels
    assert math.isclose(again.accuracy_mean, run.results["distilled"]["accuracy_mean"], abs_tol=1e-9)


def test_methods_that_cannot_learn_labels_say_so():
    with pytest.raises(DistillError, match="cannot learn labels"):
        DistillConfig(**resolve(dataset="digits", method="dm", learn_labels=True)).validate()


@pytest.mark.parametrize("method", ["dd", "frepo"])
def test_a_set_may_hold_fewer_images_than_classes(tmp_path, method):
    """--images 4 on ten classes: four images (classes 0..3 to start), each with a learned distribution over all ten
    classes; the file records the size, loads, trains (the fixed protocol, or the standard one for frepo), and its
    grid is drawn a column per image."""
    out = tmp_path / method
    options = {"real_batch": 64}
    run = distill.distill(dataset="digits", method=method, images=4, learn_labels=True, lr_labels=0.1, iterations=6,
                          eval_every=3, eval_nets=1, eval_epochs=5 if method == "frepo" else None, options=options,
                          out=out, progress=False)
    stored = distill.load(out / "synset.safetensors")
    assert stored.images.shape[0] == 4 and stored.labels.shape == (4, 10) and stored.meta["images"] == 4
    assert torch.equal(stored.hard_labels(), torch.arange(4))  # they start at classes 0..3 and 6 steps keep them
    assert stored.labels[:, 4:].sum() > 0  # every class has some mass: a distribution over all ten
    assert 0 <= run.results["distilled"]["accuracy_mean"] <= 1
    assert (out / "grid.png").stat().st_size > 0
    config = stored.meta["config"]
    again = distill.evaluate(stored, n_nets=1, augment=config["eval_augment"], epochs=config["eval_epochs"],
                             progress=False)  # as the run measured it: the same network, the same number
    assert math.isclose(again.accuracy_mean, run.results["distilled"]["accuracy_mean"], abs_tol=1e-9)


@pytest.mark.parametrize(("options", "fragment"), [
    ({"images": 5}, "add --learn-labels"),
    ({"images": 5, "learn_labels": True, "ipc": 2}, "both set the set's size"),
    ({"images": -1, "learn_labels": True}, "--images must be at least 1"),
    ({"images": 5, "method": "dm", "learn_labels": True}, "cannot learn labels"),
])
def test_images_free_of_the_classes_need_learned_labels(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        DistillConfig(**resolve(**{"dataset": "digits", "method": "dd", **options})).validate()


def test_a_file_whose_image_count_disagrees_with_its_size_is_refused(tmp_path):
    synset = distill.distill(dataset="digits", method="dd", images=3, learn_labels=True, iterations=1,
                             progress=False, evaluate=False).synset
    synset.meta["images"] = 4
    with pytest.raises(DistillError, match="holds 3 images, but images x steps = 4 x 1"):
        distill.save(synset, tmp_path / "bad.safetensors")
