"""ConvNet, the field's standard evaluation network: 3 blocks of conv3x3(128) -> instance norm -> ReLU -> avgpool2,
then one linear layer (GUIDE §5)."""

from __future__ import annotations

import torch
from torch import nn

from distill.models import register_model


class ConvNet(nn.Module):
    """Instance norm is GroupNorm with one group per channel: no running statistics, so training and evaluation
    behave the same and functional_call needs no buffers. Blocks stop early for tiny images (8x8 digits get 2)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 128, depth: int = 3,
                 pad_mnist_to_32: bool = False):
        super().__init__()
        channels, size, _ = image_shape
        layers: list[nn.Module] = []
        for block in range(depth):
            if size < 4:
                break
            padding = 3 if pad_mnist_to_32 and block == 0 and channels == 1 and size == 28 else 1
            size += 2 * padding - 2
            layers += [
                nn.Conv2d(channels, width, 3, padding=padding),
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


@register_model("convnet_dc")
class ConvNetDC(ConvNet):
    """The ConvNet as the DC/DSA/DM/MTT code builds it: on 28x28 one-channel images (MNIST, Fashion-MNIST) the first
    convolution pads by 3, so the maps go 32-16-8-4 and the classifier sees 2,048 features instead of 1,152 (the
    papers' MNIST numbers were measured on it); on other images it is `convnet`. A class, not a function, so that
    the registry's checks for `embed` see the features it exposes."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__(image_shape, num_classes, pad_mnist_to_32=True)
