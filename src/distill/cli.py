"""The `distill` command: run, eval, show, data. Thin: it parses options and calls the API.

Every problem a user can fix (a `DistillError`) ends as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
import typer

from distill import api, presets
from distill.augment import augment_option
from distill.data import dataset_status
from distill.errors import DistillError
from distill.loop import CHECKPOINT_NAME, checkpoint_step
from distill.methods import get_method, options_from_pairs
from distill.synset import describe, load

# markdown: a docstring's wrapped lines are rewrapped to the terminal, not kept where the source broke them (write
# <placeholders> in backticks there, or markdown drops them as HTML)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown",
                  help="Dataset distillation: squeeze a labelled image dataset into a few synthetic images.")

DEFAULTS = api.DistillConfig()


def _path(value: str) -> Path:
    """Every path option and argument: an empty one is almost always an unset shell variable (`--out "$DIR"`), and
    Path("") would quietly mean the current folder, so it is refused instead of writing or reading there."""
    if not value.strip():
        raise typer.BadParameter("is empty; give a path (an unset shell variable?)")
    return Path(value)


DataRoot = typer.Option(None, "--data-root", parser=_path,
                        help="Folder with one sub-folder per dataset (default: $DISTILL_DATA, else "
                             "~/.cache/distill/data).")
Device = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
Threads = typer.Option(None, min=1, help="CPU threads PyTorch computes with (default: its own choice, about one per "
                                         "core). On a CPU the last digits of a result depend on it (runs and "
                                         "attacks record their count).")


def _use_threads(threads: int | None) -> None:
    """Set PyTorch's CPU thread count (--threads), before any work: its kernels sum in another order with another
    count, so a recorded run repeats bit for bit only on the count it ran with."""
    if threads is not None:
        torch.set_num_threads(threads)


def _check_threads(file: Path, record: dict, device: str | None) -> None:
    """Warn when a replayed run (`record`, read from `file`) ran on another number of CPU threads than this one
    will: its numbers then differ in their last digits (and ten images trained from one network can amplify that),
    so a user who wanted the recorded result sees why, and how to get it. On a GPU the count does not enter the
    sums."""
    recorded = api.recorded_cpu_threads(record)
    if recorded is None or api.pick_device(device).type != "cpu" or recorded == torch.get_num_threads():
        return
    warnings.warn(f"{file} records a run on {recorded} CPU thread(s), and this one uses {torch.get_num_threads()}: "
                  f"the results can differ in their last digits (--threads {recorded} repeats it exactly)",
                  UserWarning, stacklevel=2)


def _interrupted(out: Path) -> typer.Exit:
    """What Ctrl-C leaves of a run: the step its checkpoint holds and how to go on from it (exit code 130)."""
    checkpoint = out / CHECKPOINT_NAME
    step = checkpoint_step(checkpoint)
    if step is None:
        print(f"distill: interrupted before the run's first checkpoint; nothing in {out} to resume",
              file=sys.stderr)
    else:
        print(f"distill: interrupted; {checkpoint} holds step {step}: the same command with --resume goes on from "
              "there", file=sys.stderr)
    return typer.Exit(130)


def _percent(result: dict) -> str:
    spread = f" ± {100 * result['accuracy_std']:.2f}" if result["n_nets"] > 1 else ""
    return f"{100 * result['accuracy_mean']:.2f}%{spread}"


def _given(**options) -> dict:
    """The options the user actually passed (None = not given), so presets fill in the rest."""
    return {k: v for k, v in options.items() if v is not None}


@app.command()
def run(
    config_file: Optional[Path] = typer.Option(None, "--config", parser=_path, metavar="FILE",
                                               help="Run a recorded configuration again: a run's summary.json, a "
                                                    "benchmarks/results file, a JSON object of run options, or a "
                                                    "set file (.safetensors), whose header records its run. It "
                                                    "is taken as recorded (no preset); the options given here "
                                                    "replace its fields, and --opt is merged into its method "
                                                    "options."),
    dataset: Optional[str] = typer.Option(None, help="digits (bundled, the default), mnist, fashion-mnist, usps, "
                                                     "cifar10."),
    method: Optional[str] = typer.Option(None, help="dd, dc, dsa, dm, mtt, frepo; unroll (a final stage on the set "
                                                    "given as --image-init); coresets: random, herding, kcenter. "
                                                    "Default: the most accurate one benchmarked for the dataset and "
                                                    "--ipc where there is one, else dd."),
    arch: Optional[str] = typer.Option(None, help="Network: lenet, convnet, convnet_dc, mlp, alexnet, vgg11, resnet18 "
                                                  "(default: the method's, see presets)."),
    ipc: Optional[int] = typer.Option(None, help="Synthetic images per class (per step for dd). Default 1."),
    steps: Optional[int] = typer.Option(None, help="Gradient steps in the learned schedule (dd)."),
    epochs: Optional[int] = typer.Option(None, help="Passes over the steps (dd)."),
    init: Optional[str] = typer.Option(None, help="fixed: one stored network; random: a fresh one every step."),
    init_scheme: Optional[str] = typer.Option(None, help="Initialiser: default, xavier, kaiming "
                                                         "(empty: the network's own default)."),
    image_init: Optional[str] = typer.Option(None, help="Start the images from real samples (real), noise, a "
                                                        "coreset's picks (herding, kcenter), or a saved set (a "
                                                        ".safetensors path: its images and labels, to refine it "
                                                        "further, e.g. with --method unroll)."),
    init_lr: Optional[float] = typer.Option(None, help="Starting value of the learned learning rates."),
    iterations: Optional[int] = typer.Option(None, help="Outer optimisation steps."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Step size for the images."),
    lr_lrs: Optional[float] = typer.Option(None, help="Step size for the log learning rates."),
    layer_lrs: Optional[bool] = typer.Option(None, "--layer-lrs/--step-lrs",
                                             help="Learn a rate per step and per parameter tensor (dd), or one per "
                                                  "step (default)."),
    learn_labels: Optional[bool] = typer.Option(None, "--learn-labels/--hard-labels",
                                                help="Learn soft labels too, saved as probabilities (dd, frepo, "
                                                     "unroll)."),
    lr_labels: Optional[float] = typer.Option(None, help="Step size for the label logits (--learn-labels)."),
    optimizer: Optional[str] = typer.Option(None, help="Outer optimiser: adam or sgd (with --momentum)."),
    momentum: Optional[float] = typer.Option(None, help="Momentum of the sgd outer optimiser."),
    decay_every: Optional[int] = typer.Option(None, help="Halve the step sizes every N steps (0: never)."),
    real_batch: Optional[int] = typer.Option(None, help="Real images per outer step (dd, unroll; the other "
                                                        "methods take --opt real_batch=N)."),
    nets_per_step: Optional[int] = typer.Option(None, help="Networks sampled per outer step (dd)."),
    opt: list[str] = typer.Option([], "--opt", help="A method's own option, key=value (repeatable), e.g. "
                                                    "--opt real_batch=128 for dm. With --config: merged into the "
                                                    "recorded options (a key given replaces the recorded one, the "
                                                    "others stay)."),
    eval_every: Optional[int] = typer.Option(None, help="Validate every N steps (held-out split)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Checkpoint every N steps."),
    eval_nets: Optional[int] = typer.Option(None, help="Networks per final evaluation."),
    eval_augment: Optional[str] = typer.Option(None, help="Augment the standard protocol's training: none, dsa, "
                                                          "dc (DC's MNIST augmentation), or a strategy like "
                                                          "crop_scale_rotate."),
    eval_epochs: Optional[int] = typer.Option(None, help="Standard-protocol epochs (0: 300, 1000 with "
                                                         "augmentation)."),
    teacher_labels: Optional[float] = typer.Option(None, help="After distilling, blend this share (0 to 1) of the "
                                                              "full-data network's predictions into the labels "
                                                              "(0: none)."),
    teacher_temperature: Optional[float] = typer.Option(None, help="Temperature of those predictions (default 2)."),
    keep_best: Optional[bool] = typer.Option(None, "--keep-best/--keep-last",
                                             help="End with the set that scored best on the validation split "
                                                  "(default), or the last."),
    clamp_pixels: Optional[bool] = typer.Option(None, "--clamp-pixels/--free-pixels",
                                                help="Keep the images valid pictures (pixels in [0, 1]) after every "
                                                     "step, or let them leave that range (default)."),
    validation: Optional[str] = typer.Option(None, help="How to validate while distilling: quick (one network, "
                                                        "100 epochs, no augmentation; the default) or standard (one "
                                                        "network trained as the final evaluation trains)."),
    ema: Optional[float] = typer.Option(None, help="Validate and keep a moving average of the set over the steps "
                                                   "with this decay, e.g. 0.99 (0: off, the default)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the distillation's random draws: starting images, "
                                             "networks, batches (default 0). The validation and final evaluation "
                                             "networks start from fixed seeds, the same for every run, so runs "
                                             "with different seeds are compared on the same networks."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop distilling after this many minutes in all, a "
                                                           "resumed run's earlier minutes included (0: no limit); "
                                                           "the summary records the steps taken."),
    out: Optional[Path] = typer.Option(None, parser=_path,
                                       help="Output folder (default: `runs/<dataset>-<method>`)."),
    force: bool = typer.Option(False, help="Replace the results already in the output folder."),
    resume: bool = typer.Option(False, help="Continue the run whose checkpoint is in the output folder."),
    data_root: Optional[Path] = DataRoot,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Measure the result and its baselines."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Distill a dataset, evaluate the result beside its baselines, and save the set, pictures and a summary.

    Options not given come from the method's defaults and the shipped preset for (dataset, method, ipc), so
    `distill run --dataset mnist --method dm --ipc 10` reproduces the README's number for that row.

    `--config FILE` runs a recorded configuration again, exactly as recorded, with the options given replacing its
    fields: `distill run --config runs/a/summary.json --seed 1 --out runs/a-seed1`. The options that are not part of
    a run's configuration (--out, --force, --resume, --eval, --device, --threads, --data-root, --quiet) work as
    usual. A run on a CPU repeats bit for bit on the number of threads it ran with (`distill show` names it).
    """
    given = _given(dataset=dataset, method=method, arch=arch, ipc=ipc, steps=steps, epochs=epochs, init=init,
                   init_scheme=init_scheme, image_init=image_init, init_lr=init_lr, iterations=iterations,
                   lr_images=lr, lr_lrs=lr_lrs, layer_lrs=layer_lrs, learn_labels=learn_labels, lr_labels=lr_labels,
                   optimizer=optimizer, momentum=momentum, decay_every=decay_every,
                   real_batch=real_batch, nets_per_step=nets_per_step, eval_every=eval_every,
                   checkpoint_every=checkpoint_every, eval_nets=eval_nets, eval_augment=eval_augment,
                   eval_epochs=eval_epochs, teacher_labels=teacher_labels,
                   teacher_temperature=teacher_temperature, keep_best=keep_best, clamp_pixels=clamp_pixels,
                   ema=ema, validation=validation, seed=seed, max_minutes=max_minutes)
    _use_threads(threads)
    if config_file is not None:  # as recorded, no preset: the given options replace its fields
        record = api.read_record(config_file)  # once: a set file is read whole
        recorded = api.config_from_record(config_file, record)
        if threads is None:
            _check_threads(config_file, record, device)
        if opt:
            given["options"] = {**recorded.options, **options_from_pairs(opt)}
        config = api.replace_fields(recorded, **given)
        _check_replayed(config, recorded, config_file)
    else:
        if opt:
            given["options"] = options_from_pairs(opt)
        config = api.DistillConfig(**presets.resolve(**given))
        config.validate()
    out = out or Path("runs") / f"{config.dataset}-{config.method}"
    try:
        result = api.distill(config, out=out, data_root=data_root, force=force, resume=resume, device=device,
                             progress=not quiet, evaluate=evaluate)
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    r = result.results
    n_images = len(result.synset.labels)
    what = "selected real" if getattr(get_method(config.method), "selects", False) else "distilled"
    if not evaluate:
        typer.echo(f"{n_images} {what} images ({config.method}, {config.init} init) in {r['distill_seconds']:.0f} s")
        for name, path in result.files.items():
            typer.echo(f"  {name}: {path}")
        return
    typer.echo(f"{n_images} {what} images ({config.method}, {config.init} init) trained {config.arch} to "
               f"{_percent(r['distilled'])} test accuracy [{r['distilled']['protocol']}]")
    typer.echo(f"  full training set ({config.arch}): {_percent(r['full_data'])}")
    typer.echo(f"  {n_images} random real images:    {_percent(r['random_real'])}")
    stopped = (f" (stopped by --max-minutes after {r['steps_taken']} of {config.iterations} steps)"
               if 0 < r["steps_taken"] < config.iterations else "")
    count = r["threads"]  # on a CPU the last digits depend on it
    threads = f" ({count} thread{'s' * (count != 1)})" if r["device"] == "cpu" else ""
    typer.echo(f"  distillation took {r['distill_seconds']:.0f} s on {r['device']}{threads}{stopped}")
    chosen = method is None and config_file is None  # the preset chose it (a recorded config is taken as is)
    if chosen and (config.dataset, config.ipc) in presets.BEST_METHOD:  # the progress bar named it too
        typer.echo(f"  method {config.method}: the most accurate measured for {config.dataset} at {config.ipc} "
                   "image(s) per class (choose another with --method)")
    for name, path in result.files.items():
        typer.echo(f"  {name}: {path}")


def _check_replayed(config: api.DistillConfig, recorded: api.DistillConfig, file: Path) -> None:
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


@app.command(name="attack")
def attack_command(
    dataset: str = typer.Option("mnist", help="Dataset whose models are attacked."),
    arch: str = typer.Option("lenet", help="Victim network."),
    attacked: int = typer.Option(3, help="The class to attack."),
    target: int = typer.Option(8, help="Misclassify the attacked class as this class."),
    forget: bool = typer.Option(False, help="Misclassify the attacked class as anything (ignores --target)."),
    ipc: int = typer.Option(1, help="Poison images per class."),
    steps: int = typer.Option(1, help="Gradient steps per epoch of the poison's schedule."),
    epochs: int = typer.Option(3, help="Passes over the steps (gradient steps = steps x epochs)."),
    iterations: int = typer.Option(1500, help="Outer optimisation steps."),
    lr: float = typer.Option(0.03, "--lr", help="Adam step size for the images."),
    real_batch: int = typer.Option(512, help="Real images per outer step (half from the attacked class)."),
    craft_victims: int = typer.Option(10, help="Victims the poison is crafted against."),
    eval_victims: int = typer.Option(10, help="Held-out victims it is measured on."),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, parser=_path,
                                       help="Output folder (default: `runs/attack-<dataset>-<a>to<t>`)."),
    force: bool = typer.Option(False, help="Replace the results already in the output folder."),
    resume: bool = typer.Option(False, help="Continue the run whose checkpoint is in the output folder."),
    data_root: Optional[Path] = DataRoot,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Craft a few distilled images that make well-trained networks misclassify (or forget) one class."""
    from distill.poison import AttackConfig, attack  # noqa: PLC0415

    _use_threads(threads)

    config = AttackConfig(**presets.canonical_names(dict(
        dataset=dataset, arch=arch, attacked=attacked, target=None if forget else target, ipc=ipc, steps=steps,
        epochs=epochs, iterations=iterations, lr_images=lr, real_batch=real_batch, craft_victims=craft_victims,
        eval_victims=eval_victims, seed=seed)))
    config.validate()
    goal = "any" if forget else str(target)
    out = out or Path("runs") / f"attack-{config.dataset}-{attacked}to{goal}"
    try:
        run = attack(config, out=out, data_root=data_root, force=force, resume=resume, device=device,
                     progress=not quiet)
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    r = run.results
    for name, label in (("held_out", "distilled poison"), ("label_flip", "label flip (best)"),
                        ("label_flip_matched", "label flip (≤ harm)")):
        m = r[name]
        lr = f" [lr {m['lr']:g}]" if "lr" in m else ""
        typer.echo(f"{label:19} on {m['n_victims']} held-out victims: success {100 * m['after_success']['mean']:.1f}% "
                   f"± {100 * m['after_success']['std']:.1f}, attacked class "
                   f"{100 * m['before_attacked_acc']['mean']:.1f}"
                   f"% -> {100 * m['after_attacked_acc']['mean']:.1f}%, other classes "
                   f"{100 * m['before_others_acc']['mean']:.2f}% -> {100 * m['after_others_acc']['mean']:.2f}%{lr}")
    typer.echo("  (label flip (best): the flipping rate validation scores best; (≤ harm): the most successful rate "
               "that costs the other classes no more than the poison does, on these held-out victims)")
    typer.echo(f"  ({r['images']} images, {r['gradient_steps']} gradient steps; "
               f"crafted in {r['distill_seconds']:.0f} s)")
    for name, path in run.files.items():
        typer.echo(f"  {name}: {path}")


@app.command(name="eval")
def eval_command(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    protocol: str = typer.Option("auto", help="auto, fixed, schedule or standard (README: Evaluation protocol)."),
    arch: Optional[str] = typer.Option(None, help="Network to train (default: the one the set was made for): mlp, "
                                                  "lenet, convnet, convnet_dc, alexnet, vgg11, resnet18."),
    nets: int = typer.Option(5, help="Networks to train (fixed init always uses its one network)."),
    augment: str = typer.Option("", help="Augment the standard protocol's training: dsa, dc (DC's MNIST "
                                         "augmentation), or a strategy like crop_scale_rotate (default: none)."),
    epochs: int = typer.Option(0, help="Standard-protocol epochs (0: 300, or 1000 with augmentation)."),
    lr: float = typer.Option(0.0, help="Standard-protocol learning rate (0: the set's learned rate if it has one, "
                                       "else 0.01)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    data_root: Optional[Path] = DataRoot,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
    quiet: bool = typer.Option(False, help="No progress bars (--json shows none either)."),
) -> None:
    """Train networks on a synthetic set and report their test accuracy."""
    _use_threads(threads)
    result = api.evaluate(file, protocol=protocol, arch=arch, n_nets=nets, data_root=data_root, device=device,
                          progress=not (as_json or quiet), augment=augment, epochs=epochs, lr=lr)
    if as_json:
        # where the networks were trained: on a CPU the last digits depend on the thread count
        typer.echo(json.dumps({"file": str(file), **result.to_dict(), **api.environment(api.pick_device(device))}))
    else:
        typer.echo(f"{file}: {result}")


@app.command()
def relabel(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    teacher_labels: float = typer.Option(0.5, help="Share (0 to 1) of each label taken from the full-data "
                                                   "network's predictions."),
    teacher_temperature: float = typer.Option(2.0, help="Temperature of those predictions."),
    out: Optional[Path] = typer.Option(None, parser=_path, help="Where to save the relabelled set (default: "
                                                               "`<file>-teacher.safetensors` beside it)."),
    force: bool = typer.Option(False, help="Replace --out if it exists."),
    data_root: Optional[Path] = DataRoot,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Blend the full-data network's softened predictions into a set's labels (the same as `run --teacher-labels`,
    for a set already made). The network is the one the full-data baseline trains, cached after its first use."""
    _use_threads(threads)
    out = out or file.with_name(f"{file.stem}-teacher.safetensors")
    result = api.relabel(file, out, teacher_labels, teacher_temperature, data_root=data_root, device=device,
                         force=force, progress=not quiet)
    typer.echo(f"{len(result.labels)} images relabelled ({teacher_labels:g} teacher at temperature "
               f"{teacher_temperature:g}): {out}")


@app.command()
def show(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (its \"rerun\": the re-run line)."),
) -> None:
    """Describe a synthetic-set file (after validating it)."""
    synset = load(file)
    info = describe(synset)
    rerun = _rerun_command(file, synset.meta)
    if as_json:
        typer.echo(json.dumps({**info, **({"rerun": rerun} if rerun else {})}))
        return
    for key, value in info.items():
        if key == "results":
            _show_results(file, value if isinstance(value, dict) else {}, info.get("dataset", ""))
            continue
        typer.echo(f"{key + ':':12} {value}")
    if rerun:
        typer.echo(f"{'re-run:':12} {rerun}")


def _rerun_command(file: Path, meta: dict) -> str:
    """The command that runs the distillation that made a set again, from the configuration its header records
    (`run --config`; for a poison, `distill attack` with its options), or "" for a header without one. A run that its
    --max-minutes stopped is repeated by its step count instead, where the header still records it. A blend added
    by `distill relabel` afterwards is not part of that run, so it is named beside it."""
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


# the fields of an attack's configuration `distill attack` sets by an option (the target by --target or --forget)
ATTACK_OPTIONS = ("dataset", "arch", "attacked", "ipc", "steps", "epochs", "iterations", "lr_images", "real_batch",
                  "craft_victims", "eval_victims", "seed")


def _reattack_command(file: Path, meta: dict, recorded: dict) -> str:
    """The `distill attack` command that crafts a poison again from the configuration its header records, or ""
    where no command gives it: a field the command has no option for (set from Python) is not its default. Its
    checkpoints' spacing changes no result, so it may differ."""
    from distill.poison import AttackConfig  # noqa: PLC0415

    try:
        config = AttackConfig(**recorded)
    except TypeError:  # another version's fields
        return ""
    default = AttackConfig()
    fixed = [name for name in recorded if name not in (*ATTACK_OPTIONS, "target", "checkpoint_every")]
    if any(getattr(config, name) != getattr(default, name) for name in fixed):
        return ""
    words = ["distill", "attack", *(word for name in ATTACK_OPTIONS
                                    for word in (api.flag(name), str(getattr(config, name))))]
    words += ["--forget"] if config.target is None else ["--target", str(config.target)]
    words += ["--out", str(Path("runs") / f"{file.stem}-rerun")]
    return shlex.join(words) + _threads_option(meta)


def _threads_option(meta: dict) -> str:
    """` --threads N` where a set's header records a CPU run on N threads, else "": on another count the last digits
    differ, so both re-run commands (`_rerun_command`, `_reattack_command`) ask for it."""
    threads = api.recorded_cpu_threads(meta)
    return f" --threads {threads}" if threads is not None else ""


def _is_accuracy(result) -> bool:
    """Whether a header's results entry is a measured accuracy `show` can print (a hand-edited header may hold
    anything)."""
    return (isinstance(result, dict) and isinstance(result.get("protocol"), str)
            and all(isinstance(result.get(k), (int, float)) for k in ("accuracy_mean", "accuracy_std", "n_nets")))


def _show_results(file: Path, results: dict, dataset: str) -> None:
    """The accuracies the header records, how to measure them again, and for a poison its held-out effect."""
    measured = [name for name in ("distilled", "full_data", "random_real") if _is_accuracy(results.get(name))]
    for name in measured:
        typer.echo(f"{name + ':':12} {_percent(results[name])} ({_how_measured(results[name])})")
    if "distilled" in measured:
        again = _remeasure_command(file, results["distilled"], dataset)
        if again:
            typer.echo(f"{'re-measure:':12} {again}")
    success, drop = results.get("held_out_success"), results.get("held_out_others_drop")
    if all(isinstance(m, dict) and isinstance(m.get("mean"), (int, float)) and isinstance(m.get("std"), (int, float))
           for m in (success, drop)):
        typer.echo(f"{'poison:':12} success {100 * success['mean']:.1f}% ± {100 * success['std']:.1f} on held-out "
                   f"victims, other classes' accuracy down {100 * drop['mean']:.2f} ± {100 * drop['std']:.2f} "
                   "points")
    elif not measured:  # saved unmeasured (--no-eval), or relabelled: the blend drops what was measured before it
        typer.echo(f"{'accuracy:':12} none recorded in this file; measure it with distill eval "
                   f"{shlex.quote(str(file))}")


def _how_measured(result: dict) -> str:
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


def _remeasure_command(file: Path, result: dict | None, dataset: str) -> str | None:
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


@app.command()
def data(
    data_root: Optional[Path] = DataRoot,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Which datasets are present or missing, and where."""
    rows = dataset_status(data_root)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = "present" if row["present"] else "missing " + ", ".join(row["missing"])
        typer.echo(f"{row['name']:14} {state:10}  {row['folder']}")


def main() -> None:
    """Entry point: user errors become one line and exit code 2; warnings are one line too, without the source
    location Python adds for developers."""
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"distill: warning: {message}\n"
    try:
        app()  # typer reports its own usage errors (exit 2) and exits
    except DistillError as exc:
        print(f"distill: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
