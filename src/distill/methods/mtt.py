"""Matching Training Trajectories (Cazenavette et al., CVPR 2022).

Expert networks are trained on the real data once, their parameters saved after every epoch (cached on disk). Each
step picks an expert and a start epoch s, starts a network at the expert's epoch-s parameters, takes N gradient steps
on (augmented) synthetic images with a learned learning rate, and asks to land where the expert was M epochs later:

    loss = || theta_N - theta*_{s+M} ||^2 / || theta*_s - theta*_{s+M} ||^2

The learned learning rate is the set's training learning rate: it is stored as the set's single `lrs` entry and the
standard evaluation protocol trains with it (metadata `lr_role` = `standard`), as the paper evaluates.

Under torch.distributed the expert trajectories are the shares: each rank trains its share of the experts (the costly
part on a CPU) and every rank receives all of them, and a step's `matches` (trajectory segments matched, their losses
averaged) are split across the ranks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch
from safetensors.torch import load_file
from torch.func import functional_call
from torch.nn import functional as F

from distill import parallel
from distill.augment import DSA, augmentation_for
from distill.data import Task
from distill.errors import DistillError
from distill.methods.base import Method, Options, check_count, check_positive, register
from distill.models import create_model, in_model_order, init_params
from distill.synset import SyntheticSet
from distill.train import Params, SGDConfig, cache_root, save_cached, train_sgd


@dataclass(frozen=True)
class MTTOptions(Options):
    experts: int = 5  # expert trajectories trained (once, cached) on the real data
    expert_epochs: int = 2  # M: how many expert epochs the synthetic steps must cover
    train_epochs: int = 10  # epochs per expert trajectory
    max_start_epoch: int = 5  # start epochs are drawn from 0 to max_start_epoch, both included (the MTT code draws
    # below it; every committed MTT set was distilled with the top epoch included, so it stays)
    syn_steps: int = 20  # N: gradient steps on the synthetic set per match
    syn_batch: int = 0  # synthetic images per step (0: all of them)
    expert_lr: float = 0.01
    expert_batch: int = 256
    augment: str = "dsa"
    matches: int = 1  # expert segments matched per step, their losses averaged (the paper matches one); under
    # torch.distributed the ranks split them

    def check(self, method: str) -> None:
        """Refuse counts below 1 (the start epoch may be 0, the synthetic batch 0 for all images), a step size that is
        not a positive number, and start epochs whose target lies past the trajectory's end, before any expert
        trains."""
        for name in ("experts", "expert_epochs", "train_epochs", "syn_steps", "expert_batch", "matches"):
            check_count(method, name, getattr(self, name))
        check_count(method, "max_start_epoch", self.max_start_epoch, zero="always start at the initialisation")
        check_count(method, "syn_batch", self.syn_batch, zero="all the synthetic images")
        check_positive(method, "expert_lr", self.expert_lr)
        if self.max_start_epoch + self.expert_epochs > self.train_epochs:
            raise DistillError(f"{method}: --opt max_start_epoch + expert_epochs ({self.max_start_epoch} + "
                               f"{self.expert_epochs}) must not exceed train_epochs ({self.train_epochs})")


def expert_trajectory(task: Task, arch: str, scheme: str, seed: int, options: MTTOptions, augment: DSA | None,
                      progress: bool = True) -> list[Params]:
    """Parameters of one expert after every epoch (epoch 0 = initialisation), trained with plain SGD (no momentum, so
    epoch-by-epoch training is exactly one long run), cached as safetensors keyed by everything that shapes it."""
    model = create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device)
    key_src = json.dumps({"arch": arch, "scheme": scheme, "seed": seed, "epochs": options.train_epochs,
                          "lr": options.expert_lr, "batch": options.expert_batch,
                          "augment": list(augment.ops) if augment else [], "augment_draws": "per_image",
                          "n": len(task.train_x)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:10]
    path = cache_root() / f"{task.spec.key}-{arch}-expert{seed}-{key}.safetensors"
    device = task.train_x.device
    if path.is_file():  # in the network's parameter order, as a trajectory trained here has it (MTT's loss sums
        flat = load_file(str(path))  # over the parameters in that order)
        return [in_model_order(model, flat, f"e{e}.", device) for e in range(options.train_epochs + 1)]
    generator = torch.Generator().manual_seed(20_000 + seed)
    params = init_params(model, generator, scheme, device=device)
    trajectory = [params]
    sgd = SGDConfig(epochs=1, batch_size=options.expert_batch, lr=options.expert_lr, momentum=0.0, weight_decay=0.0,
                    decay_at_half=False)
    for epoch in range(options.train_epochs):  # a bar per epoch, moving every batch: an epoch takes minutes on a CPU
        label = f"expert {seed} ({arch} on {task.spec.name}), epoch {epoch + 1}/{options.train_epochs}"
        params = train_sgd(model, params, task.train_x, task.train_y, sgd, generator, augment=augment,
                           progress=label if progress else None)
        trajectory.append(params)
    save_cached(path, {f"e{e}.{k}": v.cpu().contiguous() for e, p in enumerate(trajectory) for k, v in p.items()},
                f"expert {seed}'s trajectory", metadata={"key": key_src})
    return trajectory


@register
class TrajectoryMatching(Method):
    name = "mtt"
    Options = MTTOptions
    learns = frozenset({"train_lr"})  # one learned SGD learning rate, used by the standard protocol
    parallel = True  # a sum over the step's matches: each rank computes its share of them
    defaults = {"arch": "convnet", "init": "random", "optimizer": "adam", "lr_images": 0.01, "lr_lrs": 0.01,
                "init_lr": 0.01, "iterations": 1000, "decay_every": 0, "eval_augment": "dsa", "eval_every": 100}

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        self.augment = augmentation_for(self.options.augment, task.spec.name)
        self.labels = synset.hard_labels()
        self.experts = self.train_experts(task, progress)

    def train_experts(self, task: Task, progress: bool) -> list[list[Params]]:
        """Every expert's trajectory, on every rank: each rank trains (or reads from the cache) its share of them,
        and the ranks exchange what they made (machines that share no cache folder still all get every one)."""
        count, device = self.options.experts, task.train_x.device
        mine = {seed: expert_trajectory(task, self.config.arch, self.config.scheme(), seed, self.options, self.augment,
                                        progress and parallel.is_main())
                for seed in parallel.share(count)}
        if parallel.size() == 1:
            return [mine[seed] for seed in range(count)]
        on_cpu = {seed: [{k: v.cpu() for k, v in p.items()} for p in t] for seed, t in mine.items()}
        return [[{k: v.to(device) for k, v in p.items()} for p in t] for t in parallel.gather(on_cpu, count)]

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        """The mean over the step's matches. One match draws from `rng` itself (the stream every committed MTT set
        was made with); several draw each from a generator seeded from `rng`, so every rank can skip the matches of
        the others and still make the same draws for its own."""
        count = self.options.matches
        if count == 1:
            return self.match(synset, rng) if 0 in parallel.share(1) else synset.images.sum() * 0
        seeds = torch.randint(2**62, (count,), generator=rng).tolist()
        total = synset.images.sum() * 0
        for m in parallel.share(count):
            total = total + self.match(synset, torch.Generator().manual_seed(seeds[m])) / count
        return total

    def match(self, synset: SyntheticSet, rng: torch.Generator) -> torch.Tensor:
        """One match: a random expert's segment from a random start epoch, reached by `syn_steps` synthetic steps."""
        o = self.options
        trajectory = self.experts[int(torch.randint(len(self.experts), (1,), generator=rng))]
        start = int(torch.randint(o.max_start_epoch + 1, (1,), generator=rng))
        begin, target = trajectory[start], trajectory[start + o.expert_epochs]
        names = list(begin)
        lr = synset.lrs[0]
        current = [begin[k].detach().requires_grad_(True) for k in names]
        n = len(synset.images)
        for _ in range(o.syn_steps):
            idx = torch.randperm(n, generator=rng)[: o.syn_batch or n].to(synset.images.device)
            x = synset.images[idx]
            if self.augment is not None:
                x = self.augment(x, rng)
            logits = functional_call(self.model, dict(zip(names, current)), (x,))
            grads = torch.autograd.grad(F.cross_entropy(logits, self.labels[idx]), current, create_graph=True)
            current = [w - lr * g for w, g in zip(current, grads)]
        reached = sum(((w - target[k]) ** 2).sum() for w, k in zip(current, names))
        distance = sum(((begin[k] - target[k]) ** 2).sum() for k in names)
        return reached / distance
