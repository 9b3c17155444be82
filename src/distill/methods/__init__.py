"""Method registry. A method is a differentiable loss saying how well a synthetic set stands in for real data
(GUIDE §3); the outer loop (`distill.loop`) owns everything around it. Adding a method is one file and one entry."""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from distill.data import Task
from distill.errors import DistillError
from distill.synset import SyntheticSet


class Method(Protocol):
    name: str

    def setup(self, task: Task, synset: SyntheticSet) -> None:
        """Prepare what the loss needs (networks, expert buffers, victim pools). Called once before the loop."""

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


from distill.methods import attack, dd  # noqa: E402,F401  (registers the methods)
