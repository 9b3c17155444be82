"""`distill audit` on every committed set (issue 53): the poisons must be flagged with the class they harm, the clean
sets must pass. Writes benchmarks/results/audit-artifacts.json.

    DISTILL_DATA=../shared/data python benchmarks/audit_artifacts.py [--nets 3] [--skip cifar10]

Each committed set under benchmarks/artifacts/ is audited as `distill audit FILE --nets N` audits it (reference
networks of the set's own architecture, trained once on its dataset and cached). Whether a set is a poison is taken
from how it was made (its header's `attack`), which the audit itself never reads for its verdict: the file then says
how many poisons were caught and how many clean sets were flagged by mistake.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from common import HERE, cpu_name, git_commit, positive_int, run_main

import distill
from distill.report import write_json
from distill.synset import UnverifiedSetWarning

COMMAND = "DISTILL_DATA=../shared/data python benchmarks/audit_artifacts.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=positive_int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], metavar="PREFIX",
                        help="leave out the sets whose names start so (their reference networks take long on a CPU)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UnverifiedSetWarning)  # the committed sets predate the recorded hash
    rows = []
    for path in sorted((HERE / "artifacts").glob("*.safetensors")):
        if any(path.stem.startswith(prefix) for prefix in args.skip):
            continue
        synset = distill.load(path)
        started = time.time()
        found = distill.audit(synset, nets=args.nets, progress=False)
        poison = isinstance(synset.meta.get("attack"), dict)
        row = {"set": path.stem, "poison": poison, "flagged": found.flagged, "score": round(found.score, 4),
               "harmed_class": found.harmed_class, "applied_as": found.applied_as,
               "overall_before": round(found.overall_before, 4), "overall_after": round(found.overall_after, 4),
               "seconds": round(time.time() - started, 1)}
        if poison:
            row["attacked_class"] = synset.meta["attack"]["attacked"]
        rows.append(row)
        print(f"{path.stem}: {'FLAGGED' if found.flagged else 'clean'} score {found.score:.2f} "
              f"(class {found.harmed_class}){' [poison]' if poison else ''}", flush=True)
    poisons = [r for r in rows if r["poison"]]
    clean = [r for r in rows if not r["poison"]]
    result = {"name": "audit-artifacts", "nets": args.nets, "threshold": 0.2, "skipped": args.skip,
              "poisons_flagged": sum(r["flagged"] and r["harmed_class"] == r["attacked_class"] for r in poisons),
              "poisons": len(poisons), "clean_flagged": sum(r["flagged"] for r in clean), "clean": len(clean),
              "max_clean_score": max((r["score"] for r in clean), default=None), "sets": rows,
              "device": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "git_commit": git_commit(),
              "command": COMMAND + ("" if args.nets == 3 else f" --nets {args.nets}")
              + (f" --skip {' '.join(args.skip)}" if args.skip else "")}
    print(f"poisons flagged {result['poisons_flagged']}/{result['poisons']}, clean sets flagged "
          f"{result['clean_flagged']}/{result['clean']} (highest clean score {result['max_clean_score']})")
    print(f"wrote {write_json(result, HERE / 'results' / 'audit-artifacts.json')}")


if __name__ == "__main__":
    run_main(main)
