"""ConvNet, the field's standard evaluation network: 3 blocks of conv3x3(128) -> instance norm -> ReLU -> avgpool2,
then one linear layer (GUIDE §5)."""

from __future__ import annotations

import torch
from torch import nn

from distill.models import register_model


class ConvNet(nn.Module):
    """Instance norm is GroupNorm with one group per channel: no running statistics, so training and evaluation
    behave the same and functional_call needs no buffers. Blocks stop early for tiny images (8x8 digits get 2)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 128, depth: int = 3):
        super().__init__()
        channels, size, _ = image_shape
        layers: list[nn.Module] = []
        for _ in range(depth):
            if size < 4:
                break
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.GroupNorm(width, width, affine=True),
                nn.ReLU(),
                nn.AvgPool2d(2),
            ]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * size * size, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


register_model("convnet")(ConvNet)
