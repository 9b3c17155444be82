"""distill: dataset distillation (and distilled-image poisoning) behind one API and one command.

    import distill
    run = distill.distill(out="runs/digits-dd")  # the bundled 8x8 digits (no download), ten images: about a minute
    print(run.results["distilled"]["accuracy_mean"])
    print(distill.evaluate("runs/digits-dd/synset.safetensors", protocol="standard", arch="convnet"))
    distill.relabel("runs/digits-dd/synset.safetensors", "runs/digits-dd/teacher.safetensors", weight=0.5)
    distill.audit("downloaded.safetensors").flagged  # a poison? (it harms one class of a trained network)

Keyword options to `distill` go through the shipped presets (`distill.presets`), as the command line's do.
`distill.api` holds the whole public API, of which these are the everyday part.
A run's recorded configuration is taken as it is, with no preset, and keywords beside it replace its fields:

    config = distill.load_config("runs/digits-dd/summary.json")
    distill.distill(config, seed=1, out="runs/digits-dd-seed1")  # the same run with another seed
"""

from importlib.metadata import PackageNotFoundError, version

from distill.api import (AttackConfig, AttackResult, DistillConfig, DistillError, RunResult, SyntheticSet, attack,
                         audit, distill, evaluate, load, load_config, relabel, save)

__all__ = ["AttackConfig", "AttackResult", "attack", "audit", "DistillConfig", "DistillError", "RunResult",
           "SyntheticSet",
           "distill", "evaluate", "load", "load_config", "relabel", "save"]

try:  # one version, pyproject.toml's, as installed (a copy typed here could drift from it)
    __version__ = version("distill")
except PackageNotFoundError:  # the source imported without being installed
    __version__ = "unknown"
