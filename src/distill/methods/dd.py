"""The original Dataset Distillation (Wang, Zhu, Torralba, Efros 2018) as one differentiable loss:

    loss(images, lrs) = CE( f(theta_T, real_x), real_y ),   theta_T = unroll(theta_0, images, lrs)

theta_0 is the one stored network (`fixed`), a fresh draw from the initialiser every outer step (`random`), or a
member of a pool of given trained networks (`loaded`: the poisoning attack). The hypergradient comes from autograd
through the unrolled steps. The outer objective on real data is pluggable: the attack swaps in its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distill.errors import DistillError
from distill.methods.base import Method, Options, check_count, register
from distill.models import init_params
from distill.synset import SyntheticSet
from distill.train import Params, classification_loss, unroll_schedule


@dataclass(frozen=True)
class DDOptions(Options):
    real_batch: int = 512  # real images the trained network is scored on per outer step
    nets_per_step: int = 1  # networks unrolled per outer step (their losses averaged)
    segment: int = 10  # with more unrolled steps than this, back-propagate through them in segments of this many,
    # recomputing each segment's graph from the weights kept at its start (memory bounded by the segment, not by the
    # steps; each step's forward runs twice); 0: keep the whole graph (distill.train.unroll_schedule)

    def check(self, method: str) -> None:
        """Refuse counts below 1 (a segment below 0) before any data loads."""
        check_count(method, "real_batch", self.real_batch)
        check_count(method, "nets_per_step", self.nets_per_step)
        if self.segment < 0:
            raise DistillError(f"{method}: --opt segment must be 0 (no recomputation) or a number of steps, got "
                               f"{self.segment}")


@register
class DatasetDistillation(Method):
    name = "dd"
    Options = DDOptions
    learns = frozenset({"schedule", "labels"})  # the unrolled steps train towards the set's targets: soft labels

    def initial_params(self, synset: SyntheticSet, rng: torch.Generator) -> Params:
        """The network the unrolled steps start from: the set's own (`fixed`), or a fresh draw (`random`)."""
        if self.config.init == "fixed":
            if synset.init_params is None:
                raise DistillError("init 'fixed' needs the synthetic set to carry its initial network")
            return synset.init_params
        return init_params(self.model, rng, self.config.scheme(), device=self.task.train_x.device)

    def real_indices(self, rng: torch.Generator) -> torch.Tensor:
        """The real training images the outer objective is measured on this step (uniform; the attack re-weights)."""
        return torch.randint(len(self.task.train_x), (self.options.real_batch,), generator=rng)

    def objective(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The outer loss on the real batch: classify it well (the attack rewrites one class instead)."""
        return classification_loss(logits, labels)

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        total = 0.0
        for _ in range(self.options.nets_per_step):
            trained = unroll_schedule(self.model, self.initial_params(synset, rng), synset.images, synset.targets(),
                                      synset.step, synset.lrs, synset.num_steps, synset.num_epochs, create_graph=True,
                                      segment=self.options.segment)
            idx = self.real_indices(rng).to(self.task.train_x.device)
            logits = torch.func.functional_call(self.model, trained, (self.task.train_x[idx],))
            total = total + self.objective(logits, self.task.train_y[idx])
        return total / self.options.nets_per_step
