"""Training networks: the unrolled learned-schedule steps on a synthetic set (differentiable), ordinary SGD training
(evaluation nets, full-data baselines, victims), accuracy, and a disk cache of trained networks.

The training loops live here once: the `dd` method back-propagates through the learned-schedule steps and the
`unroll` method through the standard protocol's SGD, while evaluation runs the very same functions without a graph.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from tqdm.auto import tqdm

from distill.data.files import cache_root
from distill.errors import DistillError
from distill.models import no_grad_in_chunks
from distill.synset import _atomic_write

Params = dict[str, torch.Tensor]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels [N] or soft labels (probabilities) [N, K]."""
    return F.cross_entropy(logits, labels)


def unroll_schedule(
    model: nn.Module,
    params: Params,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_of_image: torch.Tensor,
    lrs: torch.Tensor,
    steps: int,
    epochs: int,
    create_graph: bool,
    segment: int = 0,
) -> Params:
    """Train `params` with plain gradient descent: `epochs` passes over `steps` steps, step s using the images with
    `step_of_image == s` and learning rate `lrs[epoch * steps + s]`. `lrs` is [T] (one rate per step) or [T, P]
    (one rate per step and per parameter tensor, in the order of `model.named_parameters()`).

    With `create_graph=True` the result stays differentiable in `images`, `lrs` and the initial `params`, which is
    all the original Dataset Distillation hypergradient needs: autograd does the rest. Its graph holds every
    unrolled step, so its memory grows with their number; `segment` k > 0 (and fewer than the T steps) keeps only
    the weights every k steps and rebuilds one segment's graph at a time on the way back (`_SegmentedSchedule`):
    memory then grows with k and T / k weight copies, at the cost of running each step once more. The hypergradient
    is the same up to the order its terms are summed in.
    """
    names = [name for name, _ in model.named_parameters() if name in params]  # the network's order, not the dict's:
    # per-layer rates are columns in this order, and a set loaded from a file lists its tensors alphabetically
    names += [name for name in params if name not in names]
    schedule = [(epoch, s) for epoch in range(epochs) for s in range(steps)]

    def run(part: list[tuple[int, int]], values: tuple[torch.Tensor, ...], images: torch.Tensor,
            labels: torch.Tensor, lrs: torch.Tensor, graph: bool) -> tuple[torch.Tensor, ...]:
        current = dict(zip(names, values))
        batches = [(images[step_of_image == s], labels[step_of_image == s]) for s in range(steps)]
        for epoch, s in part:
            x, y = batches[s]
            loss = classification_loss(functional_call(model, current, (x,)), y)
            grads = torch.autograd.grad(loss, [current[k] for k in names], create_graph=graph)
            lr = lrs[epoch * steps + s]
            rates = lr.unbind() if lr.ndim else [lr] * len(names)
            current = {k: current[k] - rate * g for k, g, rate in zip(names, grads, rates)}
            if not graph:
                current = {k: v.detach().requires_grad_(True) for k, v in current.items()}
        return tuple(current[k] for k in names)

    with torch.enable_grad():
        values = tuple(params[k] if params[k].requires_grad else params[k].detach().requires_grad_(True)
                       for k in names)
        if create_graph and 0 < segment < len(schedule):
            parts = [schedule[start:start + segment] for start in range(0, len(schedule), segment)]
            values = _SegmentedSchedule.apply(run, parts, images, labels, lrs, *values)
        else:
            values = run(schedule, values, images, labels, lrs, create_graph)
    current = dict(zip(names, values))
    return current if create_graph else {k: v.detach() for k, v in current.items()}


class _SegmentedSchedule(torch.autograd.Function):
    """`unroll_schedule`'s steps with a graph at the memory of one segment's: the forward pass runs them without a
    graph and keeps the weights at the start of every segment; the backward pass walks the segments in reverse,
    rebuilds each one's graph from the weights it kept, and carries the gradient of its end weights back to its start
    weights, the images, the labels and the rates (the same arithmetic as the whole graph, summed per segment)."""

    @staticmethod
    def forward(ctx, run, parts, images, labels, lrs, *weights):
        starts = []
        values = tuple(w.detach().requires_grad_(True) for w in weights)
        plain = (images.detach(), labels.detach(), lrs.detach())
        with torch.enable_grad():
            for part in parts:
                starts.append(values)
                values = run(part, values, *plain, False)
        ctx.save_for_backward(images, labels, lrs)
        ctx.run, ctx.parts, ctx.starts = run, parts, starts
        return tuple(v.detach() for v in values)

    @staticmethod
    def backward(ctx, *grad_weights):
        inputs = [t.detach().requires_grad_(needed)
                  for t, needed in zip(ctx.saved_tensors, ctx.needs_input_grad[2:5])]
        wanted = [t for t in inputs if t.requires_grad]
        totals = [torch.zeros_like(t) for t in wanted]
        for index in reversed(range(len(ctx.parts))):
            start = tuple(v.detach().requires_grad_(True) for v in ctx.starts[index])
            with torch.enable_grad():
                end = ctx.run(ctx.parts[index], start, *inputs, True)
            grads = torch.autograd.grad(end, [*start, *wanted], grad_weights, materialize_grads=True)
            grad_weights = grads[:len(start)]
            totals = [total + g for total, g in zip(totals, grads[len(start):])]
            ctx.starts[index] = None  # walked past: no longer needed
        found = iter(totals)
        grad_inputs = [next(found) if t.requires_grad else None for t in inputs]
        return (None, None, *grad_inputs, *grad_weights)


def train_with_schedule(model: nn.Module, params: Params, synset) -> Params:
    """Train `params` with a synthetic set's own learned schedule (no graph): how fixed-init and schedule evaluation,
    validation and victims taking a poison all train. The set's tensors follow `params` to its device."""
    device = next(iter(params.values())).device
    return unroll_schedule(model, params, synset.images.detach().to(device), synset.targets().detach().to(device),
                           synset.step.to(device), synset.lrs.detach().to(device), synset.num_steps,
                           synset.num_epochs, create_graph=False)


def accuracy(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of `x` classified as `y` (y hard labels)."""
    if not len(x):
        return 0.0
    return int((predictions(model, params, x) == y).sum()) / len(x)


def predictions(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """The class `model` with `params` predicts for each image of `x`."""
    return no_grad_in_chunks(lambda batch: functional_call(model, params, (batch,)).argmax(1), x)


@dataclass(frozen=True)
class SGDConfig:
    """Ordinary training. The defaults are the standard evaluation protocol of GUIDE §5."""

    epochs: int = 300
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_at_half: bool = True  # lr x 0.1 at half the epochs
    cosine: bool = False  # cosine decay instead (used for full-data networks)


def train_sgd(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    config: SGDConfig,
    generator: torch.Generator,
    augment=None,
    progress: str | None = None,
    create_graph: bool = False,
    checkpoint: bool = False,
) -> Params:
    """Train `params` on (x, y) with SGD + momentum + weight decay. `augment(x, generator)` is applied per batch.

    The update is torch.optim.SGD's, written out (the same operations, so the same numbers) so that with
    `create_graph=True` the trained weights stay differentiable in `x` and `y`: the `unroll` method
    back-propagates through the very training the standard protocol evaluates a set with.

    `checkpoint=True` (with a graph) trains without one, keeps the weights and momenta at the start of every epoch,
    and recomputes each epoch's graph during the backward pass (`_CheckpointedSGD`), replaying the epoch's shuffle
    and augmentation draws from the generator state it started with. Memory then grows by two copies of the weights
    an epoch instead of every activation and gradient of the epoch, which is what makes 1,000 augmented epochs fit
    (torch.utils.checkpoint, tried first, still grew by about 20 MB an epoch at one image per class); the backward
    pass pays one more plain training for it. The gradient is the plain graph's up to float rounding.
    """
    if create_graph and checkpoint:
        names = list(params)
        trained = _CheckpointedSGD.apply(x, y, model, config, generator, augment, names, *params.values())
        return dict(zip(names, trained))
    current = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    buffers: dict[str, torch.Tensor] = {}  # momentum, per parameter tensor
    batches_per_epoch = (len(x) + config.batch_size - 1) // config.batch_size
    with tqdm(total=config.epochs * batches_per_epoch, desc=progress, leave=False, disable=progress is None) as bar:
        with torch.enable_grad():
            for epoch in range(config.epochs):
                current, buffers = _sgd_epoch(model, current, buffers, x, y, config, epoch, generator, augment,
                                              create_graph, bar)
    return current if create_graph else {k: v.detach() for k, v in current.items()}


def _sgd_epoch(model: nn.Module, current: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor,
               config: SGDConfig, epoch: int, generator: torch.Generator, augment, create_graph: bool,
               bar: tqdm | None = None) -> tuple[Params, Params]:
    """One epoch of `train_sgd`: a shuffle, then one SGD step per batch. Returns the new weights and momenta.
    `bar` advances every batch, not every epoch: a full-data epoch can take minutes."""
    names = list(current)
    buffers = dict(buffers)  # _sgd_update writes into it; the caller's dict is an epoch start _CheckpointedSGD keeps
    if config.cosine:
        lr = config.lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * epoch / config.epochs)).item())
    elif config.decay_at_half and epoch >= config.epochs // 2:
        lr = config.lr * 0.1
    else:
        lr = config.lr
    order = torch.randperm(len(x), generator=generator).to(x.device)
    for i in range(0, len(x), config.batch_size):
        idx = order[i : i + config.batch_size]
        xb, yb = x[idx], y[idx]
        if augment is not None:
            xb = augment(xb, generator)
        loss = classification_loss(functional_call(model, current, (xb,)), yb)
        grads = torch.autograd.grad(loss, [current[k] for k in names], create_graph=create_graph)
        with torch.set_grad_enabled(create_graph):
            current = {k: _sgd_update(k, current[k], g, buffers, lr, config) for k, g in zip(names, grads)}
        if not create_graph:
            current = {k: v.requires_grad_(True) for k, v in current.items()}
        if bar is not None:
            bar.update(1)
    return current, buffers


class _CheckpointedSGD(torch.autograd.Function):
    """`train_sgd` with a graph at the memory cost of no graph: the forward pass trains without one and keeps the
    weights, momenta and generator state at the start of every epoch; the backward pass walks the epochs in reverse,
    re-runs each one with a graph from what it kept (the same draws, so the same numbers) and carries the gradient
    of the trained weights back through it to the epoch's start, to `x`, and to `y`."""

    @staticmethod
    def forward(ctx, x, y, model, config, generator, augment, names, *weights):
        current = {k: v.detach().requires_grad_(True) for k, v in zip(names, weights)}
        buffers: Params = {}
        starts = []  # (weights, momenta, generator state) at the start of each epoch
        plain_x, plain_y = x.detach(), y.detach()
        with torch.enable_grad():
            for epoch in range(config.epochs):
                starts.append((current, buffers, generator.get_state()))
                current, buffers = _sgd_epoch(model, current, buffers, plain_x, plain_y, config, epoch, generator,
                                              augment, create_graph=False)
        ctx.save_for_backward(x, y)
        ctx.run = (model, config, generator.device, augment, names, starts)
        return tuple(current[k].detach() for k in names)

    @staticmethod
    def backward(ctx, *grad_weights):
        x, y = ctx.saved_tensors
        model, config, device, augment, names, starts = ctx.run
        x = x.detach().requires_grad_(ctx.needs_input_grad[0])
        y = y.detach().requires_grad_(ctx.needs_input_grad[1])
        inputs = [t for t in (x, y) if t.requires_grad]
        grad_inputs = [torch.zeros_like(t) for t in inputs]
        grad_weights = dict(zip(names, grad_weights))
        grad_buffers: Params = {}
        for epoch in reversed(range(config.epochs)):
            weights, buffers, state = starts[epoch]
            weights = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
            buffers = {k: v.detach().requires_grad_(True) for k, v in buffers.items()}
            replay = torch.Generator(device=device)
            replay.set_state(state)
            with torch.enable_grad():
                after, after_buffers = _sgd_epoch(model, weights, buffers, x, y, config, epoch, replay, augment, True)
            outputs = [after[k] for k in names] + [after_buffers[k] for k in grad_buffers]
            adjoints = [grad_weights[k] for k in names] + [grad_buffers[k] for k in grad_buffers]
            wrt = [weights[k] for k in names] + list(buffers.values()) + inputs
            grads = torch.autograd.grad(outputs, wrt, adjoints, materialize_grads=True)
            grad_weights = dict(zip(names, grads[: len(names)]))
            grad_buffers = dict(zip(buffers, grads[len(names) : len(names) + len(buffers)]))
            grad_inputs = [total + g for total, g in zip(grad_inputs, grads[len(names) + len(buffers) :])]
            del starts[epoch]  # the backward pass runs once; what it has walked past is no longer needed
        grads = iter(grad_inputs)
        grad_x = next(grads) if x.requires_grad else None
        grad_y = next(grads) if y.requires_grad else None
        return (grad_x, grad_y, None, None, None, None, None, *(grad_weights[k] for k in names))


def _sgd_update(name: str, param: torch.Tensor, grad: torch.Tensor, buffers: dict[str, torch.Tensor], lr: float,
                config: SGDConfig) -> torch.Tensor:
    """One torch.optim.SGD step (no dampening, no Nesterov) of one tensor, out of place."""
    if config.weight_decay:
        grad = grad.add(param, alpha=config.weight_decay)
    if config.momentum:
        grad = buffers[name] = grad if name not in buffers else buffers[name].mul(config.momentum).add(grad)
    return param.add(grad, alpha=-lr)


FULL_DATA = SGDConfig(epochs=15, batch_size=128, lr=0.03, cosine=True, decay_at_half=False)
"""How full-data networks (baselines, victims, experts) are trained: a short cosine schedule, since the standard
protocol's 300 epochs over 55,000 images would take hours on a CPU."""


FULL_DATA_LARGE = SGDConfig(epochs=3, batch_size=128, lr=0.03, cosine=True, decay_at_half=False)
"""Full-data training for the wide networks (ConvNet and up): three epochs already reach 99% on MNIST, and fifteen
would take the better part of an hour per network on a 2-core CPU."""


def full_data_config(arch: str) -> SGDConfig:
    """How a full-data network of `arch` is trained: small networks get FULL_DATA, wide ones FULL_DATA_LARGE."""
    return FULL_DATA if arch.lower() in ("lenet", "mlp") else FULL_DATA_LARGE


def trained_network(task, arch: str, seed: int, config: SGDConfig = FULL_DATA, init_scheme: str | None = None,
                    progress: bool = True, augment=None) -> Params:
    """A network of `arch` trained on the whole training split, cached on disk as safetensors (keyed by dataset,
    network, seed and training configuration, augmentation included) so it is trained only once. `augment` (a
    `distill.augment.DSA`) augments every batch."""
    from distill.models import DEFAULT_INIT, create_model, in_model_order, init_params  # noqa: PLC0415

    scheme = init_scheme or DEFAULT_INIT[arch]
    model = create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device)
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}  # a changed network is a new entry
    described = {"cfg": asdict(config), "init": scheme, "n": len(task.train_x), "shapes": shapes}
    if augment is not None:  # only where there is one: the networks trained without keep their cache entries
        described["augment"] = augment.label
    key_src = json.dumps(described, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:10]
    path = cache_root() / f"{task.spec.key}-{arch}-seed{seed}-{key}.safetensors"
    if path.is_file():
        try:
            cached = load_file(str(path))
            if {k: list(v.shape) for k, v in cached.items()} == shapes:  # in the order a network trained here has
                return in_model_order(model, cached, device=task.train_x.device)
            path.unlink()
        except Exception:  # noqa: BLE001 - a damaged cache entry is simply retrained
            path.unlink(missing_ok=True)
    generator = torch.Generator().manual_seed(10_000 + seed)
    params = init_params(model, generator, scheme, device=task.train_x.device)
    label = f"train {arch} on full {task.spec.name} (seed {seed})" if progress else None
    params = train_sgd(model, params, task.train_x, task.train_y, config, generator, augment=augment, progress=label)
    save_cached(path, {k: v.cpu().contiguous() for k, v in params.items()}, "the full-data network")
    return params


def save_cached(path: Path, tensors: dict[str, torch.Tensor], what: str, metadata: dict | None = None) -> None:
    """Keep trained networks under cache_root(): through a temporary file of its own (two runs training the same
    network never share one), and only a warning where the cache cannot be written, since it only saves time and
    an unwritable one (a read-only home) must not cost the run that trained them."""
    try:
        _atomic_write(path, lambda name: save_file(tensors, name, metadata=metadata))
    except DistillError as exc:
        warnings.warn(f"{exc}: {what} is not cached and will be trained again next time (set DISTILL_CACHE to a "
                      "folder that can be written)", stacklevel=2)
