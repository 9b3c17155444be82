"""Data files that parse but hold the wrong thing, or are damaged in ways a reader could trip on: each is one
`DistillError` naming the file, never a traceback or an accuracy that means nothing."""

import gzip
import io
import struct
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from distill.data import load_task
from distill.data.files import _extract_safely
from distill.data.readers import read_idx_gz, read_usps_h5
from distill.errors import DistillError
from distill.evaluate import _train_on_set
from distill.synset import SyntheticSet

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, images=(28, 28), train_labels=None, test_labels=None) -> Path:
    """A tiny MNIST folder: 20 training and 10 test images, with the labels given (default: 0..9, in range)."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    write_idx(folder / MNIST_FILES[0], np.zeros((20, *images)))
    write_idx(folder / MNIST_FILES[1], np.arange(20) % 10 if train_labels is None else train_labels)
    write_idx(folder / MNIST_FILES[2], np.zeros((10, *images)))
    write_idx(folder / MNIST_FILES[3], np.arange(10) if test_labels is None else test_labels)
    return root


@pytest.mark.parametrize("files, fragment", [
    ({"test_labels": np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 200])}, "the test labels run from 0 to 200"),
    ({"test_labels": (np.arange(10) % 10).reshape(10, 1)}, "the test labels have shape [10, 1]"),
    ({"images": (32, 32)}, "the training images have shape [20, 32, 32], expected [N, 28, 28]"),
])
def test_files_that_are_not_the_datasets_are_refused(tmp_path, files, fragment):
    root = fake_mnist(tmp_path, **files)
    with pytest.raises(DistillError) as error:
        load_task("mnist", root, download=False)
    assert fragment in str(error.value)


def test_a_header_cut_short_is_a_damaged_file(tmp_path):
    path = tmp_path / "short.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00")  # promises three dimensions, holds half of one
    with pytest.raises(DistillError, match="ends inside its IDX header"):
        read_idx_gz(path)


@pytest.mark.parametrize("make, fragment", [
    (lambda h: h.create_dataset("test", data=np.zeros(3)), "'test' is not a group"),
    (lambda h: (h.create_group("test").create_dataset("data", data=np.array([b"x"])),
                h["test"].create_dataset("target", data=np.zeros(1))), "not a valid usps.h5"),
])
def test_malformed_usps_files(tmp_path, make, fragment):
    path = tmp_path / "usps.h5"
    with h5py.File(path, "w") as handle:
        make(handle)
    with pytest.raises(DistillError, match=fragment):
        read_usps_h5(path, "test")


def test_archives_are_unpacked_safely_without_tarfile_filters(tmp_path, monkeypatch):
    """Pythons before 3.10.12 / 3.11.4 have no extraction filters: members leaving the folder are refused by hand."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name in ("fine/data.bin", "../escaped.bin"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    archive.seek(0)
    folder = tmp_path / "cifar10"
    folder.mkdir()
    with tarfile.open(fileobj=archive) as tar, pytest.raises(tarfile.TarError, match="escaped.bin"):
        _extract_safely(tar, folder)
    assert not (tmp_path / "escaped.bin").exists()


def test_evaluation_trains_towards_the_labels_a_set_is_learning(monkeypatch):
    """A set that still learns its labels (label_logits) is trained towards them, not towards its starting labels."""
    seen = {}

    def record(model, start, images, labels, *args, **kwargs):
        seen["labels"] = labels
        return start

    monkeypatch.setattr(sys.modules["distill.evaluate"], "train_sgd", record)  # the package's `evaluate` is a function
    logits = torch.randn(10, 10)
    synset = SyntheticSet(torch.zeros(10, 1, 8, 8), torch.arange(10), {"num_classes": 10}, label_logits=logits)
    _train_on_set(None, {"w": torch.zeros(1)}, synset, "standard", None, torch.Generator())
    assert torch.allclose(seen["labels"], logits.softmax(1))
