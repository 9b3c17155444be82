"""Dataset registry: one name per dataset, each with its shape, classes, normalisation and standard files.

`load_task(name)` returns the normalised train / validation / test tensors every other module works on. The
validation split is carved out of the training split with a fixed seed, so hyperparameters and checkpoints are chosen
without ever looking at the test split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from distill.data import readers
from distill.data.files import DataFile, ensure_files
from distill.errors import DistillError

DEFAULT_DATA_ROOT = Path.home() / ".cache" / "distill" / "data"
DIGITS = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class DatasetSpec:
    """What distill knows about a dataset before reading it."""

    name: str
    channels: int
    size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folder: str
    files: tuple[DataFile, ...]
    read: Callable[[Path], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    val_size: int
    note: str = ""
    archive: DataFile | None = None  # fetched and unpacked when the files have no URL of their own

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)


@dataclass
class Task:
    """A dataset ready for training: normalised float tensors [N, C, H, W] and int64 labels."""

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.spec.image_shape

    def to(self, device: torch.device | str) -> "Task":
        """Move every split to `device` (the data sets here fit in GPU memory, so batches need no copies)."""
        names = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
        moved = {name: getattr(self, name).to(device) for name in names}
        return Task(self.spec, **moved, extra=self.extra)


def _read_idx_dataset(folder: Path):
    train_x = readers.read_idx_gz(folder / "train-images-idx3-ubyte.gz")
    train_y = readers.read_idx_gz(folder / "train-labels-idx1-ubyte.gz")
    test_x = readers.read_idx_gz(folder / "t10k-images-idx3-ubyte.gz")
    test_y = readers.read_idx_gz(folder / "t10k-labels-idx1-ubyte.gz")
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(images) != len(labels):
            raise DistillError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)


def _read_cifar10(folder: Path):
    batches = folder / "cifar-10-batches-py"
    train_x, train_y = readers.read_cifar_batches([batches / f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = readers.read_cifar_batches([batches / "test_batch"])
    return train_x, train_y, test_x, test_y


def _read_usps(folder: Path):
    train_x, train_y = readers.read_usps_h5(folder / "usps.h5", "train")
    test_x, test_y = readers.read_usps_h5(folder / "usps.h5", "test")
    return train_x, train_y, test_x, test_y


def _read_digits(_folder: Path):
    """scikit-learn's bundled 8x8 digits: no download. A fixed stratified 500-image test split."""
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target.astype(np.int64), test_size=500, stratify=digits.target, random_state=0
    )
    return train_x, train_y, test_x, test_y


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _idx_files(url: str, md5s: dict[str, str]) -> tuple[DataFile, ...]:
    return tuple(DataFile(name, url + name, md5) for name, md5 in md5s.items())


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="digits",
            channels=1,
            size=8,
            class_names=DIGITS,
            mean=(0.3053,),
            std=(0.3760,),
            folder="",
            files=(),
            read=_read_digits,
            val_size=200,
            note="bundled with scikit-learn, needs no files",
        ),
        DatasetSpec(
            name="mnist",
            channels=1,
            size=28,
            class_names=DIGITS,
            mean=(0.1307,),
            std=(0.3081,),
            folder="mnist",
            files=_idx_files(
                _MNIST_URL,
                {
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
            ),
            read=_read_idx_dataset,
            val_size=5000,
        ),
        DatasetSpec(
            name="fashion-mnist",
            channels=1,
            size=28,
            class_names=("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Boot"),
            mean=(0.2860,),
            std=(0.3530,),
            folder="fashion-mnist",
            files=_idx_files(
                _FASHION_URL,
                {
                    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
                },
            ),
            read=_read_idx_dataset,
            val_size=5000,
        ),
        DatasetSpec(
            name="usps",
            channels=1,
            size=16,
            class_names=DIGITS,
            mean=(0.2545,),
            std=(0.3846,),
            folder="usps",
            files=(DataFile("usps.h5", None, None),),
            read=_read_usps,
            val_size=700,
            note="usps.h5 has no official download; copy it into the folder",
        ),
        DatasetSpec(
            name="cifar10",
            channels=3,
            size=32,
            class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            folder="cifar10",
            files=tuple(
                DataFile(f"cifar-10-batches-py/{name}", None, None)
                for name in ["batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
            ),
            read=_read_cifar10,
            val_size=5000,
            note="the python-version batches, as unpacked from cifar-10-python.tar.gz",
            archive=DataFile(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
            ),
        ),
    )
}

ALIASES = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name (case-insensitive, common aliases allowed)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DistillError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else $DISTILL_DATA, else ~/.cache/distill/data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DISTILL_DATA")
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def _normalise(images: np.ndarray, spec: DatasetSpec) -> torch.Tensor:
    """uint8 [N,H,W] or [N,H,W,C] -> float32 [N,C,H,W] in the network's input space."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (x - mean) / std


def _check_split(spec: DatasetSpec, folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Files that parse but hold the wrong thing (another size of image, labels out of range or of another shape)
    are refused here: read on, they would crash deep in a network or, worse, report an accuracy that means nothing
    (a label file of shape [N, 1] compares every prediction with every label)."""
    size, channels = spec.size, spec.channels
    expected = (size, size) if channels == 1 else (size, size, channels)
    if images.ndim != len(expected) + 1 or tuple(images.shape[1:]) != expected:
        raise DistillError(f"{folder}: the {split} images have shape {list(images.shape)}, expected [N, "
                           f"{', '.join(map(str, expected))}] for {spec.name}; the files are not {spec.name}'s")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DistillError(f"{folder}: the {split} labels have shape {list(labels.shape)}, expected one per image "
                           f"([{len(images)}])")
    k = len(spec.class_names)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise DistillError(f"{folder}: the {split} labels run from {labels.min()} to {labels.max()}, outside "
                           f"{spec.name}'s classes 0..{k - 1}; the files are damaged or not {spec.name}'s")


def load_task(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Task:
    """Read a dataset from the data root (fetching missing files if allowed) and split off the validation set."""
    spec = get_spec(name)
    folder = data_root(root) / spec.folder
    ensure_files(spec, folder, download=download)
    train_x, train_y, test_x, test_y = spec.read(folder)
    _check_split(spec, folder, "training", train_x, train_y)
    _check_split(spec, folder, "test", test_x, test_y)
    train = _normalise(train_x, spec)
    test = _normalise(test_x, spec)
    train_y_t, test_y_t = torch.from_numpy(train_y), torch.from_numpy(test_y)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    val_idx, train_idx = order[: spec.val_size], order[spec.val_size :]
    return Task(
        spec,
        train_x=train[train_idx],
        train_y=train_y_t[train_idx],
        val_x=train[val_idx],
        val_y=train_y_t[val_idx],
        test_x=test,
        test_y=test_y_t,
    )


def dataset_status(root: str | os.PathLike | None = None) -> list[dict]:
    """For `distill data`: each dataset, its folder, and which of its files are present or missing."""
    rows = []
    for spec in DATASETS.values():
        folder = data_root(root) / spec.folder
        missing = [f.name for f in spec.files if not (folder / f.name).is_file()]
        rows.append(
            {
                "name": spec.name,
                "folder": str(folder) if spec.files else "(bundled)",
                "present": not missing,
                "missing": missing,
                "note": spec.note,
            }
        )
    return rows
