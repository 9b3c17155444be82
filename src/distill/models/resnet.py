"""ResNet-18 with instance norm as in the Dataset Condensation code (utils/networks.py), one of the
cross-architecture evaluation networks: CIFAR-style 3x3 stem (stride 1, no max-pool), four stages of two basic
blocks (64, 128, 256, 512 channels), global average pooling and one linear layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from distill.errors import DistillError
from distill.models import register_model


def instance_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with one group per channel: instance norm without running statistics or buffers."""
    return nn.GroupNorm(channels, channels, affine=True)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; a 1x1 convolution matches the shortcut when the block
    changes width or stride. Convolutions carry no bias because the norm after each one has its own."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = instance_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = instance_norm(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), instance_norm(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The three stride-2 stages shrink an image by 8 (28x28 -> 4x4, 16x16 -> 2x2). Instance norm over a 1x1 map
    outputs only its bias, so images that the last stage would shrink to 1x1 (8x8 digits) would give logits that do
    not depend on the input; those are refused instead of training a constant."""

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, widths: tuple[int, ...] = (64, 128, 256, 512)
    ):
        super().__init__()
        channels, height, width = image_shape
        if min(height, width) <= 8:
            raise DistillError(
                f"resnet18 needs images larger than 8x8 (its last stage would be 1x1); got {height}x{width}"
            )
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        self.stem_norm = instance_norm(widths[0])
        blocks: list[nn.Module] = []
        in_channels = widths[0]
        for stage, channels_out in enumerate(widths):
            stride = 1 if stage == 0 else 2
            blocks += [BasicBlock(in_channels, channels_out, stride), BasicBlock(channels_out, channels_out)]
            in_channels = channels_out
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.stem_norm(self.stem(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


register_model("resnet18")(ResNet18)
