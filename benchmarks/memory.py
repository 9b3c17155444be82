"""Peak memory of CIFAR-10-sized runs (issue 51: under 2.5 GB for 50,000 colour 32x32 images), written to
benchmarks/results/memory-cifar10-sized.json.

    DISTILL_DATA=../shared/data python benchmarks/memory.py

Each case is one `distill run` in a process of its own (a few steps, no final evaluation: what a run holds while it
distils), and its peak resident memory is the operating system's count for that process (`ru_maxrss`). The cases:
a user's .npz of 50,000 random colour 32x32 training images and 10,000 test images (the own-data path: read,
checked, split, normalised), DM on it; CIFAR-10 itself with DM; and CIFAR-10 whitened (`--zca`, a 3,072 x 3,072
matrix computed on the training split) with frepo, the heaviest of them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import HERE, cpu_name, git_commit, peak_memory_of

from distill.report import write_json

LIMIT_MB = 2500
STEPS = ["--iterations", "5", "--eval-every", "5", "--no-eval", "--quiet", "--force"]

def main() -> None:
    distill = [sys.executable, "-m", "distill"]
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        npz = Path(tmp) / "colour50k.npz"
        np.savez(npz, x_train=rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8),
                 y_train=np.arange(50_000) % 10, x_test=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8),
                 y_test=np.arange(10_000) % 10)
        cases = {
            "own .npz, 50,000 colour 32x32, dm": [*distill, "run", "--dataset", str(npz), "--method", "dm"],
            "cifar10, dm": [*distill, "run", "--dataset", "cifar10", "--method", "dm"],
            "cifar10 --zca, frepo": [*distill, "run", "--dataset", "cifar10", "--zca", "--method", "frepo"],
        }
        rows = []
        for label, command in cases.items():
            mb = peak_memory_of([*command, *STEPS, "--out", str(Path(tmp) / "run")])
            shown = " ".join(["distill", *command[3:], *STEPS]).replace(str(npz), "colour50k.npz")
            rows.append({"case": label, "command": shown, "peak_mb": round(mb, 1), "under_limit": mb < LIMIT_MB})
            print(f"{label}: {mb:.0f} MB")
    result = {"name": "memory-cifar10-sized", "limit_mb": LIMIT_MB, "cases": rows, "device": cpu_name(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "git_commit": git_commit(),
              "command": "DISTILL_DATA=../shared/data python benchmarks/memory.py"}
    path = write_json(result, HERE / "results" / "memory-cifar10-sized.json")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
