"""Running recorded work again: the configuration a `distill run` command line describes (`configure`), a recorded
one with the options a user gives replacing its fields (`distill run --config FILE`, `replay`), and what `distill
show` prints beside a set so that anyone can repeat the run that made it (`rerun_command`) or measure its accuracy
again the way it was measured (`recorded_results`).

On a CPU a run repeats bit for bit only on the number of threads it ran with (its kernels sum in another order with
another count), so both a replayed run and a re-run command carry that count where the record names one."""

from __future__ import annotations

import shlex
import warnings
from pathlib import Path

import torch

from distill.augment import augment_option
from distill.config import AttackConfig, DistillConfig, flag, resolve
from distill.device import pick_device
from distill.errors import DistillError
from distill.methods.base import options_from_pairs
from distill.records import config_from_record, read_record, recorded_cpu_threads, replace_fields

# the fields of an attack's configuration `distill attack` sets by an option (the target by --target or --forget)
ATTACK_OPTIONS = ("dataset", "arch", "attacked", "ipc", "steps", "epochs", "iterations", "lr_images", "real_batch",
                  "craft_victims", "eval_victims", "seed")
ATTACK_RECIPE_OPTIONS = ("victim_recipes", "eval_recipes")  # named in the command only where a run changed them


def configure(given: dict, pairs: list[str], *, config: Path | None = None, device: str | None = None,
              threads: int | None = None) -> DistillConfig:
    """The validated configuration a `distill run` command line describes: the options `given` (None: not given)
    and the `--opt key=value` `pairs`, completed by the method's defaults and the shipped preset, or, with a
    recorded `config` file, that file's configuration with them in place (`replay`)."""
    if config is not None:  # as recorded, no preset: the given options replace its fields
        return replay(config, given, pairs, device=device, threads=threads)
    if pairs:
        given = {**given, "options": options_from_pairs(pairs)}
    resolved = DistillConfig(**resolve(**given))
    resolved.validate()
    return resolved


def replay(file: Path, given: dict, pairs: list[str], *, device: str | None = None,
           threads: int | None = None) -> DistillConfig:
    """The configuration `file` records (`read_record`), taken as recorded with no preset, with the fields in
    `given` replaced and the `--opt key=value` `pairs` merged into its method options (a key given replaces the
    recorded one, the others stay); validated, a refusal the record makes by itself naming the file.

    `threads` is the count the user asked for (None: not given, PyTorch's own, set before this call): without one,
    a CPU run recorded on another count than this process computes with is warned about (`check_threads`)."""
    record = read_record(file)  # once: a set file is read whole
    recorded = config_from_record(file, record)
    if threads is None:
        check_threads(file, record, device)
    if pairs:
        given = {**given, "options": {**recorded.options, **options_from_pairs(pairs)}}
    config = replace_fields(recorded, **given)
    check_replayed(config, recorded, file)
    return config


def check_threads(file: Path, record: dict, device: str | None) -> None:
    """Warn when a replayed run (`record`, read from `file`) ran on another number of CPU threads than this one
    will: its numbers then differ in their last digits (and ten images trained from one network can amplify that),
    so a user who wanted the recorded result sees why, and how to get it. On a GPU the count does not enter the
    sums."""
    recorded = recorded_cpu_threads(record)
    if recorded is None or pick_device(device).type != "cpu" or recorded == torch.get_num_threads():
        return
    warnings.warn(f"{file} records a run on {recorded} CPU thread(s), and this one uses {torch.get_num_threads()}: "
                  f"the results can differ in their last digits (--threads {recorded} repeats it exactly)",
                  UserWarning, stacklevel=3)


def check_replayed(config: DistillConfig, recorded: DistillConfig, file: Path) -> None:
    """Validate a recorded configuration with the given options in place. Refusals name command-line options, and
    a value the file holds was not typed by the user: a refusal the recorded configuration makes by itself (no
    option given changed it) says it comes from the file, so the user knows to edit it or give that option."""
    try:
        config.validate()
    except DistillError as exc:
        try:
            recorded.validate()
        except DistillError as own:
            if str(own) == str(exc):
                raise DistillError(f"{exc} (as {file} records it)") from None
        raise


def rerun_command(file: Path, meta: dict) -> str:
    """The command that runs the distillation that made a set again, from the configuration its header (`meta`)
    records (`run --config`; for a poison, `distill attack` with its options), or "" for a header without one. A run
    that its --max-minutes stopped is repeated by its step count instead, where the header still records it. A blend
    added by `distill relabel` afterwards is not part of that run, so it is named beside it."""
    recorded = meta.get("config")
    if meta.get("method") == "attack" and isinstance(recorded, dict):
        return _reattack_command(file, meta, recorded)
    if meta.get("init") == "loaded" or not isinstance(recorded, dict):
        return ""
    out = Path("runs") / f"{file.stem}-rerun"
    command = f"distill run --config {shlex.quote(str(file))} --out {shlex.quote(str(out))}"
    taken = (meta.get("results") or {}).get("steps_taken")
    remark = ""
    limit, iterations = recorded.get("max_minutes"), recorded.get("iterations")
    if isinstance(limit, (int, float)) and limit > 0:  # on another machine the minutes make another number of steps
        if isinstance(taken, int) and isinstance(iterations, int) and taken < iterations:
            command += f" --iterations {taken} --max-minutes 0"
        elif isinstance(taken, int):  # it took all its steps within the limit: a slower machine must too
            command += " --max-minutes 0"
        else:
            remark = f" (the run was limited to {limit:g} minutes, so the steps it took depend on the machine)"
    command += _threads_option(meta) + remark  # the options first, so that the command can be copied up to it
    blend = meta.get("teacher_labels")
    weight, temperature = (blend.get("weight"), blend.get("temperature")) if isinstance(blend, dict) else (0, 0)
    if isinstance(weight, (int, float)) and isinstance(temperature, (int, float)) and weight > 0 \
            and not recorded.get("teacher_labels"):
        command += (f", then distill relabel {shlex.quote(str(out / 'synset.safetensors'))} --teacher-labels "
                    f"{weight:g} --teacher-temperature {temperature:g} (the labels' blend came after the run)")
    return command


def _reattack_command(file: Path, meta: dict, recorded: dict) -> str:
    """The `distill attack` command that crafts a poison again from the configuration its header records, or ""
    where no command gives it: a field the command has no option for (set from Python) is not its default. Its
    checkpoints' spacing changes no result, so it may differ."""
    try:
        config = AttackConfig(**recorded)
    except TypeError:  # another version's fields
        return ""
    default = AttackConfig()
    fixed = [name for name in recorded
             if name not in (*ATTACK_OPTIONS, *ATTACK_RECIPE_OPTIONS, "target", "checkpoint_every")]
    if any(getattr(config, name) != getattr(default, name) for name in fixed):
        return ""
    words = ["distill", "attack", *(word for name in ATTACK_OPTIONS
                                    for word in (flag(name), str(getattr(config, name))))]
    words += ["--forget"] if config.target is None else ["--target", str(config.target)]
    words += [word for name in ATTACK_RECIPE_OPTIONS if getattr(config, name) != getattr(default, name)
              for word in (flag(name), getattr(config, name))]
    words += ["--out", str(Path("runs") / f"{file.stem}-rerun")]
    return shlex.join(words) + _threads_option(meta)


def _threads_option(meta: dict) -> str:
    """` --threads N` where a set's header records a CPU run on N threads, else "": on another count the last digits
    differ, so both re-run commands (`rerun_command`, `_reattack_command`) ask for it."""
    threads = recorded_cpu_threads(meta)
    return f" --threads {threads}" if threads is not None else ""


def accuracy_text(result: dict) -> str:
    """A measured accuracy as the command line prints it: its mean over the networks in percent, ± their spread."""
    spread = f" ± {100 * result['accuracy_std']:.2f}" if result["n_nets"] > 1 else ""
    return f"{100 * result['accuracy_mean']:.2f}%{spread}"


def recorded_results(file: Path, results: dict, dataset: str) -> list[tuple[str, str]]:
    """What `distill show` says of the results a set's header records, as (label, text) rows: each accuracy and how
    it was measured, the `distill eval` command that measures the distilled one again, and for a poison its held-out
    effect; or, where none is recorded, how to measure it."""
    rows = []
    measured = [name for name in ("distilled", "full_data", "random_real") if is_accuracy(results.get(name))]
    for name in measured:
        rows.append((name, f"{accuracy_text(results[name])} ({how_measured(results[name])})"))
    again = remeasure_command(file, results["distilled"], dataset) if "distilled" in measured else None
    if again:
        rows.append(("re-measure", again))
    success, drop = results.get("held_out_success"), results.get("held_out_others_drop")
    if all(isinstance(m, dict) and isinstance(m.get("mean"), (int, float)) and isinstance(m.get("std"), (int, float))
           for m in (success, drop)):
        rows.append(("poison", f"success {100 * success['mean']:.1f}% ± {100 * success['std']:.1f} on held-out "
                               f"victims, other classes' accuracy down {100 * drop['mean']:.2f} ± "
                               f"{100 * drop['std']:.2f} points"))
    elif _is_summary(results.get("adapted")) and _is_summary(results.get("no_adaptation")):
        adapted, before = results["adapted"], results["no_adaptation"]
        rows.append(("adaptation", f"{100 * before['mean']:.2f}% ± {100 * before['std']:.2f} -> "
                                   f"{100 * adapted['mean']:.2f}% ± {100 * adapted['std']:.2f} on "
                                   f"{adapted.get('n_nets', '?')} held-out pretrained networks (test split)"))
    elif not measured:  # saved unmeasured (--no-eval), or relabelled: the blend drops what was measured before it
        rows.append(("accuracy", f"none recorded in this file; measure it with distill eval {shlex.quote(str(file))}"))
    return rows


def _is_summary(result) -> bool:
    return isinstance(result, dict) and all(isinstance(result.get(k), (int, float)) for k in ("mean", "std"))


def is_accuracy(result) -> bool:
    """Whether a header's results entry is a measured accuracy that can be shown (a hand-edited header may hold
    anything)."""
    return (isinstance(result, dict) and isinstance(result.get("protocol"), str)
            and all(isinstance(result.get(k), (int, float)) for k in ("accuracy_mean", "accuracy_std", "n_nets")))


def how_measured(result: dict) -> str:
    """The protocol of a recorded accuracy, with its epochs and augmentation when the header kept them, so that a
    user can re-measure it the same way (`distill eval --epochs ... --augment ...`)."""
    parts = [result["protocol"]]
    detail = result.get("detail") or {}
    epochs = (detail.get("sgd") or {}).get("epochs")
    if epochs:
        parts.append(f"{epochs} epochs")
    augment = detail.get("augment")
    if augment and augment != "none":
        parts.append(f"augmented: {augment}")
    return ", ".join(parts)


def remeasure_command(file: Path, result: dict | None, dataset: str) -> str | None:
    """The `distill eval` command that trains networks as the recorded distilled accuracy's were trained, or None
    when the header does not say enough (an augmentation no option gives, say)."""
    if not isinstance(result, dict) or "protocol" not in result:
        return None
    command = f"distill eval {shlex.quote(str(file))}"  # pasteable, spaces and all
    detail = result.get("detail") or {}
    if result["protocol"] == "standard":
        option = augment_option(detail.get("augment") or "none", dataset)
        epochs = (detail.get("sgd") or {}).get("epochs")
        if option is None or not epochs:
            return None
        command += ("" if option == "none" else f" --augment {option}") + f" --epochs {epochs}"
    if result.get("n_nets", 5) != 5 and result["protocol"] != "fixed":
        command += f" --nets {result['n_nets']}"
    return command
