"""The original Dataset Distillation (Wang, Zhu, Torralba, Efros 2018) as one differentiable loss:

    loss(images, lrs) = CE( f(theta_T, real_x), real_y ),   theta_T = unroll(theta_0, images, lrs)

theta_0 is the one stored network (`fixed`), a fresh draw from the initialiser every outer step (`random`), or a
member of a pool of given trained networks (`loaded`: the poisoning attack). The hypergradient comes from autograd
through the unrolled steps. The outer objective on real data is pluggable: the attack swaps in its own.
"""

from __future__ import annotations

from typing import Callable

import torch

from distill.data import Task
from distill.errors import DistillError
from distill.methods import register_method
from distill.models import create_model, init_params
from distill.synset import SyntheticSet
from distill.train import Params, classification_loss, unroll_schedule

INIT_MODES = ("fixed", "random", "loaded")
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@register_method("dd")
class DatasetDistillation:
    name = "dd"
    learns_labels = True  # the unrolled steps train towards the set's targets, so soft labels can be learned

    def __init__(self, arch: str, init: str, init_scheme: str, real_batch: int = 1024, nets_per_step: int = 1,
                 pool: list[Params] | None = None, objective: Objective = classification_loss):
        if init not in INIT_MODES:
            raise DistillError(f"unknown init mode {init!r}; choose one of: {', '.join(INIT_MODES)}")
        if init == "loaded" and not pool:
            raise DistillError("init 'loaded' needs a pool of trained networks")
        self.arch, self.init, self.init_scheme = arch, init, init_scheme
        self.real_batch, self.nets_per_step = real_batch, nets_per_step
        self.pool, self.objective = pool, objective

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        self.task = task
        self.model = create_model(self.arch, task.image_shape, task.num_classes).to(task.train_x.device)
        if self.init == "fixed" and synset.init_params is None:
            raise DistillError("init 'fixed' needs the synthetic set to carry its initial network")

    def initial_params(self, synset: SyntheticSet, rng: torch.Generator) -> Params:
        device = self.task.train_x.device
        if self.init == "fixed":
            return synset.init_params
        if self.init == "loaded":
            return self.pool[int(torch.randint(len(self.pool), (1,), generator=rng))]
        return init_params(self.model, rng, self.init_scheme, device=device)

    def real_indices(self, rng: torch.Generator) -> torch.Tensor:
        """The real training images the outer objective is measured on this step (uniform; the attack re-weights)."""
        return torch.randint(len(self.task.train_x), (self.real_batch,), generator=rng)

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        total = 0.0
        for _ in range(self.nets_per_step):
            trained = unroll_schedule(self.model, self.initial_params(synset, rng), synset.images, synset.targets(),
                                      synset.step, synset.lrs, synset.num_steps, synset.num_epochs, create_graph=True)
            idx = self.real_indices(rng).to(self.task.train_x.device)
            logits = torch.func.functional_call(self.model, trained, (self.task.train_x[idx],))
            total = total + self.objective(logits, self.task.train_y[idx])
        return total / self.nets_per_step
