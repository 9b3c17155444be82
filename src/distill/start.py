"""The set a run starts from: learnable images (real samples, noise, a coreset's picks or a saved set), its
labels, its learned learning rates in log space, and the fixed network, laid out class by class."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path

import torch

from distill.config import CORESET_INITS, SET_SUFFIX
from distill.coreset import select
from distill.data import ZCA_REGULARISATION, Task
from distill.errors import DistillError
from distill.methods import get_method, learns
from distill.models import create_model, init_params
from distill.synset import SyntheticSet, load

START_LABEL_FLOOR = 1e-3  # a started set's labels as learned logits: probabilities floored here (a one-hot row has
# no finite logits), so the true class starts at 0.991 of a hard label
LEARNED_LABEL_START = 0.9  # probability of the true class in a learned label at step 0 (a softmax never reaches 1)


def initial_synset(config, task: Task, progress: bool = True) -> SyntheticSet:
    """Learnable images (real samples, noise or a coreset's picks), positive learning rates in log space, and the
    fixed network. `config` is a run's (`DistillConfig`) or an attack's (`AttackConfig`)."""
    generator = torch.Generator().manual_seed(config.seed)
    k = task.num_classes
    schedule = learns(config.method, "schedule")
    steps, epochs = (config.steps, config.epochs) if schedule else (1, 1)
    per_step = getattr(config, "images", 0) or k * config.ipc  # --images N: N a step, classes in turn
    labels = (torch.arange(per_step) % k).repeat(steps)
    step = torch.arange(steps).repeat_interleave(per_step)
    check_class_sizes(task, labels)
    start_set = started_from(config, task, labels) if config.image_init.endswith(SET_SUFFIX) else None
    if start_set is not None:
        images = start_set.images.detach().cpu().clone()
    elif config.image_init == "noise":
        images = torch.randn(len(labels), *task.image_shape, generator=generator)
    elif config.image_init in CORESET_INITS:  # the coreset's picks, in the same class-by-class order
        selector = get_method(config.image_init)  # with the run's network, and no options of its own
        coreset = selector(config, selector.Options())
        most = int(torch.bincount(labels, minlength=k).max())  # picks a class needs (all alike, but with --images)
        idx = select(config.image_init, coreset.features(task, progress), task.train_y, most, generator)
        per_class = idx.view(k, -1)  # [class, pick]; each place takes its class's next pick
        seen = torch.zeros(k, dtype=torch.long)
        order = []
        for c in labels.tolist():
            order.append(int(per_class[c, seen[c]]))
            seen[c] += 1
        images = task.train_x[torch.tensor(order, device=task.train_x.device)].cpu().clone()
    else:
        images = task.train_x.cpu()[real_picks(task, labels, generator)].clone()
    device = task.train_x.device
    model = create_model(config.arch, task.image_shape, k)
    fixed = None
    if config.init == "fixed":
        fixed = init_params(model, generator, config.scheme(), device=device)
    meta = {"dataset": task.spec.name, "num_classes": k, "image_shape": list(task.image_shape),
            "mean": list(task.spec.mean), "std": list(task.spec.std), "method": config.method, "arch": config.arch,
            "ipc": config.ipc, "steps": steps, "epochs": epochs, "init": config.init,
            "init_scheme": config.scheme(), "class_names": list(task.spec.class_names), "config": asdict(config)}
    if getattr(config, "images", 0):  # a size free of the classes: what the file's image count is checked against
        meta["images"] = config.images
    if task.spec.own:  # where a user's data came from and how it was read, so the set's accuracy can be traced
        meta["data"] = {"test_split": task.spec.test_split, "fingerprint": task.spec.fingerprint,
                        "image_size": task.spec.size}
    if task.zca is not None:  # the matrix itself is the set file's tensor `zca`
        meta["data"] = {**meta.get("data", {}), "zca": f"whitened: flattened normalised images @ zca, computed on "
                                                        f"the training split, regularisation {ZCA_REGULARISATION}"}
    log_lrs = None
    if schedule:  # one learned learning rate per unrolled step (and per parameter tensor with layer_lrs)
        shape = (steps * epochs, len(list(model.parameters()))) if config.layer_lrs else (steps * epochs,)
        log_lrs = torch.full(shape, math.log(config.init_lr), device=device).requires_grad_(True)
    elif learns(config.method, "train_lr"):  # one learned SGD rate (MTT)
        log_lrs = torch.full((1,), math.log(config.init_lr), device=device).requires_grad_(True)
        meta["lr_role"] = "standard"
    else:
        step = None
    if start_set is not None:
        meta["started_from"] = {"path": config.image_init, "sha256": file_sha256(Path(config.image_init))}
    label_logits = None
    if start_set is not None and start_set.labels.ndim == 2:  # its soft labels: learned on from there, or kept
        probabilities = start_set.labels.detach().float().cpu()
        if config.learn_labels:
            floored = probabilities.clamp_min(START_LABEL_FLOOR)
            label_logits = (floored / floored.sum(1, keepdim=True)).log().to(device).requires_grad_(True)
        else:
            labels = probabilities
    elif config.learn_labels:  # start at the hard labels, softened: the true class at LEARNED_LABEL_START
        start = math.log(LEARNED_LABEL_START * (k - 1) / (1 - LEARNED_LABEL_START))
        label_logits = (start * torch.nn.functional.one_hot(labels, k).float()).to(device).requires_grad_(True)
    return SyntheticSet(images.to(device).requires_grad_(True), labels.to(device), meta,
                        None if step is None else step.to(device), log_lrs, fixed, label_logits=label_logits,
                        zca=None if task.zca is None else task.zca.cpu())


def check_class_sizes(task: Task, labels: torch.Tensor) -> None:
    """Refuse, before any work, a set with more images of a class than the training split holds: real starting
    images and the random-real baseline both need that many distinct ones, and the baseline comes last, after the
    whole distillation."""
    classes, wanted = labels.unique(return_counts=True)
    have = (task.train_y.cpu()[:, None] == classes[None, :]).sum(0)
    short = [(h, c, w) for c, w, h in zip(classes.tolist(), wanted.tolist(), have.tolist()) if w > h]
    if short:
        h, c, w = min(short)  # the smallest class: what the user can ask for at most
        raise DistillError(f"{task.spec.name} has only {h} training images of class {task.spec.class_names[c]!r}, "
                           f"fewer than the {w} a class would hold in this set (--ipc, times --steps for dd)")


def real_picks(task: Task, labels: torch.Tensor, generator: torch.Generator) -> list[int]:
    """Indices of distinct training images, one of class `labels[i]` for each place i: the real images a set starts
    from. Each place draws uniformly from its class, as it always has, and a draw that repeats an image the set
    already holds is drawn again: two copies of one image would waste a place (in a method that moves both alike,
    such as DM, they stay copies), and seeds that never repeated an image keep the starting sets they gave before.
    Call it after `check_class_sizes`: a class with fewer images than places would be drawn from forever."""
    train_y = task.train_y.cpu()
    members = {c: (train_y == c).nonzero().flatten() for c in labels.unique().tolist()}
    picks: list[int] = []
    taken: set[int] = set()
    for c in labels.tolist():
        pool = members[c]
        pick = int(pool[torch.randint(len(pool), (1,), generator=generator)])
        while pick in taken:
            pick = int(pool[torch.randint(len(pool), (1,), generator=generator)])
        taken.add(pick)
        picks.append(pick)
    return picks


def started_from(config, task: Task, labels: torch.Tensor) -> SyntheticSet:
    """The saved set a run starts from (`--image-init PATH`), checked to be a set this run could have made: the same
    dataset and image shape, and one image for each of its places, class by class in the run's order."""
    start = load(config.image_init)
    problems = []
    if start.meta.get("dataset") != task.spec.name:
        problems.append(f"it was distilled from {start.meta.get('dataset')!r}, this run uses {task.spec.name!r}")
    if (start.zca is None) != (task.zca is None):
        problems.append("its images are whitened (ZCA) and this run's are not" if task.zca is None else
                        "this run's images are whitened (--zca) and its images are not")
    if tuple(start.images.shape[1:]) != tuple(task.image_shape):
        problems.append(f"its images are {tuple(start.images.shape[1:])}, this dataset's {tuple(task.image_shape)}")
    if len(start.images) != len(labels):
        problems.append(f"it has {len(start.images)} images, this run {len(labels)} (--ipc {config.ipc}"
                        f"{f', --steps {config.steps}' if config.steps > 1 else ''})")
    else:
        # hard labels all in the run's order; soft ones at most places: learned or teacher-blended labels may have
        # moved a few places' largest probability to another class (fashion-mnist-frepo-ipc10 has two such), while
        # another order leaves few in agreement
        agree = start.hard_labels().cpu() == labels
        if not (agree.float().mean() >= 0.5 if start.labels.ndim == 2 else agree.all()):
            problems.append("its images are not ordered class by class as this run's are")
    if problems:
        raise DistillError(f"--image-init {config.image_init}: cannot start from this set: {'; '.join(problems)}")
    return start


def file_sha256(path: Path) -> str:
    """The file's SHA-256, recorded with a run that started from it: the path alone may later name another set."""
    return hashlib.sha256(path.read_bytes()).hexdigest()

