"""One reader per standard file format. Each returns
`(images uint8/float array [N,H,W] or [N,H,W,C], labels int64 [N])`.

Readers never trust their input: a truncated or malformed file raises `DistillError` naming the file.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from distill.errors import DistillError


def read_idx_gz(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (MNIST, Fashion-MNIST) into a uint8 array of the shape its header gives."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DistillError(f"{path} is not a readable gzip file ({exc}); delete it and fetch it again") from None
    if len(raw) < 4:
        raise DistillError(f"{path} is too short to be an IDX file")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DistillError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DistillError(f"{path} ends inside its IDX header; the file is damaged")
    shape = struct.unpack(f">{ndim}I", raw[4:header_end])
    expected = int(np.prod(shape))
    if len(raw) - header_end != expected:
        raise DistillError(
            f"{path} holds {len(raw) - header_end} data bytes but its header promises {expected}; the file is damaged"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches that admits only the numpy globals such files need, so a tampered file cannot run
    code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # noqa: PLC0415 - numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1
                from numpy.core.multiarray import _reconstruct  # noqa: PLC0415

            return _reconstruct
        return getattr(np, name)


def read_cifar_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 python-version batch files into images [N,32,32,3] uint8 and labels [N]."""
    images, labels = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                batch = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as exc:
            raise DistillError(f"{path} is not a valid CIFAR-10 batch ({exc})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(batch_labels):
            raise DistillError(f"{path} has data of shape {data.shape}, expected [N, 3072] with one label each")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def read_usps_h5(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split ('train' or 'test') of the common `usps.h5` (groups with `data` [N,256] in [0,1] and `target`)."""
    import h5py  # noqa: PLC0415 - only USPS needs it

    try:
        with h5py.File(path, "r") as handle:
            group = handle[split]
            if not isinstance(group, h5py.Group):
                raise DistillError(f"{path} is not a valid usps.h5 file ('{split}' is not a group)")
            data = np.asarray(group["data"][:], dtype=np.float32)
            target = np.asarray(group["target"][:], dtype=np.int64)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DistillError(f"{path} is not a valid usps.h5 file ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 256 or len(data) != len(target):
        raise DistillError(f"{path}: {split}/data has shape {data.shape}, expected [N, 256] with one target each")
    return (np.clip(data, 0.0, 1.0) * 255.0).round().astype(np.uint8).reshape(-1, 16, 16), target
