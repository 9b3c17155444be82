"""Choose the augmentation a committed set is evaluated with on the held-out validation split, never on the test
split (issue 5, item 2: augmentation, one change at a time).

    DISTILL_DATA=../shared/data python experiments/augment_sweep.py fashion-mnist-frepo-ipc10 --augments none,dsa
    DISTILL_DATA=../shared/data python experiments/augment_sweep.py mnist-frepo-ipc10 --augments dc,dsa

GUIDE §5 trains the standard protocol's networks for 300 epochs without augmentation or 1000 with it, and leaves
which augmentation to the set: a set distilled without augmentation may still train a network better when its images
are shifted or mirrored. For each augmentation named (`none`, `dsa`, `dc` or a strategy such as `crop_flip`; the
set's own, its results file's eval_augment, must be among them so that the others are compared with it on the same
networks' seeds) this trains `--nets` fresh networks on benchmarks/artifacts/<name>.safetensors, labels as committed,
and measures each on the validation split and the test split. It writes benchmarks/results/augment-sweep-<name>.json
when the last augmentation is measured (before that, after every one, to augment-sweep-<name>.json.partial beside it,
`complete` false: a long sweep stopped early keeps what it measured, and never replaces a complete one), with the one
validation picks; the test numbers are reported beside it, not used to choose.

At 10 images per class one network with augmentation took about 7 minutes of one CPU thread (1000 epochs of 100
images), one without about 2 minutes (300 epochs); at 1 per class, under a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # benchmarks/common.py, shared
from common import (HERE, committed_set, device_name, git_commit, measure_on_splits, positive_int, run_main,
                    short_commit)

import distill
from distill.device import pick_device
from distill.augment import augmentation_for
from distill.data import load_task
from distill.errors import DistillError
from distill.evaluate import standard_sgd
from distill.report import write_json


def own_augment(config: dict) -> str:
    """The results file's evaluation augmentation, `none` when it has none (older files store an empty string)."""
    return config.get("eval_augment") or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a results file under benchmarks/results (without .json) with its artifact")
    parser.add_argument("--augments", required=True, help="comma-separated augmentations, the set's own among them "
                        "(none, dsa, dc, or a strategy such as crop_flip)")
    parser.add_argument("--nets", type=positive_int, default=5)
    parser.add_argument("--device", default=None, help="where the networks train (default: a GPU when there is one)")
    parser.add_argument("--at", default=None, metavar="COMMIT",
                        help="sweep the set (and its results file's evaluation) as committed at COMMIT")
    args = parser.parse_args()
    args.at = short_commit(args.at)
    config, artifact = committed_set(args.name, args.at)
    augments = [a.strip().lower() for a in args.augments.split(",") if a.strip()]
    if own_augment(config) not in augments:
        sys.exit(f"--augments must include the set's own evaluation augmentation, {own_augment(config)!r}, to compare "
                 "with it on the same networks")
    if len(set(augments)) != len(augments):
        sys.exit(f"--augments names one augmentation twice: {args.augments}")
    try:
        for augment in augments:  # every name checked now, not after the first one's networks have trained
            augmentation_for(augment, config["dataset"])
    except DistillError as error:
        sys.exit(f"--augments: {error}")
    synset = distill.load(artifact)
    device = pick_device(args.device)
    task = load_task(config["dataset"]).to(device)
    out = HERE / "results" / f"augment-sweep-{args.name}.json"
    partial = out.with_name(f"{out.name}.partial")  # not *.json: the README's tables read only finished sweeps
    command = (f"DISTILL_DATA=../shared/data python experiments/augment_sweep.py {args.name} --augments "
               + ",".join(augments) + (f" --nets {args.nets}" if args.nets != 5 else "")
               + (f" --at {args.at}" if args.at else ""))
    rows = []
    for augment in augments:
        own = augment == own_augment(config)
        sgd = standard_sgd(synset, augment, config["eval_epochs"] if own else 0)
        row = {"augment": augment, "own": own, "epochs": sgd.epochs,
               **measure_on_splits(synset, task, args.nets, augment, sgd)}
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("accuracies")}), flush=True)
        rows.append(row)
        chosen = max(rows, key=lambda r: r["validation"]["mean"])
        complete = len(rows) == len(augments)
        # a sweep stopped early keeps what it measured, beside the results file, never over a complete one there
        write_json({"name": f"augment-sweep-{args.name}", "set": args.name, "dataset": config["dataset"],
                    "n_eval_nets": args.nets, "rows": rows, "complete": complete,
                    "chosen": chosen["augment"], "device": device_name(str(device)),
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "git_commit": git_commit(),
                    "command": command}, out if complete else partial)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    run_main(main)
