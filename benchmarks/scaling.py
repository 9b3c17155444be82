"""Time per outer step with one process of 2 threads against two processes of 1 thread (torchrun, gloo), for dd, dm
and frepo on MNIST (issue 52), written to benchmarks/results/scaling-mnist.json.

    DISTILL_DATA=../shared/data python benchmarks/scaling.py

Each run distils a few steps (no validation, no evaluation) and its summary's distillation time over its steps is
the time per step. Beside it, what one step all-reduces: the gradient of the set's tensors (float32), the only
traffic between ranks besides one number (the loss) and one flag (the time limit). On N machines a step costs about
compute / N (the shares) + the all-reduce of those bytes (a ring sends 2 (N - 1) / N of them per rank): 0.3 MB a
step here, milliseconds on any network against a step's compute of tenths of a second to seconds, so communication
does not limit the scaling; what a rank computes apart from its share (every rank draws every sample, and dm, dsa
and frepo repeat the synthetic images' side of the step, frepo its pool's training) and how well one thread runs
a smaller share do (RESULTS.md, "Scale", has what two processes gave on this 2-core machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import HERE, cpu_name, git_commit

import distill
from distill.report import write_json

STEPS = 10
RUNS = {  # each method's step split by what it shares: dm's classes, dd's networks, frepo's real batch
    "dm": ["--method", "dm", "--ipc", "10", "--opt", "real_batch=256"],
    "dd": ["--method", "dd", "--steps", "10", "--epochs", "1", "--opt", "nets_per_step=2", "--opt", "real_batch=512"],
    "frepo": ["--method", "frepo", "--ipc", "10", "--opt", "real_batch=1024", "--image-init", "real",
              "--teacher-labels", "0"],  # no full-data network to train first (herding's features, the teacher)
}


def seconds_per_step(command: list[str], out: Path, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())["results"]["distill_seconds"] / STEPS


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method, options in RUNS.items():
            run = ["run", "--dataset", "mnist", *options, "--iterations", str(STEPS), "--eval-every", "1000",
                   "--checkpoint-every", "1000", "--no-eval", "--quiet"]
            one = seconds_per_step([sys.executable, "-m", "distill", *run, "--threads", "2"],
                                   Path(tmp) / f"{method}-1", threads=2)
            two = seconds_per_step([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node=2", "-m", "distill", *run], Path(tmp) / f"{method}-2", threads=1)
            synset = distill.load(Path(tmp) / f"{method}-1" / "synset.safetensors")
            floats = synset.images.numel() + (synset.lrs.numel() if synset.lrs is not None else 0) + (
                synset.labels.numel() if synset.labels.is_floating_point() else 0)
            rows.append({"method": method, "one_process_two_threads_s": round(one, 3),
                         "two_processes_one_thread_s": round(two, 3), "speedup": round(one / two, 2),
                         "allreduce_bytes_per_step": 4 * floats, "command": " ".join(["distill", *run])})
            print(f"{method}: {one:.3f} s a step (1 x 2 threads), {two:.3f} s (2 x 1 thread), "
                  f"{4 * floats / 1e6:.2f} MB all-reduced a step")
    result = {"name": "scaling-mnist", "steps": STEPS, "rows": rows, "device": cpu_name(), "torch": torch.__version__,
              "git_commit": git_commit(), "command": "DISTILL_DATA=../shared/data python benchmarks/scaling.py"}
    print(f"wrote {write_json(result, HERE / 'results' / 'scaling-mnist.json')}")


if __name__ == "__main__":
    main()
