"""Measure a committed benchmark set again after an evaluation-only preset changed (`eval_augment`, `eval_epochs`,
`eval_nets`, or the teacher-label blend `teacher_labels` / `teacher_temperature`: the options `distill run --resume`
may change, api.FREE_ON_RESUME), or after the evaluation code itself changed (`--because "what changed"`), without
distilling it again. A new blend relabels the committed set and replaces its file with the relabelled one, which
is what `distill run` with the new preset ends with (a set that carries teacher labels already is refused: blend
the set as distilled, from git history).

    DISTILL_DATA=../shared/data python experiments/remeasure.py mnist-dc-ipc1
    DISTILL_DATA=../shared/data python experiments/remeasure.py mnist-dsa-ipc1 --because "per-image augmentation"
    DISTILL_DATA=../shared/data python experiments/remeasure.py mnist-mtt-ipc10 --from-sweep

The distillation does not depend on these options (validation has its own fixed protocol), so the set in
benchmarks/artifacts/<name>.safetensors is exactly what `distill run` with the new preset makes; only its
measurement and its random-real baseline change. The results file keeps everything else, takes the preset's new
evaluation options into its config, and appends the numbers it replaced to the list `remeasured_from` (oldest first).

`--from-sweep` takes a new blend's numbers from the set's committed teacher sweep, or a new evaluation
augmentation's from its augmentation sweep (experiments/augment_sweep.py), instead of training the networks again (an
hour at 10 per class on one CPU thread). That is no shortcut in what is measured: the sweep trains the same
evaluation networks from the same seeds with the same protocol, and evaluation is deterministic (mnist-frepo-ipc1's
sweep row and this script's own measurement of it agree net for net, as do the augmentation sweeps' rows of the
sets' own augmentation and their results files). It is refused unless the sweep ran on this very set file (its bytes
at the sweep's commit), with this evaluation and this number of networks. A new augmentation's random-real baseline
is trained again under it (unless `--set-only`); a new blend keeps the old baseline, as `--set-only` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # benchmarks/common.py, shared
from common import HERE, git_commit, run_main

import distill
from distill.config import resolve
from distill.augment import augmentation_for, augmentation_label
from distill.config import FREE_ON_RESUME, DistillConfig
from distill.device import pick_device
from distill.run import evaluate, measure
from distill.errors import DistillError
from distill.teacher import check_not_blended, with_teacher_labels
from distill.data import load_task
from distill.evaluate import EvalResult, random_real_baseline, standard_sgd
from distill.report import write_json

BLEND = ("teacher_labels", "teacher_temperature")  # the options that make a teacher blend


def swept_set_file(name: str, sweep: dict) -> None:
    """Refuse a sweep that did not run on this very set file (its bytes at the sweep's commit)."""
    swept = subprocess.run(["git", "show", f"{sweep['git_commit']}:./artifacts/{name}.safetensors"], cwd=HERE,
                           capture_output=True)
    if swept.returncode or swept.stdout != (HERE / "artifacts" / f"{name}.safetensors").read_bytes():
        sys.exit(f"{name}: the sweep (commit {sweep['git_commit'][:7]}) did not run on this set file; measure instead")


def sweep_measurement(name: str, synset, config: dict, changed: dict, weight: float, temperature: float) -> EvalResult:
    """The test accuracies of the preset's new evaluation as a committed sweep measured them: a new teacher blend
    from benchmarks/results/teacher-sweep-<name>.json, a new augmentation from augment-sweep-<name>.json, after
    checking that the sweep measured exactly what this script would: the same set file, evaluation and number of
    networks."""
    kind = "augment" if "eval_augment" in changed else "teacher"
    path = HERE / "results" / f"{kind}-sweep-{name}.json"
    if not path.is_file():
        sys.exit(f"{name}: --from-sweep needs {path.relative_to(HERE.parent)} (experiments/{kind}_sweep.py {name})")
    sweep = json.loads(path.read_text())
    augment = config["eval_augment"] or "none"
    epochs = standard_sgd(synset, config["eval_augment"], config["eval_epochs"]).epochs
    if kind == "augment":  # the sweep trained on the set as committed, labels included
        rows = [r for r in sweep["rows"] if r["augment"] == augment]
        if not rows:
            sys.exit(f"{name}: the sweep has no row for augmentation {augment!r}; measure instead")
        swept_epochs = rows[0]["epochs"]
    else:
        rows = [r for r in sweep["blends"] if r["weight"] == weight and (not weight or r["temperature"] == temperature)]
        if not rows:
            sys.exit(f"{name}: the sweep has no row for weight {weight:g} at temperature {temperature:g}; measure "
                     "instead")
        swept_epochs = sweep["eval_epochs"]
        if (sweep["eval_augment"] or "none") != augment:
            sys.exit(f"{name}: the sweep's augmentation is not the preset's; measure instead")
    if (swept_epochs, sweep["n_eval_nets"]) != (epochs, config["eval_nets"]):
        sys.exit(f"{name}: the sweep's epochs or number of networks differ from the preset's; measure instead")
    swept_set_file(name, sweep)
    augmentation = augmentation_for(config["eval_augment"], config["dataset"])
    return EvalResult("standard", config["arch"], rows[0]["test_accuracies"],  # described as evaluate_set does
                      detail={"device": sweep["device"], "augment": augmentation_label(augmentation)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a results file under benchmarks/results (without .json) with its artifact")
    parser.add_argument("--device", default=None)
    parser.add_argument("--set-only", action="store_true", help="measure the set alone and keep the file's "
                        "random-real baseline, marked as measured before (halves the time: an hour less at 10 per "
                        "class on one CPU core)")
    parser.add_argument("--from-sweep", action="store_true", help="a new teacher blend's or evaluation "
                        "augmentation's numbers from the set's committed teacher or augmentation sweep, which trained "
                        "the same networks; a new blend keeps the random-real baseline as --set-only does, a new "
                        "augmentation trains it again")
    parser.add_argument("--because", default="", help="the evaluation code changed: measure again even when the "
                        "preset did not, and record this reason")
    args = parser.parse_args()
    path = HERE / "results" / f"{args.name}.json"
    if not path.is_file():
        sys.exit(f"{args.name}: no results file benchmarks/results/{args.name}.json to measure again")
    old = json.loads(path.read_text())
    config = old.get("config") if isinstance(old.get("config"), dict) else {}
    row = "{}-{}-ipc{}".format(*(config.get(k) for k in ("dataset", "method", "ipc")))
    if "change" in old or row != args.name:  # an experiment's or a script's own options are not the preset's
        sys.exit(f"{args.name}: not a preset row's results file (benchmarks/settings/methods.toml: "
                 "<dataset>-<method>-ipc<N>); remeasure.py measures those again under the preset's evaluation, and "
                 "would overwrite this file's own options")
    config = dict(config)
    defaults = DistillConfig()  # for options older results files do not record
    preset = resolve(dataset=config["dataset"], method=config["method"], ipc=config["ipc"])
    changed = {k: preset[k] for k in FREE_ON_RESUME
               if k.startswith(("eval_", "teacher_")) and preset[k] != config.get(k, getattr(defaults, k))}
    if not changed and not args.because:
        sys.exit(f"{args.name}: the preset's evaluation options are those of the results file; nothing to do "
                 "(pass --because if the evaluation code changed)")
    config.update(changed)
    weight, temperature = (config.get(k, getattr(defaults, k)) for k in BLEND)
    device = pick_device(args.device)
    artifact = HERE / "artifacts" / f"{args.name}.safetensors"
    synset = distill.load(artifact)  # training moves it to the task's device
    blend_changed = bool(set(BLEND) & set(changed))
    if blend_changed:  # the new blend (none included) applies to the set as distilled, never on top of an old one
        try:
            check_not_blended(synset)
        except DistillError as error:
            sys.exit(f"{artifact}: {error} (restore it from git history)")
    one_sweep = set(changed) <= set(BLEND) or set(changed) <= {"eval_augment", "eval_epochs"}
    if args.from_sweep and (args.because or not one_sweep):
        sys.exit(f"{args.name}: --from-sweep stands for a new teacher blend or a new evaluation augmentation, one "
                 f"sweep's choice, not for {', '.join(changed)}{' with --because' if args.because else ''}; measure "
                 "instead")
    sweep_result = (sweep_measurement(args.name, synset, config, changed, weight, temperature) if args.from_sweep
                    else None)
    relabelled = blend_changed and weight > 0
    if relabelled:
        synset = with_teacher_labels(synset, load_task(config["dataset"]).to(device), weight, temperature)
    kept_baseline = {**old["random_real"], "measured": "before this re-measurement (see remeasured_from)",
                     "per_batch_draws": old["random_real"].get("per_batch_draws", False) or "eval_augment_draws" in old}
    if sweep_result is not None:
        r = {"distilled": sweep_result.to_dict(), "random_real": kept_baseline}
        if "eval_augment" in changed and not args.set_only:  # the old baseline trained under another augmentation
            task = load_task(config["dataset"]).to(device)
            r["random_real"] = random_real_baseline(
                task, synset, config["arch"], n_nets=config["eval_nets"], augment=config["eval_augment"],
                sgd=standard_sgd(None, config["eval_augment"], config["eval_epochs"])).to_dict()
    elif args.set_only:
        set_result = evaluate(synset, n_nets=config["eval_nets"], device=str(device), augment=config["eval_augment"],
                              epochs=config["eval_epochs"])
        r = {"distilled": set_result.to_dict(), "random_real": kept_baseline}
    else:
        task = load_task(config["dataset"]).to(device)
        r = measure(synset, task, config["eval_nets"], True, config["eval_augment"], config["eval_epochs"])
    command = f"DISTILL_DATA=../shared/data python experiments/remeasure.py {args.name}"
    if args.set_only:
        command += " --set-only"
    if args.from_sweep:
        command += " --from-sweep"
    if args.because:
        command += f" --because {json.dumps(args.because)}"
    replaced = {k: old[k] for k in ("accuracy_mean", "accuracy_std", "accuracies", "eval_augment", "random_real")}
    result = {
        **{k: v for k, v in old.items() if k != "eval_augment_draws"},  # measured now, with per-image draws
        "eval_augment": r["distilled"]["detail"].get("augment", "none"),
        "accuracy_mean": r["distilled"]["accuracy_mean"], "accuracy_std": r["distilled"]["accuracy_std"],
        "n_eval_nets": r["distilled"]["n_nets"], "accuracies": r["distilled"]["accuracies"],
        "random_real": {k: r["random_real"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets", "protocol",
                                                           "measured", "per_batch_draws") if k in r["random_real"]},
        "config": config,
        "remeasured_from": [*old.get("remeasured_from", []), {
            **replaced, "config": {k: old["config"].get(k, getattr(defaults, k)) for k in changed},
            "git_commit": old.get("git_commit"),
            "remeasure_git_commit": git_commit(), "remeasure_command": command,
            "because": args.because or "the preset's evaluation options",
            "remeasure_device": sweep_result.detail["device"] if sweep_result else str(device)}],
    }
    write_json(result, path)
    if relabelled:  # the committed set becomes the one the new preset makes, once its numbers are written
        partial = artifact.with_suffix(".partial")
        distill.save(synset, partial, overwrite=True)
        os.replace(partial, artifact)
    print(json.dumps({"name": args.name, "accuracy_mean": result["accuracy_mean"], "was": old["accuracy_mean"],
                      "changed": changed}))


if __name__ == "__main__":
    run_main(main)
