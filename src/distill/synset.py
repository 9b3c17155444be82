"""The synthetic set, the artifact users keep and share, and its safetensors file format (GUIDE §4).

A file holds `images` [N,C,H,W] float32 (already normalised), `labels` ([N] int64 hard or [N,K] float32
probabilities), optionally `lrs` [T] or [T, P] with `step` [N] (the learned schedule: T = steps x epochs, one rate
per step, or per step and per parameter tensor of the network in its parameter order) and `init.<name>`
tensors (the fixed initial network the set was distilled for). Everything else is string metadata in the header.
Loading checks all of it, so a damaged or tampered file is rejected with a clear message instead of training a
network on garbage. The header field `sha256` is a SHA-256 of every tensor (name, dtype, shape, bytes) and every other
header field, written with the file and verified when it is read: one changed byte anywhere in the tensors or the
header is refused. A file written before the field existed still loads, with a warning that it cannot be verified.
The hash is evidence of change, not of origin: whoever rewrites a file can rewrite its hash (`distill audit` judges
what a set does). No pickle anywhere: a safetensors file cannot run code when loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from distill.errors import DistillError

FORMAT = "distill.synset/1"
HASH_FIELD = "sha256"
REQUIRED_META = ("dataset", "num_classes", "image_shape", "mean", "std", "method", "arch", "ipc", "steps", "epochs",
                 "init")  # besides "format", which only a file has
JSON_META = ("num_classes", "image_shape", "mean", "std", "ipc", "images", "steps", "epochs", "config", "results",
             "class_names", "attack", "adapt", "teacher_labels", "started_from", "data")


@dataclass
class SyntheticSet:
    """Synthetic images plus what is needed to train on them.

    During distillation `images`, `log_lrs` and (when labels are learned) `label_logits` are leaf tensors that the
    outer optimiser updates. The learning rates live in log space and the labels as logits, so they stay positive
    and stay probabilities without clamping; `targets()` is what training uses, `labels` what was given.
    """

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict
    step: torch.Tensor | None = None
    log_lrs: torch.Tensor | None = None
    init_params: dict[str, torch.Tensor] | None = None
    extra: dict = field(default_factory=dict)
    label_logits: torch.Tensor | None = None  # learned soft labels [N, K], as logits (None: `labels` as given)
    zca: torch.Tensor | None = None  # [D, D]: the images live in ZCA-whitened space (flattened normalised images @ zca)

    @property
    def lrs(self) -> torch.Tensor | None:
        return None if self.log_lrs is None else self.log_lrs.exp()

    @property
    def num_steps(self) -> int:
        return int(self.meta.get("steps", 1))

    @property
    def num_epochs(self) -> int:
        return int(self.meta.get("epochs", 1))

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def targets(self) -> torch.Tensor:
        """What networks are trained towards: the learned soft labels (probabilities [N, K]) when the set learns
        them, else `labels` (hard [N] or soft [N, K])."""
        return self.labels if self.label_logits is None else self.label_logits.softmax(1)

    def target_probabilities(self) -> torch.Tensor:
        """`targets()` as probabilities [N, K]: hard labels become one-hot rows (what a regression or a blend needs)."""
        targets = self.targets()
        if targets.ndim == 1:
            targets = torch.nn.functional.one_hot(targets, self.num_classes).to(self.images.dtype)
        return targets

    def hard_labels(self) -> torch.Tensor:
        """Class index per image (argmax for soft labels)."""
        return self.labels if self.labels.ndim == 1 else self.labels.argmax(1)

    def named_trainable(self) -> dict[str, torch.Tensor]:
        """The tensors an outer optimiser may update, by name (the names key checkpoints and step sizes)."""
        named = {"images": self.images, "log_lrs": self.log_lrs, "label_logits": self.label_logits}
        return {k: t for k, t in named.items() if t is not None and t.requires_grad}

    def trainable(self) -> list[torch.Tensor]:
        """The tensors an outer optimiser may update."""
        return list(self.named_trainable().values())

    def detached(self) -> "SyntheticSet":
        """A copy with no autograd history, safe to save or evaluate; learned labels become its (soft) `labels`."""
        clone = lambda t: None if t is None else t.detach().clone()  # noqa: E731
        init = None if self.init_params is None else {k: v.detach().clone() for k, v in self.init_params.items()}
        return SyntheticSet(clone(self.images), clone(self.targets()), dict(self.meta), clone(self.step),
                            clone(self.log_lrs), init, dict(self.extra), zca=clone(self.zca))

    @torch.no_grad()
    def clamp_to_pixel_range_(self) -> None:
        """Keep every image a valid picture: its pixels, once un-normalised, inside [0, 1]."""
        mean = torch.tensor(self.meta["mean"], device=self.images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.meta["std"], device=self.images.device).view(1, -1, 1, 1)
        self.images.copy_(torch.maximum(torch.minimum(self.images, (1 - mean) / std), -mean / std))

    def unnormalised_images(self) -> torch.Tensor:
        """Images mapped back to [0, 1] pixel space, for pictures (un-whitened first, if they are whitened)."""
        mean = torch.tensor(self.meta["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.meta["std"]).view(1, -1, 1, 1)
        images = self.images.detach().cpu()
        if self.zca is not None:  # x_white = x @ zca, and zca is symmetric: x = solve(zca, x_white^T)^T
            flat = torch.linalg.solve(self.zca.double().cpu(), images.flatten(1).double().T).T
            images = flat.float().view_as(images)
        return (images * std + mean).clamp(0, 1)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, renamed into place only when complete. The file gets the
    permissions any new file gets here (0644 under the usual umask), not the owner-only ones a temporary file is
    made with, so results can be shared. A file that cannot be written is a `DistillError` naming it."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        write(tmp_name)
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except OSError as exc:
        raise DistillError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda name: Path(name).write_text(text))


def save(synset: SyntheticSet, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `synset` to a .safetensors file atomically; refuses to replace an existing file unless `overwrite`, and
    refuses a set `load` would refuse (`check_set`) before writing anything, so no file is made that cannot be read."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DistillError(f"{path} exists; pass --force (overwrite=True) to replace it")
    s = synset.detached()
    check_set(s, f"cannot save {path}")
    tensors = {"images": s.images.float().cpu().contiguous(), "labels": s.labels.cpu().contiguous()}
    if s.log_lrs is not None:
        tensors["lrs"] = s.log_lrs.exp().float().cpu().contiguous()
        tensors["step"] = s.step.long().cpu().contiguous()
    for name, value in (s.init_params or {}).items():
        tensors[f"init.{name}"] = value.float().cpu().contiguous()
    if s.zca is not None:
        tensors["zca"] = s.zca.float().cpu().contiguous()
    meta = {"format": FORMAT, **{k: v for k, v in s.meta.items() if k != HASH_FIELD}}
    header = {k: (json.dumps(v) if k in JSON_META or not isinstance(v, str) else v) for k, v in meta.items()}
    header[HASH_FIELD] = content_hash(tensors, header)
    _atomic_write(path, lambda name: save_file(tensors, name, metadata=header))
    return path


def _read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.is_dir():
        raise DistillError(f"{path} is a folder; give the set file in it (a run writes synset.safetensors)")
    if not path.is_file():
        raise DistillError(f"{path}: no such file")
    with open(path, "rb") as handle:
        start = handle.read(9)
    # A safetensors file is an 8-byte header length and then a JSON header; a pickle starts with \x80 (protocol 2+)
    # and a torch.save file is a zip ("PK").
    if start[8:9] != b"{" and (start[:1] == b"\x80" or start[:2] == b"PK"):
        raise DistillError(f"{path} is a pickle / torch.save file, not a safetensors synthetic set; "
                           "refusing to load it")
    try:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DistillError(f"{path} is not a valid safetensors file ({exc})") from None
    return tensors, header


class UnverifiedSetWarning(UserWarning):
    """A set file without a recorded hash (written before distill recorded one): it loads, unverified."""


def content_hash(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> str:
    """SHA-256 of a set file's contents: every tensor's name, dtype, shape and bytes, and every header field but the
    hash itself, in name order (what safetensors hands back does not depend on the order they were written in)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    fields = {k: v for k, v in header.items() if k != HASH_FIELD}
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


def _verify_hash(tensors: dict[str, torch.Tensor], header: dict[str, str], path: Path) -> None:
    """Refuse a file whose contents changed since it was written; let one written before hashes were, with a note."""
    recorded = header.get(HASH_FIELD)
    if recorded is None:
        warnings.warn(f"{path} records no hash (written before distill recorded one): it loads, but a change to it "
                      "since it was written cannot be detected; saving it again (distill relabel, or "
                      "distill.save(distill.load(...), new_path)) records one", UnverifiedSetWarning, stacklevel=3)
        return
    if content_hash(tensors, header) != recorded:
        raise DistillError(f"{path}: its contents do not match the hash recorded when it was written (the file was "
                           "changed or damaged since); refusing to load it")


def _check(condition: bool, where: str | os.PathLike, message: str) -> None:
    if not condition:
        raise DistillError(f"{where}: {message}")


def load(path: str | os.PathLike) -> SyntheticSet:
    """Read and validate a synthetic-set file. Anything inconsistent raises `DistillError` naming the problem."""
    path = Path(path)
    tensors, header = _read_raw(path)
    _check(header.get("format") == FORMAT, path, f"not a distill synthetic set (format {header.get('format')!r}, "
                                                 f"expected {FORMAT!r})")
    _verify_hash(tensors, header, path)
    meta: dict = {}
    for key, value in header.items():
        if key in ("format", HASH_FIELD):
            continue
        if key in JSON_META:
            try:
                meta[key] = json.loads(value)
            except json.JSONDecodeError:
                raise DistillError(f"{path}: header field {key!r} is not valid JSON") from None
        else:
            meta[key] = value
    _check("images" in tensors and "labels" in tensors, path, "needs tensors 'images' and 'labels'")
    lrs = tensors.get("lrs")
    init = {k[len("init."):]: v for k, v in tensors.items() if k.startswith("init.")}
    synset = SyntheticSet(tensors["images"], tensors["labels"], meta, None if lrs is None else tensors.get("step"),
                          None if lrs is None else lrs.log(), init or None, zca=tensors.get("zca"))
    check_set(synset, path)
    unknown = set(tensors) - {"images", "labels", "lrs", "step", "zca"} - {f"init.{k}" for k in init}
    _check(not unknown, path, f"unexpected tensors {sorted(unknown)}")
    return synset


def _as_stored(meta: dict, where: str | os.PathLike) -> dict:
    """`meta` as a file's header gives it back: its JSON fields through JSON (a tuple comes back a list), so that a
    set in memory is judged by what its file would hold."""
    try:
        return {k: json.loads(json.dumps(v)) if k in JSON_META else v for k, v in meta.items()}
    except (TypeError, ValueError) as exc:
        raise DistillError(f"{where}: a header field cannot be stored as JSON ({exc})") from None


def check_set(synset: SyntheticSet, where: str | os.PathLike = "the set") -> None:
    """Everything a set must satisfy to be trained on, one `DistillError` naming the first problem (after `where`, a
    file's path or what was being done). `load` runs it on what it read, `save` before writing (so it never writes a
    file `load` refuses) and evaluation before training (so a hand-made set with a label out of range or images of
    the wrong size is one line, not an IndexError or a shape mismatch deep inside training)."""
    meta = _as_stored(synset.meta, where)
    missing = [k for k in REQUIRED_META if k not in meta]
    _check(not missing, where, f"header (meta) lacks {', '.join(missing)}")
    images, labels = synset.images.detach(), synset.labels.detach()
    shape = meta["image_shape"]
    num_classes = meta["num_classes"]
    _check(isinstance(num_classes, int) and num_classes >= 2, where, "num_classes must be an integer >= 2")
    _check(isinstance(shape, list) and len(shape) == 3, where, "image_shape must be [C, H, W]")
    _check_header(meta, where)
    _check(images.dtype == torch.float32 and images.ndim == 4 and list(images.shape[1:]) == shape, where,
           f"images have shape {list(images.shape)} ({images.dtype}), "
           f"expected float32 [N, {', '.join(map(str, shape))}]")
    n = images.shape[0]
    _check(n > 0, where, "holds no images")
    if "images" in meta:  # a set whose size is free of the classes (--images)
        _check(isinstance(meta["images"], int) and meta["images"] >= 1, where, "images must be a whole number >= 1")
        _check(n == meta["images"] * meta["steps"], where, f"holds {n} images, but images x steps = "
                                                           f"{meta['images']} x {meta['steps']}")
    else:
        per_set = meta["ipc"] * num_classes * meta["steps"]
        _check(n == per_set, where, f"holds {n} images, but ipc x classes x steps = {meta['ipc']} x {num_classes} x "
                                    f"{meta['steps']} = {per_set}")
    _check(bool(torch.isfinite(images).all()), where, "images contain NaN or infinity")
    if labels.ndim == 1:
        _check(labels.dtype == torch.int64 and labels.shape[0] == n, where, f"labels must be int64 [{n}]")
        _check(bool(((labels >= 0) & (labels < num_classes)).all()), where, f"labels outside 0..{num_classes - 1}")
    else:
        _check(labels.dtype == torch.float32 and list(labels.shape) == [n, num_classes], where,
               f"soft labels must be float32 [{n}, {num_classes}], got {list(labels.shape)}")
        _check(bool((labels >= 0).all()) and bool(torch.allclose(labels.sum(1), torch.ones_like(labels[:, 0]),
                                                                 atol=1e-3)), where,
               "soft labels must be probabilities (non-negative rows summing to 1)")
    steps, epochs = meta["steps"], meta["epochs"]
    if synset.log_lrs is not None:
        lrs, step = synset.lrs.detach(), synset.step
        _check(lrs.ndim in (1, 2) and lrs.shape[0] == steps * epochs, where,
               f"lrs must have steps x epochs = {steps * epochs} rows, got {list(lrs.shape)}")
        if lrs.ndim == 2:
            columns = _parameter_count(meta)
            _check(lrs.shape[1] == columns, where,
                   f"per-layer lrs need one column per parameter tensor of a {meta['arch']} "
                   f"({columns}), got {lrs.shape[1]}")
        _check(bool(torch.isfinite(lrs).all()) and bool((lrs > 0).all()), where, "lrs must be positive and finite")
        _check(step is not None and step.dtype == torch.int64 and list(step.shape) == [n], where,
               f"a set with lrs needs 'step' int64 [{n}]")
        _check(bool(((step >= 0) & (step < steps)).all()), where, f"step values outside 0..{steps - 1}")
    if synset.init_params:
        _check_init(synset.init_params, meta, where)
    if synset.zca is not None:
        dim = shape[0] * shape[1] * shape[2]
        zca = synset.zca.detach()
        _check(zca.dtype == torch.float32 and list(zca.shape) == [dim, dim], where,
               f"the ZCA matrix must be float32 [{dim}, {dim}] (C x H x W squared), got {list(zca.shape)}")
        _check(bool(torch.isfinite(zca).all()), where, "the ZCA matrix contains NaN or infinity")
    if meta["init"] == "fixed":
        _check(bool(synset.init_params), where, "init is 'fixed' but the set stores no initial network (init.*)")


def check_not_poison(synset: SyntheticSet, consequence: str) -> None:
    """Refuse a poison (init `loaded`, made by `distill attack`) where a set to train on is expected: it is made to be
    applied to networks already trained, so `consequence` (what doing it anyway would give) says why it is refused."""
    if synset.meta.get("init") == "loaded" and isinstance(synset.meta.get("adapt"), dict):
        raise DistillError(f"this set adapts networks pretrained on {synset.meta['adapt'].get('source')} (init "
                           f"'loaded'): {consequence}; `distill show` prints its measured effect, `distill adapt` "
                           "makes and measures a new one")
    if synset.meta.get("init") == "loaded":
        raise DistillError(f"this set is a poison (init 'loaded') for networks already trained: {consequence}; "
                           "`distill show` prints its measured effect, `distill attack` crafts and measures a new one")


METHOD_NAME = re.compile(r"[a-z][a-z0-9-]*")
INIT_MODES = ("fixed", "random", "loaded")  # loaded: an attack's poison, applied to networks already trained


def _check_header(meta: dict, where: str | os.PathLike) -> None:
    """The header's fields hold values a set can have and agree with the dataset it names, so that a tampered or
    foreign file is refused here in one line, not later by a network of the wrong shape or a traceback."""
    from distill.data import builtin_spec, looks_like_path  # noqa: PLC0415
    from distill.models import MODELS  # noqa: PLC0415

    spec = builtin_spec(str(meta["dataset"]))
    if spec is not None:
        expected_shape = [spec.channels, spec.size, spec.size]
        _check(meta["num_classes"] == len(spec.class_names) and meta["image_shape"] == expected_shape, where,
               f"{spec.name} has {len(spec.class_names)} classes of {expected_shape} images; the header says "
               f"{meta['num_classes']} classes of {meta['image_shape']}")
        channels = spec.channels
    else:  # a user's folder or file, which need not be on this machine: the header must agree with itself
        _check(looks_like_path(str(meta["dataset"])), where, f"made from an unknown dataset, {meta['dataset']!r}")
        shape, k = meta["image_shape"], meta["num_classes"]
        _check(isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2]
               and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape), where,
               f"image_shape must be [channels (1 or 3), size, size], got {shape!r}")
        _check(isinstance(k, int) and not isinstance(k, bool) and k >= 2, where,
               f"num_classes must be a whole number of at least 2, got {k!r}")
        names = meta.get("class_names")
        _check(names is None or (isinstance(names, list) and len(names) == k), where,
               f"class_names must name the {k} classes, got {names!r}")
        channels = shape[0]
    for key in ("ipc", "steps", "epochs"):
        value = meta[key]
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, where,
               f"{key} must be a whole number of at least 1, got {value!r}")
    # a name, not one of this version's methods: the file format and the evaluation know no method, so a set made
    # by a method added later (or outside this package) still loads and trains
    _check(isinstance(meta["method"], str) and METHOD_NAME.fullmatch(meta["method"]) is not None, where,
           f"method must be a method's name (lower-case letters, digits and dashes), got {meta['method']!r}")
    _check(meta["arch"] in MODELS, where, f"unknown network {meta['arch']!r}")
    _check(meta["init"] in INIT_MODES, where, f"init must be one of {', '.join(INIT_MODES)}, got {meta['init']!r}")
    for key in ("mean", "std"):
        value = meta[key]
        _check(isinstance(value, list) and len(value) == channels
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value),
               where, f"{key} must be {channels} number(s), one per channel, got {value!r}")
    _check(all(v > 0 for v in meta["std"]), where, "std must be positive")
    names = meta.get("class_names")
    _check(names is None or (isinstance(names, list) and len(names) == meta["num_classes"]
                             and all(isinstance(n, str) for n in names)), where,
           f"class_names must be {meta['num_classes']} names, got {names!r}")


def _network(meta: dict):
    """The network a set's header names (for its parameter names and shapes; never trained here)."""
    from distill.models import create_model  # noqa: PLC0415

    return create_model(meta["arch"], tuple(meta["image_shape"]), int(meta["num_classes"]))


def _parameter_count(meta: dict) -> int:
    """How many parameter tensors the set's network has (the columns of per-layer lrs)."""
    try:
        model = _network(meta)
    except DistillError:
        return -1  # an unknown network: no column count matches, so the file is rejected with the message above
    return len(list(model.parameters()))


def _check_init(init: dict[str, torch.Tensor], meta: dict, where: str | os.PathLike) -> None:
    """The stored initial network must be exactly the parameters of the named architecture."""
    expected = {k: list(v.shape) for k, v in _network(meta).named_parameters()}
    got = {k: list(v.shape) for k, v in init.items()}
    _check(expected == got, where, f"stored init network does not match a {meta['arch']} for this data")
    _check(all(bool(torch.isfinite(v).all()) for v in init.values()), where, "init network has NaN or infinity")


def describe(synset: SyntheticSet) -> dict:
    """A JSON-friendly summary for `distill show`."""
    m = synset.meta
    out = {k: m.get(k) for k in ("dataset", "method", "arch", "ipc", "steps", "epochs", "init")}
    if m.get("class_names"):
        out["classes"] = ", ".join(m["class_names"])
    if m.get("data"):  # how a user's own data was read: its test split, size, transforms
        out["data"] = m["data"]
    out["images"] = list(synset.images.shape)
    out["labels"] = "soft" if synset.labels.ndim == 2 else "hard"
    if synset.log_lrs is not None:
        lrs = synset.lrs.detach().cpu().tolist()
        out["lrs"] = [round(x, 5) if isinstance(x, float) else [round(v, 5) for v in x] for x in lrs]
        if synset.lrs.ndim == 2:  # per-layer rates: name the columns
            out["lrs_columns"] = [name for name, _ in _network(m).named_parameters()]
        if m.get("lr_role") == "standard":
            out["lrs_use"] = "learned SGD learning rate of the standard protocol"
    out["results"] = m.get("results", {})
    if "attack" in m:
        out["attack"] = m["attack"]
    return out

