"""What a method is (GUIDE §3), and the registry that names them.

A `Method` is a differentiable loss saying how well a synthetic set stands in for the real data; the outer loop
(`distill.loop`) owns everything around it. A `Selector` (the coreset baselines) picks real training images instead:
it has no loss, and no loop runs. Both are built one way, `cls(config, options)`: the run's configuration (the
fields every method shares: dataset, network, initialisation ...) and the method's own `Options`, a frozen
dataclass beside it with its defaults and its checks (`--opt key=value` fills it). What a method can do is declared
in class attributes, never probed:

- `learns`: the set's tensors it optimises besides the images: "labels" (soft labels can be learned, the loss
  reaches the set's targets), "schedule" (per-step learning rates, the seed's `dd`: its sets are trained with the
  schedule they learned), "train_lr" (one learned SGD rate the standard protocol trains with, MTT's);
- `needs_features`: it compares network features (`embed`), which not every network exposes;
- `parallel`: its loss is a sum of shares, so each rank of a distributed run computes one (`distill.parallel`);
- `trains_through_evaluation`: its loss trains as the standard evaluation does (the `unroll` stage);
- `defaults` and `dataset_defaults`: the run options every use of the method needs (the papers' optimiser and
  step sizes, the standard network), layered under the shipped presets by `distill.config.resolve`.

Adding a method is one file that defines its class and `Options` and registers them (`@register`), and one import
line in `distill/methods/__init__.py`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from distill.data import Task
from distill.errors import DistillError
from distill.models import create_model
from distill.synset import SyntheticSet

LEARNABLE = frozenset({"labels", "schedule", "train_lr"})  # what `learns` may name besides the images


@dataclass(frozen=True)
class Options:
    """A method's own settings: subclasses add fields (each with a default, whose type is the option's type) and
    override `check` to refuse values out of range before any data loads."""

    def check(self, method: str) -> None:
        """Nothing to refuse: a method without options takes none."""


class Registered:
    """What a method and a selector both declare (the module's docstring says what each means), and how both are
    built."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    learns: ClassVar[frozenset[str]] = frozenset()
    needs_features: ClassVar[bool] = False
    parallel: ClassVar[bool] = False  # under torch.distributed its loss is a sum of shares, each rank computing its
    # own (distill.parallel); otherwise every rank computes the whole loss
    trains_through_evaluation: ClassVar[bool] = False  # its loss trains as the evaluation does (eval_augment and
    # eval_epochs shape its steps, so a resumed run may not change them)
    defaults: ClassVar[dict] = {}
    dataset_defaults: ClassVar[dict[str, dict]] = {}

    def __init__(self, config, options: Options):
        self.config = config
        self.options = options
        # options the method had to change on this device (frepo's bfloat16 where it would be emulated): the
        # configuration records what was asked, this what ran
        self.effective_options: dict = {}


class Method(Registered):
    """The base of every method. Subclasses set `name`, `Options`, the capabilities above, and `loss`; those that
    carry state from step to step (a network trained between steps, an online pool) also `state_dict` and
    `load_state_dict`, which checkpoints save and the divergence guard's rollback restores."""

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        """Prepare what the loss needs, once before the loop: here the task and the run's network; methods add
        theirs (expert trajectories, victim pools, samplers). `progress` False (`--quiet`) keeps any long
        preparation silent."""
        self.task = task
        self.model = create_model(self.config.arch, task.image_shape, task.num_classes).to(task.train_x.device)

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        """A scalar differentiable in the synthetic set's trainable tensors. `rng` is seeded from (seed, step), so
        every step's randomness is reproducible and a resumed run repeats an uninterrupted one exactly."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What the method carries from one step to the next (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Put back what `state_dict` returned (a checkpoint's, or the guard's fallback on a rollback)."""


class Selector(Registered):
    """A coreset baseline: picks `ipc` real training images per class into the set (`select`), saved in the same
    artifact format, so every distilled set can be compared with them on equal terms. Nothing is optimised."""

    def select(self, task: Task, synset: SyntheticSet, generator: torch.Generator, progress: bool = True) -> None:
        """Replace the set's images and labels with the selected real ones."""
        raise NotImplementedError


METHODS: dict[str, type[Registered]] = {}


def register(cls):
    """Class decorator: make a method or selector known by its `name`, after checking its declarations."""
    assert cls.name and cls.learns <= LEARNABLE, f"{cls.__name__}: a name, and `learns` within {sorted(LEARNABLE)}"
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method] | type[Selector]:
    if name not in METHODS:
        raise DistillError(f"unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def selects(name: str) -> bool:
    """Whether `name` picks real images (a coreset) instead of optimising a set."""
    return issubclass(get_method(name), Selector)


def learns(name: str, what: str) -> bool:
    """Whether the method `name` learns `what` ("labels", "schedule", "train_lr") besides its images."""
    return what in get_method(name).learns


def create(config) -> Method | Selector:
    """The method `config.method` names, with its options parsed from `config.options`: the one way to build one."""
    cls = get_method(config.method)
    return cls(config, parse_options(cls, config.options))


def options_from_pairs(pairs: list[str]) -> dict[str, str]:
    """`--opt key=value` arguments as a dict (dashes in keys read as underscores); parse_options types them."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DistillError(f"--opt takes key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_options(cls: type[Method] | type[Selector], options: dict) -> Options:
    """The method's `Options` filled from `options` and checked; unknown keys, badly typed and out-of-range values
    are user errors, refused in one line before any data or network."""
    known = {f.name: f for f in dataclasses.fields(cls.Options)}
    if options and not known:
        raise DistillError(f"method {cls.name!r} takes no --opt options (got {', '.join(sorted(options))})")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DistillError(f"unknown option(s) for method {cls.name!r}: {', '.join(unknown)}; it takes: "
                           f"{', '.join(sorted(known))}")
    values = {}
    for key, raw in options.items():
        kind = type(getattr(cls.Options(), key))
        try:
            values[key] = kind(raw) if kind is not bool else str(raw).lower() in ("1", "true", "yes", "on")
        except (TypeError, ValueError):
            raise DistillError(f"option {key}={raw!r} of method {cls.name!r} must be a {kind.__name__}") from None
    parsed = cls.Options(**values)
    parsed.check(cls.name)
    return parsed


def check_count(method: str, name: str, value: int, zero: str = "") -> None:
    """A count option (images, steps, networks, epochs) must be at least 1: zero or a negative one would crash deep
    in a run or, as a slice bound, silently take another number. `zero` names what 0 means where it has a meaning
    (a default, "all of them"), and then 0 is accepted."""
    if zero and value < 0:
        raise DistillError(f"{method}: --opt {name} must be 0 ({zero}) or more, got {value}")
    if not zero and value < 1:
        raise DistillError(f"{method}: --opt {name} must be at least 1, got {value}")


def check_positive(method: str, name: str, value: float) -> None:
    """A step size, strength or scale option must be finite and above 0: nan, inf, 0 or a negative one would train
    nothing, diverge or fail far into a run."""
    if not (math.isfinite(value) and value > 0):
        raise DistillError(f"{method}: --opt {name} must be positive and finite, got {value}")


class ClassSampler:
    """Random real training images of one class: what DC, DSA and DM match their synthetic images against."""

    def __init__(self, task: Task):
        labels = task.train_y.cpu()
        self.x = task.train_x
        self.by_class = [(labels == c).nonzero().flatten() for c in range(task.num_classes)]

    def __call__(self, c: int, n: int, rng: torch.Generator) -> torch.Tensor:
        pool = self.by_class[c]
        pick = pool[torch.randperm(len(pool), generator=rng)[:n]] if n <= len(pool) else pool
        return self.x[pick.to(self.x.device)]
