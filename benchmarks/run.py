"""The benchmarks' one entry point: run a setting named in benchmarks/settings/*.toml and write
benchmarks/results/<name>.json (GUIDE §7) with the exact command that reproduces it.

    DISTILL_DATA=../shared/data python benchmarks/run.py mnist-dd-fixed-10img
    DISTILL_DATA=../shared/data python benchmarks/run.py mnist-dc-ipc10 --max-minutes 5    # a GPU run's time limit
    DISTILL_DATA=../shared/data python benchmarks/run.py --list frepo                      # the settings naming frepo

The settings files, one per issue: dd.toml (the original paper's numbers), attack.toml (poisoning), methods.toml (the
standard methods and coresets, as the presets run them), sota.toml (one change at a time towards the state of the
art), best.toml (the best sets trained with plain PyTorch). Sweeps, profiles and other studies of the committed sets
are under experiments/.

How a settings file reads. Every top-level table is a setting, named as its results file (names are unique across
the files); its keys are the options of the run (DistillConfig's or AttackConfig's fields, the method's options in
the table `options`), except these, which say what the setting is:
  kind        "distill" (the default): distill.distill(**options), through the shipped presets as `distill run`;
              "attack": distill.attack(**options) (`forget = true` is `distill attack --forget`, no target);
              "select": the best on validation of `candidates` ([{setting = NAME, seed = N}, ...], distillations
              of the same file), each run or its finished run reused, written under this name;
              "plain": the committed set of results file `source` copied to `artifact`, trained with
              examples/train_plain.py (plain PyTorch and safetensors), both accuracies side by side;
              "adapt": distill.adapt(source=`source`, **options): networks pretrained on dataset `source` adapted
              to `dataset`, measured on held-out pretrained networks beside the baselines.
  base        a template ([templates.NAME]) or another setting of the same file, or a list of them: their options
              merged in order under the setting's own (the method's `options` key by key); only options are
              inherited, never these keys.
  change      what the setting changes, recorded in its results file.
  artifact    true: the set is committed as benchmarks/artifacts/<name>.safetensors (with its pictures); a string:
              under that name instead.
A file's [defaults] table lies under each of its settings (kind and artifact included).

The command line may change a distillation's --max-minutes, --iterations or --eval-every; the command recorded in
the results file names each one that differs from the setting, and --seed N (whose run is named <name>-seed<N>, so a
second seed never replaces the first one's files). A results file made by another command is replaced only with
--replace.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from common import (HERE, check_replaces_only_its_own, copy_atomic, cpu_name, device_name, git_commit, positive_int,
                    run_main, run_name, run_setting)

import distill
import distill.api
from distill import presets
from distill.config import resolve
from distill.data import data_root
from distill.report import write_json

SETTINGS = HERE / "settings"
COMMAND = "DISTILL_DATA=../shared/data python benchmarks/run.py"
KINDS = ("distill", "attack", "select", "plain", "adapt")
ABOUT = ("kind", "base", "change", "artifact", "candidates", "source")  # what a setting says of itself: not options
OVERRIDES = ("max_minutes", "iterations", "eval_every")  # a distillation's options the command line may change


@dataclass(frozen=True)
class Setting:
    name: str
    file: str  # the settings file it is read from
    kind: str = "distill"
    options: dict | None = None  # what distill.distill or distill.attack is given (distill and attack settings)
    change: str | None = None
    artifact: str | None = None  # the committed set's name under benchmarks/artifacts/, if it is committed
    candidates: tuple[tuple[str, int], ...] = ()  # select: (setting, seed) pairs
    source: str | None = None  # plain: the results file whose set is copied


def load_settings(folder: Path | None = None) -> dict[str, Setting]:
    """Every setting of the settings files in `folder` (benchmarks/settings), by name."""
    found: dict[str, Setting] = {}
    for path in sorted((folder or SETTINGS).glob("*.toml")):
        for setting in read_settings_file(path):
            if setting.name in found:
                raise distill.DistillError(f"setting {setting.name} is in both {found[setting.name].file} and "
                                           f"{setting.file}")
            found[setting.name] = setting
    return found


def merge(under: dict, over: dict) -> dict:
    """`over` on top of `under`; a table in both (a method's `options`) merged key by key."""
    merged = dict(under)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def read_settings_file(path: Path) -> list[Setting]:
    """The settings of one file, each with its options resolved (bases and the file's defaults merged in)."""
    def fail(message: str) -> distill.DistillError:
        where = path.relative_to(HERE.parent) if path.is_relative_to(HERE.parent) else path
        return distill.DistillError(f"{where}: {message}")

    try:
        tables = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise fail(str(exc)) from None
    defaults, templates = tables.pop("defaults", {}), tables.pop("templates", {})
    for name, table in [*templates.items(), *tables.items()]:
        if not isinstance(table, dict):
            raise fail(f"{name} must be a table of options")
    for name in set(templates) & set(tables):
        raise fail(f"{name} is both a template and a setting")
    for name, template in templates.items():
        if set(template) & set(ABOUT) - {"base"}:
            raise fail(f"template {name} may hold options and a base only")

    def options_of(name: str, path_here: tuple[str, ...] = ()) -> dict:
        """A template's or a setting's options: its bases' in order, its own on top."""
        if name in path_here:
            raise fail(f"{' -> '.join((*path_here, name))}: a base that is its own base")
        table = templates.get(name, tables.get(name))
        if table is None:
            raise fail(f"{path_here[-1]}'s base {name} is neither a template nor a setting of this file")
        bases = table.get("base", [])
        merged: dict = {}
        for base in [bases] if isinstance(bases, str) else bases:
            merged = merge(merged, options_of(base, (*path_here, name)))
        return merge(merged, {k: v for k, v in table.items() if k not in ABOUT})

    settings = []
    for name, table in tables.items():
        about = {k: v for k, v in {**defaults, **table}.items() if k in ABOUT}
        kind = about.get("kind", "distill")
        if kind not in KINDS:
            raise fail(f"{name}: kind {kind!r} is not one of {', '.join(KINDS)}")
        options = copy.deepcopy(merge({k: v for k, v in defaults.items() if k not in ABOUT}, options_of(name)))
        if kind == "attack" and options.pop("forget", False):
            options["target"] = None  # as `distill attack --forget`
        artifact = about.get("artifact")
        candidates = tuple((c["setting"], c.get("seed", 0)) for c in about.get("candidates", ()))
        if kind == "select" and not candidates:
            raise fail(f"{name}: a selection names its candidates")
        for candidate, _seed in candidates:
            if tables.get(candidate, {}).get("kind", defaults.get("kind", "distill")) != "distill":
                raise fail(f"{name}: candidate {candidate} is not a distillation of this file")
        if kind == "plain" and not (about.get("source") and isinstance(artifact, str)):
            raise fail(f"{name}: a plain setting names its source and its artifact")
        settings.append(Setting(
            name=name, file=path.name, kind=kind, options=options if kind in ("distill", "attack", "adapt") else None,
            change=about.get("change"), artifact=name if artifact is True else artifact or None,
            candidates=candidates, source=about.get("source")))
    return settings


def command_and_options(setting: Setting, args: argparse.Namespace) -> tuple[str, dict]:
    """The command that runs `setting` with the command line's changes (each named where it differs from the
    setting; the seed is added by run_setting), and the options it runs with."""
    command, options = f"{COMMAND} {setting.name}", dict(setting.options)
    for key in OVERRIDES:
        value = getattr(args, key, None)
        if value is None or value == setting.options.get(key):
            continue
        options[key] = value
        command += f" --{key.replace('_', '-')} {value if isinstance(value, int) else format(value, 'g')}"
    return command, options


def run_distillation(setting: Setting, args: argparse.Namespace, _settings: dict) -> dict:
    command, options = command_and_options(setting, args)
    resolved = resolve(**options)
    key = (resolved["dataset"], resolved["method"], resolved["ipc"])
    extra = {"change": setting.change} if setting.change else {}
    return run_setting(setting.name, options, command, artifact=setting.artifact, seed=args.seed,
                       device=args.device, resume=args.resume, replace=args.replace,
                       extra={**extra, "published": presets.PUBLISHED.get(key)})


def finished(setting: Setting, seed: int) -> dict | None:
    """The results of a finished run of (setting, seed) with exactly this setting's options, if there is one."""
    name = run_name(setting.name, seed)
    path = HERE / "results" / f"{name}.json"
    if not (path.exists() and (HERE / "runs" / name / "synset.safetensors").exists()):
        return None
    ran = asdict(distill.load_config(path))  # as this version of distill reads it
    wanted = asdict(distill.DistillConfig(**resolve(**setting.options, seed=seed)))
    return json.loads(path.read_text()) if json.dumps(ran) == json.dumps(wanted) else None


def run_selection(setting: Setting, args: argparse.Namespace, settings: dict) -> dict:
    """Run (or reuse) every candidate, keep the best on validation, write it under the setting's name with every
    candidate's numbers beside it, and commit its set under that name."""
    candidates = []
    for name, seed in setting.candidates:
        plain = argparse.Namespace(seed=seed, device=args.device, resume=False, replace=False)
        result = finished(settings[name], seed) or run_distillation(settings[name], plain, settings)
        candidates.append((run_name(name, seed), result))
    chosen_name, chosen = max(candidates, key=lambda c: c[1]["best_val_acc"])
    result = {**chosen, "name": setting.name, "command": f"{COMMAND} {setting.name}",
              "selection": "best validation accuracy among the candidates (the test split plays no part)",
              "selected": chosen_name,
              "candidates": [{"name": n, "seed": r["config"]["seed"], "best_val_acc": r["best_val_acc"],
                              "accuracy_mean": r["accuracy_mean"], "distill_seconds": r["distill_seconds"]}
                             for n, r in candidates]}
    for suffix, source in ((".safetensors", "synset.safetensors"), (".png", "grid.png"), ("-val.png", "val_curve.png")):
        copy_atomic(HERE / "runs" / chosen_name / source, HERE / "artifacts" / f"{setting.name}{suffix}")
    write_json(result, HERE / "results" / f"{setting.name}.json")  # last: a failed copy leaves results and set in step
    print(json.dumps({k: result[k] for k in ("name", "selected", "accuracy_mean", "candidates")}))
    return result


def brief(m: dict) -> dict:
    keep = ("before_success", "after_success", "before_attacked_acc", "after_attacked_acc", "before_others_acc",
            "after_others_acc", "before_overall_acc", "after_overall_acc", "others_drop", "n_victims", "per_class")
    return {k: m[k] for k in keep if k in m} | {k: m[k] for k in ("lr", "damage_budget") if k in m}


def run_adapt(setting: Setting, args: argparse.Namespace, _settings: dict) -> dict:
    """Adapt the pretrained source networks, measure them on held-out ones beside the baselines, and write the
    results file (and the committed set, where the setting has one)."""
    name = run_name(setting.name, args.seed)
    command = f"{COMMAND} {setting.name}" + (f" --seed {args.seed}" if args.seed else "")
    if not args.replace:
        check_replaces_only_its_own(name, command)
    options = {**setting.options, "source": setting.source, **({"seed": args.seed} if args.seed else {})}
    out = HERE / "runs" / name
    run = distill.api.adapt(out=out, force=True, device=args.device, **options)
    r = run.results
    result = {"name": name, "dataset": r["target"], "source": r["source"], "method": "adapt", "init": "loaded",
              "known_weights": r["known_weights"], "images": r["images"], "gradient_steps": r["gradient_steps"],
              "accuracy_mean": r["adapted"]["mean"], "accuracy_std": r["adapted"]["std"],
              "n_eval_nets": r["adapted"]["n_nets"],
              **{key: r[key] for key in ("adapted", "no_adaptation", "random_real_steps", "random_real_fine_tuned",
                                         "pool", "kept_step")},
              "distill_seconds": r["distill_seconds"], "device": device_name(r["device"]),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "git_commit": git_commit(),
              "command": command, "config": asdict(distill.api.AdaptConfig(**options))}
    if setting.artifact:
        stem = run_name(setting.artifact, args.seed)
        (HERE / "artifacts").mkdir(exist_ok=True)
        copy_atomic(out / "synset.safetensors", HERE / "artifacts" / f"{stem}.safetensors")
        copy_atomic(out / "grid.png", HERE / "artifacts" / f"{stem}.png")
    (HERE / "results").mkdir(exist_ok=True)
    write_json(result, HERE / "results" / f"{name}.json")
    print(json.dumps({k: result[k] for k in ("name", "accuracy_mean", "accuracy_std")}
                     | {f"{key}_mean": r[key]["mean"] for key in ("no_adaptation", "random_real_steps",
                                                                  "random_real_fine_tuned")}))
    return result


def run_attack(setting: Setting, args: argparse.Namespace, _settings: dict) -> dict:
    """Craft the poison, measure it on held-out victims beside the label-flipping baseline, and write the results
    file (and the committed poison, where the setting has one)."""
    name = run_name(setting.name, args.seed)
    command = f"{COMMAND} {setting.name}" + (f" --seed {args.seed}" if args.seed else "")
    if not args.replace:
        check_replaces_only_its_own(name, command)
    options = {**setting.options, **({"seed": args.seed} if args.seed else {})}
    out = HERE / "runs" / name
    run = distill.attack(out=out, force=True, device=args.device, **options)
    r = run.results
    result = {
        "name": name, "dataset": options["dataset"], "method": "attack", "arch": options["arch"],
        "mode": r["mode"], "attacked": r["attacked"], "target": r["target"], "images": r["images"],
        "gradient_steps": r["gradient_steps"], "init": "loaded",
        "attack_success_mean": r["held_out"]["after_success"]["mean"],
        "attack_success_std": r["held_out"]["after_success"]["std"],
        "others_drop_mean": r["held_out"]["others_drop"]["mean"],
        "n_eval_victims": r["held_out"]["n_victims"],
        "held_out": brief(r["held_out"]), "crafting": brief(r["crafting"]), "validation": r["validation"],
        "label_flip": brief(r["label_flip"]), "label_flip_matched": brief(r["label_flip_matched"]),
        "label_flip_sweep": r["label_flip_sweep"],
        "distill_seconds": r["distill_seconds"],
        "device": device_name(r["device"]),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "git_commit": git_commit(),
        "command": command,
        "config": asdict(distill.AttackConfig(**options)),
    }
    if setting.artifact:  # the poison first, its results file last: a failed copy leaves the two in step
        stem = run_name(setting.artifact, args.seed)
        (HERE / "artifacts").mkdir(exist_ok=True)
        copy_atomic(out / "synset.safetensors", HERE / "artifacts" / f"{stem}.safetensors")
        copy_atomic(out / "grid.png", HERE / "artifacts" / f"{stem}.png")
        copy_atomic(out / "confusion.png", HERE / "artifacts" / f"{stem}-confusion.png")
    (HERE / "results").mkdir(exist_ok=True)
    write_json(result, HERE / "results" / f"{name}.json")
    print(json.dumps({k: result[k] for k in ("name", "attack_success_mean", "others_drop_mean", "n_eval_victims")}
                     | {f"{key}_{stat}": result[key][field]["mean"] for key in ("label_flip", "label_flip_matched")
                        for stat, field in (("success", "after_success"), ("others_drop", "others_drop"))}))
    return result


EXAMPLE = HERE.parent / "examples" / "train_plain.py"
PLAIN_AUGMENTS = ("none", "dc", "dsa")  # the eval augmentations examples/train_plain.py implements, same names


def source_set(source: str) -> Path:
    """The set a results file describes: its committed artifact, else the copy a plain check committed of it (a
    whitened set, 38 MB, is committed once, under the plain check's name), else its run folder's."""
    plain = [json.loads(p.read_text()) for p in sorted((HERE / "results").glob("plain-*.json"))]
    copies = [HERE.parent / r["artifact"] for r in plain if r.get("source") == source]
    for path in (HERE / "artifacts" / f"{source}.safetensors", *copies, HERE / "runs" / source / "synset.safetensors"):
        if path.exists():
            return path
    raise distill.DistillError(f"no set for {source}: neither benchmarks/artifacts/{source}.safetensors nor "
                               f"benchmarks/runs/{source}/synset.safetensors exists")


def run_plain(setting: Setting, args: argparse.Namespace, _settings: dict) -> dict:
    """Copy the source's set to the setting's artifact, train networks on it with plain PyTorch, and write both
    accuracies side by side."""
    nets = args.nets or 5
    command = f"{COMMAND} {setting.name}" + (f" --nets {nets}" if nets != 5 else "")
    if not args.replace:
        check_replaces_only_its_own(setting.name, command)
    measured = json.loads((HERE / "results" / f"{setting.source}.json").read_text())
    augment = measured["config"]["eval_augment"] or "none"
    if augment not in PLAIN_AUGMENTS:
        raise distill.DistillError(f"{setting.source} was evaluated with --augment {augment}, which "
                                   "examples/train_plain.py does not implement")
    target = HERE / "artifacts" / f"{setting.artifact}.safetensors"
    copy_atomic(source_set(setting.source), target)  # a reader never sees half a file
    data = data_root() / measured["dataset"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run([sys.executable, str(EXAMPLE), str(target), str(data), "--nets", str(nets),
                           "--augment", augment, "--json"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise distill.DistillError(f"examples/train_plain.py failed:\n{done.stderr}")
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    result = {
        "name": setting.name, "artifact": f"benchmarks/artifacts/{setting.artifact}.safetensors",
        "source": setting.source, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "dataset": measured["dataset"], "method": measured["method"], "ipc": measured["ipc"],
        "arch": measured["arch"], "init": measured["init"],
        "trained_with": "examples/train_plain.py: plain PyTorch and safetensors, no distill import",
        "eval_augment": augment, "epochs": plain["epochs"],
        "accuracy_mean": plain["mean"] / 100, "accuracy_std": plain["std"] / 100, "n_eval_nets": nets,
        "accuracies": [a / 100 for a in plain["accuracies"]],
        "distill_accuracy": {k: measured[k] for k in ("accuracy_mean", "accuracy_std", "n_eval_nets")},
        "distill_seconds": measured["distill_seconds"], "device": cpu_name(), "threads": int(env["OMP_NUM_THREADS"]),
        "torch": torch.__version__, "git_commit": git_commit(), "command": command,
    }
    write_json(result, HERE / "results" / f"{setting.name}.json")
    print(json.dumps({k: result[k] for k in ("name", "source", "accuracy_mean", "accuracy_std", "distill_accuracy")}))
    return result


RUNNERS = {"distill": run_distillation, "select": run_selection, "attack": run_attack, "plain": run_plain,
           "adapt": run_adapt}
APPLIES = {  # the command line's options each kind of setting takes (beyond NAME and --list)
    "distill": {"seed", "device", "resume", "replace", *OVERRIDES},
    "attack": {"seed", "device", "replace"},
    "adapt": {"seed", "device", "replace"},
    "select": {"device"},
    "plain": {"nets", "replace"},
}
UNSET = {"seed": 0, "device": None, "resume": False, "replace": False, "nets": None,
         **dict.fromkeys(OVERRIDES)}  # the parser's defaults: an option left at its default was not given


def describe(setting: Setting) -> str:
    what = {"select": {"candidates": setting.candidates}, "plain": {"source": setting.source}}.get(setting.kind)
    return f"{setting.name} [{setting.file}, {setting.kind}] {json.dumps(what or setting.options)}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="a setting (the name of its results file)")
    p.add_argument("--list", nargs="?", const="", default=None, metavar="WORD",
                   help="print the settings (those whose name contains WORD) and exit")
    p.add_argument("--seed", type=int, default=0, help="distillations and attacks: run <name>-seed<N> with this seed")
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true", help="continue a killed distillation from its last checkpoint")
    p.add_argument("--replace", action="store_true",
                   help="replace a committed results file (and set) that another command made")
    changes = p.add_argument_group("a distillation's options over its setting's (each named in the recorded command)")
    changes.add_argument("--max-minutes", type=float, default=None,
                         help="stop distilling after this long, 0 for no limit (a resumed run's earlier minutes "
                              "count; the results file records the steps taken)")
    changes.add_argument("--iterations", type=int, default=None,
                         help="stop after this many steps (with --max-minutes 0: a time-limited run's steps_taken, "
                              "which repeats it on any machine)")
    changes.add_argument("--eval-every", type=int, default=None, help="validate every N steps")
    p.add_argument("--nets", type=positive_int, default=None,
                   help="plain settings: networks trained with examples/train_plain.py (default 5)")
    return p


def main() -> None:
    p = parser()
    args = p.parse_args()
    settings = load_settings()
    if args.list is not None or not args.name:
        for setting in settings.values():
            if (args.list or "") in setting.name:
                print(describe(setting))
        return
    if args.name not in settings:
        close = difflib.get_close_matches(args.name, settings, n=3)
        p.error(f"no setting {args.name} in benchmarks/settings/*.toml"
                + (f"; did you mean {', '.join(close)}?" if close else " (--list prints them)"))
    setting = settings[args.name]
    given = sorted(k for k, unset in UNSET.items() if getattr(args, k) != unset and k not in APPLIES[setting.kind])
    if given:
        p.error(f"{', '.join('--' + k.replace('_', '-') for k in given)}: not an option of {setting.name} "
                f"(kind {setting.kind}, in {setting.file})")
    RUNNERS[setting.kind](setting, args, settings)


if __name__ == "__main__":
    run_main(main)
