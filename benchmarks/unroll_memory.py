"""Peak memory and time of `dd`'s unrolled steps, whole graph against segments (issue 52), written to
benchmarks/results/unroll-memory-mnist-dd.json.

    DISTILL_DATA=../shared/data python benchmarks/unroll_memory.py

LeNet on MNIST, 100 synthetic images (10 steps of one image per class), unrolled 10, 30 and 100 times (1, 3 and 10
epochs over the steps), each for a few outer steps in a process of its own: once keeping the whole graph
(`--opt segment=0`) and once back-propagating in segments of 10 steps (the default). A process's peak includes
torch and the MNIST tensors; `distill data mnist` (which loads them and trains nothing) is measured as the floor, and
the table gives each run's peak above it too: what the unrolled graph itself needs.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from common import HERE, cpu_name, git_commit, peak_memory_of

from distill.report import write_json

OUTER_STEPS = 3
UNROLLED = (10, 30, 100)
SEGMENTS = (0, 10)


def main() -> None:
    distill = [sys.executable, "-m", "distill"]
    floor = peak_memory_of([*distill, "data", "mnist"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for unrolled in UNROLLED:
            for segment in SEGMENTS:
                out = Path(tmp) / f"dd-{unrolled}-{segment}"
                options = ["run", "--dataset", "mnist", "--method", "dd", "--steps", "10", "--epochs",
                           str(unrolled // 10), "--iterations", str(OUTER_STEPS), "--eval-every", "1000",
                           "--checkpoint-every", "1000", "--no-eval", "--quiet", "--opt", f"segment={segment}"]
                peak = peak_memory_of([*distill, *options, "--out", str(out)])
                seconds = json.loads((out / "summary.json").read_text())["results"]["distill_seconds"]
                rows.append({"unrolled_steps": unrolled, "segment": segment, "peak_mb": round(peak, 1),
                             "above_floor_mb": round(peak - floor, 1),
                             "seconds_per_outer_step": round(seconds / OUTER_STEPS, 3),
                             "command": " ".join(["distill", *options])})
                print(f"{unrolled} steps, segment {segment}: {peak:.0f} MB ({peak - floor:.0f} above the floor), "
                      f"{seconds / OUTER_STEPS:.2f} s a step")
    result = {"name": "unroll-memory-mnist-dd", "floor_mb": round(floor, 1),
              "floor_command": "distill data mnist", "rows": rows, "device": cpu_name(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "git_commit": git_commit(),
              "command": "DISTILL_DATA=../shared/data python benchmarks/unroll_memory.py"}
    print(f"wrote {write_json(result, HERE / 'results' / 'unroll-memory-mnist-dd.json')}")


if __name__ == "__main__":
    main()
