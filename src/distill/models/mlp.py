"""A three-layer perceptron (hidden 128, 128), the smallest network in the cross-architecture table."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from distill.models import register_model


class MLP(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, hidden: int = 128):
        super().__init__()
        channels, height, width = image_shape
        self.fc1 = nn.Linear(channels * height * width, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


register_model("mlp")(MLP)
