"""LeNet as in the original Dataset Distillation paper: conv 6 -> conv 16 -> fc 120 -> fc 84 -> classes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from distill.models import register_model


class LeNet(nn.Module):
    """5x5 convolutions with ReLU and 2x2 max-pooling. Images smaller than 28 pixels get padding 2 so the two
    convolutions still fit (e.g. 8x8 digits, 16x16 USPS); 28x28 MNIST gets the paper's unpadded layout."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, size, _ = image_shape
        pad = 0 if size >= 28 else 2
        self.conv1 = nn.Conv2d(channels, 6, 5, padding=pad)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=pad)
        side = ((size + 2 * pad - 4) // 2 + 2 * pad - 4) // 2
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
