"""LeNet as in the original Dataset Distillation paper: conv 6 -> conv 16 -> fc 120 -> fc 84 -> classes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from distill.models import register_model


class LeNet(nn.Module):
    """5x5 convolutions with ReLU and 2x2 max-pooling, laid out as in the original Dataset Distillation code: 28x28
    images get padding 2 on the first convolution (LeNet-5's 32x32 view, fc1 of 16*5*5 inputs), 32x32 images none.
    Images smaller than 28 pixels (8x8 digits, 16x16 USPS) are padded on both convolutions so they still fit."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, size, _ = image_shape
        pad1 = 2 if size <= 28 else 0
        pad2 = 2 if size < 28 else 0
        self.conv1 = nn.Conv2d(channels, 6, 5, padding=pad1)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=pad2)
        side = ((size + 2 * pad1 - 4) // 2 + 2 * pad2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 8x8 pixels, got {size}x{size}")
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


register_model("lenet", default_init="xavier")(LeNet)
