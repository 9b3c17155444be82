"""Where a computation runs: the device a run, an evaluation or an attack uses, and the record of it kept beside
their numbers."""

from __future__ import annotations

import platform

import torch

from distill.errors import DistillError

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
