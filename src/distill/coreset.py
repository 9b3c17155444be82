"""Coreset baselines for dataset distillation tables: pick `ipc` real examples per class instead of synthesising them.

The DC paper (Zhao et al. 2021) compares against random, herding and k-center selection; a distilled set is only
interesting if it beats these at the same images-per-class budget. Selection works on feature vectors (raw pixels
flattened, or an embedding), so this module knows nothing about models or datasets: it returns indices, and the
caller gathers the images.

Every method selects per class, so the result is balanced by construction, and all classes are returned in
ascending label order with each class's picks in the order they were chosen (a prefix of a herding or k-center
selection is itself the selection for a smaller budget).
"""

from __future__ import annotations

from typing import Callable

import torch

from distill.errors import DistillError

CORESETS = ("random", "herding", "kcenter")

# Exact per-pair distances: the matrix-multiply shortcut in cdist loses precision and can reorder near ties.
_EXACT = "donot_use_mm_for_euclid_dist"


def _distances(x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """L2 distance from every row of `x` [N, D] to `point` [D], as [N]; one query row keeps memory at O(N)."""
    return torch.cdist(x, point.unsqueeze(0), compute_mode=_EXACT).squeeze(1)


def _random(x: torch.Tensor, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform without replacement: the only randomised baseline, so it alone uses the generator."""
    return torch.randperm(len(x), generator=generator, device=generator.device)[:ipc].to(x.device)


def _herding(x: torch.Tensor, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """Welling's herding as in iCaRL and DC: greedily add the example that brings the mean of the chosen set closest
    to the class mean.

    With k - 1 examples chosen (summing to s), the k-th pick x minimises ||mu - (s + x) / k||, i.e. the distance from x
    to k * mu - s; chosen examples are masked out, so nothing is picked twice even if it would help the mean.
    """
    mean = x.mean(0)
    chosen = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    total = torch.zeros_like(mean)
    picks = []
    for k in range(1, ipc + 1):
        dist = _distances(x, k * mean - total).masked_fill(chosen, float("inf"))
        i = int(dist.argmin())
        picks.append(i)
        chosen[i] = True
        total = total + x[i]
    return torch.tensor(picks, dtype=torch.int64, device=x.device)


def _kcenter(x: torch.Tensor, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-center (Sener & Savarese 2018): repeatedly add the example farthest from its nearest chosen one.

    The usual random first center is replaced by the example closest to the class mean, so the baseline is
    deterministic and starts from a typical example rather than an arbitrary one. A running nearest-center distance
    vector keeps the cost O(N * D) per pick and the memory O(N), fine for ~6000 x 2048 classes.
    """
    first = int(_distances(x, x.mean(0)).argmin())
    picks = [first]
    nearest = _distances(x, x[first])
    chosen = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    chosen[first] = True
    for _ in range(ipc - 1):
        # Masking matters with duplicate features: an unchosen copy of a center is also at distance 0.
        i = int(nearest.masked_fill(chosen, -1.0).argmax())
        picks.append(i)
        chosen[i] = True
        nearest = torch.minimum(nearest, _distances(x, x[i]))
    return torch.tensor(picks, dtype=torch.int64, device=x.device)


_METHODS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "random": _random,
    "herding": _herding,
    "kcenter": _kcenter,
}


def _check(method: str, features: torch.Tensor, labels: torch.Tensor, ipc: int) -> None:
    """Refuse bad requests up front with one-line messages, before any class is processed."""
    if method not in _METHODS:
        raise DistillError(f"unknown coreset method {method!r}; choose one of {', '.join(CORESETS)}")
    if ipc < 1:
        raise DistillError(f"coreset ipc must be at least 1, got {ipc}")
    if features.dim() != 2 or labels.dim() != 1 or len(features) != len(labels):
        raise DistillError(f"coreset needs features [N, D] and labels [N], got {tuple(features.shape)} "
                           f"and {tuple(labels.shape)}")
    classes, counts = torch.unique(labels, return_counts=True)
    small = counts < ipc
    if small.any():
        c = int(classes[small][0])
        raise DistillError(f"class {c} has only {int(counts[small][0])} examples, fewer than ipc={ipc}")


def select(method: str, features: torch.Tensor, labels: torch.Tensor, ipc: int,
           generator: torch.Generator) -> torch.Tensor:
    """Indices into `features` of `ipc` examples per class, chosen by `method` (one of `CORESETS`).

    Classes come in ascending label order, each class's picks in selection order. Computation runs in float32 on the
    features' device; the result is int64 on the CPU, ready to index CPU or GPU tensors alike.
    """
    _check(method, features, labels, ipc)
    x_all = features.detach().float()
    labels = labels.to(x_all.device)
    pick = _METHODS[method]
    out = []
    for c in torch.unique(labels):
        members = (labels == c).nonzero().squeeze(1)
        out.append(members[pick(x_all[members], ipc, generator)])
    if not out:
        return torch.zeros(0, dtype=torch.int64)
    return torch.cat(out).to("cpu", torch.int64)
