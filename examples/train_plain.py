"""Train a ConvNet on a distilled set with plain PyTorch and safetensors: no `distill` import anywhere.

    python examples/train_plain.py benchmarks/artifacts/mnist-dm-ipc1.safetensors ../shared/data/mnist --nets 5

This is the standard evaluation protocol (GUIDE §5) written out by hand: the field's ConvNet (3 blocks of
conv3x3(128) -> instance norm -> ReLU -> avgpool2, one linear layer, PyTorch's default initialisation), SGD with
momentum 0.9 and weight decay 5e-4, learning rate 0.01 (or the rate the set learned, for MTT sets), batch 256,
300 epochs with the rate x0.1 at half, cross-entropy against the set's labels (hard, or soft probabilities). The
test images are read straight from the standard MNIST / Fashion-MNIST files and normalised with the mean and std the
set's header records. It reports what `distill eval FILE --protocol standard` reports, up to the spread over
networks (the random draws differ).
"""

import argparse
import gzip
import json
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


def conv_net(channels: int, size: int, classes: int, width: int = 128) -> nn.Module:
    layers = []
    for _ in range(3):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(width, width), nn.ReLU(), nn.AvgPool2d(2)]
        channels, size = width, size // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", type=Path, help="a distilled set (.safetensors)")
    parser.add_argument("data", type=Path, help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    parser.add_argument("--nets", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    tensors = load_file(str(args.set))
    with safe_open(str(args.set), framework="pt") as handle:
        meta = handle.metadata()
    images, labels = tensors["images"], tensors["labels"]
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    lr = float(tensors["lrs"][0]) if meta.get("lr_role") == "standard" else 0.01

    test_x = torch.tensor(read_idx(args.data / "t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    test_x = (test_x - mean[0]) / std[0]
    test_y = torch.tensor(read_idx(args.data / "t10k-labels-idx1-ubyte.gz"), dtype=torch.int64)

    accuracies = []
    for seed in range(args.nets):
        torch.manual_seed(seed)
        net = conv_net(images.shape[1], images.shape[2], int(meta["num_classes"]))
        optimiser = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        for epoch in range(args.epochs):
            for group in optimiser.param_groups:
                group["lr"] = lr * (0.1 if epoch >= args.epochs // 2 else 1.0)
            order = torch.randperm(len(images))
            for i in range(0, len(images), 256):
                batch = order[i : i + 256]
                loss = F.cross_entropy(net(images[batch]), labels[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            correct = sum((net(test_x[i : i + 2000]).argmax(1) == test_y[i : i + 2000]).sum().item()
                          for i in range(0, len(test_x), 2000))
        accuracies.append(100 * correct / len(test_x))
        print(f"net {seed}: {accuracies[-1]:.2f}%")
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"mean {statistics.mean(accuracies):.2f} ± {spread:.2f}% over {len(accuracies)} networks")


if __name__ == "__main__":
    main()
