"""Train a ConvNet on a distilled set with plain PyTorch and safetensors: no `distill` import anywhere.

    python examples/train_plain.py benchmarks/artifacts/mnist-dm-ipc1.safetensors ../shared/data/mnist --nets 5

This is the standard evaluation protocol (GUIDE §5) written out by hand: the field's ConvNet (3 blocks of
conv3x3(128) -> instance norm -> ReLU -> avgpool2, one linear layer, PyTorch's default initialisation), SGD with
momentum 0.9 and weight decay 5e-4, learning rate 0.01 (or the rate the set learned, for MTT sets), batch 256,
300 epochs with the rate x0.1 at half, cross-entropy against the set's labels (hard, or soft probabilities). The
test images are read straight from the standard MNIST / Fashion-MNIST files or CIFAR-10's python-version test batch
and normalised with the mean and std the set's header records; a set whose images are ZCA-whitened (CIFAR-10's
`--zca`) stores its whitening matrix as the tensor `zca`, and the test images are whitened with it
(flattened normalised images @ zca). It reports what `distill eval FILE --protocol standard` reports, up to the spread over
networks (the random draws differ).

`--augment dc` and `--augment dsa` add the training augmentation the table's rows were measured with and train
1,000 epochs, as `distill eval FILE --augment dc|dsa` does. DC's (MNIST `dc` sets): every image gets one of a shift
by up to 4 whole pixels, a scaling of each axis by 1/1.2 to 1.2, or a rotation by up to 45 degrees, picked per
image. DSA's (`dsa`, `dm`, `mtt` sets): one of colour (brightness, saturation, contrast), a shift by up to 4
pixels, a zeroed 14-pixel square, a horizontal flip (not for digits), scaling, or a rotation by up to 15 degrees is
picked per batch, with its random amounts drawn per image. Zeros (the mean colour, once normalised) fill borders.
"""

import argparse
import gzip
import json
import math
import pickle
import statistics
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class NumpyOnly(pickle.Unpickler):
    """CIFAR-10's batches are pickles: admit only the numpy names an array needs, so a tampered file runs no code."""

    def find_class(self, module: str, name: str):
        if module.startswith("numpy") and name in ("_reconstruct", "ndarray", "dtype"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def read_test_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (uint8 as float in [0, 1], [N, C, H, W]) and labels: MNIST's IDX files or CIFAR-10's batch."""
    batch = next((p for p in (folder / "cifar-10-batches-py" / "test_batch", folder / "test_batch") if p.is_file()),
                 None)
    if batch is not None:
        with open(batch, "rb") as handle:
            raw = NumpyOnly(handle, encoding="bytes").load()
        images = torch.tensor(np.asarray(raw[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), dtype=torch.float32)
        return images / 255, torch.tensor(raw[b"labels"], dtype=torch.int64)
    images = torch.tensor(read_idx(folder / "t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    return images, torch.tensor(read_idx(folder / "t10k-labels-idx1-ubyte.gz"), dtype=torch.int64)


def prepared_test_split(folder: Path, tensors: dict, mean: list, std: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split in the set's input space: normalised with its mean and std, and whitened with its `zca`."""
    images, labels = read_test_split(folder)
    images = (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    if "zca" in tensors:
        images = (images.flatten(1) @ tensors["zca"]).view_as(images)
    return images, labels


def conv_net(channels: int, size: int, classes: int, width: int = 128) -> nn.Module:
    layers = []
    for _ in range(3):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(width, width), nn.ReLU(), nn.AvgPool2d(2)]
        channels, size = width, size // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, classes))


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image with its own 2x3 map (output -> input coordinates), zeros (the mean colour) outside."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def shift_maps(shift: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Maps that move each image by whole pixels (x, y); with align_corners=True one pixel is 2 / (size - 1)."""
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).repeat(len(shift), 1, 1)
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / (w - 1), 2 * shift[:, 1] / (h - 1)
    return theta


def scale_maps(scale: torch.Tensor) -> torch.Tensor:
    theta = torch.zeros(len(scale), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    return theta


def rotate_maps(angle: torch.Tensor) -> torch.Tensor:
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)


def draw_dc(n: int) -> dict:
    """DC's MNIST augmentation for n images: one operation each (0 shift, 1 scale, 2 rotate) and its parameters."""
    return {"op": torch.randint(3, (n,)), "shift": torch.randint(-4, 5, (n, 2)),  # whole pixels (x, y)
            "scale": torch.rand(n, 2) * (1.2 - 1 / 1.2) + 1 / 1.2,  # per axis (x, y)
            "angle": (torch.rand(n) - 0.5) * 2 * math.radians(45)}


def augment_dc(x: torch.Tensor, p: dict) -> torch.Tensor:
    """Each image through its own operation, as one affine resampling."""
    n, _, h, w = x.shape
    theta = torch.stack([shift_maps(p["shift"], h, w), scale_maps(p["scale"]), rotate_maps(p["angle"])])
    return affine(x, theta[p["op"], torch.arange(n)])


def draw_dsa(n: int, ops: tuple[str, ...], size: int = 28) -> dict:
    """DSA's augmentation for a batch of n images: ONE operation for the whole batch, its parameters per image."""
    side = int(size * 0.5 + 0.5)  # cutout square
    return {"op": ops[int(torch.randint(len(ops), (1,)))],
            "brightness": torch.rand(n) - 0.5, "saturation": 2 * torch.rand(n), "contrast": torch.rand(n) + 0.5,
            "shift": torch.randint(-int(size * 0.125 + 0.5), int(size * 0.125 + 0.5) + 1, (n, 2)),
            "cutout": torch.randint(-(side // 2), size + 1 - side % 2 - side // 2, (n, 2)),  # square's first (x, y)
            "flip": torch.rand(n) < 0.5, "scale": torch.rand(n, 2) * (1.2 - 1 / 1.2) + 1 / 1.2,
            "angle": (torch.rand(n) - 0.5) * 2 * math.radians(15)}


def augment_dsa(x: torch.Tensor, p: dict) -> torch.Tensor:
    n, _, h, w = x.shape
    op, each = p["op"], (lambda v: v.view(-1, 1, 1, 1))
    if op == "color":  # brightness, then saturation (spread around the pixel's channel mean), then contrast
        x = x + each(p["brightness"])
        mean = x.mean(1, keepdim=True)
        x = mean + (x - mean) * each(p["saturation"])
        mean = x.mean((1, 2, 3), keepdim=True)
        return mean + (x - mean) * each(p["contrast"])
    if op == "crop":
        return affine(x, shift_maps(p["shift"], h, w))
    if op == "cutout":
        side, rows, columns = int(h * 0.5 + 0.5), torch.arange(h).view(1, -1), torch.arange(w).view(1, -1)
        in_rows = (rows >= p["cutout"][:, 1:]) & (rows < p["cutout"][:, 1:] + side)
        in_columns = (columns >= p["cutout"][:, :1]) & (columns < p["cutout"][:, :1] + side)
        return x * ~(in_rows[:, None, :, None] & in_columns[:, None, None, :])
    if op == "flip":
        return torch.where(each(p["flip"]), x.flip(-1), x)
    if op == "scale":
        return affine(x, scale_maps(p["scale"]))
    return affine(x, rotate_maps(p["angle"]))


def augment(x: torch.Tensor, kind: str, dataset: str) -> torch.Tensor:
    """A training batch through `kind` ("none", "dc" or "dsa"; DSA never flips digits)."""
    if kind == "dc":
        return augment_dc(x, draw_dc(len(x)))
    if kind == "dsa":
        ops = ("color", "crop", "cutout", "scale", "rotate") if dataset == "mnist" else \
              ("color", "crop", "cutout", "flip", "scale", "rotate")
        return augment_dsa(x, draw_dsa(len(x), ops, x.shape[-1]))
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", type=Path, help="a distilled set (.safetensors)")
    parser.add_argument("data", type=Path, help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, "
                                                "or with cifar-10-batches-py/test_batch")
    parser.add_argument("--nets", type=int, default=5)
    parser.add_argument("--augment", choices=("none", "dc", "dsa"), default="none", help="training augmentation")
    parser.add_argument("--epochs", type=int, default=0, help="default: 300, or 1000 with augmentation")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the accuracies")
    args = parser.parse_args()
    epochs = args.epochs or (300 if args.augment == "none" else 1000)

    tensors = load_file(str(args.set))
    with safe_open(str(args.set), framework="pt") as handle:
        meta = handle.metadata()
    images, labels = tensors["images"], tensors["labels"]
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    lr = float(tensors["lrs"][0]) if meta.get("lr_role") == "standard" else 0.01

    test_x, test_y = prepared_test_split(args.data, tensors, mean, std)

    accuracies = []
    for seed in range(args.nets):
        torch.manual_seed(seed)
        net = conv_net(images.shape[1], images.shape[2], int(meta["num_classes"]))
        optimiser = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        for epoch in range(epochs):
            for group in optimiser.param_groups:
                group["lr"] = lr * (0.1 if epoch >= epochs // 2 else 1.0)
            order = torch.randperm(len(images))
            for i in range(0, len(images), 256):
                batch = order[i : i + 256]
                x = augment(images[batch], args.augment, meta["dataset"])
                loss = F.cross_entropy(net(x), labels[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            correct = sum((net(test_x[i : i + 2000]).argmax(1) == test_y[i : i + 2000]).sum().item()
                          for i in range(0, len(test_x), 2000))
        accuracies.append(100 * correct / len(test_x))
        print(f"net {seed}: {accuracies[-1]:.2f}%")
    spread = statistics.pstdev(accuracies)  # the population std, as every ± in distill is computed
    print(f"mean {statistics.mean(accuracies):.2f} ± {spread:.2f}% over {len(accuracies)} networks")
    if args.json:
        print(json.dumps({"accuracies": accuracies, "mean": statistics.mean(accuracies), "std": spread,
                          "epochs": epochs, "augment": args.augment}))


if __name__ == "__main__":
    main()
