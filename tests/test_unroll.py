"""Back-propagation through the standard protocol (`train_sgd(create_graph=True)`, the `unroll` method) and runs
that start from a saved set (`--image-init PATH`)."""

import pytest
import torch
from torch.func import functional_call

import distill
from distill.config import DistillConfig
from distill.start import initial_synset
from distill.augment import augmentation_for
from distill.data import load_task
from distill.errors import DistillError
from distill.loop import step_generator
from distill.models import create_model, init_params
from distill.train import SGDConfig, classification_loss, train_sgd
from helpers import method_and_set


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def torch_optim_sgd(model, params, x, y, config, generator, steps=None):
    """The standard protocol as torch.optim.SGD runs it: what train_sgd must repeat number for number. `steps`, a
    dict, gets for each weight tensor the list of every step's lr x largest |gradient|."""
    current = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    optimiser = torch.optim.SGD(current.values(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    for epoch in range(config.epochs):
        for group in optimiser.param_groups:
            group["lr"] = config.lr * 0.1 if epoch >= config.epochs // 2 else config.lr
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            loss = classification_loss(functional_call(model, current, (x[idx],)), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            for k, v in current.items() if steps is not None else ():
                steps.setdefault(k, []).append(optimiser.param_groups[0]["lr"] * v.grad.abs().max().item())
    return {k: v.detach() for k, v in current.items()}


def rounding_budget(start, steps, momentum, u, kappa=64, growth=2):
    """How far from the exact weights a run of `torch_optim_sgd` may end when every operation rounds to unit roundoff
    `u` (2^-24 in float32, 2^-53 in float64), per weight tensor, from the exact run's `steps` (lr_t x G_t, G_t the
    tensor's largest |gradient| at step t). Each step adds to a weight's error
      - the rounding of w - lr v: at most u |w| <= u P, P = max|start| + L, since no weight moves further than
        L = sum_t lr_t sum_{s<=t} m^(t-s) G_s <= sum_s lr_s G_s / (1 - m) (the rate never rises);
      - lr x the error of the momentum buffer v, a sum of gradients with weights m^(t-s). A float32 gradient is a sum
        over the batch and the image positions (up to 20 x 32 x 32 terms); measured against float64 at the same
        weights its rounding stayed within 30 u G_t on AVX-512, AVX2, SSE4.2 and unvectorised kernels and by both
        backward passes (the one train_sgd takes with a graph runs other kernels). kappa = 64 leaves room for other
        blocking and covers the buffer's own roundings and the weight decay term: over the run, kappa u L.
    An error made early is carried through the later steps (I - lr H): a 1e-9 nudge to the start came out at most 1.3
    times larger, so `growth` = 2. Budget = growth u (steps P + kappa L)."""
    budget = {}
    for k, sizes in steps.items():
        travel = sum(sizes) / (1 - momentum)
        budget[k] = growth * u * (len(sizes) * (start[k].abs().max().item() + travel) + kappa * travel)
    return budget


@pytest.mark.parametrize("batch_size", [256, 7])  # one batch an epoch (a small set), and several
def test_train_sgd_is_torch_sgd_exactly_with_or_without_a_graph(digits, batch_size):
    """Without a graph train_sgd runs torch.optim.SGD's float32 operations through the same kernels, so its weights
    are torch's bit for bit on any CPU. With one, autograd takes other backward kernels (GroupNorm's), whose sums round
    in another order, and the orders differ again with the CPU's vector width and blocking: a few float32 roundings
    apart here, over 1e-6 on an AVX2 EPYC. So that path is held to torch.optim.SGD run in float64 (the exact weights
    up to float64 rounding) by `rounding_budget`: in float32 within the budget for u = 2^-24 (torch's own float32 run
    must meet it too, which checks the budget: it uses at most 0.32 of it here); and run in float64 itself, within twice
    the budget for u = 2^-53 of torch's float64 run (each of the two is within one budget of the exact weights). A
    momentum 0.01 off, or a rate 1% off, in the graphed update ends at least 300 times the float32 budget and 1e10
    times the float64 one away, no weight decay 48 and 1e10 times, gradients rounded to float16 30 times the float32
    budget."""
    model = create_model("convnet", digits.image_shape, digits.num_classes)
    start = init_params(model, torch.Generator().manual_seed(0), "default")
    x, y = digits.train_x[:20], digits.train_y[:20]
    config = SGDConfig(epochs=6, batch_size=batch_size)
    reference = torch_optim_sgd(model, start, x, y, config, torch.Generator().manual_seed(1))
    plain = train_sgd(model, start, x, y, config, torch.Generator().manual_seed(1))
    graphed = train_sgd(model, start, x, y, config, torch.Generator().manual_seed(1), create_graph=True)
    model64 = create_model("convnet", digits.image_shape, digits.num_classes).double()
    start64, x64, steps = {k: v.double() for k, v in start.items()}, x.double(), {}
    exact = torch_optim_sgd(model64, start64, x64, y, config, torch.Generator().manual_seed(1), steps)
    graphed64 = train_sgd(model64, start64, x64, y, config, torch.Generator().manual_seed(1), create_graph=True)
    budget32 = rounding_budget(start64, steps, config.momentum, 2.0 ** -24)
    budget64 = rounding_budget(start64, steps, config.momentum, 2.0 ** -53)
    for name in reference:
        assert torch.equal(plain[name], reference[name]), name
        # the budget holds for torch's own float32 run, else it (not train_sgd) is wrong on this CPU
        assert (reference[name].double() - exact[name]).abs().max() <= budget32[name], name
        assert (graphed[name].double() - exact[name]).abs().max() <= budget32[name], name
        assert (graphed64[name].detach() - exact[name]).abs().max() <= 2 * budget64[name], name
    assert all(not v.requires_grad for v in plain.values())
    assert all(v.requires_grad for v in graphed.values()) and all(v.requires_grad for v in graphed64.values())


def test_the_gradient_through_train_sgd_matches_finite_differences():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.softmax(torch.randn(5, 2, dtype=torch.float64), 1).requires_grad_(True)
    probe_x, probe_y = torch.randn(8, 3, dtype=torch.float64), torch.randint(2, (8,))
    config = SGDConfig(epochs=4, lr=0.5)

    def outer(images, targets):
        trained = train_sgd(model, start, images, targets, config, torch.Generator().manual_seed(0),
                            create_graph=True)
        return classification_loss(functional_call(model, trained, (probe_x,)), probe_y)

    assert torch.autograd.gradcheck(outer, (x, y))


def test_unroll_loss_reaches_images_and_labels_and_a_step_lowers_it(digits):
    method, synset = method_and_set(digits, "unroll", eval_epochs=10, options={"real_batch": 256})
    loss = method.loss(synset, 0, step_generator(0, 0))
    grad_images, grad_labels = torch.autograd.grad(loss, [synset.images, synset.label_logits])
    assert torch.isfinite(grad_images).all() and grad_images.abs().sum() > 0 and grad_labels.abs().sum() > 0
    with torch.no_grad():
        synset.images -= 0.5 * grad_images / grad_images.norm()
    # the same network and real batch (same generator), so only the images changed
    assert method.loss(synset, 0, step_generator(0, 0)).item() < loss.item()


@pytest.mark.parametrize("batch_size", [256, 7])
def test_checkpointed_training_gives_the_plain_graphs_gradient_with_augmentation(digits, batch_size):
    """The checkpointed backward pass re-runs every epoch from what it kept: the same shuffles and augmentation
    draws, so the gradient to the images and labels is the plain graph's, and the caller's generator ends where the
    plain run leaves it."""
    model = create_model("convnet", digits.image_shape, digits.num_classes)
    start = init_params(model, torch.Generator().manual_seed(0), "default")
    augment = augmentation_for("dc", "mnist")
    probe_x, probe_y = digits.train_x[100:300], digits.train_y[100:300]
    config = SGDConfig(epochs=4, batch_size=batch_size)

    def gradient(checkpoint):
        x = digits.train_x[:20].clone().requires_grad_(True)
        y = torch.softmax(torch.linspace(-1, 1, 200).reshape(20, 10), 1).requires_grad_(True)
        generator = torch.Generator().manual_seed(3)
        trained = train_sgd(model, start, x, y, config, generator, augment=augment, create_graph=True,
                            checkpoint=checkpoint)
        loss = classification_loss(functional_call(model, trained, (probe_x,)), probe_y)
        return loss.item(), torch.autograd.grad(loss, [x, y]), generator.get_state()

    plain_loss, plain_grads, plain_state = gradient(False)
    loss, grads, state = gradient(True)
    assert loss == pytest.approx(plain_loss, abs=1e-6)
    assert torch.equal(state, plain_state)
    for got, expected in zip(grads, plain_grads):
        assert expected.abs().sum() > 0
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_unroll_trains_through_the_augmentation_evaluation_uses(digits):
    method, synset = method_and_set(digits, "unroll", eval_augment="dc", eval_epochs=3, options={"real_batch": 64})
    [(model, augment, sgd)] = method.ways  # the run's own evaluation, the one way it trains through
    assert model is method.model and sgd.epochs == 3 and augment is not None and "crop" in augment.label
    loss = method.loss(synset, 0, step_generator(0, 0))
    assert torch.autograd.grad(loss, synset.images)[0].abs().sum() > 0


def test_a_run_can_start_from_a_saved_set_with_its_images_and_soft_labels(digits, tmp_path):
    config = DistillConfig(dataset="digits", method="frepo", arch="convnet", init="random", learn_labels=True)
    saved = initial_synset(config, digits).detached()
    saved.images += 1.0  # not what any other start would give
    path = tmp_path / "set.safetensors"
    distill.save(saved, path)
    later = DistillConfig(dataset="digits", method="unroll", arch="convnet", init="random", learn_labels=True,
                          image_init=str(path))
    later.validate()
    start = initial_synset(later, digits)
    assert torch.equal(start.images.detach(), saved.images)
    assert torch.allclose(start.targets(), saved.labels, atol=2e-3)  # floored at 1e-3, so soft labels as they were
    assert start.meta["started_from"]["path"] == str(path) and len(start.meta["started_from"]["sha256"]) == 64
    kept = initial_synset(DistillConfig(**{**later.__dict__, "learn_labels": False}), digits)
    assert torch.equal(kept.labels, saved.labels) and kept.label_logits is None


def test_a_start_set_must_keep_the_runs_class_order_but_may_have_moved_a_label(digits, tmp_path):
    config = DistillConfig(dataset="digits", method="frepo", arch="convnet", init="random", ipc=2)
    saved = initial_synset(config, digits).detached()
    later = dict(dataset="digits", method="unroll", arch="convnet", init="random", ipc=2)
    soft = torch.nn.functional.one_hot(saved.labels, 10).float() * 0.9 + 0.01
    soft[3] = soft[3].roll(2)  # one place's learned label now favours another class (3 -> 5): still this run's order
    path = tmp_path / "moved.safetensors"
    distill.save(type(saved)(images=saved.images, labels=soft, meta=saved.meta), path)
    assert initial_synset(DistillConfig(**later, image_init=str(path)), digits).hard_labels()[3] == 5
    order = saved.labels.argsort(stable=True)  # class by class in blocks (0, 0, 1, 1, ...): another order
    for name, labels in (("sorted-soft", soft[order]), ("sorted-hard", saved.labels[order]),
                         ("moved-hard", torch.where(torch.arange(20) == 3, 5, saved.labels))):
        path = tmp_path / f"{name}.safetensors"
        images = saved.images if name == "moved-hard" else saved.images[order]
        distill.save(type(saved)(images=images, labels=labels, meta=saved.meta), path)
        with pytest.raises(DistillError, match="not ordered class by class"):
            initial_synset(DistillConfig(**later, image_init=str(path)), digits)


def test_a_start_set_that_does_not_fit_the_run_is_a_clear_error(digits, tmp_path):
    config = DistillConfig(dataset="digits", method="frepo", arch="convnet", init="random", ipc=2)
    path = tmp_path / "two-per-class.safetensors"
    distill.save(initial_synset(config, digits).detached(), path)
    with pytest.raises(DistillError, match="20 images, this run 10"):
        initial_synset(DistillConfig(dataset="digits", method="unroll", arch="convnet", init="random",
                                     image_init=str(path)), digits)
    with pytest.raises(DistillError, match="no such set file"):
        DistillConfig(dataset="digits", method="unroll", arch="convnet", init="random",
                      image_init=str(tmp_path / "missing.safetensors")).validate()
    with pytest.raises(DistillError, match="saved set"):
        DistillConfig(dataset="digits", image_init="nonsense").validate()


@pytest.mark.parametrize("segment", [1, 5, 7])
def test_a_segmented_unroll_gives_the_whole_graphs_hypergradient(segment):
    """dd's unrolled steps back-propagated segment by segment (recomputed from the weights kept at each segment's
    start; 12 steps, segments that divide them and one that does not) give the whole graph's gradient to the images,
    the learned rates and the starting weights. Computed in float64: the segments only change the order the terms
    are summed in, so the two agree to a few units of 2^-52 relative to the gradients' size."""
    from distill.train import unroll_schedule

    model = create_model("lenet", (1, 8, 8), 10).double()
    start = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(30, 1, 8, 8, dtype=torch.float64, generator=generator).requires_grad_(True)
    labels = torch.arange(30) % 10
    step_of_image = torch.arange(3).repeat_interleave(10)
    lrs = torch.linspace(0.02, 0.08, 12, dtype=torch.float64).requires_grad_(True)
    real = torch.randn(40, 1, 8, 8, dtype=torch.float64, generator=generator)

    def gradients(segment):
        trained = unroll_schedule(model, start, images, labels, step_of_image, lrs, 3, 4, create_graph=True,
                                  segment=segment)
        loss = classification_loss(functional_call(model, trained, (real,)), torch.arange(40) % 10)
        return torch.autograd.grad(loss, [images, lrs, *start.values()])

    for whole, part in zip(gradients(0), gradients(segment)):
        assert whole.abs().max() > 0
        assert torch.allclose(part, whole, rtol=0, atol=64 * 2**-52 * whole.abs().max().item())


def test_a_negative_segment_is_refused():
    with pytest.raises(DistillError, match="segment must be 0"):
        distill.distill(method="dd", options={"segment": -1}, progress=False, evaluate=False)
