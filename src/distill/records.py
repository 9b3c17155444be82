"""Recorded configurations, read back to run them again (`distill run --config FILE`, `distill.load_config`): a
run's summary.json, a benchmarks/results file, a plain JSON object of options, or a set file's header.

A record is taken as recorded, with no preset: presets change between versions, and applying them again would
quietly run something else. Fields an earlier version kept elsewhere are moved where this one keeps them
(`migrate`), so every committed result still runs as it ran."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, fields
from pathlib import Path

from distill.config import MOVED_TO_OPTIONS, SET_SUFFIX, DistillConfig, check_field_types, given_path
from distill.errors import DistillError
from distill.presets import canonical_names
from distill.synset import load

def load_config(path: str | os.PathLike) -> DistillConfig:
    """The run configuration recorded in a JSON file, to run it again: `distill(config=load_config(FILE))` and
    `distill run --config FILE` repeat a recorded run instead of the user retyping its every option. FILE is a run's
    summary.json or a benchmarks/results file (both keep the whole resolved configuration under "config"), a plain
    JSON object of DistillConfig fields, or a synthetic-set file (.safetensors), whose header records the run that
    made it: the set is often all a user was given.

    The configuration is taken as recorded, with no preset: presets change between versions, and applying them again
    would quietly run something else. Fields a recorded configuration leaves out (a file from an older version) take
    DistillConfig's defaults, not the presets', with a warning naming them: the run may differ from the recorded one.
    Unknown fields (the likely sign of a file made by another version of distill) and wrongly typed ones are refused
    here, in one line naming the file; the other checks come when the run starts (`DistillConfig.validate`), so that
    a field the file gets wrong can still be replaced (`distill(config, **options)`, `replace_fields`)."""
    file = given_path("path", path)
    if file is None:
        raise DistillError("load_config needs the path of a JSON file (a run's summary.json)")
    return config_from_record(file, read_record(file))


def read_record(file: Path) -> dict:
    """The JSON object a run's record holds: a set file's header, or a JSON file's content (a summary.json, a
    results file, a plain object of options), each problem with the file one line naming it."""
    if file.suffix == SET_SUFFIX:
        return load(file).meta
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DistillError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise DistillError(f"{file} is a folder; give a JSON file, e.g. {file / 'summary.json'}") from None
    except UnicodeDecodeError:
        raise DistillError(f"{file} is not JSON (not even UTF-8 text)") from None
    except OSError as exc:
        raise DistillError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistillError(f"{file} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise DistillError(f"{file} holds a JSON {type(data).__name__}, not an object of run options")
    return data


def recorded_cpu_threads(record: dict) -> int | None:
    """The number of CPU threads the run a record (`read_record`) describes ran on (`torch.get_num_threads()`, in
    its results), or None: not recorded (an older version's), or the run was on a GPU. On a CPU the kernels sum in
    another order with another count, so a run repeats bit for bit only on the same count (`distill run
    --threads`)."""
    results = record.get("results")
    if not isinstance(results, dict) or results.get("device") != "cpu":
        return None
    threads = results.get("threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def config_from_record(file: Path, record: dict) -> DistillConfig:
    """`load_config`'s checks on what `read_record` read from `file`, and the configuration it makes: the fields
    under its "config" key (as a run and a set's header record them), or the object itself (plain run options)."""
    nested = isinstance(record.get("config"), dict)
    if file.suffix == SET_SUFFIX and not nested:
        raise DistillError(f"{file}: its header records no run configuration (give the run's summary.json)")
    if not nested and isinstance(record.get("command"), str) and "git_commit" in record:
        raise DistillError(f"{file} records a benchmark's measurements (a sweep, a profile, ...), not a run's "
                           f"configuration; the command it records repeats them: {record['command']}")
    recorded = migrate(record["config"] if nested else record)
    names = {f.name for f in fields(DistillConfig)}
    unknown = sorted(set(recorded) - names)
    if {"attacked", "craft_victims"} <= set(unknown):
        raise DistillError(f"{file} holds a poisoning attack's configuration (distill attack), not a run's")
    if unknown and nested:
        raise DistillError(f"{file}: unknown field(s) {', '.join(unknown)} in its \"config\": the file was made by "
                           "another version of distill, whose runs this one cannot repeat")
    if unknown:
        raise DistillError(f"{file}: unknown field(s) {', '.join(unknown)}: no run options of this version of "
                           "distill (the file was made by another version, or records no run: a run's summary.json "
                           "keeps its configuration under \"config\")")
    missing = sorted(names - set(recorded))
    if missing and nested:
        warnings.warn(f"{file} records no {', '.join(missing)} (made by an older version of distill): today's "
                      "defaults are used, so the run may differ from the recorded one", UserWarning, stacklevel=3)
    config = DistillConfig(**recorded)
    try:
        check_field_types(config)
    except DistillError as exc:
        raise DistillError(f"{file}: {exc}") from None
    return config


def replace_fields(config: DistillConfig, **options) -> DistillConfig:
    """`config` with `options` replacing its fields, and no preset applied: how a run is varied from a configuration
    taken as it is (`distill(config, seed=1)`, `distill run --config FILE --seed 1`). Names are spelt as the presets
    and registries key them (`presets.canonical_names`), as for options completed by the presets."""
    return DistillConfig(**canonical_names({**asdict(config), **options}))


RUN_OPTIONS_READ_BY = {"dd": ("real_batch", "nets_per_step"), "unroll": ("real_batch",)}  # before they moved


# Run options added after runs were first recorded, with the value every earlier run had: no resizing of a user's
# images, no whitening. A record without them is taken as made with them, with no warning.
ADDED_SINCE = {"image_size": 0, "zca": False, "images": 0}


def migrate(recorded: dict) -> dict:
    """A recorded configuration with the fields added since filled in as every earlier run had them (`ADDED_SINCE`),
    and the fields earlier versions kept among the run's options moved where this one keeps them: `real_batch` and
    `nets_per_step` are now the options of the methods that use them (dd, unroll), so they go into `options` for
    those, and are dropped for the others, which never read them. A record that is not an object of fields (a list,
    a broken file) is left for the checks to refuse."""
    if isinstance(recorded, dict):  # fields added since: what every earlier run did
        recorded = {**{k: v for k, v in ADDED_SINCE.items() if k not in recorded}, **recorded}
    moved = [name for name in MOVED_TO_OPTIONS if name in recorded]
    if not moved or not isinstance(recorded.get("options", {}), dict):
        return recorded
    migrated = {k: v for k, v in recorded.items() if k not in moved}
    options = dict(recorded.get("options", {}))
    # the methods that read those run options then; the others (dc, dm, frepo ...) had real batches of their own,
    # in `options` where a run changed it, so the run option they ignored must not become theirs
    for name in RUN_OPTIONS_READ_BY.get(str(recorded.get("method", DistillConfig.method)), ()):
        if name in moved:
            options.setdefault(name, recorded[name])
    migrated["options"] = options
    return migrated

