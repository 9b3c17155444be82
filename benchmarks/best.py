"""The best 1-image-per-class sets (issue 5), as files anyone can train from without `distill`.

    DISTILL_DATA=../shared/data python benchmarks/best.py mnist-best-ipc1

copies the most accurate measured set of its dataset (`BEST_SOURCES`, which a test keeps equal to the best results
file: the best preset's, or a later stage that refined that preset's committed set and beat it on validation, as the
`unroll` stages on MNIST and Fashion-MNIST) to benchmarks/artifacts/<name>.safetensors, trains 5 fresh ConvNets on
it with examples/train_plain.py (plain PyTorch and safetensors, the standard protocol, the same training
augmentation the source was measured with), and writes benchmarks/results/plain-<name>.json with both accuracies
side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from common import HERE, copy_atomic, cpu_name, git_commit, positive_int, run_main

import torch
from distill.data import data_root
from distill.report import write_json

BEST_SOURCES = {"mnist-best-ipc1": "mnist-unroll-ipc1-from-unroll-seed1",
                "fmnist-best-ipc1": "fashion-mnist-unroll-ipc1-from-frepo"}
EXAMPLE = HERE.parent / "examples" / "train_plain.py"
PLAIN_AUGMENTS = ("none", "dc", "dsa")  # the eval augmentations examples/train_plain.py implements, same names


def source_set(source: str) -> Path:
    """The set a results file describes: its committed artifact, else its run folder's."""
    for path in (HERE / "artifacts" / f"{source}.safetensors", HERE / "runs" / source / "synset.safetensors"):
        if path.exists():
            return path
    sys.exit(f"no set for {source}: neither benchmarks/artifacts/{source}.safetensors nor "
             f"benchmarks/runs/{source}/synset.safetensors exists")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BEST_SOURCES))
    parser.add_argument("--nets", type=positive_int, default=5)
    args = parser.parse_args()
    source = BEST_SOURCES[args.name]
    measured = json.loads((HERE / "results" / f"{source}.json").read_text())
    augment = measured["config"]["eval_augment"] or "none"
    if augment not in PLAIN_AUGMENTS:
        sys.exit(f"{source} was evaluated with --augment {augment}, which examples/train_plain.py does not implement")

    target = HERE / "artifacts" / f"{args.name}.safetensors"
    copy_atomic(source_set(source), target)  # a reader never sees half a file

    data = data_root() / measured["dataset"]
    command = [sys.executable, str(EXAMPLE), str(target), str(data), "--nets", str(args.nets),
               "--augment", augment, "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"examples/train_plain.py failed:\n{done.stderr}")
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    result = {
        "name": f"plain-{args.name}", "artifact": f"benchmarks/artifacts/{args.name}.safetensors", "source": source,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "dataset": measured["dataset"], "method": measured["method"], "ipc": measured["ipc"],
        "arch": measured["arch"], "init": measured["init"],
        "trained_with": "examples/train_plain.py: plain PyTorch and safetensors, no distill import",
        "eval_augment": augment, "epochs": plain["epochs"],
        "accuracy_mean": plain["mean"] / 100, "accuracy_std": plain["std"] / 100, "n_eval_nets": args.nets,
        "accuracies": [a / 100 for a in plain["accuracies"]],
        "distill_accuracy": {k: measured[k] for k in ("accuracy_mean", "accuracy_std", "n_eval_nets")},
        "distill_seconds": measured["distill_seconds"], "device": cpu_name(), "threads": int(env["OMP_NUM_THREADS"]),
        "torch": torch.__version__, "git_commit": git_commit(),
        "command": f"DISTILL_DATA=../shared/data python benchmarks/best.py {args.name}",
    }
    write_json(result, HERE / "results" / f"plain-{args.name}.json")
    print(json.dumps({k: result[k] for k in ("name", "source", "accuracy_mean", "accuracy_std", "distill_accuracy")}))


if __name__ == "__main__":
    run_main(main)
