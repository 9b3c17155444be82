"""Distribution Matching (Zhao & Bilen, WACV 2023): the synthetic images of each class should have the same mean
embedding as the real images of that class, under randomly initialised networks.

    loss = sum_c || mean_i psi(A(x_real_c,i)) - mean_j psi(A(x_syn_c,j)) ||^2

psi is the feature extractor of a fresh network drawn every step (never trained), A the siamese DSA augmentation:
the same transformation for the real and the synthetic batch. No bilevel optimisation and no second-order
gradients, which is why DM is the cheapest of the matching methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from distill.augment import DSA, augmentation_for
from distill.data import Task
from distill import parallel
from distill.methods.base import ClassSampler, Method, Options, check_count, register
from distill.models import embed, init_params, no_grad_in_chunks
from distill.synset import SyntheticSet


@dataclass(frozen=True)
class DMOptions(Options):
    real_batch: int = 256  # real images per class per step (the paper's batch_real)
    augment: str = "dsa"  # "dsa" (the dataset's DSA strategy), "none", or an explicit strategy like "crop_scale"

    def check(self, method: str) -> None:
        """Refuse a real batch below 1 before any data loads (0 crashed the loss, a negative one sliced off images)."""
        check_count(method, "real_batch", self.real_batch)


@register
class DistributionMatching(Method):
    name = "dm"
    Options = DMOptions
    needs_features = True
    parallel = True  # a sum over classes: each rank matches its share of them
    defaults = {"arch": "convnet", "init": "random", "optimizer": "sgd", "lr_images": 1.0, "momentum": 0.5,
                "iterations": 20000, "decay_every": 0, "eval_augment": "dsa", "eval_every": 500}

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        self.sample = ClassSampler(task)
        self.augment = augmentation_for(self.options.augment, task.spec.name) or DSA("none")  # no ops: identity
        self.labels = synset.hard_labels()

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        device = synset.images.device
        params = init_params(self.model, rng, self.config.scheme(), device=device)
        total = synset.images.sum() * 0
        mine = parallel.share(self.task.num_classes)  # every rank draws for every class, and matches its own
        for c in range(self.task.num_classes):
            real = self.sample(c, self.options.real_batch, rng)
            syn = synset.images[self.labels == c]
            draw = self.augment.draw(rng)
            if c not in mine:
                continue
            real = self.augment.apply(real, draw)
            real_mean = no_grad_in_chunks(lambda x: embed(self.model, params, x), real).mean(0)
            syn_mean = embed(self.model, params, self.augment.apply(syn, draw)).mean(0)
            total = total + ((real_mean - syn_mean) ** 2).sum()
        return total
