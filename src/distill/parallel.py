"""Data-parallel distillation on torch.distributed, launched by torchrun (`torchrun --nproc_per_node N -m distill
run ...`, or `distill run --nproc N`, which launches the same).

Every rank holds the same synthetic set and draws the same random numbers. A method whose loss is a sum of shares
(`Method.parallel`: dm's classes, dd's networks or real batch, frepo's real batch) computes only its rank's share
(`share`); the loop then sums the gradients of the set's tensors over the ranks (`reduce_gradients`), so every rank
takes the same step and the set stays the same everywhere: the one-process set up to the order the shares are
summed in. A method without shares computes its whole loss on every rank (no speed-up, same set). Decisions (the
divergence guard, keeping the best set, the time limit) are taken on values every rank agrees on, and rank 0 alone
writes files, prints, and validates.

The backend is gloo on CPU and NCCL on CUDA, chosen from the run's device; the process group comes from torchrun's
environment (RANK, WORLD_SIZE, MASTER_ADDR ...). Without it everything here is a no-op: one process.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from distill.errors import DistillError


def launched() -> bool:
    """Whether this process was started by torchrun as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> torch.device:
    """Join the process group torchrun set up (once), and return the device this rank runs on: on CUDA its local
    GPU (`cuda:LOCAL_RANK`). One process: `device` unchanged."""
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return device


def rank() -> int:
    """This process's rank: the process group's, or torchrun's RANK once the group is left (what the command line
    prints is decided after the run)."""
    if dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or the one process): the one that writes, prints and validates."""
    return rank() == 0


def share(count: int) -> range:
    """This rank's share of `count` work items (items rank, rank + size, ...): every item is some rank's, once."""
    return range(rank(), count, size())


def my_part(items: torch.Tensor) -> torch.Tensor:
    """This rank's share of a batch (rows rank, rank + size, ...); the whole batch in one process."""
    return items[rank()::size()]


def reduce_gradients(grads: list[torch.Tensor | None], like: list[torch.Tensor],
                     summed: bool) -> list[torch.Tensor | None]:
    """The gradients of the tensors `like` over all ranks: their sum where each rank computed its share of the loss
    (`summed`), else their mean (every rank computed the whole loss). A tensor no rank's loss reached stays None
    (the optimiser then leaves it alone, as in one process); one all-reduce of one flat buffer."""
    if size() == 1:
        return grads
    reached = torch.tensor([float(g is not None) for g in grads], device=like[0].device)
    _call(dist.all_reduce, reached, op=dist.ReduceOp.MAX)
    kept = [(g if g is not None else torch.zeros_like(t)) for g, t, r in zip(grads, like, reached.tolist()) if r]
    if not kept:
        return grads
    flat = torch.cat([g.reshape(-1) for g in kept])
    _all_reduce(flat)
    if not summed:
        flat /= size()
    out, offset = [], 0
    for t, r in zip(like, reached.tolist()):
        if not r:
            out.append(None)
            continue
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def reduce_value(value: float, summed: bool, device: torch.device) -> float:
    """A number over all ranks: their sum (shares of one loss) or mean."""
    if size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    _all_reduce(tensor)
    return float(tensor) if summed else float(tensor) / size()


def from_main(value: float | None, device: torch.device) -> float | None:
    """Rank 0's `value` on every rank (what it validated), so every rank keeps the same best set."""
    if size() == 1:
        return value
    tensor = torch.tensor([float("nan") if value is None else value], dtype=torch.float64, device=device)
    _call(dist.broadcast, tensor, 0)
    return None if torch.isnan(tensor).item() else float(tensor)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on one (a time limit one rank reached stops them all at the same step)."""
    if size() == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    _call(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather(mine: dict[int, object], count: int) -> list:
    """Work items computed across the ranks (each rank's `mine`: item index -> result, over its `share(count)`),
    in item order on every rank."""
    if size() == 1:
        return [mine[i] for i in range(count)]
    everyone: list[dict] = [{} for _ in range(size())]
    try:
        dist.all_gather_object(everyone, mine)
    except RuntimeError as exc:
        raise DistillError(f"rank {rank()} of {size()}: another rank stopped ({str(exc).splitlines()[0]})") from None
    merged = {i: v for part in everyone for i, v in part.items()}
    return [merged[i] for i in range(count)]


def finish() -> None:
    """Leave the process group at the end of a run."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _all_reduce(tensor: torch.Tensor) -> None:
    _call(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)


def _call(operation, *args, **kwargs) -> None:
    """A collective; a rank that died ends the others' wait with a clear message instead of a backend traceback."""
    try:
        operation(*args, **kwargs)
    except (RuntimeError, dist.DistBackendError) as exc:
        raise DistillError(f"rank {rank()} of {size()}: another rank stopped ({str(exc).splitlines()[0]}); the last "
                           "checkpoint in the output folder continues the run with --resume") from None
