"""The public Python API: `distill(...)` runs a whole distillation (data, method, loop, evaluation, files);
`evaluate(...)` measures a saved or in-memory set. The command line is a thin layer over these two."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

from distill import presets, report
from distill.augment import augmentation_for
from distill.coreset import select
from distill.data import Task, get_spec, load_task
from distill.errors import DistillError
from distill.evaluate import (EvalResult, evaluate_set, full_data_baseline, random_real_baseline, resolve_protocol,
                              standard_sgd)
from distill.loop import CHECKPOINT_NAME, LoopConfig, LoopResult, run_loop
from distill.methods import METHODS, get_method, learns_schedule, parse_options
from distill.methods.dd import INIT_MODES
from distill.models import DEFAULT_INIT, INIT_SCHEMES, MODELS, create_model, init_params
from distill.teacher import check_not_blended, check_teacher_options, with_teacher_labels
from distill.synset import SyntheticSet, load, save
from distill.train import accuracy, train_sgd, train_with_schedule

SYNSET_NAME = "synset.safetensors"
AS_DISTILLED_NAME = "synset-as-distilled.safetensors"  # beside a set given teacher labels: its own labels, so that
# another blend (`distill relabel`, benchmarks/teacher_sweep.py) starts from the set as distilled, not from a blend
OUTPUT_NAMES = (SYNSET_NAME, AS_DISTILLED_NAME, "grid.png", "val_curve.png", "summary.json")


CORESET_INITS = ("herding", "kcenter")  # image starts taken from a coreset method's picks
IMAGE_INITS = ("real", "noise", *CORESET_INITS)  # or the path of a saved set (SET_SUFFIX): a later stage's start
SET_SUFFIX = ".safetensors"
START_LABEL_FLOOR = 1e-3  # a started set's labels as learned logits: probabilities floored here (a one-hot row has
# no finite logits), so the true class starts at 0.991 of a hard label
FEATURE_METHODS = ("dm", "frepo", *CORESET_INITS)  # they compare `embed` features (MLP and LeNet have none)
LOOP_OPTIONS = ("iterations", "lr_images", "lr_lrs", "lr_labels", "init_lr", "decay_every", "decay_factor", "optimizer",
                "momentum", "eval_every", "checkpoint_every", "keep_best", "clamp_pixels", "ema", "validation",
                "max_minutes", "image_init")  # what a coreset takes none of: it picks real images, no loop runs
FLAGS = {"lr_images": "--lr", "keep_best": "--keep-last"}  # the command line's name where it is not the field's


def flag(name: str) -> str:
    """The command-line option that sets a configuration field (`lr_images` is `--lr`): the name refusals use, so
    that a message points at what the user typed."""
    return FLAGS.get(name, f"--{name.replace('_', '-')}")


def check_type(name: str, value, expected: type) -> None:
    """A value given from Python with the wrong type (`ipc="2"`, `n_nets="3"`) is one line, not a TypeError deep
    inside the work. An int will do for a float; a bool is no number here, though Python counts True an int."""
    kinds = (int, float) if expected is float else (expected,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and expected is not bool):
        raise DistillError(f"{name} must be of type {expected.__name__}, got {value!r}")


def check_field_types(config) -> None:
    """Every field of a configuration (`check_type`); a field's type is its default's (or its default factory's:
    `options` from a JSON file may be a list), and None is taken only where the field is declared optional."""
    for f in fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if default is MISSING or (value is None and "None" in str(f.type)):
            continue
        check_type(f.name, value, type(default))


def given_path(name: str, value) -> Path | None:
    """A path argument of the Python API as a Path (None: not given). An empty one is refused, as the command line
    refuses it: Path("") would quietly mean the current folder, and it is most likely an unset variable."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise DistillError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
    if not os.fspath(value).strip():
        raise DistillError(f"{name} is empty; give a path (an empty one would mean the current folder)")
    return Path(value)


SEED_LIMIT = 2**32  # seeds 0 .. 2**32 - 1: each outer step's generator is seeded with seed x 1,000,003 + step


def check_common(config, rates: tuple[str, ...]) -> None:
    """The checks a run's and an attack's options share, so that each is refused in one line before any work
    rather than as a traceback or a silently wrong run: field types, names spelt as the registries and presets key
    them, positive step sizes (`rates`), a seed torch can take, and a step-size decay that decays."""
    check_field_types(config)
    spec = get_spec(config.dataset)
    if config.dataset != spec.name:
        raise DistillError(f"write the dataset as {spec.name!r}, not {config.dataset!r}: the shipped presets are "
                           "keyed by that name (distill.distill and the command line rewrite it themselves)")
    if config.arch not in MODELS:
        hint = f"; did you mean {config.arch.lower()!r}?" if config.arch.lower() in MODELS else ""
        raise DistillError(f"unknown network {config.arch!r}; choose one of: {', '.join(sorted(MODELS))}{hint}")
    for name in rates:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise DistillError(f"{flag(name)} must be a positive number, got {value}")
    if not 0 <= config.seed < SEED_LIMIT:
        raise DistillError(f"--seed must be between 0 and {SEED_LIMIT - 1}, got {config.seed}")
    if config.decay_every < 0:
        raise DistillError(f"--decay-every must be 0 (never decay) or more steps, got {config.decay_every}")
    decay_factor = getattr(config, "decay_factor", 0.5)
    if not 0 < decay_factor <= 1:
        raise DistillError(f"decay_factor must be in (0, 1] (each decay multiplies the step sizes by it), got "
                           f"{decay_factor}")


def check_counts(config, names: tuple[str, ...]) -> None:
    """Counts (images, steps, networks, ...) a run or an attack needs at least one of."""
    for name in names:
        if getattr(config, name) < 1:
            raise DistillError(f"{flag(name)} must be at least 1, got {getattr(config, name)}")


@dataclass(frozen=True)
class DistillConfig:
    """Every option of a run. It is stored whole in the artifact and the summary, so any result can be re-made."""

    dataset: str = "digits"
    method: str = "dd"
    arch: str = "lenet"
    ipc: int = 1  # images per class per step
    steps: int = 1
    epochs: int = 10  # the paper used 3; 10 trains small data (digits) much better for the same 10 images
    init: str = "fixed"  # fixed | random | loaded
    init_scheme: str = ""  # "" = the network's default (xavier for LeNet, as in the original code)
    image_init: str = "real"  # real | noise | herding | kcenter | a set file: real samples give short runs (the digits
    # main job) a head start; for long fixed-init MNIST runs the paper's noise went faster and higher (91% validation
    # at 3,600 steps against 86%); herding / kcenter start from that coreset's picks (one image per class and step),
    # chosen in the features of the full-data network as the coreset baselines are; the path of a saved set
    # (.safetensors) starts from its images and labels, to refine another method's set (the `unroll` stage)
    init_lr: float = 0.02
    layer_lrs: bool = False  # learn one rate per step and per parameter tensor instead of one per step
    iterations: int = 800
    lr_images: float = 0.01
    lr_lrs: float = 0.01
    learn_labels: bool = False  # learn soft labels too (saved as probabilities); methods with `learns_labels`
    lr_labels: float = 0.01
    decay_every: int = 400
    decay_factor: float = 0.5
    real_batch: int = 512
    nets_per_step: int = 1
    eval_every: int = 100
    checkpoint_every: int = 100
    eval_nets: int = 5
    keep_best: bool = True  # keep the set that scored best on the validation split
    clamp_pixels: bool = False  # keep the images valid pictures (pixels in [0, 1]) after every outer step
    ema: float = 0.0  # 0: off; else validate and keep a moving average of the set over the steps with this decay
    # (e.g. 0.99: about the last 100 steps; see LoopConfig.ema)
    validation: str = "quick"  # how the loop validates (every `eval_every` steps, for keep_best): "quick", one random
    # network trained VALIDATION_EPOCHS without augmentation; "standard", one trained as the final evaluation trains
    # (eval_augment, eval_epochs): slower, but it ranks the sets by what the final evaluation measures
    max_minutes: float = 0.0  # stop distilling after this long in all (a resumed run's earlier minutes count), at a
    # step boundary (0: no limit); the summary records the steps taken, and `iterations` set to that repeats the run
    seed: int = 0  # the distillation's draws (starting images, networks, batches); validation and evaluation
    # networks come from fixed seeds, the same for every run, so that runs differing in seed meet the same networks
    optimizer: str = "adam"  # adam | sgd (with `momentum`): the outer optimiser over the synthetic tensors
    momentum: float = 0.5
    # standard-protocol augmentation: "" none, "dsa" (the dataset's DSA strategy), "dc" (DC's MNIST one), a strategy
    eval_augment: str = ""
    eval_epochs: int = 0  # standard-protocol epochs; 0: 300, or 1000 with augmentation
    teacher_labels: float = 0.0  # after distilling, blend this share of the full-data network's predictions into
    # the labels (0: none; see distill.teacher)
    teacher_temperature: float = 2.0  # the temperature of those predictions
    options: dict = field(default_factory=dict)  # the method's own hyperparameters (its `Options`; --opt key=value)

    def loop(self) -> LoopConfig:
        return LoopConfig(iterations=self.iterations, lr_images=self.lr_images, lr_lrs=self.lr_lrs,
                          lr_labels=self.lr_labels, decay_every=self.decay_every, decay_factor=self.decay_factor,
                          eval_every=self.eval_every,
                          checkpoint_every=self.checkpoint_every, seed=self.seed, keep_best=self.keep_best,
                          clamp_pixels=self.clamp_pixels, time_limit=60 * self.max_minutes, ema=self.ema,
                          optimizer=self.optimizer, momentum=self.momentum)

    def check_applies(self) -> None:
        """Refuse options the method would silently ignore while the summary records them as if they had run: the
        loop's options (and a starting image) for coresets, which only pick real images; a learned schedule's shape
        and rates for methods without one; the dd/unroll real batch and network count for methods that take their
        own (`--opt real_batch=N`); momentum without the sgd optimiser; a label step size without learned labels.

        Only options the user gave count: a value that is DistillConfig's default or the one the method's defaults
        and the shipped preset set for (dataset, method, ipc) is filled in for every run, asked for or not."""
        defaults, preset = asdict(DistillConfig()), presets.resolve(dataset=self.dataset, method=self.method,
                                                                   ipc=self.ipc)
        given = lambda name: getattr(self, name) not in (defaults[name], preset[name])  # noqa: E731
        method = get_method(self.method)
        if getattr(method, "selects", False):
            for name in LOOP_OPTIONS:
                if given(name):
                    raise DistillError(f"{flag(name)} shapes a distillation, and {self.method!r} only picks real "
                                       "images (nothing is distilled or started from); drop it")
        if not (learns_schedule(self.method) or getattr(method, "learns_train_lr", False)):
            for name in ("init_lr", "lr_lrs"):
                if given(name):
                    raise DistillError(f"{flag(name)} applies to methods that learn a training learning rate (dd's "
                                       f"schedule, mtt's rate); {self.method!r} learns none")
        if given("momentum") and self.optimizer != "sgd":
            raise DistillError(f"--momentum applies to the sgd outer optimiser, and this run uses "
                               f"{self.optimizer!r}; add --optimizer sgd or drop --momentum")
        if given("lr_labels") and not self.learn_labels:
            raise DistillError("--lr-labels is the step size of learned labels; add --learn-labels or drop it")
        if given("validation") and self.validation in VALIDATIONS and learns_schedule(self.method):
            raise DistillError(f"--validation chooses how sets trained with the standard protocol are validated; a "
                               f"{self.method} set is validated with the schedule it learned; drop it")
        if not learns_schedule(self.method):
            for name in ("steps", "epochs"):
                if given(name):
                    raise DistillError(f"--{name} shapes the learned schedule of dd; {self.method!r} has none "
                                       "(its sets are evaluated with the standard protocol)")
        options_type = getattr(get_method(self.method), "Options", None)
        method_options = {f.name for f in fields(options_type)} if options_type else set()
        for name, users in {"real_batch": ("dd", "unroll"), "nets_per_step": ("dd",)}.items():
            if given(name) and self.method not in users:
                hint = (f"; give {self.method}'s own as --opt {name}={getattr(self, name)}" if name in method_options
                        else f"; {self.method!r} does not use one")
                raise DistillError(f"{flag(name)} applies to {' and '.join(users)}{hint}")

    def scheme(self) -> str:
        return self.init_scheme or DEFAULT_INIT.get(self.arch, "default")

    def validate(self) -> None:
        """Reject bad options before any data is read or any file is touched."""
        check_common(self, rates=("init_lr", "lr_images", "lr_lrs", "lr_labels"))
        parse_options(get_method(self.method), self.options)
        check_counts(self, ("ipc", "steps", "epochs", "iterations", "real_batch", "nets_per_step", "eval_every",
                            "checkpoint_every", "eval_nets"))
        self.check_applies()
        if self.method == "attack":
            raise DistillError("the poisoning attack has its own command: distill attack")
        if self.init_scheme and self.init_scheme not in INIT_SCHEMES:
            raise DistillError(f"unknown --init-scheme {self.init_scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
                               " (or leave it empty for the network's own)")
        if self.init not in INIT_MODES:
            raise DistillError(f"unknown init mode {self.init!r}; choose one of: {', '.join(INIT_MODES)}")
        if self.image_init not in IMAGE_INITS and not self.image_init.endswith(SET_SUFFIX):
            raise DistillError(f"--image-init must be one of {', '.join(IMAGE_INITS)} or a saved set "
                               f"(*{SET_SUFFIX}), got {self.image_init!r}")
        if self.image_init.endswith(SET_SUFFIX) and not Path(self.image_init).is_file():
            raise DistillError(f"--image-init {self.image_init}: no such set file")
        if not learns_schedule(self.method) and self.init != "random":
            raise DistillError(f"method {self.method!r} trains fresh random networks; use --init random")
        if self.learn_labels and not getattr(get_method(self.method), "learns_labels", False):
            learners = sorted(n for n, m in METHODS.items() if getattr(m, "learns_labels", False))
            raise DistillError(f"method {self.method!r} cannot learn labels; --learn-labels works with: "
                               f"{', '.join(learners)}")
        needs_features = (self.method if self.method in FEATURE_METHODS else
                          f"--image-init {self.image_init}" if self.image_init in CORESET_INITS else None)
        if needs_features and self.arch in MODELS and not hasattr(MODELS[self.arch], "embed"):
            with_features = sorted(name for name, model in MODELS.items() if hasattr(model, "embed"))
            raise DistillError(f"{needs_features} compares network features, which {self.arch!r} does not expose; "
                               f"use --arch {' / '.join(with_features)}")
        if self.layer_lrs and not learns_schedule(self.method):
            raise DistillError(f"--layer-lrs needs a method that learns a training schedule (dd); "
                               f"{self.method!r} does not")
        if self.optimizer not in ("adam", "sgd"):
            raise DistillError(f"--optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise DistillError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.validation not in VALIDATIONS:
            raise DistillError(f"--validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}")
        if not 0 <= self.ema < 1:
            raise DistillError(f"--ema must be in [0, 1) (0: off), got {self.ema}")
        if not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise DistillError(f"--max-minutes must be 0 (no limit) or more, got {self.max_minutes}")
        if self.eval_epochs < 0:
            raise DistillError(f"--eval-epochs must be 0 (automatic) or more, got {self.eval_epochs}")
        augmentation_for(self.eval_augment, self.dataset)
        if learns_schedule(self.method) and (self.eval_augment not in ("", "none") or self.eval_epochs):
            raise DistillError(f"--eval-augment and --eval-epochs shape the standard protocol, and a {self.method} "
                               "set is evaluated with the schedule it learned; drop them (or evaluate the saved set "
                               "with distill eval FILE --protocol standard)")
        check_teacher_options(self.teacher_labels, self.teacher_temperature)


@dataclass
class RunResult:
    """What `distill` returns: the final set, the results recorded in its summary (accuracies beside the baselines,
    time, steps), the files written, the loss/validation history, and the set before any teacher blend."""

    synset: SyntheticSet
    results: dict
    files: dict[str, Path] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    as_distilled: SyntheticSet | None = None  # the set before its teacher blend, when it has one


def backend_available(kind: str) -> bool:
    """Whether this PyTorch can run on devices of type `kind` here (`torch.xpu.is_available()` and the like); a type
    with no such module (hpu without its plug-in) cannot."""
    is_available = getattr(getattr(torch, kind, None), "is_available", None)
    try:
        return callable(is_available) and bool(is_available())
    except Exception:  # noqa: BLE001 - a backend that cannot even say is not one to run on
        return False


def available_devices() -> list[str]:
    """The device types a run can use here, for messages: cpu, and cuda, mps or the build's accelerator
    (`torch.accelerator`, torch >= 2.6) where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append(f"cuda (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if torch.backends.mps.is_available():
        names.append("mps")
    current = getattr(getattr(torch, "accelerator", None), "current_accelerator", None)
    accelerator = current() if current is not None else None
    if accelerator is not None and accelerator.type not in ("cuda", "mps") and backend_available(accelerator.type):
        names.append(accelerator.type)
    return names


def pick_device(device: str | None) -> torch.device:
    """The device a run uses: the one asked for, else a GPU when there is one (runs, evaluation and attacks alike).
    One asked for that is not there is refused here, in one line, before any data is read: PyTorch itself fails
    later, each device type in its own way (an AssertionError for xpu, a missing module for hpu)."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise DistillError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1, mps ...)") from None
    if chosen.type == "meta":
        raise DistillError(f"--device meta holds tensors without values, so nothing can be trained on it; "
                           f"available here: {', '.join(available_devices())}")
    if chosen.type not in ("cpu", "cuda", "mps"):
        if not backend_available(chosen.type):
            raise DistillError(f"--device {device}: this PyTorch ({torch.__version__}) has no {chosen.type} device "
                               f"here; available: {', '.join(available_devices())}")
        count = getattr(getattr(torch, chosen.type), "device_count", lambda: 1)()
        if chosen.index is not None and chosen.index >= count:
            raise DistillError(f"--device {device}: there are {count} {chosen.type} device(s) here")
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DistillError(f"--device {device}: this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                               "use --device cpu")
        if chosen.index is not None and chosen.index >= count:
            raise DistillError(f"--device {device}: there are {count} CUDA GPU(s) here, cuda:0 to cuda:{count - 1}")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise DistillError(f"--device {device}: this PyTorch sees no Apple GPU (MPS); use --device cpu")
    return chosen


def environment(device: torch.device) -> dict:
    """Where a computation ran, recorded beside its numbers (run and attack results, `distill eval --json`): the
    device, the CPU thread count (on a CPU the last digits depend on it, see `recorded_cpu_threads`), and the
    versions of PyTorch and Python."""
    return {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}


LOCK_NAME = ".distill.lock"  # in an output folder while a run uses it; says the run's process id and host
LOCK_TRIES = 5  # takes of a lock file that other runs remove between our open and our lock, before giving up


@contextmanager
def prepare_output(out: Path | None, force: bool, resume: bool) -> Iterator[None]:
    """Hold `out` for a run (`with prepare_output(...):` around all of its work): make sure it can take the run's
    files, that we are not about to replace a user's result unasked, and that no other run is using it. Two runs
    into one folder used to both do all their work and end with one's set beside the other's checkpoint; now the
    run holds a lock on the folder's LOCK_NAME (see hold_lock) for as long as it lasts, and a second run is refused
    at once. The lock goes when the run ends, however it ends, and so do the folders made here where the run left
    them empty: a run that fails before its first file leaves no empty folder behind. Without `out` (a run kept in
    memory) there is nothing to hold, and nothing to resume."""
    if out is None:
        if resume:
            raise DistillError("--resume needs the output folder of the run to continue")
        yield
        return
    if force and resume:
        raise DistillError("--resume and --force exclude each other: --resume continues the run in the output "
                           "folder, --force replaces it")
    if out.exists() and not out.is_dir():
        raise DistillError(f"output folder {out} is a file")
    check_writable(out)
    made = make_folders(out)
    try:
        with hold_lock(out):
            if resume and not (out / CHECKPOINT_NAME).is_file():
                raise DistillError(f"--resume: no checkpoint at {out / CHECKPOINT_NAME}, so nothing to continue; "
                                   "drop --resume to start this run afresh")
            existing = [name for name in (*OUTPUT_NAMES, CHECKPOINT_NAME) if (out / name).exists()]
            if existing and not (force or resume):
                raise DistillError(f"{out} already holds a run ({', '.join(existing)}); pass --force (force=True) "
                                   "to replace it or --resume (resume=True) to continue it")
            yield
    finally:
        for folder in made:  # the deepest first; one holding anything stays
            try:
                folder.rmdir()
            except OSError:
                break


def make_folders(out: Path) -> list[Path]:
    """Make `out` and the folders above it that are missing; returns those made, the deepest first."""
    missing = []
    folder = out.absolute()
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
    return missing


@contextmanager
def hold_lock(out: Path) -> Iterator[None]:
    """Hold `out`/LOCK_NAME for the `with` block, or refuse in one line while another run holds it. The lock is
    an advisory lock the kernel holds for our open file (flock; msvcrt.locking on Windows), so it dies with its
    process, however that ends (SIGKILL included): a lock file left by a dead run is free to take, with no guessing
    from the process id it names (a reused id made such a lock look alive forever), and no removing it to take it
    over (two runs doing that at once could both go on). The file's text ("pid host") only names the holder in the
    refusal. On release the file is removed while still locked, then closed: a run that opened it just before
    finds, once its lock is granted, that the path no longer names the file it locked, and opens it afresh."""
    lock = out / LOCK_NAME
    handle = take_lock(lock)
    try:
        yield
    finally:
        release_lock(lock, handle)


def take_lock(lock: Path) -> int:
    """Open and lock `lock`, returning the open file, with this process's id and host written in it."""
    for _ in range(LOCK_TRIES):
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DistillError(f"{lock.parent}: cannot open its lock file {lock}: {error.strerror}") from None
        try:
            held = lock_file(handle)
            if held and names_file(lock, handle):
                os.ftruncate(handle, 0)
                os.write(handle, f"{os.getpid()} {socket.gethostname()}\n".encode())
                return handle
        except BaseException:
            os.close(handle)
            raise
        os.close(handle)
        if not held:
            holder = lock_holder(lock)
            raise DistillError(f"{lock.parent} is in use by another run{f' ({holder})' if holder else ''}: wait "
                               "for it to end, or give another --out")
    raise DistillError(f"{lock.parent}: could not lock {lock}: other runs kept replacing it; try again")


def lock_file(handle: int) -> bool:
    """Take the kernel's exclusive lock on an open file without waiting; False when another open file holds it.
    On Windows the lock covers the file's first byte, which makes the holder's text unreadable to others there."""
    if os.name == "nt":
        import msvcrt
        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def names_file(path: Path, handle: int) -> bool:
    """Whether `path` still names the open file `handle` (a holder's release may have removed it meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        return False


def release_lock(lock: Path, handle: int) -> None:
    """Remove the lock file while still holding its lock, then close it, which lets the lock go. A file that cannot
    be removed stays, harmless: nobody holds it. Windows removes no open file, so there the lock is let go and the
    file closed first, and a file that another run has opened meanwhile stays."""
    if os.name == "nt":
        import msvcrt
        try:
            os.lseek(handle, 0, os.SEEK_SET)  # the locked byte
            msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(handle)
        try:
            lock.unlink(missing_ok=True)
        except OSError:
            pass
        return
    try:
        if names_file(lock, handle):
            lock.unlink()
    except OSError:
        pass
    finally:
        os.close(handle)


def lock_holder(lock: Path) -> str:
    """What a lock file says of its run ("process 123 on host"), or "" when it cannot be read."""
    try:
        pid, host = lock.read_text().split()
    except (OSError, ValueError):
        return ""
    return f"process {pid} on {host}"


def check_writable(folder: Path) -> None:
    """Refuse a folder that files cannot be written into: the folder itself where it exists, else the nearest
    folder above it that does (where it and its parents would be made)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DistillError(f"cannot make {folder}: {existing} is a file")
    try:  # a real file, not os.access: that says yes to root even where nothing can be created (/proc)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise DistillError(f"cannot write to {folder}: {existing} does not take new files "
                           f"({exc.strerror or exc})") from None


def check_output_file(out: Path, force: bool) -> None:
    """A single output file (`distill relabel --out`): not a folder, not a file already there unless `force`, and
    in a folder that can be written; checked before any data is read or any network trained."""
    if out.is_dir():
        raise DistillError(f"{out} is a folder; give the file to write, e.g. {out / 'relabelled.safetensors'}")
    if out.exists() and not force:
        raise DistillError(f"{out} exists; pass --force (force=True) to replace it")
    check_writable(out.parent)


LEARNED_LABEL_START = 0.9  # probability of the true class in a learned label at step 0 (a softmax never reaches 1)


def initial_synset(config: DistillConfig, task: Task, progress: bool = True) -> SyntheticSet:
    """Learnable images (real samples, noise or a coreset's picks), positive learning rates in log space, and the
    fixed network."""
    generator = torch.Generator().manual_seed(config.seed)
    k = task.num_classes
    schedule = learns_schedule(config.method)
    steps, epochs = (config.steps, config.epochs) if schedule else (1, 1)
    labels = torch.arange(k).repeat(steps * config.ipc)
    step = torch.arange(steps).repeat_interleave(k * config.ipc)
    check_class_sizes(task, labels)
    start_set = started_from(config, task, labels) if config.image_init.endswith(SET_SUFFIX) else None
    if start_set is not None:
        images = start_set.images.detach().cpu().clone()
    elif config.image_init == "noise":
        images = torch.randn(len(labels), *task.image_shape, generator=generator)
    elif config.image_init in CORESET_INITS:  # the coreset's picks, in the same class-by-class order
        coreset = get_method(config.image_init)(config)
        idx = select(config.image_init, coreset.features(task, progress), task.train_y, len(labels) // k,
                     generator)
        per_class = idx.view(k, -1)  # [class, pick]; the set's images run class-fastest, pick by pick
        images = task.train_x[per_class.T.flatten().to(task.train_x.device)].cpu().clone()
    else:
        images = task.train_x.cpu()[real_picks(task, labels, generator)].clone()
    device = task.train_x.device
    model = create_model(config.arch, task.image_shape, k)
    fixed = None
    if config.init == "fixed":
        fixed = init_params(model, generator, config.scheme(), device=device)
    meta = {"dataset": task.spec.name, "num_classes": k, "image_shape": list(task.image_shape),
            "mean": list(task.spec.mean), "std": list(task.spec.std), "method": config.method, "arch": config.arch,
            "ipc": config.ipc, "steps": steps, "epochs": epochs, "init": config.init,
            "init_scheme": config.scheme(), "class_names": list(task.spec.class_names), "config": asdict(config)}
    log_lrs = None
    if schedule:  # one learned learning rate per unrolled step (and per parameter tensor with layer_lrs)
        shape = (steps * epochs, len(list(model.parameters()))) if config.layer_lrs else (steps * epochs,)
        log_lrs = torch.full(shape, math.log(config.init_lr), device=device).requires_grad_(True)
    elif getattr(get_method(config.method), "learns_train_lr", False):  # one learned SGD rate (MTT)
        log_lrs = torch.full((1,), math.log(config.init_lr), device=device).requires_grad_(True)
        meta["lr_role"] = "standard"
    else:
        step = None
    if start_set is not None:
        meta["started_from"] = {"path": config.image_init, "sha256": file_sha256(Path(config.image_init))}
    label_logits = None
    if start_set is not None and start_set.labels.ndim == 2:  # its soft labels: learned on from there, or kept
        probabilities = start_set.labels.detach().float().cpu()
        if config.learn_labels:
            floored = probabilities.clamp_min(START_LABEL_FLOOR)
            label_logits = (floored / floored.sum(1, keepdim=True)).log().to(device).requires_grad_(True)
        else:
            labels = probabilities
    elif config.learn_labels:  # start at the hard labels, softened: the true class at LEARNED_LABEL_START
        start = math.log(LEARNED_LABEL_START * (k - 1) / (1 - LEARNED_LABEL_START))
        label_logits = (start * torch.nn.functional.one_hot(labels, k).float()).to(device).requires_grad_(True)
    return SyntheticSet(images.to(device).requires_grad_(True), labels.to(device), meta,
                        None if step is None else step.to(device), log_lrs, fixed, label_logits=label_logits)


def check_class_sizes(task: Task, labels: torch.Tensor) -> None:
    """Refuse, before any work, a set with more images of a class than the training split holds: real starting
    images and the random-real baseline both need that many distinct ones, and the baseline comes last, after the
    whole distillation."""
    classes, wanted = labels.unique(return_counts=True)
    have = (task.train_y.cpu()[:, None] == classes[None, :]).sum(0)
    short = [(h, c, w) for c, w, h in zip(classes.tolist(), wanted.tolist(), have.tolist()) if w > h]
    if short:
        h, c, w = min(short)  # the smallest class: what the user can ask for at most
        raise DistillError(f"{task.spec.name} has only {h} training images of class {task.spec.class_names[c]!r}, "
                           f"fewer than the {w} a class would hold in this set (--ipc, times --steps for dd)")


def real_picks(task: Task, labels: torch.Tensor, generator: torch.Generator) -> list[int]:
    """Indices of distinct training images, one of class `labels[i]` for each place i: the real images a set starts
    from. Each place draws uniformly from its class, as it always has, and a draw that repeats an image the set
    already holds is drawn again: two copies of one image would waste a place (in a method that moves both alike,
    such as DM, they stay copies), and seeds that never repeated an image keep the starting sets they gave before.
    Call it after `check_class_sizes`: a class with fewer images than places would be drawn from forever."""
    train_y = task.train_y.cpu()
    members = {c: (train_y == c).nonzero().flatten() for c in labels.unique().tolist()}
    picks: list[int] = []
    taken: set[int] = set()
    for c in labels.tolist():
        pool = members[c]
        pick = int(pool[torch.randint(len(pool), (1,), generator=generator)])
        while pick in taken:
            pick = int(pool[torch.randint(len(pool), (1,), generator=generator)])
        taken.add(pick)
        picks.append(pick)
    return picks


def started_from(config: DistillConfig, task: Task, labels: torch.Tensor) -> SyntheticSet:
    """The saved set a run starts from (`--image-init PATH`), checked to be a set this run could have made: the same
    dataset and image shape, and one image for each of its places, class by class in the run's order."""
    start = load(config.image_init)
    problems = []
    if start.meta.get("dataset") != task.spec.name:
        problems.append(f"it was distilled from {start.meta.get('dataset')!r}, this run uses {task.spec.name!r}")
    if tuple(start.images.shape[1:]) != tuple(task.image_shape):
        problems.append(f"its images are {tuple(start.images.shape[1:])}, this dataset's {tuple(task.image_shape)}")
    if len(start.images) != len(labels):
        problems.append(f"it has {len(start.images)} images, this run {len(labels)} (--ipc {config.ipc}"
                        f"{f', --steps {config.steps}' if config.steps > 1 else ''})")
    else:
        # hard labels all in the run's order; soft ones at most places: learned or teacher-blended labels may have
        # moved a few places' largest probability to another class (fashion-mnist-frepo-ipc10 has two such), while
        # another order leaves few in agreement
        agree = start.hard_labels().cpu() == labels
        if not (agree.float().mean() >= 0.5 if start.labels.ndim == 2 else agree.all()):
            problems.append("its images are not ordered class by class as this run's are")
    if problems:
        raise DistillError(f"--image-init {config.image_init}: cannot start from this set: {'; '.join(problems)}")
    return start


def file_sha256(path: Path) -> str:
    """The file's SHA-256, recorded with a run that started from it: the path alone may later name another set."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_method(config: DistillConfig, pool=None):
    factory = get_method(config.method)
    if config.method == "dd":
        return factory(config.arch, config.init, config.scheme(), real_batch=config.real_batch,
                       nets_per_step=config.nets_per_step, pool=pool)
    return factory(config)


VALIDATION_EPOCHS = 100
VALIDATIONS = ("quick", "standard")
FREE_ON_RESUME = ("eval_nets", "eval_augment", "eval_epochs", "max_minutes", "teacher_labels",
                  "teacher_temperature")  # options a resumed run may change: they shape the final labels and
# measurement or when to stop, not the steps, so `--resume` on a finished run re-evaluates it (or blends other
# teacher labels) without distilling again, and a run stopped by its time limit can go on with another


def free_on_resume(config: DistillConfig) -> tuple[str, ...]:
    """FREE_ON_RESUME, less the evaluation's augmentation and epochs where they shape the steps themselves: the
    `unroll` stage trains through the evaluation, and `--validation standard` validates (so keeps sets) with it."""
    if config.method == "unroll" or config.validation == "standard":
        return tuple(name for name in FREE_ON_RESUME if name not in ("eval_augment", "eval_epochs"))
    return FREE_ON_RESUME


def validation_accuracy(config: DistillConfig, task: Task):
    """The validator the loop calls every `eval_every` steps: held-out split, never the test split. Sets with a
    learned schedule train with it (from their fixed network, or three random ones); the others train one random
    network with a shortened standard protocol (VALIDATION_EPOCHS, no augmentation), cheap enough to run often, or
    with `validation="standard"` one trained as the final evaluation trains (its augmentation and epochs)."""
    model = create_model(config.arch, task.image_shape, task.num_classes).to(task.train_x.device)
    nets = [init_params(model, torch.Generator().manual_seed(9_000_000 + i), config.scheme()) for i in range(3)]
    as_evaluated = config.validation == "standard"
    augmentation = augmentation_for(config.eval_augment, task.spec.name) if as_evaluated else None

    def validate_standard(synset: SyntheticSet) -> float:
        start = {k: v.to(task.train_x.device) for k, v in nets[0].items()}
        sgd = (standard_sgd(synset, config.eval_augment, config.eval_epochs) if as_evaluated
               else standard_sgd(synset, epochs=VALIDATION_EPOCHS))
        trained = train_sgd(model, start, synset.images.detach(), synset.targets().detach(), sgd,
                            torch.Generator().manual_seed(9_500_000), augment=augmentation)
        return accuracy(model, trained, task.val_x, task.val_y)

    if not learns_schedule(config.method):
        return validate_standard

    def validate(synset: SyntheticSet) -> float:
        starts = [synset.init_params] if synset.init_params is not None else [
            {k: v.to(task.train_x.device) for k, v in net.items()} for net in nets]
        accs = []
        for start in starts:
            accs.append(accuracy(model, train_with_schedule(model, start, synset), task.val_x, task.val_y))
        return sum(accs) / len(accs)

    return validate


def measure(synset: SyntheticSet, task: Task, eval_nets: int, progress: bool = True, augment: str = "",
            epochs: int = 0) -> dict:
    """The distilled set's accuracy beside the full-data and random-real baselines (GUIDE §5). `augment` and
    `epochs` shape the standard protocol, for the set and its random-real baseline alike."""
    protocol = resolve_protocol(synset, "auto")
    if protocol != "standard":
        augment, epochs = "", 0
    distilled = evaluate_set(synset, task, "auto", n_nets=eval_nets, progress=progress, augment=augment,
                             sgd=standard_sgd(synset, augment, epochs) if protocol == "standard" else None)
    arch = synset.meta["arch"]
    full = full_data_baseline(task, arch, n_nets=1, progress=progress)
    real = random_real_baseline(task, synset, arch, n_nets=eval_nets, progress=progress, augment=augment,
                                sgd=standard_sgd(None, augment, epochs) if protocol == "standard" else None)
    return {"distilled": distilled.to_dict(), "full_data": full.to_dict(), "random_real": real.to_dict()}


def load_config(path: str | os.PathLike) -> DistillConfig:
    """The run configuration recorded in a JSON file, to run it again: `distill(config=load_config(FILE))` and
    `distill run --config FILE` repeat a recorded run instead of the user retyping its every option. FILE is a run's
    summary.json or a benchmarks/results file (both keep the whole resolved configuration under "config"), a plain
    JSON object of DistillConfig fields, or a synthetic-set file (.safetensors), whose header records the run that
    made it: the set is often all a user was given.

    The configuration is taken as recorded, with no preset: presets change between versions, and applying them again
    would quietly run something else. Fields a recorded configuration leaves out (a file from an older version) take
    DistillConfig's defaults, not the presets', with a warning naming them: the run may differ from the recorded one.
    Unknown fields (the likely sign of a file made by another version of distill) and wrongly typed ones are refused
    here, in one line naming the file; the other checks come when the run starts (`DistillConfig.validate`), so that
    a field the file gets wrong can still be replaced (`distill(config, **options)`, `replace_fields`)."""
    file = given_path("path", path)
    if file is None:
        raise DistillError("load_config needs the path of a JSON file (a run's summary.json)")
    return config_from_record(file, read_record(file))


def read_record(file: Path) -> dict:
    """The JSON object a run's record holds: a set file's header, or a JSON file's content (a summary.json, a
    results file, a plain object of options), each problem with the file one line naming it."""
    if file.suffix == SET_SUFFIX:
        return load(file).meta
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DistillError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise DistillError(f"{file} is a folder; give a JSON file, e.g. {file / 'summary.json'}") from None
    except UnicodeDecodeError:
        raise DistillError(f"{file} is not JSON (not even UTF-8 text)") from None
    except OSError as exc:
        raise DistillError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistillError(f"{file} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise DistillError(f"{file} holds a JSON {type(data).__name__}, not an object of run options")
    return data


def recorded_cpu_threads(record: dict) -> int | None:
    """The number of CPU threads the run a record (`read_record`) describes ran on (`torch.get_num_threads()`, in
    its results), or None: not recorded (an older version's), or the run was on a GPU. On a CPU the kernels sum in
    another order with another count, so a run repeats bit for bit only on the same count (`distill run
    --threads`)."""
    results = record.get("results")
    if not isinstance(results, dict) or results.get("device") != "cpu":
        return None
    threads = results.get("threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def config_from_record(file: Path, record: dict) -> DistillConfig:
    """`load_config`'s checks on what `read_record` read from `file`, and the configuration it makes: the fields
    under its "config" key (as a run and a set's header record them), or the object itself (plain run options)."""
    nested = isinstance(record.get("config"), dict)
    if file.suffix == SET_SUFFIX and not nested:
        raise DistillError(f"{file}: its header records no run configuration (give the run's summary.json)")
    if not nested and isinstance(record.get("command"), str) and "git_commit" in record:
        raise DistillError(f"{file} records a benchmark's measurements (a sweep, a profile, ...), not a run's "
                           f"configuration; the command it records repeats them: {record['command']}")
    recorded = record["config"] if nested else record
    names = {f.name for f in fields(DistillConfig)}
    unknown = sorted(set(recorded) - names)
    if {"attacked", "craft_victims"} <= set(unknown):
        raise DistillError(f"{file} holds a poisoning attack's configuration (distill attack), not a run's")
    if unknown and nested:
        raise DistillError(f"{file}: unknown field(s) {', '.join(unknown)} in its \"config\": the file was made by "
                           "another version of distill, whose runs this one cannot repeat")
    if unknown:
        raise DistillError(f"{file}: unknown field(s) {', '.join(unknown)}: no run options of this version of "
                           "distill (the file was made by another version, or records no run: a run's summary.json "
                           "keeps its configuration under \"config\")")
    missing = sorted(names - set(recorded))
    if missing and nested:
        warnings.warn(f"{file} records no {', '.join(missing)} (made by an older version of distill): today's "
                      "defaults are used, so the run may differ from the recorded one", UserWarning, stacklevel=3)
    config = DistillConfig(**recorded)
    try:
        check_field_types(config)
    except DistillError as exc:
        raise DistillError(f"{file}: {exc}") from None
    return config


def replace_fields(config: DistillConfig, **options) -> DistillConfig:
    """`config` with `options` replacing its fields, and no preset applied: how a run is varied from a configuration
    taken as it is (`distill(config, seed=1)`, `distill run --config FILE --seed 1`). Names are spelt as the presets
    and registries key them (`presets.canonical_names`), as for options completed by the presets."""
    return DistillConfig(**presets.canonical_names({**asdict(config), **options}))


def distill(
    config: DistillConfig | None = None,
    out: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    force: bool = False,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    evaluate: bool = True,
    **options,
) -> RunResult:
    """Distill a dataset: `distill(dataset="mnist", method="dm", ipc=10, out="runs/mnist-dm")`.

    Options are the fields of `DistillConfig`. Given as keywords, they are completed as the command line completes
    them: the method's defaults and the shipped preset for (dataset, method, ipc), and without `method` the most
    accurate one measured. A `DistillConfig` is taken as it is, with no preset (keywords beside it replace its
    fields). An option given as None counts as not given, as on the command line. With `out`, writes the synthetic
    set, the image grid, the validation curve and a JSON summary there (and checkpoints, so `resume=True` continues
    a killed run); no other run may use that folder meanwhile.
    """
    if config is not None and not isinstance(config, DistillConfig):
        raise DistillError(f"config must be a DistillConfig, got {type(config).__name__}; give options as keywords "
                           "(distill.distill(**options)) to have them completed by the presets")
    unknown = set(options) - {f.name for f in fields(DistillConfig)}
    if unknown:
        raise DistillError(f"unknown option(s): {', '.join(sorted(unknown))}")
    options = {name: value for name, value in options.items() if value is not None}
    if config is None:
        config = DistillConfig(**presets.resolve(**options))  # method defaults and the shipped preset, then options
    elif options:
        config = replace_fields(config, **options)
    config.validate()
    out_path, data_root = given_path("out", out), given_path("data_root", data_root)
    target = pick_device(device)
    if resume and getattr(get_method(config.method), "selects", False):
        raise DistillError(f"--resume continues an optimisation, and {config.method!r} only picks real images: "
                           "there is nothing to continue (--force replaces the run in the output folder)")
    with prepare_output(out_path, force, resume):
        return run_distillation(config, out_path, data_root, target, force, resume, progress, evaluate)


def run_distillation(config: DistillConfig, out_path: Path | None, data_root: Path | None, target: torch.device,
                     force: bool, resume: bool, progress: bool, evaluate: bool) -> RunResult:
    """`distill`'s work, once its options are checked and its output folder is held."""
    task = load_task(config.dataset, data_root).to(target)
    synset = initial_synset(config, task, progress)
    method = build_method(config)
    if getattr(method, "selects", False):  # coresets: pick real images, nothing to optimise
        began = time.perf_counter()
        method.pick(task, synset, torch.Generator().manual_seed(config.seed), progress)
        loop_result = LoopResult(seconds=time.perf_counter() - began)
    else:
        method.setup(task, synset, progress)
        loop_result = run_loop(method, synset, config.loop(), validate=validation_accuracy(config, task),
                               checkpoint_dir=out_path, resume=resume, run_config=asdict(config), progress=progress,
                               free_on_resume=free_on_resume(config))
    final = as_distilled = synset.detached()
    if config.teacher_labels:
        final = with_teacher_labels(final, task, config.teacher_labels, config.teacher_temperature, progress)
    results = {"distill_seconds": round(loop_result.seconds, 2), "rollbacks": loop_result.rollbacks,
               "steps_taken": loop_result.steps,
               "kept_step": loop_result.best_step if config.keep_best else loop_result.steps,
               "best_val_acc": loop_result.best_val,
               # options the method had to change on this device (frepo's bfloat16 falls back to float32 where it
               # would be emulated): the config records what was asked, this what ran
               "effective_options": getattr(method, "effective_options", {}),
               **environment(target)}
    if evaluate:
        results.update(measure(final, task, config.eval_nets, progress, config.eval_augment, config.eval_epochs))
    final.meta["results"] = results
    run = RunResult(final, results, history=loop_result.history,
                    as_distilled=as_distilled if config.teacher_labels else None)
    if out_path is not None:
        run.files = write_outputs(run, config, out_path, overwrite=force or resume)
    return run


def write_outputs(run: RunResult, config: DistillConfig, out: Path, overwrite: bool) -> dict[str, Path]:
    if run.as_distilled is None and overwrite:  # an earlier run's, in a folder this run may replace: not this set's
        (out / AS_DISTILLED_NAME).unlink(missing_ok=True)
    files = {"synset": save(run.synset, out / SYNSET_NAME, overwrite=overwrite),
             **({"as_distilled": save(run.as_distilled, out / AS_DISTILLED_NAME, overwrite=overwrite)}
                if run.as_distilled is not None else {}),
             "grid": report.image_grid(run.synset, out / "grid.png"),
             "curve": report.validation_curve(run.history, out / "val_curve.png",
                                              f"{config.method} on {config.dataset}")}
    summary = {"config": asdict(config), "results": run.results, "history": run.history,
               "files": {k: str(v) for k, v in files.items()}}
    files["summary"] = report.write_json(summary, out / "summary.json")
    return files


def relabel(
    synset: SyntheticSet | str | os.PathLike,
    out: str | os.PathLike,
    weight: float = 0.5,
    temperature: float = 2.0,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> SyntheticSet:
    """Blend the full-data network's predictions into a set's labels (see `distill.teacher`) and save the result to
    `out` (never over an existing file unless `force`)."""
    check_teacher_options(weight, temperature)
    out, data_root = given_path("out", out), given_path("data_root", data_root)
    if out is None:
        raise DistillError("out is needed: the file to save the relabelled set to")
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    check_not_blended(synset)  # before the data is read
    check_output_file(out, force)
    target = pick_device(device)
    task = load_task(synset.meta["dataset"], data_root).to(target)
    blended = with_teacher_labels(synset.detached(), task, weight, temperature, progress)
    save(blended, out, overwrite=force)
    return blended


def evaluate(
    synset: SyntheticSet | str | os.PathLike,
    protocol: str = "auto",
    arch: str | None = None,
    n_nets: int = 5,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    augment: str | None = "",
    epochs: int | None = 0,
    lr: float | None = 0.0,
) -> EvalResult:
    """Measure a synthetic set (or a .safetensors file) on its dataset's test split under `protocol`; `augment`
    ("dsa", "dc" or a strategy), `epochs` and `lr` (0: the protocol's own) shape the standard protocol (GUIDE §5).
    None for any of those three is the same as leaving it out."""
    augment, epochs, lr = ("" if augment is None else augment, 0 if epochs is None else epochs,
                           0.0 if lr is None else lr)
    for name, value, expected in (("protocol", protocol, str), ("n_nets", n_nets, int), ("augment", augment, str),
                                  ("epochs", epochs, int), ("lr", lr, float)):
        check_type(name, value, expected)
    if arch is not None:
        check_type("arch", arch, str)
    data_root = given_path("data_root", data_root)
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    standard = resolve_protocol(synset, protocol) == "standard"  # every check before the data is read
    for name, value in (("--lr", lr), ("--epochs", epochs)):
        if value and not standard:  # silently ignored, it would report a training the user did not ask for
            raise DistillError(f"{name} applies to the standard protocol only (the others train with the set's "
                               "schedule)")
    sgd = standard_sgd(synset, augment, epochs, lr) if standard else None
    target = pick_device(device)
    task = load_task(synset.meta["dataset"], data_root).to(target)
    return evaluate_set(synset.detached(), task, protocol, arch, n_nets, sgd=sgd, progress=progress, augment=augment)
