"""Measure a committed benchmark set again after an evaluation-only preset changed (`eval_augment`, `eval_epochs`,
`eval_nets`, or the teacher-label blend `teacher_labels` / `teacher_temperature`: the options `distill run --resume`
may change, api.FREE_ON_RESUME), or after the evaluation code itself changed (`--because "what changed"`), without
distilling it again. A new blend relabels the committed set and replaces its file with the relabelled one, which
is what `distill run` with the new preset ends with (a set that carries teacher labels already is refused: blend
the set as distilled, from git history).

    DISTILL_DATA=../shared/data python benchmarks/remeasure.py mnist-dc-ipc1
    DISTILL_DATA=../shared/data python benchmarks/remeasure.py mnist-dsa-ipc1 --because "per-image augmentation"

The distillation does not depend on these options (validation has its own fixed protocol), so the set in
benchmarks/artifacts/<name>.safetensors is exactly what `distill run` with the new preset makes; only its
measurement and its random-real baseline change. The results file keeps everything else, takes the preset's new
evaluation options into its config, and appends the numbers it replaced to the list `remeasured_from` (oldest first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from common import HERE, git_commit

import distill
from distill import presets
from distill.api import FREE_ON_RESUME, DistillConfig, evaluate, measure, pick_device
from distill.errors import DistillError
from distill.teacher import check_not_blended, with_teacher_labels
from distill.data import load_task
from distill.report import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a results file under benchmarks/results (without .json) with its artifact")
    parser.add_argument("--device", default=None)
    parser.add_argument("--set-only", action="store_true", help="measure the set alone and keep the file's "
                        "random-real baseline, marked as measured before (halves the time: an hour less at 10 per "
                        "class on one CPU core)")
    parser.add_argument("--because", default="", help="the evaluation code changed: measure again even when the "
                        "preset did not, and record this reason")
    args = parser.parse_args()
    path = HERE / "results" / f"{args.name}.json"
    old = json.loads(path.read_text())
    config = dict(old["config"])
    preset = presets.resolve(dataset=config["dataset"], method=config["method"], ipc=config["ipc"])
    changed = {k: preset[k] for k in FREE_ON_RESUME
               if k.startswith(("eval_", "teacher_")) and preset[k] != config.get(k, getattr(DistillConfig(), k))}
    if not changed and not args.because:
        sys.exit(f"{args.name}: the preset's evaluation options are those of the results file; nothing to do "
                 "(pass --because if the evaluation code changed)")
    config.update(changed)
    device = pick_device(args.device)
    artifact = HERE / "artifacts" / f"{args.name}.safetensors"
    synset = distill.load(artifact)  # training moves it to the task's device
    blend_changed = bool({"teacher_labels", "teacher_temperature"} & set(changed))
    if blend_changed:  # the new blend (none included) applies to the set as distilled, never on top of an old one
        try:
            check_not_blended(synset)
        except DistillError as error:
            sys.exit(f"{artifact}: {error} (restore it from git history)")
    relabelled = blend_changed and config["teacher_labels"] > 0
    if relabelled:
        synset = with_teacher_labels(synset, load_task(config["dataset"]).to(device), config["teacher_labels"],
                                     config["teacher_temperature"])
    if args.set_only:
        set_result = evaluate(synset, n_nets=config["eval_nets"], device=str(device), augment=config["eval_augment"],
                              epochs=config["eval_epochs"])
        r = {"distilled": set_result.to_dict(),
             "random_real": {**old["random_real"], "measured": "before this re-measurement (see remeasured_from)"}}
    else:
        task = load_task(config["dataset"]).to(device)
        r = measure(synset, task, config["eval_nets"], True, config["eval_augment"], config["eval_epochs"])
    command = f"DISTILL_DATA=../shared/data python benchmarks/remeasure.py {args.name}"
    if args.set_only:
        command += " --set-only"
    if args.because:
        command += f" --because {json.dumps(args.because)}"
    replaced = {k: old[k] for k in ("accuracy_mean", "accuracy_std", "accuracies", "eval_augment", "random_real")}
    result = {
        **{k: v for k, v in old.items() if k != "eval_augment_draws"},  # measured now, with per-image draws
        "eval_augment": r["distilled"]["detail"].get("augment", "none"),
        "accuracy_mean": r["distilled"]["accuracy_mean"], "accuracy_std": r["distilled"]["accuracy_std"],
        "n_eval_nets": r["distilled"]["n_nets"], "accuracies": r["distilled"]["accuracies"],
        "random_real": {k: r["random_real"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets", "protocol",
                                                           "measured") if k in r["random_real"]},
        "config": config,
        "remeasured_from": [*old.get("remeasured_from", []), {
            **replaced, "config": {k: old["config"].get(k) for k in changed}, "git_commit": old.get("git_commit"),
            "remeasure_git_commit": git_commit(), "remeasure_command": command,
            "because": args.because or "the preset's evaluation options", "remeasure_device": str(device)}],
    }
    write_json(result, path)
    if relabelled:  # the committed set becomes the one the new preset makes, once its numbers are written
        partial = artifact.with_suffix(".partial")
        distill.save(synset, partial, overwrite=True)
        os.replace(partial, artifact)
    print(json.dumps({"name": args.name, "accuracy_mean": result["accuracy_mean"], "was": old["accuracy_mean"],
                      "changed": changed}))


if __name__ == "__main__":
    sys.exit(main())
