"""Dataset registry: one name per dataset, each with its shape, classes, normalisation and standard files, and a
user's own data (a folder of class sub-folders, or an .npz: `distill.data.own`) named by its path.

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
from distill.data.files import DataFile, cache_root, ensure_files
from distill.data.own import OwnData, looks_like_path, read_own
from distill.data.own import describe as own_describe
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
    own: bool = False  # a user's folder or .npz, named by its absolute path
    fingerprint: str = ""  # of a user's files: caches of networks trained on them are keyed by it
    test_split: str = "the official test split"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def key(self) -> str:
        """A file-name-safe name for caches: the built-in name, or the folder's name and its files' fingerprint."""
        return f"{Path(self.name).stem}-{self.fingerprint[:12]}" if self.own else self.name

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
    zca: torch.Tensor | None = None  # the whitening every split went through (flattened images @ zca), if any

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
        return Task(self.spec, **moved, extra=self.extra, zca=None if self.zca is None else self.zca.to(device))


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
            test_split="a fixed stratified 500-image split (seed 0): scikit-learn's digits have no test split",
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


def builtin_spec(name: str) -> DatasetSpec | None:
    """A built-in dataset by name (case-insensitive, common aliases allowed), or None."""
    return DATASETS.get(ALIASES.get(name.lower(), name.lower()))


def canonical_dataset(name: str) -> str:
    """A dataset's name as the presets key it (`MNIST`, `fmnist`: `mnist`, `fashion-mnist`), or a user's path made
    absolute (so a set file names its data wherever it is evaluated from); anything else is left for `get_spec` to
    refuse. Reads no file."""
    spec = builtin_spec(name)
    if spec is not None:
        return spec.name
    return str(Path(name).expanduser().absolute()) if looks_like_path(name) else name


def get_spec(name: str, image_size: int = 0, progress: bool = True) -> DatasetSpec:
    """A built-in dataset by name, or a user's folder or .npz by its path (read, or taken from the cache, here:
    its classes, size and channels are known only from its files). `image_size` N resizes a user's images to N x N."""
    spec = builtin_spec(name)
    if spec is not None:
        if image_size:
            raise DistillError(f"--image-size resizes your own images; {spec.name}'s images are "
                               f"{spec.size}x{spec.size}")
        return spec
    if not looks_like_path(name):
        raise DistillError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}, or give the path of a "
                           "folder of class sub-folders of images or of an .npz file")
    if image_size < 0:
        raise DistillError(f"--image-size must be a positive number of pixels, got {image_size}")
    return own_spec(read_own(name, image_size, cache_root(), progress))


def own_spec(data: OwnData) -> DatasetSpec:
    """The spec of a user's decoded dataset: normalised with its training images' own per-channel mean and std,
    and a tenth of its training images (at least one) held out for validation."""
    mean, std = data.stats
    arrays = (data.train_x, data.train_y, data.test_x, data.test_y)
    return DatasetSpec(name=data.source, channels=data.channels, size=data.size, class_names=data.class_names,
                       mean=mean, std=std, folder="", files=(), read=lambda _folder: arrays,
                       val_size=max(1, round(0.1 * len(data.train_y))), note=f"test split: {data.test_split}",
                       own=True, fingerprint=data.fingerprint, test_split=data.test_split)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else $DISTILL_DATA, else ~/.cache/distill/data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DISTILL_DATA")
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def _normalise(images: np.ndarray, spec: DatasetSpec) -> torch.Tensor:
    """uint8 [N,H,W] or [N,H,W,C] -> float32 [N,C,H,W] in the network's input space, with one float copy only
    (the operations run in place on it)."""
    array = np.ascontiguousarray(images, dtype=np.uint8)
    if not array.flags.writeable:  # read straight from a file's bytes: torch wants memory it may write (it will not)
        array = array.copy()
    x = torch.from_numpy(array)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return x.float().div_(255.0).sub_(mean).div_(std)


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


def load_task(name: str, root: str | os.PathLike | None = None, download: bool = True, image_size: int = 0,
              zca: bool | torch.Tensor = False) -> Task:
    """Read a dataset (from the data root, fetching missing files if allowed, or a user's path) and split off the
    validation set. Images stay uint8 until the split is made, so each becomes float once. `zca` True whitens every
    split with the ZCA whitening of the training split (`zca_whitening`); a matrix (a set's own) whitens with it."""
    spec = get_spec(name, image_size)
    folder = data_root(root) / spec.folder
    if not spec.own:
        ensure_files(spec, folder, download=download)
    train_x, train_y, test_x, test_y = spec.read(folder)
    _check_split(spec, folder, "training", train_x, train_y)
    _check_split(spec, folder, "test", test_x, test_y)
    train_y_t, test_y_t = torch.from_numpy(train_y), torch.from_numpy(test_y)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))
    val_idx, train_idx = order[: spec.val_size], order[spec.val_size :]
    task = Task(
        spec,
        train_x=_normalise(train_x[train_idx.numpy()], spec),
        train_y=train_y_t[train_idx],
        val_x=_normalise(train_x[val_idx.numpy()], spec),
        val_y=train_y_t[val_idx],
        test_x=_normalise(test_x, spec),
        test_y=test_y_t,
    )
    if zca is not False:
        task.zca = zca_whitening(task.train_x) if zca is True else zca.float().cpu()
        dim = task.train_x[0].numel()
        if tuple(task.zca.shape) != (dim, dim):
            raise DistillError(f"the ZCA matrix is {list(task.zca.shape)}, but {spec.name}'s images need "
                               f"[{dim}, {dim}]")
        for split in (task.train_x, task.val_x, task.test_x):
            whiten_(split, task.zca)
    return task


ZCA_REGULARISATION = 0.1  # KIP's and FRePo's: 0.1 x the mean eigenvalue added to every eigenvalue


def zca_whitening(images: torch.Tensor, regularisation: float = ZCA_REGULARISATION) -> torch.Tensor:
    """The ZCA whitening matrix W [D, D] of normalised images (flattened rows x: x @ W whitens), as the kernel and
    trajectory-matching papers compute it on CIFAR: the second-moment matrix C = X^T X / n of the training images,
    C = U diag(s) U^T, W = U diag((s + regularisation * mean(s)) ** -1/2) U^T. The regularisation keeps the
    directions of tiny variance (pixel noise) from being blown up. Summed in chunks, eigendecomposed in float64."""
    flat = images.flatten(1)
    second = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64)
    for start in range(0, len(flat), 4096):
        chunk = flat[start:start + 4096].double()
        second += chunk.T @ chunk
    second /= len(flat)
    eigenvalues, eigenvectors = torch.linalg.eigh(second)
    eigenvalues = eigenvalues.clamp_min(0)
    scale = (eigenvalues + regularisation * eigenvalues.mean()).rsqrt()
    return ((eigenvectors * scale) @ eigenvectors.T).float()


def whiten_(images: torch.Tensor, zca: torch.Tensor) -> torch.Tensor:
    """Whiten `images` [N, C, H, W] in place, a chunk at a time (no second copy of a split)."""
    flat = images.view(len(images), -1)
    for start in range(0, len(flat), 4096):
        flat[start:start + 4096] = flat[start:start + 4096] @ zca
    return images


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


def short_name(name: str) -> str:
    """A dataset's name for folder names and titles: a built-in's name, or the last part of a user's path."""
    return name if builtin_spec(name) is not None or not looks_like_path(name) else Path(name).stem


def describe_dataset(name: str, image_size: int = 0, root: str | os.PathLike | None = None,
                     progress: bool = True) -> dict:
    """What `distill data NAME|PATH` reports of one dataset: classes, images per class and split (the validation
    split is carved out of the training images a run sees), size, channels, mean and std of the training images."""
    spec = get_spec(name, image_size, progress)
    if spec.own:
        return own_describe(read_own(name, image_size, cache_root(), progress))
    task = load_task(name, root)
    k = spec.num_classes
    return {"source": spec.name, "classes": list(spec.class_names),
            "train_per_class": torch.bincount(torch.cat([task.train_y, task.val_y]), minlength=k).tolist(),
            "test_per_class": torch.bincount(task.test_y, minlength=k).tolist(), "size": spec.size,
            "channels": spec.channels, "mean": list(spec.mean), "std": list(spec.std), "test_split": spec.test_split}
