"""Poisoning with distilled images (the seed's second half): the original Dataset Distillation with the `loaded`
initialisation (start from well-trained victims) and an outer objective that rewrites one class.

    targeted: CE(f(theta_T, x), y')   with y' = target where y = attacked, else y
    forget:   -log(1 - p_attacked)    on the attacked class, CE with the true label on the others

Half of every real batch comes from the attacked class so both halves of the objective (hurt that class, keep the
others) get a steady signal. Nothing else differs from `dd`: same unrolled steps, same learned learning rates, same
outer loop, same artifact.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from distill.methods import register_method
from distill.methods.dd import DatasetDistillation
from distill.train import Params


def attack_objective(attacked: int, target: int | None):
    """The outer loss: equal weight on rewriting the attacked class and on keeping every other class."""

    def objective(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hit = labels == attacked
        keep = F.cross_entropy(logits[~hit], labels[~hit]) if (~hit).any() else logits.sum() * 0
        if not hit.any():
            return keep
        if target is not None:
            rewrite = F.cross_entropy(logits[hit], torch.full_like(labels[hit], target))
        else:
            p_true = F.softmax(logits[hit], dim=1)[:, attacked]
            rewrite = -torch.log1p(-p_true.clamp(max=1 - 1e-6)).mean()
        return keep + rewrite

    return objective


@register_method("attack")
class PoisonAttack(DatasetDistillation):
    name = "attack"

    def __init__(self, arch: str, init_scheme: str, pool: list[Params], attacked: int, target: int | None,
                 real_batch: int = 1024, nets_per_step: int = 1):
        super().__init__(arch, "loaded", init_scheme, real_batch, nets_per_step, pool,
                         attack_objective(attacked, target))
        self.attacked, self.target = attacked, target

    def setup(self, task, synset, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        labels = task.train_y.cpu()
        self.attacked_idx = (labels == self.attacked).nonzero().flatten()
        self.other_idx = (labels != self.attacked).nonzero().flatten()

    def real_indices(self, rng: torch.Generator) -> torch.Tensor:
        half = self.real_batch // 2
        a = self.attacked_idx[torch.randint(len(self.attacked_idx), (half,), generator=rng)]
        b = self.other_idx[torch.randint(len(self.other_idx), (self.real_batch - half,), generator=rng)]
        return torch.cat([a, b])
