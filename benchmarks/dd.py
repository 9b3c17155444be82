"""Reproduce the original Dataset Distillation numbers (issue 2) with `distill` and write
benchmarks/results/<name>.json.

    DISTILL_DATA=../shared/data python benchmarks/dd.py mnist-dd-fixed-10img
    DISTILL_DATA=../shared/data python benchmarks/dd.py --list

The headline (`mnist-dd-fixed-10img`) is chosen on validation among a few candidate runs (`SELECTED`).

Each setting is one `distill.distill(...)` call; the exact options are recorded in the results file, and
`distill run` with the same options gives the same set (same seed).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from common import HERE, copy_atomic, run_main, run_name, run_setting

from distill import presets
from distill.api import DistillConfig
from distill.report import write_json
FIXED_10 = dict(method="dd", arch="lenet", ipc=1, steps=1, epochs=3, init="fixed", image_init="real",
                iterations=18000, lr_images=0.01, decay_every=3000, real_batch=1024, eval_every=500,
                checkpoint_every=500, eval_nets=1)
RANDOM_100 = dict(method="dd", arch="lenet", ipc=1, steps=10, epochs=3, init="random", image_init="real",
                  iterations=1000, lr_images=0.01, decay_every=400, real_batch=1024, nets_per_step=4,
                  eval_every=100, checkpoint_every=100, eval_nets=20)
SETTINGS = {
    # the README's main job: `distill run` with no options (every other option at its default)
    "digits-dd-default": dict(dataset="digits", method="dd", arch="lenet", ipc=1, init="fixed"),
    # the headline: the paper's noise initialisation (faster and higher than real samples here: 91.1% validation at
    # 3,600 steps where the real-sample run had 86%), the original code's decay (halve every ~2,000 steps), validated
    # every 10 steps (validation swings by several points between outer steps; a fixed-init check is cheap)
    "mnist-dd-fixed-10img-step-lrs": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise", "iterations": 14000,
                                                   "decay_every": 2000, "eval_every": 10}),
    "mnist-dd-fixed-10img-real": dict(dataset="mnist", **FIXED_10),  # the earlier headline, from real samples
    # one learned rate per step and per parameter tensor (30 rates instead of 3): at 3,000 steps 91.8% test against
    # 90.6% with one rate per step (best validation 91.2 against 89.5)
    "mnist-dd-fixed-10img-layer-lrs": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise", "iterations": 14000,
                                                             "decay_every": 2000, "eval_every": 10,
                                                             "layer_lrs": True}),
    "mnist-dd-fixed-10img-layer-lrs-8k": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise",
                                                                "iterations": 8000, "decay_every": 1500,
                                                                "eval_every": 10, "layer_lrs": True}),
    # six gradient steps (epochs 6) over the ten images with per-layer rates: ahead of three steps early (validation
    # 88.8% mean, 89.9% best over steps 1,000-1,500, against 86.6 and 89.0), level by 2,000 steps (90.2 best
    # against 90.1); 91.3% test at 2,000 steps
    "mnist-dd-fixed-10img-layer-lrs-e6": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise",
                                                                "iterations": 10000, "decay_every": 1500,
                                                                "eval_every": 10, "layer_lrs": True, "epochs": 6}),
    # the headline's setting in a 10-minute budget on the 2-core CPU: 4,000 steps, halving every 800
    "mnist-dd-fixed-10img-layer-lrs-e6-fast": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise",
                                                                     "iterations": 4000, "decay_every": 800,
                                                                     "eval_every": 10, "layer_lrs": True,
                                                                     "epochs": 6}),
    "mnist-dd-random-100img": dict(dataset="mnist", **RANDOM_100),
    # variants of the fixed-init setting, looking for the missing points (issue 2)
    "mnist-dd-fixed-10img-batch2048": dict(dataset="mnist", **{**FIXED_10, "iterations": 7000, "decay_every": 1250,
                                                             "real_batch": 2048}),
    # ten gradient steps (epochs 10) on the same ten images, with learned soft labels or hard ones; faster decay
    # (every 1500 steps) since at a constant step size these runs fell apart after about 1600 steps. Validation
    # accuracy swings by several points between outer steps, and validating a fixed-init set costs only ten tiny
    # steps and one pass over the held-out split, so these validate every 10 steps and keep the best
    "mnist-dd-fixed-10img-soft": dict(dataset="mnist", **{**FIXED_10, "epochs": 10, "learn_labels": True,
                                                        "iterations": 9000, "decay_every": 1500, "eval_every": 10}),
    "mnist-dd-fixed-10img-e10": dict(dataset="mnist", **{**FIXED_10, "epochs": 10, "iterations": 9000,
                                                       "decay_every": 1500, "eval_every": 10}),
    # the soft-label run with its images kept valid pictures: those runs fell apart as the pixels grew
    "mnist-dd-fixed-10img-soft-clamped": dict(dataset="mnist", **{**FIXED_10, "epochs": 10, "learn_labels": True,
                                                                "iterations": 9000, "decay_every": 1500,
                                                                "eval_every": 10, "clamp_pixels": True}),
    # the same with learned soft labels (Sucholutsky & Schonlau 2021): still ten images, one per class
    "mnist-dd-fixed-10img-noise-soft": dict(dataset="mnist", **{**FIXED_10, "image_init": "noise", "iterations": 10000,
                                                              "decay_every": 1500, "eval_every": 10,
                                                              "learn_labels": True}),
    "mnist-dd-fixed-10img-eval10": dict(dataset="mnist", **{**FIXED_10, "iterations": 15000, "eval_every": 10}),
    "fashion-mnist-dd-fixed-10img": dict(dataset="fashion-mnist", **{**FIXED_10, "iterations": 6000,
                                                                    "decay_every": 1500}),
    "fashion-mnist-dd-random-100img": dict(dataset="fashion-mnist", **RANDOM_100),
}
# small headline sets committed so anyone can re-check them
ARTIFACTS = {"mnist-dd-fixed-10img-step-lrs", "mnist-dd-fixed-10img-real", "mnist-dd-fixed-10img-noise-soft"}
# Headlines chosen on validation: each candidate (setting, seed) is run, or its finished run reused, and the one with
# the best validation accuracy (5,000 held-out training images) becomes the headline. The seed draws the fixed
# network and the starting noise, and with them where the run levels off; the test split plays no part in the choice.
SELECTED = {
    "mnist-dd-fixed-10img": [("mnist-dd-fixed-10img-layer-lrs-e6", 0), ("mnist-dd-fixed-10img-layer-lrs-e6", 1)],
}


def finished(setting: str, seed: int) -> dict | None:
    """The results of a finished run of (setting, seed) with exactly this setting's options, if there is one."""
    name = run_name(setting, seed)
    path = HERE / "results" / f"{name}.json"
    if not (path.exists() and (HERE / "runs" / name / "synset.safetensors").exists()):
        return None
    result = json.loads(path.read_text())
    wanted = asdict(DistillConfig(**presets.resolve(**SETTINGS[setting], seed=seed)))
    return result if result["config"] == json.loads(json.dumps(wanted)) else None


def select(headline: str, device: str | None) -> None:
    """Run (or reuse) every candidate of `headline`, keep the best on validation, write it under the headline's
    name with every candidate's numbers beside it, and commit its set as the headline artifact."""
    candidates = []
    for setting, seed in SELECTED[headline]:
        result = finished(setting, seed) or run_setting(
            setting, SETTINGS[setting], f"DISTILL_DATA=../shared/data python benchmarks/dd.py {setting}",
            seed=seed, device=device)
        candidates.append((run_name(setting, seed), result))
    chosen_name, chosen = max(candidates, key=lambda c: c[1]["best_val_acc"])
    result = {**chosen, "name": headline, "command": f"DISTILL_DATA=../shared/data python benchmarks/dd.py {headline}",
              "selection": "best validation accuracy among the candidates (the test split plays no part)",
              "selected": chosen_name,
              "candidates": [{"name": n, "seed": r["config"]["seed"], "best_val_acc": r["best_val_acc"],
                              "accuracy_mean": r["accuracy_mean"], "distill_seconds": r["distill_seconds"]}
                             for n, r in candidates]}
    for suffix, source in ((".safetensors", "synset.safetensors"), (".png", "grid.png"), ("-val.png", "val_curve.png")):
        copy_atomic(HERE / "runs" / chosen_name / source, HERE / "artifacts" / f"{headline}{suffix}")
    write_json(result, HERE / "results" / f"{headline}.json")  # last: a failed copy leaves results and set in step
    print(json.dumps({k: result[k] for k in ("name", "selected", "accuracy_mean", "candidates")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=sorted({*SETTINGS, *SELECTED}))
    parser.add_argument("--list", action="store_true", help="print the settings and exit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true", help="continue a killed run of this setting")
    parser.add_argument("--replace", action="store_true",
                        help="replace a committed results file (and set) that another command made")
    args = parser.parse_args()
    if args.list or not args.name:
        for name, options in SETTINGS.items():
            print(name, json.dumps(options))
        for name, candidates in SELECTED.items():
            print(name, "best on validation of", json.dumps(candidates))
        return
    if args.name in SELECTED:
        select(args.name, args.device)
        return
    run_setting(args.name, SETTINGS[args.name], f"DISTILL_DATA=../shared/data python benchmarks/dd.py {args.name}",
                artifact=args.name if args.name in ARTIFACTS else None, seed=args.seed, device=args.device,
                resume=args.resume, replace=args.replace)


if __name__ == "__main__":
    run_main(main)
