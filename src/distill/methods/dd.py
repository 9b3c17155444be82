"""The original Dataset Distillation (Wang, Zhu, Torralba, Efros 2018) as one differentiable loss:

    loss(images, lrs) = CE( f(theta_T, real_x), real_y ),   theta_T = unroll(theta_0, images, lrs)

theta_0 is the one stored network (`fixed`), a fresh draw from the initialiser every outer step (`random`), or a
member of a pool of given trained networks (`loaded`: the poisoning attack). The hypergradient comes from autograd
through the unrolled steps. The outer objective on real data is pluggable: the attack swaps in its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distill import parallel
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

    batch_shares = True  # the outer objective is a mean over the real batch: ranks may split it (not the attack's)

    @property
    def parallel(self) -> bool:
        """Under torch.distributed the loss is a sum of shares: the step's networks split among the ranks when
        there are as many networks as ranks, else each network's real batch (where the objective is a mean)."""
        return parallel.size() <= self.options.nets_per_step or self.batch_shares

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        nets = self.options.nets_per_step
        by_network = parallel.size() <= nets
        mine = parallel.share(nets) if by_network else range(nets)
        total = synset.images.sum() * 0
        for n in range(nets):  # every rank draws every network's start and batch, and unrolls its own
            start = self.initial_params(synset, rng)
            idx = self.real_indices(rng).to(self.task.train_x.device)
            if n not in mine:
                continue
            trained = unroll_schedule(self.model, start, synset.images, synset.targets(), synset.step, synset.lrs,
                                      synset.num_steps, synset.num_epochs, create_graph=True,
                                      segment=self.options.segment)
            part = idx if by_network or not self.batch_shares else parallel.my_part(idx)
            logits = torch.func.functional_call(self.model, trained, (self.task.train_x[part],))
            total = total + self.objective(logits, self.task.train_y[part]) * (len(part) / len(idx))
        return total / nets
