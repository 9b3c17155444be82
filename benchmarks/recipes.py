"""Committed sets under every standard recipe (issue 54): `distill eval FILE --recipes`, written to
benchmarks/results/recipes-<set>.json, where the results tables read the worst case beside each best set.

    DISTILL_DATA=../shared/data python benchmarks/recipes.py mnist-best-ipc1 fmnist-best-ipc1 [--nets 5]

Each name is a set under benchmarks/artifacts/. The file names the results file whose set it measured (`source`:
the set's own results file, or the one a plain-PyTorch check names for a committed copy), its rows (recipe, network,
accuracy over --nets fresh networks each, test split), and the worst and best of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings

import torch
from common import HERE, cpu_name, git_commit, positive_int, run_main

import distill
from distill.api import evaluate_recipes
from distill.report import write_json
from distill.synset import UnverifiedSetWarning

COMMAND = "DISTILL_DATA=../shared/data python benchmarks/recipes.py"


def source_of(name: str) -> str | None:
    """The results file whose set `benchmarks/artifacts/<name>.safetensors` is."""
    if (HERE / "results" / f"{name}.json").is_file():
        return name
    for path in (HERE / "results").glob("plain-*.json"):
        check = json.loads(path.read_text())
        if check.get("artifact") == f"benchmarks/artifacts/{name}.safetensors":
            return check.get("source")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="names of sets under benchmarks/artifacts/")
    parser.add_argument("--nets", type=positive_int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UnverifiedSetWarning)  # the committed sets predate the recorded hash
    for name in args.sets:
        path = HERE / "artifacts" / f"{name}.safetensors"
        if not path.is_file():
            raise distill.DistillError(f"no set {path}")
        table = evaluate_recipes(distill.load(path), n_nets=args.nets)
        print(f"{name}: worst {table.worst.result.accuracy_mean:.2%} ({table.worst.recipe}, {table.worst.arch})\n"
              f"{table}", flush=True)
        result = {"name": f"recipes-{name}", "set": name, "source": source_of(name),
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "n_nets": args.nets, **table.to_dict(),
                  "device": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "git_commit": git_commit(),
                  "command": f"{COMMAND} {name}" + ("" if args.nets == 5 else f" --nets {args.nets}")}
        print(f"wrote {write_json(result, HERE / 'results' / f'recipes-{name}.json')}")


if __name__ == "__main__":
    run_main(main)
