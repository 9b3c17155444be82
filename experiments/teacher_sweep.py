"""Choose how much teacher label a committed set gets (`--teacher-labels`, `--teacher-temperature`) on the held-out
validation split, never on the test split.

    DISTILL_DATA=../shared/data python experiments/teacher_sweep.py fashion-mnist-frepo-ipc1
    DISTILL_DATA=../shared/data python experiments/teacher_sweep.py fashion-mnist-frepo-ipc10 --blends 0:2,0.5:4,1:4 \\
        --no-control --as-distilled benchmarks/artifacts/fashion-mnist-frepo-ipc10-as-distilled.safetensors

(A committed set that already holds its blend is refused: sweep the set as distilled, given as --as-distilled, or
the set as committed before its blend, `--at COMMIT`. The README's table names each sweep's commit where its set has
changed since, so its command repeats the sweep on the set it measured.)

For each blend in BLENDS (weight 0 is the set as distilled) it relabels benchmarks/artifacts/<name>.safetensors
(distill.teacher; the blend the committed set holds is measured on its labels as committed, each row's `labels`
says which), trains 5 fresh networks with the set's own evaluation (its results file's eval_augment and
eval_epochs), and measures each on the validation split and the test split. It writes
benchmarks/results/teacher-sweep-<name>.json with every blend's numbers and the one validation picks (the test
numbers are reported beside it, not used to choose). A control row follows: the set's own labels smoothed uniformly
to the same mean top probability as the chosen blend, to tell the teacher's knowledge from mere softness.

At 10 images per class one network takes about 11 minutes on one CPU thread (1000 epochs of 100 augmented images),
so a sweep there names fewer blends (`--blends`, which must include weight 0, the set as distilled) and may skip the
control (`--no-control`); the file records both choices.
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
from distill.data import load_task
from distill.evaluate import standard_sgd
from distill.errors import DistillError
from distill.teacher import check_not_blended, check_teacher_options, with_teacher_labels
from distill.report import write_json
from distill.synset import SyntheticSet

BLENDS = ((0.0, 2.0), (1.0, 2.0), (0.5, 2.0), (0.25, 2.0), (0.5, 4.0))  # (teacher weight, temperature)


def parse_blends(text: str) -> tuple[tuple[float, float], ...]:
    """`0:2,0.5:4` -> ((0.0, 2.0), (0.5, 4.0)): weight:temperature pairs, the set as distilled (weight 0) among them
    so that the teacher is compared with no teacher on the same networks."""
    try:
        blends = tuple((float(w), float(t)) for w, t in (pair.split(":") for pair in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected weight:temperature pairs such as 0:2,0.5:4; got {text!r}")
    if not any(w == 0 for w, _ in blends):
        raise argparse.ArgumentTypeError("the blends must include weight 0 (the set as distilled) to compare with")
    for weight, temperature in blends:  # every blend checked now, not after the ones before it have trained
        try:
            check_teacher_options(weight, temperature)
        except DistillError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return blends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a results file under benchmarks/results (without .json) with its artifact")
    parser.add_argument("--nets", type=positive_int, default=5)
    parser.add_argument("--blends", type=parse_blends, default=BLENDS, help="weight:temperature pairs, comma "
                        "separated, weight 0 among them (default: " + ",".join(f"{w:g}:{t:g}" for w, t in BLENDS) + ")")
    parser.add_argument("--no-control", action="store_true", help="skip the uniform-smoothing control row")
    parser.add_argument("--device", default=None, help="where the networks train (default: a GPU when there is one)")
    parser.add_argument("--as-distilled", type=Path, default=None, metavar="FILE",
                        help="the set as distilled, when the committed one took its teacher blend while distilling "
                        "(the run's synset-as-distilled.safetensors; for a run older than that file, `distill run "
                        "--resume --teacher-labels 0` on a copy of its folder writes it): its images must be the "
                        "committed set's")
    parser.add_argument("--at", default=None, metavar="COMMIT",
                        help="sweep the set (and its results file's evaluation) as committed at COMMIT")
    args = parser.parse_args()
    args.at = short_commit(args.at)
    config, artifact = committed_set(args.name, args.at)
    synset = committed = distill.load(artifact)
    if args.as_distilled:
        own = distill.load(args.as_distilled)
        if not torch.equal(own.images, synset.images):
            sys.exit(f"{args.as_distilled}: its images are not those of {artifact}, so it is another set")
        synset = own
    try:
        check_not_blended(synset)  # now, not after the first blend's networks have trained
    except DistillError as error:
        where = f"benchmarks/artifacts/{args.name}.safetensors"
        sys.exit(f"{artifact}: {error}. Sweep it as distilled: give --as-distilled FILE, the run's "
                 f"synset-as-distilled.safetensors, or --at COMMIT, a commit from before its blend (git log -- "
                 f"{where})")
    device = pick_device(args.device)
    task = load_task(config["dataset"]).to(device)
    augment = config["eval_augment"]
    sgd = standard_sgd(synset, augment, config["eval_epochs"])

    def measure(labelled, **row) -> dict:
        row.update({"top_probability": labelled.labels.max(1).values.mean().item() if labelled.labels.ndim == 2
                    else 1.0, **measure_on_splits(labelled, task, args.nets, augment, sgd)})
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("accuracies")}), flush=True)
        return row

    def labelled(weight: float, temperature: float) -> SyntheticSet:
        """The set with this blend. The committed set's own blend is measured on its labels as committed: blending
        the set as distilled again gives them only as exactly as the teacher is the one that made them (one trained
        again on another machine, or a set as distilled recovered from the blend, differs in the last digits), and
        the preset is to be compared as it is."""
        if committed.meta.get("teacher_labels") == {"weight": weight, "temperature": temperature}:
            return committed
        return with_teacher_labels(synset, task, weight, temperature) if weight else synset

    rows = []
    for weight, temperature in args.blends:
        blend_set = labelled(weight, temperature)
        rows.append(measure(blend_set, weight=weight, temperature=temperature,
                            labels="as committed" if blend_set is committed else "blended here" if weight
                            else "as distilled"))
    chosen = max(rows, key=lambda r: r["validation"]["mean"])
    control = None
    if chosen["weight"] and not args.no_control:
        k = task.num_classes
        own = synset.target_probabilities()  # smoothed towards uniform until their mean top probability is the blend's
        top = own.max(1).values.mean().item()  # (1 - eps) * top + eps / k = the chosen blend's top probability
        eps = (top - chosen["top_probability"]) / (top - 1 / k)
        smoothed = SyntheticSet(synset.images, (1 - eps) * own + eps / k, dict(synset.meta))
        control = measure(smoothed, smoothing=eps)
    command = f"DISTILL_DATA=../shared/data python experiments/teacher_sweep.py {args.name}"
    if args.nets != 5:
        command += f" --nets {args.nets}"
    if args.blends != BLENDS:
        command += " --blends " + ",".join(f"{w:g}:{t:g}" for w, t in args.blends)
    if args.no_control:
        command += " --no-control"
    if args.as_distilled:
        command += f" --as-distilled {args.as_distilled}"
    if args.at:
        command += f" --at {args.at}"
    write_json({"name": f"teacher-sweep-{args.name}", "set": args.name, "eval_augment": augment or "none",
                "eval_epochs": sgd.epochs, "n_eval_nets": args.nets, "blends": rows,
                "chosen": {"weight": chosen["weight"], "temperature": chosen["temperature"]},
                "uniform_smoothing_control": control, "control_skipped": args.no_control,
                "device": device_name(str(device)), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "git_commit": git_commit(), "command": command},
               HERE / "results" / f"teacher-sweep-{args.name}.json")


if __name__ == "__main__":
    run_main(main)
