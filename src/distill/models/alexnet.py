"""AlexNet as in the Dataset Condensation code (utils/networks.py), one of the cross-architecture evaluation networks:
five convolutions (128, 192, 256, 192, 192) with ReLU and three 2x2 max-pools, then one linear layer."""

from __future__ import annotations

import torch
from torch import nn

from distill.errors import DistillError
from distill.models import register_model


class AlexNet(nn.Module):
    """No normalisation layers, as in the DC code, so there is nothing but weights and biases to pass to
    functional_call. One-channel images get padding 4 on the first convolution (28x28 becomes 32x32, the layout the
    DC code was written for); the flattened size is computed from the real image shape, so 16x16 USPS and 8x8 digits
    fit too, and only images that the three pools would shrink to nothing are refused."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        pad = 4 if channels == 1 else 2
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 192, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(192, 192, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        out_h, out_w = ((height + 2 * pad - 4) // 2 // 2 // 2), ((width + 2 * pad - 4) // 2 // 2 // 2)
        if out_h < 1 or out_w < 1:
            least = 8 - 2 * pad + 4
            raise DistillError(
                f"alexnet needs {channels}-channel images of at least {least}x{least}; got {height}x{width}"
            )
        self.classifier = nn.Linear(192 * out_h * out_w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


register_model("alexnet")(AlexNet)


class AlexCifarNet(nn.Module):
    """The CIFAR-10 network of the original Dataset Distillation paper and code (`AlexCifarNet`, after Krizhevsky's
    cuda-convnet layers-18pct): two 5x5 convolutions of 64 channels, each with ReLU, 3x3/2 max-pooling and local
    response normalisation (cross-channel, per image, so no batch state), then three linear layers (384, 192,
    classes). The paper's CIFAR-10 numbers (100 images: 54.0% fixed init, 36.8% random init) were measured on it, so
    its settings are reproduced on it. Written for 32x32 images (a 64x8x8 feature map); other sizes size the first
    linear layer from the pooled map."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(),
            nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        def pooled(size: int) -> int:  # two 3x3 max-pools of stride 2 and padding 1
            return ((size - 1) // 2) // 2 + 1

        out_h, out_w = pooled(height), pooled(width)
        self.classifier = nn.Sequential(
            nn.Linear(64 * out_h * out_w, 384),
            nn.ReLU(),
            nn.Linear(384, 192),
            nn.ReLU(),
        )
        self.fc = nn.Linear(192, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


register_model("alexcifarnet", default_init="xavier")(AlexCifarNet)
