"""Measure an experiment's set on the held-out validation split, so that an experiment that beats its preset on the
test split is promoted or kept out by validation, never by the test split.

    DISTILL_DATA=../shared/data python experiments/validate.py mnist-frepo-ipc1-online500-cpu30

Trains the results file's evaluation networks again on benchmarks/runs/<name>/synset.safetensors (the set the
benchmarks/run.py run kept; runs are not committed, so repeat the run first on a fresh clone), measuring each on
the validation split and the test split, and adds both to benchmarks/results/<name>.json as `validation`. The test
accuracies must be the file's own, net for net (evaluation is deterministic for a given number of CPU threads, so it
uses the run's), which shows the networks are the same ones. A set made and measured on a GPU is trained here again
with the same protocol and seeds; its validation entry then carries these networks' own test accuracies too. The
preset's validation accuracy on the same protocol is in its set's teacher sweep (experiments/teacher_sweep.py), the row
of the blend the preset uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # benchmarks/common.py, shared
from common import HERE, cpu_name, git_commit, run_main

import distill
from distill.data import load_task
from distill.evaluate import evaluate_set, mean_std, standard_sgd
from distill.report import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a benchmarks/run.py run: benchmarks/results/<name>.json and its kept set")
    args = parser.parse_args()
    results_file, set_file = HERE / "results" / f"{args.name}.json", HERE / "runs" / args.name / "synset.safetensors"
    if not (results_file.is_file() and set_file.is_file()):
        again = json.loads(results_file.read_text()).get("command") if results_file.is_file() else None
        sys.exit(f"{args.name}: needs {results_file.relative_to(HERE.parent)} and {set_file.relative_to(HERE.parent)}"
                 f" (run {again or 'its setting with benchmarks/run.py'} first)")
    found = json.loads(results_file.read_text())
    config = found["config"]
    torch.set_num_threads(found.get("threads", torch.get_num_threads()))  # the run's threads: another count sums
    # in another order, and the networks come out slightly different
    synset = distill.load(set_file)
    augment = config["eval_augment"]
    sgd = standard_sgd(synset, augment, config["eval_epochs"])
    result = evaluate_set(synset, load_task(config["dataset"]), n_nets=found["n_eval_nets"], sgd=sgd, augment=augment,
                          validation=True)
    same_machine = found.get("device") == cpu_name()  # a GPU run's networks cannot be trained again here bit for bit
    if same_machine and [round(a, 6) for a in result.accuracies] != [round(a, 6) for a in found["accuracies"]]:
        sys.exit(f"{args.name}: the networks' test accuracies {result.accuracies} are not the results file's "
                 f"{found['accuracies']}; the set or the evaluation changed since that run, so run it again")
    found["validation"] = {**mean_std(result.detail["val_accuracies"]), "accuracies": result.detail["val_accuracies"],
                           "epochs": sgd.epochs, "device": cpu_name(), "threads": torch.get_num_threads(),
                           "git_commit": git_commit(),
                           # the test accuracies of these networks, when they are not the run's own (a GPU run)
                           **({} if same_machine else {"test": mean_std(result.accuracies),
                                                       "test_accuracies": result.accuracies}),
                           "command": f"DISTILL_DATA=../shared/data python experiments/validate.py {args.name}"}
    write_json(found, results_file)
    print(json.dumps({"name": args.name, "validation": found["validation"]["mean"], "test": found["accuracy_mean"]}))


if __name__ == "__main__":
    run_main(main)
