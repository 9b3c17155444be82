"""Reproduce the poisoning numbers (issue 3) and write benchmarks/results/attack-<name>.json.

    DISTILL_DATA=../shared/data python benchmarks/attack.py mnist-3to8
    DISTILL_DATA=../shared/data python benchmarks/attack.py --list

Victims are trained once and cached (DISTILL_CACHE, default ~/.cache/distill/models); the held-out victims that the
numbers come from are never seen while the poison is crafted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

import distill
from distill.report import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import copy_atomic, device_name, git_commit, run_main  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMON = dict(arch="lenet", ipc=1, steps=1, epochs=3, iterations=1500, lr_images=0.03, decay_every=500,
              real_batch=512, eval_every=100, craft_victims=10, eval_victims=10)
SETTINGS = {
    "mnist-3to8": dict(dataset="mnist", attacked=3, target=8, **COMMON),
    "mnist-1to7": dict(dataset="mnist", attacked=1, target=7, **COMMON),
    "mnist-9to4": dict(dataset="mnist", attacked=9, target=4, **COMMON),
    "mnist-forget3": dict(dataset="mnist", attacked=3, target=None, **COMMON),
    "fashion-mnist-7to5": dict(dataset="fashion-mnist", attacked=7, target=5, **COMMON),
}
ARTIFACTS = {"mnist-3to8": "mnist-attack-3to8"}


def brief(m: dict) -> dict:
    keep = ("before_success", "after_success", "before_attacked_acc", "after_attacked_acc", "before_others_acc",
            "after_others_acc", "before_overall_acc", "after_overall_acc", "others_drop", "n_victims", "per_class")
    return {k: m[k] for k in keep if k in m} | {k: m[k] for k in ("lr", "damage_budget") if k in m}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted(SETTINGS))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if args.list or not args.name:
        for name, options in SETTINGS.items():
            print(name, json.dumps(options))
        return
    options = SETTINGS[args.name]
    out = HERE / "runs" / f"attack-{args.name}"
    run = distill.attack(out=out, force=True, device=args.device, **options)
    r = run.results
    result = {
        "name": f"attack-{args.name}", "dataset": options["dataset"], "method": "attack", "arch": options["arch"],
        "mode": r["mode"], "attacked": r["attacked"], "target": r["target"], "images": r["images"],
        "gradient_steps": r["gradient_steps"], "init": "loaded",
        "attack_success_mean": r["held_out"]["after_success"]["mean"],
        "attack_success_std": r["held_out"]["after_success"]["std"],
        "others_drop_mean": r["held_out"]["others_drop"]["mean"],
        "n_eval_victims": r["held_out"]["n_victims"],
        "held_out": brief(r["held_out"]), "crafting": brief(r["crafting"]), "validation": r["validation"],
        "label_flip": brief(r["label_flip"]), "label_flip_matched": brief(r["label_flip_matched"]),
        "label_flip_sweep": r["label_flip_sweep"],
        "distill_seconds": r["distill_seconds"],
        "device": device_name(r["device"]),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "git_commit": git_commit(),
        "command": f"DISTILL_DATA=../shared/data python benchmarks/attack.py {args.name}",
        "config": asdict(distill.AttackConfig(**options)),
    }
    if args.name in ARTIFACTS:  # the poison first, its results file last: a failed copy leaves the two in step
        stem = ARTIFACTS[args.name]
        (HERE / "artifacts").mkdir(exist_ok=True)
        copy_atomic(out / "synset.safetensors", HERE / "artifacts" / f"{stem}.safetensors")
        copy_atomic(out / "grid.png", HERE / "artifacts" / f"{stem}.png")
        copy_atomic(out / "confusion.png", HERE / "artifacts" / f"{stem}-confusion.png")
    (HERE / "results").mkdir(exist_ok=True)
    write_json(result, HERE / "results" / f"attack-{args.name}.json")
    print(json.dumps({k: result[k] for k in ("name", "attack_success_mean", "others_drop_mean", "n_eval_victims")}
                     | {f"{name}_{key}": result[name][stat]["mean"] for name in ("label_flip", "label_flip_matched")
                        for key, stat in (("success", "after_success"), ("others_drop", "others_drop"))}))


if __name__ == "__main__":
    run_main(main)
