"""Reproduce the original Dataset Distillation numbers (issue 2) with `distill` and write benchmarks/results/<name>.json.

    DISTILL_DATA=../shared/data python benchmarks/dd.py mnist-dd-fixed-10img
    DISTILL_DATA=../shared/data python benchmarks/dd.py --list

Each setting is one `distill.distill(...)` call; the exact options are recorded in the results file, and
`distill run` with the same options gives the same set (same seed).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

import distill
from distill.report import write_json

HERE = Path(__file__).resolve().parent
FIXED_10 = dict(method="dd", arch="lenet", ipc=1, steps=1, epochs=3, init="fixed", image_init="real",
                iterations=18000, lr_images=0.01, decay_every=3000, real_batch=1024, eval_every=500,
                checkpoint_every=500, eval_nets=1)
RANDOM_100 = dict(method="dd", arch="lenet", ipc=1, steps=10, epochs=3, init="random", image_init="real",
                  iterations=1000, lr_images=0.01, decay_every=400, real_batch=1024, nets_per_step=4,
                  eval_every=100, checkpoint_every=100, eval_nets=20)
SETTINGS = {
    # the README's main job: `distill run` with no options (every other option at its default)
    "digits-dd-default": dict(dataset="digits", method="dd", arch="lenet", ipc=1, init="fixed"),
    "mnist-dd-fixed-10img": dict(dataset="mnist", **FIXED_10),
    "mnist-dd-random-100img": dict(dataset="mnist", **RANDOM_100),
    # variants of the fixed-init setting, looking for the missing points (issue 2)
    "mnist-dd-fixed-10img-batch2048": dict(dataset="mnist", **{**FIXED_10, "iterations": 7000, "decay_every": 1250,
                                                             "real_batch": 2048}),
    "fashion-mnist-dd-fixed-10img": dict(dataset="fashion-mnist", **{**FIXED_10, "iterations": 6000,
                                                                    "decay_every": 1500}),
    "fashion-mnist-dd-random-100img": dict(dataset="fashion-mnist", **RANDOM_100),
}
ARTIFACTS = {"mnist-dd-fixed-10img"}  # small headline sets committed so anyone can re-check them


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """The GPU's name for a CUDA run, else the CPU model (results files record where they were measured)."""
    return torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted(SETTINGS))
    parser.add_argument("--list", action="store_true", help="print the settings and exit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true", help="continue a killed run of this setting")
    args = parser.parse_args()
    if args.list or not args.name:
        for name, options in SETTINGS.items():
            print(name, json.dumps(options))
        return
    options = SETTINGS[args.name]
    out = HERE / "runs" / args.name
    run = distill.distill(out=out, force=not args.resume, resume=args.resume, device=args.device, seed=args.seed,
                          **options)
    r = run.results
    device = device_name(r["device"])
    result = {
        "name": args.name, "dataset": options["dataset"], "method": options["method"], "ipc": options["ipc"],
        "images": len(run.synset.labels), "arch": options["arch"], "init": options["init"],
        "protocol": r["distilled"]["protocol"],
        "accuracy_mean": r["distilled"]["accuracy_mean"], "accuracy_std": r["distilled"]["accuracy_std"],
        "n_eval_nets": r["distilled"]["n_nets"], "accuracies": r["distilled"]["accuracies"],
        "full_data": {k: r["full_data"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets")},
        "random_real": {k: r["random_real"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets", "protocol")},
        "best_val_acc": max((h["val_acc"] for h in run.history if "val_acc" in h), default=None),
        "final_val_acc": next((h["val_acc"] for h in reversed(run.history) if "val_acc" in h), None),
        "distill_seconds": r["distill_seconds"], "device": device, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "git_commit": git_commit(),
        "command": f"DISTILL_DATA=../shared/data python benchmarks/dd.py {args.name}" +
                   (f" --seed {args.seed}" if args.seed else ""),
        "config": asdict(distill.DistillConfig(**{**options, "seed": args.seed})),
    }
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    write_json(result, results_dir / f"{args.name}.json")
    if args.name in ARTIFACTS:
        (HERE / "artifacts").mkdir(exist_ok=True)
        shutil.copyfile(out / "synset.safetensors", HERE / "artifacts" / f"{args.name}.safetensors")
        shutil.copyfile(out / "grid.png", HERE / "artifacts" / f"{args.name}.png")
        shutil.copyfile(out / "val_curve.png", HERE / "artifacts" / f"{args.name}-val.png")
    print(json.dumps({k: result[k] for k in ("name", "accuracy_mean", "accuracy_std", "n_eval_nets",
                                              "distill_seconds")}))


if __name__ == "__main__":
    sys.exit(main())
