"""Method registry. A method is a differentiable loss saying how well a synthetic set stands in for real data
(GUIDE §3); the outer loop (`distill.loop`) owns everything around it. Adding a method is one file and one entry."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Protocol

import torch

from distill.data import Task
from distill.errors import DistillError
from distill.synset import SyntheticSet


class Method(Protocol):
    """A method may also declare, as class attributes:

    - `learns_schedule` (default True): whether its sets carry learned per-step learning rates (`dd`, `attack`), or
      are plain images trained with the standard protocol (`dc`, `dm`, `mtt` ...);
    - `Options`: a dataclass of its own hyperparameters, filled from `DistillConfig.options` (`--opt key=value`),
      so a new method adds its knobs without touching the shared configuration; its `check(method)` refuses values
      out of range (with `check_count` / `check_positive`), so a bad one is one line before any data loads;
    - `finish(synset)`: called once after the loop, to move what it learned beyond the images into the metadata;
    - `state_dict()` / `load_state_dict(tensors)`: state carried from step to step (an online pool of networks),
      saved in checkpoints so a resumed run continues exactly.
    """

    name: str

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        """Prepare what the loss needs (networks, expert buffers, victim pools). Called once before the loop;
        `progress` False (`--quiet`) keeps any long preparation (training experts) silent."""

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        """A scalar differentiable in the synthetic set's trainable tensors. `rng` is seeded from (seed, step), so
        every step's randomness is reproducible and a resumed run repeats an uninterrupted one exactly."""


METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str):
    def add(cls):
        METHODS[name] = cls
        return cls

    return add


def get_method(name: str) -> Callable[..., Method]:
    if name not in METHODS:
        raise DistillError(f"unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def options_from_pairs(pairs: list[str]) -> dict[str, str]:
    """`--opt key=value` arguments as a dict (dashes in keys read as underscores); parse_options types them."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DistillError(f"--opt takes key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_options(factory: Callable[..., Method], options: dict) -> object | None:
    """The method's `Options` dataclass filled from `options`; unknown keys and badly typed values are user errors."""
    spec = getattr(factory, "Options", None)
    if spec is None:
        if options:
            raise DistillError(f"method {factory.name!r} takes no --opt options (got {', '.join(sorted(options))})")
        return None
    known = {f.name: f for f in dataclasses.fields(spec)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DistillError(f"unknown option(s) for method {factory.name!r}: {', '.join(unknown)}; it takes: "
                           f"{', '.join(sorted(known))}")
    values = {}
    for key, raw in options.items():
        kind = type(getattr(spec(), key))
        try:
            values[key] = kind(raw) if kind is not bool else str(raw).lower() in ("1", "true", "yes", "on")
        except (TypeError, ValueError):
            raise DistillError(f"option {key}={raw!r} of method {factory.name!r} must be a {kind.__name__}") from None
    parsed = spec(**values)
    if hasattr(parsed, "check"):  # ranges too: DistillConfig.validate calls this, so before any data or network
        parsed.check(factory.name)
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


def learns_schedule(name: str) -> bool:
    return getattr(get_method(name), "learns_schedule", True)


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


from distill.methods import attack, coreset, dc, dd, dm, dsa, frepo, mtt, unroll  # noqa: E402,F401  (registers the methods)
