"""VGG11 with instance norm as in the Dataset Condensation code (utils/networks.py), one of the cross-architecture
evaluation networks: conv3x3 -> instance norm -> ReLU blocks in the layout 64,M,128,M,256,256,M,512,512,M,512,512,M,
then one linear layer on the flattened features."""

from __future__ import annotations

import torch
from torch import nn

from distill.errors import DistillError
from distill.models import register_model

VGG11_LAYOUT: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """Instance norm is GroupNorm with one group per channel (no running statistics, so functional_call needs no
    buffers). One-channel images get padding 3 on the first convolution, so 28x28 becomes 32x32 as in the DC code.
    Instance norm over a 1x1 map outputs only its bias and would erase the input, so a max-pool is skipped when
    convolutions still follow and it would leave a 1x1 map (or when the map is already 1x1): 32x32 images keep all
    five pools, 16x16 and 8x8 images keep fewer and still work."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        pad = 3 if channels == 1 else 1
        size_h, size_w = height + 2 * pad - 2, width + 2 * pad - 2
        if size_h < 2 or size_w < 2:
            raise DistillError(f"vgg11 needs images of at least 2x2; got {height}x{width}")
        layers: list[nn.Module] = []
        for index, entry in enumerate(VGG11_LAYOUT):
            if entry == "M":
                last = index == len(VGG11_LAYOUT) - 1
                floor = 1 if last else 2
                if size_h // 2 >= floor and size_w // 2 >= floor:
                    layers.append(nn.MaxPool2d(2))
                    size_h, size_w = size_h // 2, size_w // 2
                continue
            width_out = int(entry)
            layers += [
                nn.Conv2d(channels, width_out, 3, padding=pad if index == 0 else 1),
                nn.GroupNorm(width_out, width_out, affine=True),
                nn.ReLU(),
            ]
            channels = width_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * size_h * size_w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


register_model("vgg11")(VGG11)
