"""Domain adaptation (the original Dataset Distillation paper, section 5.2): distilled target-domain images and their
learned steps that move networks pretrained on another domain to this one.

It is `dd` started from pretrained networks (init `loaded`): every unrolled network is drawn from a pool of networks
trained on the source dataset ("unknown weights": the images must work for any of them; a pool of one for known
weights), and the outer loss is the adapted network's error on real target images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distill.errors import DistillError
from distill.methods.base import register
from distill.methods.dd import DatasetDistillation, DDOptions
from distill.synset import SyntheticSet
from distill.train import Params


@dataclass(frozen=True)
class AdaptOptions(DDOptions):
    pass


@register
class DomainAdaptation(DatasetDistillation):
    name = "adapt"
    Options = AdaptOptions
    learns = frozenset({"schedule"})
    pool: list[Params] | None = None  # the pretrained source networks, handed over by `distill.adapt` (it reads
    # the source data, which a method's setup does not see)

    def initial_params(self, synset: SyntheticSet, rng: torch.Generator) -> Params:
        """A pretrained source network, drawn anew for every unrolled network."""
        if not self.pool:
            raise DistillError("adapt needs its pool of pretrained source networks (distill.adapt provides it)")
        return self.pool[int(torch.randint(len(self.pool), (1,), generator=rng))]
