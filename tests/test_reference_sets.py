"""Every method, on the bundled digits with a fixed seed, still makes the set it made when these references were
recorded: the guard that lets the package be restructured without any result changing.

Each case is a short run of the public API. The references are the sets' tensors themselves
(`reference_sets.safetensors`) and, per CPU kernel family, the SHA-256 of their bytes (`reference_sets.json`).

- Where this machine's CPU vendor and kernel family (`torch.backends.cpu.get_cpu_capability()`: AVX512, AVX2) are
  ones the references were recorded on, the set must be bit-identical: the same hash. (The BLAS library picks its
  code paths by vendor as well as by instruction set, so both name the kernels.)
- On any other x86-64 CPU the kernels sum in another order, so only closeness can be asked. Rounding differences
  of float32 (about 6e-8 relative per operation) grow over a few outer steps, and Adam's first steps move each
  pixel by about its step size whatever the size of its gradient, so a pixel whose gradient is at rounding level may
  move another way; but such pixels are few. So each tensor must stay within CLOSE_FRACTION of its mean size on
  average: a change of behaviour (another draw of starting images, networks or batches, another loss) changes
  them by about their own size.

`python tests/test_reference_sets.py --record` records the references anew (only when a change of results is
intended, and said so in its commit).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import distill
from distill.data import load_task

HERE = Path(__file__).parent
TENSORS = HERE / "reference_sets.safetensors"
HASHES = HERE / "reference_sets.json"

# Short runs, each a few outer steps: enough that every part of a method (its sampling, loss, state carried between
# steps, validation and keep-best) shapes the set. Options a preset for the digits sets are given (frepo's: the main
# command's preset), so that a new preset does not change a case.
BASE = {"dataset": "digits", "evaluate": False, "progress": False, "seed": 7}
SHORT = {**BASE, "iterations": 3, "eval_every": 2, "checkpoint_every": 2}
CASES: dict[str, dict] = {
    "dd": {"method": "dd", "steps": 2, "epochs": 2, "options": {"real_batch": 64}},
    "dd-random-soft": {"method": "dd", "init": "random", "image_init": "noise", "learn_labels": True,
                       "options": {"real_batch": 64, "nets_per_step": 2}, "layer_lrs": True},
    "dc": {"method": "dc", "ipc": 2, "options": {"real_batch": 16, "outer_loop": 2, "inner_loop": 2}},
    "dsa": {"method": "dsa", "options": {"real_batch": 16}},
    "dm": {"method": "dm", "ipc": 2, "options": {"real_batch": 16}},
    "mtt": {"method": "mtt", "options": {"experts": 1, "train_epochs": 2, "expert_epochs": 1, "max_start_epoch": 1,
                                         "syn_steps": 3}},
    "frepo": {"method": "frepo", "learn_labels": True, "image_init": "real", "validation": "quick",
              "eval_augment": "none", "options": {"real_batch": 64, "pool_size": 2, "online_steps": 3}},
    "unroll": {"method": "unroll", "options": {"real_batch": 64}, "eval_epochs": 2, "iterations": 2,
               "validation": "quick"},
    "random": {"method": "random", "ipc": 2},
    "herding": {"method": "herding"},
    "kcenter": {"method": "kcenter", "ipc": 2},
}
ATTACK = {"dataset": "digits", "attacked": 3, "target": 8, "iterations": 3, "craft_victims": 2, "eval_victims": 1,
          "eval_every": 2, "checkpoint_every": 2, "seed": 7}
CLOSE_FRACTION = 0.1  # of a tensor's mean size (see the module's docstring). Measured between AVX2 and AVX-512
# kernels: under 1e-6 for every method but the attack, whose victims train 1,500 SGD steps before crafting starts
# and so carry rounding differences into it (0.008); another seed or a changed loss gives about 1.


def run_case(name: str) -> dict[str, torch.Tensor]:
    """The case's final set as named tensors."""
    if name == "attack":
        result = distill.attack(**ATTACK, progress=False)
        synset = result.synset
    else:
        selects = name in ("random", "herding", "kcenter")  # coresets: no loop, so no loop options
        synset = distill.distill(**{**(BASE if selects else SHORT), **CASES[name]}).synset
    tensors = {"images": synset.images, "labels": synset.labels}
    if synset.lrs is not None:
        tensors["lrs"] = synset.lrs
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].numpy().tobytes())
    return h.hexdigest()


ALL = [*CASES, "attack"]


def kernels() -> str:
    """The CPU's vendor and the kernel family PyTorch runs on it, e.g. "GenuineIntel/AVX512"."""
    vendor = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor}/{torch.backends.cpu.get_cpu_capability()}"


@pytest.fixture()
def one_thread():
    """The references were recorded on one thread: on a CPU, the thread count changes the order of sums too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ALL)
def test_every_method_still_makes_its_reference_set(name, one_thread, monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))  # experts, victims, full-data nets trained afresh
    reference = {k.split("/", 1)[1]: v for k, v in load_file(str(TENSORS)).items() if k.startswith(f"{name}/")}
    recorded = json.loads(HASHES.read_text())
    tensors = run_case(name)
    assert sorted(tensors) == sorted(reference), f"{name}: other tensors than recorded"
    for key, value in tensors.items():
        assert value.shape == reference[key].shape and value.dtype == reference[key].dtype, f"{name}/{key}"
    capability = kernels()
    if capability in recorded["hashes"]:
        assert digest(tensors) == recorded["hashes"][capability][name], (
            f"{name}: the set is no longer bit-identical to the one recorded on {capability} kernels")
        return
    for key, value in tensors.items():
        if not value.is_floating_point():  # hard labels: the same classes in the same places
            assert torch.equal(value, reference[key]), f"{name}/{key}"
            continue
        assert (value - reference[key]).abs().mean() <= CLOSE_FRACTION * reference[key].abs().mean(), f"{name}/{key}"


def record() -> None:
    """Record every case's set (tensors, and their hash for this machine's kernels) on one thread."""
    torch.set_num_threads(1)
    load_task("digits")
    capability = kernels()
    tensors: dict[str, torch.Tensor] = {}
    hashes = json.loads(HASHES.read_text())["hashes"] if HASHES.is_file() else {}
    mine = {}
    for name in ALL:
        case = run_case(name)
        mine[name] = digest(case)
        tensors.update({f"{name}/{k}": v for k, v in case.items()})
        print(name, mine[name][:16], flush=True)
    hashes[capability] = mine
    if "--hashes-only" not in sys.argv:
        save_file(tensors, str(TENSORS))
    HASHES.write_text(json.dumps({"hashes": hashes}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit("usage: python tests/test_reference_sets.py --record [--hashes-only]")
    record()
