"""Dataset Condensation with Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021): gradient matching (`dc`)
where the real and the synthetic batch of each class go through the same random augmentation (color, crop, cutout,
flip, scale, rotate; no flip for digits) before their gradients are compared, and the network trained between image
updates sees augmented synthetic images too. Everything else is `dc`."""

from __future__ import annotations

from dataclasses import dataclass

from distill.methods.base import register
from distill.methods.dc import DCOptions, GradientMatching


@dataclass(frozen=True)
class DSAOptions(DCOptions):
    augment: str = "dsa"


@register
class SiameseAugmentedMatching(GradientMatching):
    name = "dsa"
    Options = DSAOptions
    defaults = {**GradientMatching.defaults, "eval_augment": "dsa"}
    dataset_defaults = {}
