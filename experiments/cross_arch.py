"""Cross-architecture evaluation (GUIDE §5, issue 4): one committed set trained on MLP, LeNet, ConvNet, AlexNet,
VGG-11 and ResNet-18 with the standard protocol, written to benchmarks/results/cross-arch-<set>.json.

A table holds one protocol (augmentation, epochs); the learning rate is a row's own, recorded in it: a rate learned
with the set (MTT) was learned for the network it was distilled with, so other networks may train at `--lr 0.01`.

    DISTILL_DATA=../shared/data python experiments/cross_arch.py benchmarks/artifacts/mnist-dm-ipc1.safetensors
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # benchmarks/common.py, shared
from common import HERE, commit_of, device_name, file_at, git_commit, positive_int, run_main, short_commit

import distill
from distill.report import write_json

ARCHS = ("mlp", "lenet", "convnet", "alexnet", "vgg11", "resnet18")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--nets", type=positive_int, default=5)
    parser.add_argument("--augment", default="", help="standard-protocol augmentation (default: none)")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.0, help="standard-protocol learning rate (default: the set's "
                        "learned one if it has one, else 0.01)")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--device", default=None)
    parser.add_argument("--replace", action="store_true", help="start a new table where the results file holds one "
                        "of another set or protocol (without it, that is refused: its rows would be lost)")
    parser.add_argument("--at", default=None, metavar="COMMIT", help="measure FILE as committed at COMMIT (a "
                        "table of a set that has since taken other labels keeps measuring the set it holds)")
    args = parser.parse_args()
    unknown = sorted(set(args.archs.split(",")) - set(ARCHS))
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(ARCHS)}")
    try:
        args.at = short_commit(args.at)
        synset = distill.load(file_at(args.at, args.file) if args.at else args.file)
    except distill.DistillError as exc:
        parser.error(str(exc))
    path, earlier, same = earlier_table(args)
    if earlier and not same and not args.replace:
        parser.error(f"{path.relative_to(HERE.parent)} holds the table of {earlier.get('set')}{as_of(earlier)} "
                     f"with augment {earlier.get('augment')}, {earlier.get('epochs')} epochs; measuring "
                     f"{set_key(args.file)}{as_of(table_key(args))} with augment {args.augment or 'none'}, "
                     f"{args.epochs} epochs would drop its rows: use the same set and protocol (the table's --at "
                     "included), or pass --replace")
    for arch in args.archs.split(","):
        began = time.perf_counter()
        result = distill.evaluate(synset, protocol="standard", arch=arch, n_nets=args.nets, device=args.device,
                                  augment=args.augment, epochs=args.epochs, lr=args.lr)
        row = {"accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std, "n_nets": result.n_nets,
               "accuracies": result.accuracies, "lr": result.detail["sgd"]["lr"],
               "seconds": round(time.perf_counter() - began, 1), "command": command_for(args, arch)}
        print(arch, json.dumps(row), flush=True)
        save_row(args, synset, arch, row)


def save_row(args: argparse.Namespace, synset, arch: str, row: dict) -> None:
    """Add one network's row to the set's table as soon as it is measured (a long run killed later keeps it). Runs
    over different --archs of one set and protocol fill one table; the file is read just before each write, so two
    such runs side by side both land."""
    path, earlier, same = earlier_table(args)
    name = path.stem.removeprefix("cross-arch-")
    rows = {**(earlier["archs"] if same else {}), arch: row}
    rows = {a: rows[a] for a in ARCHS if a in rows}  # the table's order, whatever order runs came in
    result = {"name": f"cross-arch-{name}", "set": set_key(args.file), "dataset": synset.meta["dataset"],
              "method": synset.meta["method"], "ipc": synset.meta["ipc"], "distilled_with": synset.meta["arch"],
              "labels": earlier.get("labels", labels_of(synset)) if same else labels_of(synset),
              "augment": args.augment or "none", "epochs": args.epochs, "archs": rows,
              "device": device_name(args.device or ("cuda" if torch.cuda.is_available() else "cpu")),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
              "git_commit": git_commit(), "command": command_for(args)}
    if args.at:
        result["set_as_of"] = commit_of(args.at)
    write_json(result, path)


def set_key(file: Path) -> str:
    """How a table names its set: the path from the repository's root where the file is in it (so an absolute path
    and a relative one name the same set), else the absolute path."""
    resolved = file.resolve()
    try:
        return str(resolved.relative_to(HERE.parent))
    except ValueError:
        return str(resolved)


def earlier_table(args: argparse.Namespace) -> tuple[Path, dict, bool]:
    """The set's results file, the table it holds (empty if none), and whether that table is of this set (as
    committed at the same --at, if any) and protocol, so a new row joins it rather than replacing it."""
    path = HERE / "results" / f"cross-arch-{args.file.name.removesuffix('.safetensors')}.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    return path, earlier, table_key(earlier) == table_key(args)


def table_key(table: dict | argparse.Namespace) -> dict:
    """What a table's rows share, from a results file's table or from this run's arguments: the set (and the commit
    it was read at, `set_as_of`, where it is not the working tree's), the augmentation and the epochs."""
    if isinstance(table, dict):
        return {"set": table.get("set"), "set_as_of": table.get("set_as_of"), "augment": table.get("augment"),
                "epochs": table.get("epochs")}
    return {"set": set_key(table.file), "set_as_of": commit_of(table.at) if table.at else None,
            "augment": table.augment or "none", "epochs": table.epochs}


def as_of(key: dict) -> str:
    return f" as committed at {key['set_as_of'][:12]}" if key.get("set_as_of") else ""


def labels_of(synset) -> str:
    """How the measured set's labels were made, for the table's heading: a table of a set whose file later took
    other labels must say which ones it measured."""
    blend = synset.meta.get("teacher_labels")
    if blend:
        return (f"its labels as committed: {blend['weight']:g} of each from the full-data network's predictions at "
                f"temperature {blend['temperature']:g}")
    return "its soft labels as committed" if synset.labels.ndim == 2 else "its hard labels as committed"


def command_for(args: argparse.Namespace, arch: str | None = None) -> str:
    """The command that measures one row again (with `arch`), or the whole table's protocol (without)."""
    command = f"DISTILL_DATA=../shared/data python experiments/cross_arch.py {args.file}"
    if arch:
        command += f" --archs {arch}" + (f" --nets {args.nets}" if args.nets != 5 else "")
    command += f" --augment {args.augment}" if args.augment else ""
    command += f" --epochs {args.epochs}" if args.epochs else ""
    command += f" --lr {args.lr:g}" if args.lr else ""
    command += f" --at {args.at}" if args.at else ""
    return command


if __name__ == "__main__":
    run_main(main)
