"""Fast checks of the coreset baselines: balance, ordering, determinism and hand-computed toy selections."""

import pytest
import torch

from distill.coreset import CORESETS, select
from distill.errors import DistillError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n_per_class: int = 30, classes: int = 3, dim: int = 5):
    """Shuffled labels, so class order in the output is not an accident of the input order."""
    g = _gen(0)
    labels = torch.arange(classes).repeat_interleave(n_per_class)[torch.randperm(classes * n_per_class, generator=g)]
    return torch.randn(len(labels), dim, generator=g), labels


@pytest.mark.parametrize("method", CORESETS)
def test_counts_order_and_no_duplicates(method):
    x, y = _data()
    idx = select(method, x, y, 4, _gen(1))
    assert idx.dtype == torch.int64 and idx.device.type == "cpu"
    assert y[idx].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(set(idx.tolist())) == len(idx)


def test_random_reproducible_and_seed_dependent():
    x, y = _data(n_per_class=100, classes=2)
    a = select("random", x, y, 10, _gen(7))
    assert torch.equal(a, select("random", x, y, 10, _gen(7)))
    assert not torch.equal(a, select("random", x, y, 10, _gen(8)))


def test_herding_toy_1d():
    # Class 0 values [0, 10, 4, 7, 5], mean 5.2. Pick 1: 5 (idx 4). Pick 2: (5 + x) / 2 nearest 5.2 -> x near 5.4 -> 4
    # (idx 2). Pick 3: (9 + x) / 3 -> x near 6.6 -> 7 (idx 3). Pick 4: (16 + x) / 4 -> x near 4.8 -> 0 (idx 0).
    # Class 1 values [1, 2, 3.5] (idx 5-7), mean 13/6: 2 first, then x near 7/3 -> 3.5, then 1.
    x = torch.tensor([0.0, 10, 4, 7, 5, 1, 2, 3.5]).unsqueeze(1)
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    assert select("herding", x, y, 3, _gen(0)).tolist() == [4, 2, 3, 6, 7, 5]
    assert select("herding", x[:5], y[:5], 5, _gen(0)).tolist() == [4, 2, 3, 0, 1]


def test_kcenter_picks_outlier_second():
    # Mean (20.4, 20.4) is nearest (1, 1), idx 3; the outlier is farthest from it; then (0, 0) at distance sqrt(2).
    x = torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1], [100, 100]])
    y = torch.zeros(5, dtype=torch.int64)
    assert select("kcenter", x, y, 3, _gen(0)).tolist() == [3, 4, 0]


def test_kcenter_duplicates_never_repeat():
    x = torch.zeros(4, 2)
    y = torch.zeros(4, dtype=torch.int64)
    assert sorted(select("kcenter", x, y, 4, _gen(0)).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize(("method", "ipc", "message"), [
    ("gradmatch", 1, "unknown coreset method"),
    ("random", 0, "at least 1"),
    ("herding", 31, "fewer than ipc=31"),
])
def test_errors(method, ipc, message):
    x, y = _data()
    with pytest.raises(DistillError, match=message):
        select(method, x, y, ipc, _gen(0))
