"""A user's own labelled images: a folder of class sub-folders (optionally under `train/` and `test/`), or an `.npz`
of arrays.

Images are decoded once with Pillow and cached as uint8 under the cache folder (`decoded/`), keyed by the folder and
the asked size; the cache records a fingerprint of every file (path, size, modification time), so adding, removing or
editing an image decodes the folder again. Everything is checked before anything is written: a problem a user can
fix is one `DistillError` naming the file or class.

Without a test split, a stratified fraction of each class (TEST_FRACTION, seed SPLIT_SEED, the same for every run so
that sets of one folder are measured on one test split) is held out as the test split, and the split is recorded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from distill.errors import DistillError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
TEST_FRACTION = 0.2
SPLIT_SEED = 0
CACHE_FORMAT = "distill.decoded/1"


@dataclass(frozen=True)
class OwnData:
    """Decoded images of a user's dataset: uint8 arrays [N, H, W] (grayscale) or [N, H, W, 3], int64 labels."""

    source: str  # the folder or file, absolute
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    test_split: str  # where the test split came from, as recorded with every run
    fingerprint: str  # changes when any file does

    @property
    def channels(self) -> int:
        return 1 if self.train_x.ndim == 3 else self.train_x.shape[3]

    @property
    def size(self) -> int:
        return self.train_x.shape[1]

    @functools.cached_property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images (`channel_stats`), computed once per decoded dataset:
        a run asks for its dataset's spec when it checks its options and again when it loads the data."""
        return channel_stats(self.train_x)


def looks_like_path(name: str) -> bool:
    """A dataset argument names the user's own data when it is an existing path or is written as one."""
    return os.sep in name or "/" in name or name.lower().endswith(".npz") or Path(name).expanduser().exists()


def read_own(path: str | os.PathLike, image_size: int = 0, cache: Path | None = None,
             progress: bool = True) -> OwnData:
    """Read (or take from the cache) the dataset at `path`; `image_size` N > 0 resizes and centre-crops every image
    to N x N, 0 keeps the images as they are (they must then be square and of one size)."""
    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise DistillError(f"{source}: no such folder or file; --dataset takes a built-in name (distill data lists "
                           "them), a folder of class sub-folders of images, or an .npz file")
    if source.is_file():
        if source.suffix.lower() != ".npz":
            raise DistillError(f"{source}: a dataset file must be an .npz (x_train, y_train, x_test, y_test); "
                               "for images, give the folder that holds one sub-folder per class")
        return _memo(source, image_size, _file_fingerprint(source), lambda: _read_npz(source, image_size))
    train_root, test_root = _split_roots(source)
    listing = {"train": _list_classes(train_root, source)}
    if test_root is not None:
        listing["test"] = _list_classes(test_root, source)
    fingerprint = _folder_fingerprint(source, listing, image_size)
    return _memo(source, image_size, fingerprint,
                 lambda: _cached_folder(source, listing, image_size, fingerprint, cache, progress))


_MEMORY: dict[tuple, OwnData] = {}


def _memo(source: Path, image_size: int, fingerprint: str, read) -> OwnData:
    """One decode per process: a run reads its dataset when it checks the options and again when it loads it."""
    key = (str(source), image_size, fingerprint)
    if key not in _MEMORY:
        _MEMORY.clear()  # hold one dataset at a time
        _MEMORY[key] = read()
    return _MEMORY[key]


def _split_roots(source: Path) -> tuple[Path, Path | None]:
    if (source / "train").is_dir():
        test = source / "test"
        return source / "train", test if test.is_dir() else None
    if (source / "test").is_dir():
        raise DistillError(f"{source}: has a test/ folder but no train/ folder beside it")
    return source, None


def _list_classes(root: Path, source: Path) -> dict[str, list[Path]]:
    """The class folders under `root` (sorted by name, hidden ones skipped) and their image files, sorted."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            raise DistillError(f"{root}: holds images but no class sub-folders; put each class's images in a folder "
                               "named after the class")
        raise DistillError(f"{root}: no images found (expected one sub-folder per class holding "
                           f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} files)")
    classes = {}
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DistillError(f"{folder}: class folder {folder.name!r} holds no images "
                               f"({', '.join(IMAGE_SUFFIXES)}); remove it or add its images")
        classes[folder.name] = files
    if len(classes) < 2:
        raise DistillError(f"{root}: only one class ({next(iter(classes))!r}); distillation needs at least two")
    return classes


def _folder_fingerprint(source: Path, listing: dict, image_size: int) -> str:
    digest = hashlib.sha256(f"{CACHE_FORMAT} size={image_size}".encode())
    for split, classes in listing.items():
        for name, files in classes.items():
            for file in files:
                stat = file.stat()
                digest.update(f"{split}\t{name}\t{file.relative_to(source)}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
                              .encode())
    return digest.hexdigest()


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}".encode()).hexdigest()


def _cached_folder(source: Path, listing: dict, image_size: int, fingerprint: str, cache: Path | None,
                   progress: bool) -> OwnData:
    path = None
    if cache is not None:
        key = hashlib.sha256(f"{source}|{image_size}".encode()).hexdigest()[:16]
        path = cache / "decoded" / f"{source.name}-{key}.npz"
        if path.is_file():
            cached = _load_cache(path, source, fingerprint)
            if cached is not None:
                return cached
    data = _decode_folder(source, listing, image_size, fingerprint, progress)
    if path is not None:
        _save_cache(path, data)
    return data


def _load_cache(path: Path, source: Path, fingerprint: str) -> OwnData | None:
    """The cached arrays, or None when the files changed since (or the cache file is damaged: decoded again)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            info = json.loads(str(saved["info"]))
            if info.get("format") != CACHE_FORMAT or info.get("fingerprint") != fingerprint:
                return None
            arrays = {name: saved[name] for name in ("train_x", "train_y", "test_x", "test_y")}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return OwnData(str(source), **arrays, class_names=tuple(info["class_names"]), test_split=info["test_split"],
                   fingerprint=fingerprint)


def _save_cache(path: Path, data: OwnData) -> None:
    """Written through a temporary file renamed into place, so a cache file is whole or absent."""
    info = {"format": CACHE_FORMAT, "fingerprint": data.fingerprint, "class_names": list(data.class_names),
            "test_split": data.test_split, "source": data.source}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
            np.savez(handle, info=np.array(json.dumps(info)), train_x=data.train_x, train_y=data.train_y,
                     test_x=data.test_x, test_y=data.test_y)
        os.replace(handle.name, path)
    except OSError as exc:  # a cache that cannot be written costs time, not the run
        warnings.warn(f"could not cache the decoded images at {path} ({exc}); they will be decoded again next time")


def _decode_folder(source: Path, listing: dict, image_size: int, fingerprint: str, progress: bool) -> OwnData:
    from PIL import Image  # noqa: PLC0415 - only folders of images need Pillow

    class_names = tuple(listing["train"])
    if "test" in listing:
        unknown = sorted(set(listing["test"]) - set(class_names))
        if unknown:
            raise DistillError(f"{source / 'test'}: classes {', '.join(map(repr, unknown))} have no training images "
                               f"(no such folder under {source / 'train'})")
    files = [(split, class_names.index(name), file) for split, classes in listing.items()
             for name, paths in classes.items() for file in paths]
    decoded, modes, sizes = [], set(), {}
    for split, label, file in tqdm(files, desc=f"decoding {source.name}", unit="image", leave=False,
                                   disable=not progress or len(files) < 500):
        try:
            with Image.open(file) as image:
                image.load()
                gray = image.mode in GRAY_MODES
                picture = image.convert("L" if gray else "RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DistillError(f"{file}: not a readable image ({exc})") from None
        if image_size:
            from PIL import ImageOps  # noqa: PLC0415

            picture = ImageOps.fit(picture, (image_size, image_size), Image.Resampling.BICUBIC)
        modes.add("L" if gray else "RGB")
        sizes.setdefault(picture.size, file)
        decoded.append((split, label, np.asarray(picture, dtype=np.uint8)))
    if len(sizes) > 1 or (not image_size and next(iter(sizes))[0] != next(iter(sizes))[1]):
        shown = "; ".join(f"{f.relative_to(source)} is {w}x{h}" for (w, h), f in list(sizes.items())[:2])
        raise DistillError(f"{source}: the images are not square and of one size ({shown}); pass --image-size N to "
                           "resize and centre-crop them to N x N")
    if len(modes) > 1:
        warnings.warn(f"{source}: mixes grayscale and colour images; all are read as RGB")
        decoded = [(s, y, np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x) for s, y, x in decoded]
    arrays = {}
    for split in listing:
        picked = [(y, x) for s, y, x in decoded if s == split]
        arrays[split] = (np.stack([x for _, x in picked]), np.array([y for y, _ in picked], dtype=np.int64))
    if "test" in listing:
        (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
        split_note = f"the test/ folder ({len(test_y)} images)"
    else:
        train_x, train_y, test_x, test_y = held_out_split(*arrays["train"], class_names, source)
        split_note = held_out_note(len(test_y))
    return OwnData(str(source), train_x, train_y, test_x, test_y, class_names, split_note, fingerprint)


def held_out_note(n: int) -> str:
    return f"held out from the training images: {TEST_FRACTION:.0%} of each class, seed {SPLIT_SEED} ({n} images)"


def held_out_split(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], source: Path):
    """A stratified test split: TEST_FRACTION of each class (at least one image), drawn with SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c, name in enumerate(class_names):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise DistillError(f"{source}: class {name!r} has {len(members)} image(s); holding out a test split "
                               "needs at least 2 per class (or give train/ and test/ folders)")
        test.extend(rng.permutation(members)[: max(1, round(TEST_FRACTION * len(members)))].tolist())
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return images[~is_test], labels[~is_test], images[is_test], labels[is_test]


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path: Path, image_size: int) -> OwnData:
    """An .npz of x_train, y_train, x_test, y_test (uint8 images [N,H,W], [N,H,W,C] or [N,C,H,W] with C 1 or 3;
    integer labels) and optionally class_names (strings)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            missing = [key for key in NPZ_KEYS if key not in saved.files]
            if missing:
                raise DistillError(f"{path}: missing {', '.join(missing)}; an .npz dataset holds "
                                   f"{', '.join(NPZ_KEYS)} (and optionally class_names)")
            arrays = {key: saved[key] for key in NPZ_KEYS}
            names = saved["class_names"] if "class_names" in saved.files else None
    except (OSError, ValueError, EOFError) as exc:
        raise DistillError(f"{path}: not a readable .npz of arrays ({exc})") from None
    images = {split: _npz_images(path, f"x_{split}", arrays[f"x_{split}"]) for split in ("train", "test")}
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise DistillError(f"{path}: x_train holds images of shape {list(images['train'].shape[1:])} and x_test of "
                           f"{list(images['test'].shape[1:])}; both splits need one shape")
    labels = {split: _npz_labels(path, split, arrays[f"y_{split}"], len(images[split])) for split in ("train", "test")}
    k = int(labels["train"].max()) + 1
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DistillError(f"{path}: class_names must be a 1-D array of strings, got {names.dtype} "
                               f"{list(names.shape)}")
        k = len(names)
    class_names = tuple(str(n) for n in names) if names is not None else tuple(str(c) for c in range(k))
    train_y, test_y = labels["train"], labels["test"]
    named = " that class_names names" if names is not None else ""
    if train_y.min() < 0 or train_y.max() >= k:
        raise DistillError(f"{path}: y_train runs from {train_y.min()} to {train_y.max()}, outside the classes "
                           f"0..{k - 1}{named}")
    present = set(np.unique(train_y).tolist())
    if len(present) < 2:
        raise DistillError(f"{path}: y_train holds only one class; distillation needs at least two")
    absent = [class_names[c] for c in range(k) if c not in present]
    if absent:
        raise DistillError(f"{path}: class(es) {', '.join(map(repr, absent))} have no training images")
    if test_y.min() < 0 or (names is not None and test_y.max() >= k):
        raise DistillError(f"{path}: y_test runs from {test_y.min()} to {test_y.max()}, outside the classes "
                           f"0..{k - 1}{named}")
    unseen = sorted(set(np.unique(test_y).tolist()) - present)
    if unseen:
        raise DistillError(f"{path}: y_test holds classes {unseen} that y_train lacks")
    if image_size:
        images = {split: _resize_all(x, image_size) for split, x in images.items()}
    elif images["train"].shape[1] != images["train"].shape[2]:
        raise DistillError(f"{path}: the images are {images['train'].shape[2]}x{images['train'].shape[1]}, not "
                           "square; pass --image-size N to resize and centre-crop them to N x N")
    return OwnData(str(path), images["train"], labels["train"], images["test"], labels["test"], class_names,
                   f"x_test, y_test of the file ({len(labels['test'])} images)", _file_fingerprint(path))


def _npz_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W] or [N,H,W,C]; a [N,C,H,W] array (C 1 or 3 and the last axis not) is moved to channels last."""
    if x.dtype != np.uint8:
        raise DistillError(f"{path}: {key} is {x.dtype}; images must be uint8 (0..255)")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[3] == 3)) or len(x) == 0:
        raise DistillError(f"{path}: {key} has shape {list(x.shape)}; expected images [N, H, W], [N, H, W, C] or "
                           "[N, C, H, W] with C 1 or 3, N at least 1")
    return np.ascontiguousarray(x)


def _npz_labels(path: Path, split: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise DistillError(f"{path}: y_{split} is {y.dtype}; labels must be integers (class indices)")
    if y.ndim != 1 or len(y) != n:
        raise DistillError(f"{path}: y_{split} has shape {list(y.shape)}, expected one label per image of x_{split} "
                           f"([{n}])")
    return y.astype(np.int64)


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image, ImageOps  # noqa: PLC0415

    return np.stack([np.asarray(ImageOps.fit(Image.fromarray(x), (size, size), Image.Resampling.BICUBIC))
                     for x in images])


def describe(data: OwnData) -> dict:
    """What `distill data PATH` reports: classes, images per class and split, size, channels, mean and std."""
    mean, std = data.stats
    return {
        "source": data.source,
        "classes": list(data.class_names),
        "train_per_class": np.bincount(data.train_y, minlength=len(data.class_names)).tolist(),
        "test_per_class": np.bincount(data.test_y, minlength=len(data.class_names)).tolist(),
        "size": data.size,
        "channels": data.channels,
        "mean": [round(m, 4) for m in mean],
        "std": [round(s, 4) for s in std],
        "test_split": data.test_split,
    }


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images in [0, 1], summed in float64 a chunk at a time (a
    float copy of 50,000 colour images would take 1.2 GB)."""
    channels = 1 if images.ndim == 3 else images.shape[3]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].reshape(-1, channels).astype(np.float64) / 255.0
        total += part.sum(axis=0)
        squares += np.square(part).sum(axis=0)
        count += len(part)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(mean.tolist()), tuple(float(max(s, 1e-3)) for s in std)
