"""The `distill` command: run, eval, attack, relabel, show, data. Thin: it parses options (grouped into help panels),
calls the public API (`distill.api`) and prints.

Every problem a user can fix (a `DistillError`) ends as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
import typer

from distill import api
from distill.api import (BEST_METHOD, CHECKPOINT_NAME, AttackConfig, DistillError, canonical_names, checkpoint_step,
                         dataset_status, describe, load)

# markdown: a docstring's wrapped lines are rewrapped to the terminal, not kept where the source broke them (write
# <placeholders> in backticks there, or markdown drops them as HTML)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown",
                  help="Dataset distillation: squeeze a labelled image dataset into a few synthetic images.")

# the help panels options are grouped into (the schedule: the outer loop's steps, step sizes, validation, time)
DATA, METHOD, SCHEDULE, EVALUATION, OUTPUT, MACHINE = "Data", "Method", "Schedule", "Evaluation", "Output", "Machine"


def _path(value: str) -> Path:
    """Every path option and argument: an empty one is almost always an unset shell variable (`--out "$DIR"`), and
    Path("") would quietly mean the current folder, so it is refused instead of writing or reading there."""
    if not value.strip():
        raise typer.BadParameter("is empty; give a path (an unset shell variable?)")
    return Path(value)


def _option(default, *names: str, panel: str | None = None, metavar: str | None = None, **kwargs):
    """An option in a help panel; a flag (`--a/--b`, or a bool) shows neither a type nor its default (its help says
    which), and an option whose default is None (not given: the presets' or the set's) shows no default."""
    if isinstance(default, bool) or any("/" in name for name in names):
        metavar = ""
    if metavar == "" or default is None:
        kwargs.setdefault("show_default", False)
    return typer.Option(default, *names, rich_help_panel=panel, metavar=metavar, **kwargs)


def _data_root(panel: str | None = DATA):
    return _option(None, "--data-root", parser=_path, panel=panel, metavar="DIR",
                   help="Folder with one sub-folder per dataset (default: $DISTILL_DATA, else ~/.cache/distill/data).")


DataRoot = _data_root()
Device = _option(None, panel=MACHINE, metavar="NAME", help="cpu, cuda, cuda:1 ... (default: cuda when available).")
Threads = _option(None, min=1, panel=MACHINE, metavar="N",
                  help="CPU threads (default: PyTorch's, about one per core). A CPU result's last digits depend on "
                       "it; runs and attacks record it.")
Force = _option(False, panel=OUTPUT, help="Replace the results already in the output folder.")
Resume = _option(False, panel=OUTPUT, help="Continue the run whose checkpoint is in the output folder.")
Quiet = _option(False, panel=OUTPUT, help="No progress bars.")
ImageSize = _option(None, min=1, panel=DATA, metavar="N",
                    help="Resize and centre-crop your own images to N x N pixels (default: as they are; they must "
                         "then be square and of one size).")
MovedData = _option(None, "--dataset", panel=DATA, metavar="PATH",
                    help="Where the set's own data is now, if its folder or .npz has moved since it was distilled.")


def _use_threads(threads: int | None) -> None:
    """Set PyTorch's CPU thread count (--threads), before any work: its kernels sum in another order with another
    count, so a recorded run repeats bit for bit only on the count it ran with."""
    if threads is not None:
        torch.set_num_threads(threads)


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


def _launch(nproc: int) -> int:
    """Run this command again as `nproc` ranks on this machine (torch.distributed.run --standalone: rendezvous on a
    free local port), without --nproc; returns the launcher's exit code."""
    args, skip = [], False
    for word in sys.argv[1:]:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            args.append(word)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
               "distill", *args]
    return subprocess.run(command).returncode


def _given(**options) -> dict:
    """The options the user actually passed (None = not given), so presets fill in the rest."""
    return {k: v for k, v in options.items() if v is not None}


@app.command()
def run(
    config_file: Optional[Path] = _option(None, "--config", parser=_path, metavar="FILE",
                                          help="Run a recorded configuration again, the options given replacing "
                                               "its fields (see above)."),
    dataset: Optional[str] = _option(None, panel=DATA, metavar="NAME|PATH",
                                     help="digits (bundled, the default), mnist, fashion-mnist, usps, cifar10; or your "
                                          "own: a folder of class sub-folders of images (optionally under train/ and "
                                          "test/), or an .npz of x_train, y_train, x_test, y_test."),
    image_size: Optional[int] = ImageSize,
    zca: Optional[bool] = _option(None, "--zca/--no-zca", panel=DATA,
                                  help="Whiten the images with the training split's ZCA (as the kernel and trajectory "
                                       "papers do on CIFAR); the set file keeps the matrix."),
    data_root: Optional[Path] = DataRoot,
    method: Optional[str] = _option(None, panel=METHOD, metavar="NAME",
                                    help="dd, dc, dsa, dm, mtt, frepo; unroll (refines the --image-init set); "
                                         "coresets: random, herding, kcenter (default: the best benchmarked for the "
                                         "dataset and --ipc, else dd)."),
    arch: Optional[str] = _option(None, panel=METHOD, metavar="NAME",
                                  help="Network: lenet, convnet, convnet_dc, mlp, alexnet, alexcifarnet, vgg11, "
                                       "resnet18 (default: the method's)."),
    ipc: Optional[int] = _option(None, panel=METHOD, metavar="N",
                                 help="Images per class (per step for dd; default 1)."),
    images: Optional[int] = _option(None, panel=METHOD, metavar="N",
                                    help="Images in all (per step for dd), free of the classes, even fewer than "
                                         "there are classes: each one's label is learned as a distribution "
                                         "(needs --learn-labels)."),
    steps: Optional[int] = _option(None, panel=METHOD, metavar="N", help="Steps of the learned schedule (dd)."),
    epochs: Optional[int] = _option(None, panel=METHOD, metavar="N", help="Passes over the steps (dd)."),
    init: Optional[str] = _option(None, panel=METHOD, metavar="NAME",
                                  help="fixed (one stored network) or random (a fresh one every step)."),
    init_scheme: Optional[str] = _option(None, panel=METHOD, metavar="NAME",
                                         help="Initialiser: default, xavier, kaiming (empty: the network's own)."),
    image_init: Optional[str] = _option(None, panel=METHOD, metavar="NAME",
                                        help="Start from real images, noise, a coreset's picks (herding, kcenter) "
                                             "or a saved set's images and labels (a .safetensors path)."),
    init_lr: Optional[float] = _option(None, panel=METHOD, metavar="X",
                                       help="Starting value of the learned learning rates."),
    layer_lrs: Optional[bool] = _option(None, "--layer-lrs/--step-lrs", panel=METHOD,
                                        help="Learn a rate per step and parameter tensor (dd), or per step (default)."),
    learn_labels: Optional[bool] = _option(None, "--learn-labels/--hard-labels", panel=METHOD,
                                           help="Learn soft labels too, saved as probabilities (dd, frepo, unroll)."),
    clamp_pixels: Optional[bool] = _option(None, "--clamp-pixels/--free-pixels", panel=METHOD,
                                           help="Keep pixels in [0, 1] after every step, or not (default)."),
    opt: list[str] = _option([], "--opt", panel=METHOD, metavar="KEY=VALUE",
                             help="A method's own option (repeatable), e.g. real_batch=128 (real images per step); "
                                  "with --config, merged into the recorded ones."),
    teacher_labels: Optional[float] = _option(None, panel=METHOD, metavar="X",
                                              help="After distilling, blend this share (0 to 1) of the full-data "
                                                   "network's predictions into the labels (0: none)."),
    teacher_temperature: Optional[float] = _option(None, panel=METHOD, metavar="X",
                                                   help="Temperature of those predictions (default 2)."),
    seed: Optional[int] = _option(None, panel=METHOD, metavar="N",
                                  help="Seed of the starting images, networks and batches (default 0)."),
    iterations: Optional[int] = _option(None, panel=SCHEDULE, metavar="N", help="Outer optimisation steps."),
    lr: Optional[float] = _option(None, "--lr", panel=SCHEDULE, metavar="X", help="Step size for the images."),
    lr_lrs: Optional[float] = _option(None, panel=SCHEDULE, metavar="X", help="Step size for the log learning rates."),
    lr_labels: Optional[float] = _option(None, panel=SCHEDULE, metavar="X",
                                         help="Step size for the label logits (--learn-labels)."),
    optimizer: Optional[str] = _option(None, panel=SCHEDULE, metavar="NAME", help="adam or sgd (with --momentum)."),
    momentum: Optional[float] = _option(None, panel=SCHEDULE, metavar="X", help="Momentum of sgd."),
    decay_every: Optional[int] = _option(None, panel=SCHEDULE, metavar="N",
                                         help="Halve the step sizes every N steps (0: never)."),
    eval_every: Optional[int] = _option(None, panel=SCHEDULE, metavar="N",
                                        help="Validate every N steps (held-out split)."),
    validation: Optional[str] = _option(None, panel=SCHEDULE, metavar="NAME",
                                        help="quick (one network, 100 epochs, no augmentation; the default), "
                                             "standard (trained as the final evaluation trains), or worst (the "
                                             "lowest over every standard recipe on both ConvNets)."),
    keep_best: Optional[bool] = _option(None, "--keep-best/--keep-last", panel=SCHEDULE,
                                        help="End with the set that validated best (default), or the last."),
    ema: Optional[float] = _option(None, panel=SCHEDULE, metavar="X",
                                   help="Validate and keep a moving average of the set with this decay, e.g. 0.99 "
                                        "(0: off, the default)."),
    max_minutes: Optional[float] = _option(None, panel=SCHEDULE, metavar="X",
                                           help="Stop after this many minutes, a resumed run's earlier ones included "
                                                "(0: no limit); the summary records the steps taken."),
    evaluate: bool = _option(True, "--eval/--no-eval", panel=EVALUATION,
                             help="Measure the result and its baselines (default), or only save it."),
    eval_nets: Optional[int] = _option(None, panel=EVALUATION, metavar="N", help="Networks per final evaluation."),
    eval_augment: Optional[str] = _option(None, panel=EVALUATION, metavar="NAME",
                                          help="Augment the standard protocol's training: none, dsa, dc (DC's MNIST "
                                               "augmentation), or a strategy like crop_scale_rotate."),
    eval_epochs: Optional[int] = _option(None, panel=EVALUATION, metavar="N",
                                         help="Standard-protocol epochs (0: 300, 1000 with augmentation)."),
    out: Optional[Path] = _option(None, parser=_path, panel=OUTPUT, metavar="DIR",
                                  help="Output folder (default: `runs/<dataset>-<method>`)."),
    force: bool = Force,
    resume: bool = Resume,
    checkpoint_every: Optional[int] = _option(None, panel=OUTPUT, metavar="N", help="Checkpoint every N steps."),
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
    nproc: int = _option(1, min=1, panel=MACHINE, metavar="N",
                         help="Processes to split each step's work among (torch.distributed: gloo on CPU, NCCL on "
                              "GPUs), as `torchrun --nproc_per_node N -m distill run` does."),
) -> None:
    """Distill a dataset, evaluate the result beside its baselines, and save the set, pictures and a summary.

    Options not given come from the method's defaults and the shipped preset for (dataset, method, ipc), so
    `distill run --dataset mnist --method dm --ipc 10` reproduces the README's number for that row. The validation
    and final evaluation networks start from fixed seeds, the same for every run, so runs with different --seed
    values are compared on the same networks.

    `--config FILE` runs a recorded configuration again, exactly as recorded (no preset): a run's summary.json, a
    benchmarks/results file, a JSON object of run options, or a set file (.safetensors), whose header records its
    run. The options given replace its fields, and --opt is merged into its method options (a key given replaces
    the recorded one): `distill run --config runs/a/summary.json --seed 1 --out runs/a-seed1`. The options that are
    not part of a run's configuration (--out, --force, --resume, --eval, --device, --threads, --data-root, --quiet)
    work as usual. A run on a CPU repeats bit for bit on the number of threads it ran with (`distill show` names
    it).
    """
    given = _given(dataset=dataset, image_size=image_size, zca=zca, method=method, arch=arch, ipc=ipc, images=images,
                   steps=steps, epochs=epochs, init=init, init_scheme=init_scheme, image_init=image_init,
                   init_lr=init_lr, iterations=iterations,
                   lr_images=lr, lr_lrs=lr_lrs, layer_lrs=layer_lrs, learn_labels=learn_labels, lr_labels=lr_labels,
                   optimizer=optimizer, momentum=momentum, decay_every=decay_every, eval_every=eval_every,
                   checkpoint_every=checkpoint_every, eval_nets=eval_nets, eval_augment=eval_augment,
                   eval_epochs=eval_epochs, teacher_labels=teacher_labels,
                   teacher_temperature=teacher_temperature, keep_best=keep_best, clamp_pixels=clamp_pixels,
                   ema=ema, validation=validation, seed=seed, max_minutes=max_minutes)
    _use_threads(threads)
    config = api.configure(given, opt, config=config_file, device=device, threads=threads)
    if nproc > 1 and not api.launched():  # the same command, once per rank, through torchrun's launcher
        raise typer.Exit(_launch(nproc))
    out = out or Path("runs") / f"{api.short_name(config.dataset)}-{config.method}"
    try:
        result = api.distill(config, out=out, data_root=data_root, force=force, resume=resume, device=device,
                             progress=not quiet, evaluate=evaluate)
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    if not api.is_main():  # every rank holds the same set; rank 0 wrote it and reports it
        return
    r = result.results
    n_images = len(result.synset.labels)
    what = "selected real" if api.selects(config.method) else "distilled"
    if not evaluate:
        typer.echo(f"{n_images} {what} images ({config.method}, {config.init} init) in {r['distill_seconds']:.0f} s")
        for name, path in result.files.items():
            typer.echo(f"  {name}: {path}")
        return
    typer.echo(f"{n_images} {what} images ({config.method}, {config.init} init) trained {config.arch} to "
               f"{api.accuracy_text(r['distilled'])} test accuracy [{r['distilled']['protocol']}]")
    typer.echo(f"  full training set ({config.arch}): {api.accuracy_text(r['full_data'])}")
    typer.echo(f"  {n_images} random real images:    {api.accuracy_text(r['random_real'])}")
    stopped = (f" (stopped by --max-minutes after {r['steps_taken']} of {config.iterations} steps)"
               if 0 < r["steps_taken"] < config.iterations else "")
    count = r["threads"]  # on a CPU the last digits depend on it
    threads = f" ({count} thread{'s' * (count != 1)})" if r["device"] == "cpu" else ""
    if r.get("processes", 1) > 1:
        threads += f" x {r['processes']} processes"
    typer.echo(f"  distillation took {r['distill_seconds']:.0f} s on {r['device']}{threads}{stopped}")
    chosen = method is None and config_file is None  # the preset chose it (a recorded config is taken as is)
    if chosen and (config.dataset, config.ipc) in BEST_METHOD:  # the progress bar named it too
        typer.echo(f"  method {config.method}: the most accurate measured for {config.dataset} at {config.ipc} "
                   "image(s) per class (another with --method; the original algorithm of the paper: --method dd)")
    for name, path in result.files.items():
        typer.echo(f"  {name}: {path}")


@app.command(name="attack")
def attack_command(
    dataset: str = _option("mnist", panel=DATA, metavar="NAME|PATH",
                           help="Dataset whose models are attacked (a built-in name, or your own folder or .npz, as "
                                "for run)."),
    image_size: Optional[int] = ImageSize,
    data_root: Optional[Path] = DataRoot,
    arch: str = _option("lenet", panel=METHOD, metavar="NAME", help="Victim network."),
    attacked: int = _option(3, panel=METHOD, metavar="N", help="The class to attack."),
    target: int = _option(8, panel=METHOD, metavar="N", help="Misclassify the attacked class as this class."),
    forget: bool = _option(False, panel=METHOD, help="Misclassify the attacked class as anything (ignores --target)."),
    ipc: int = _option(1, panel=METHOD, metavar="N", help="Poison images per class."),
    steps: int = _option(1, panel=METHOD, metavar="N", help="Gradient steps per epoch of the poison's schedule."),
    epochs: int = _option(3, panel=METHOD, metavar="N",
                          help="Passes over the steps (gradient steps = steps x epochs)."),
    real_batch: int = _option(512, panel=METHOD, metavar="N",
                              help="Real images per outer step (half from the attacked class)."),
    craft_victims: int = _option(10, panel=METHOD, metavar="N", help="Victims the poison is crafted against."),
    victim_recipes: str = _option("one", panel=METHOD, metavar="NAME",
                                  help="How the crafting victims are trained: one recipe, or varied (five recipes: "
                                       "rates, schedules, batches, epochs, augmentation), for a poison that "
                                       "transfers to victims trained otherwise."),
    seed: int = _option(0, panel=METHOD, metavar="N", help="Seed of the poison's random draws."),
    iterations: int = _option(1500, panel=SCHEDULE, metavar="N", help="Outer optimisation steps."),
    lr: float = _option(0.03, "--lr", panel=SCHEDULE, metavar="X", help="Adam step size for the images."),
    eval_victims: int = _option(10, panel=EVALUATION, metavar="N", help="Held-out victims it is measured on."),
    eval_recipes: str = _option("same", panel=EVALUATION, metavar="NAME",
                                help="How the held-out victims are trained: the same as the crafting victims, or "
                                     "unseen (four recipes the crafting pool never used)."),
    out: Optional[Path] = _option(None, parser=_path, panel=OUTPUT, metavar="DIR",
                                  help="Output folder (default: `runs/attack-<dataset>-<a>to<t>`)."),
    force: bool = Force,
    resume: bool = Resume,
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
) -> None:
    """Craft a few distilled images that make well-trained networks misclassify (or forget) one class."""
    _use_threads(threads)
    config = AttackConfig(**canonical_names(dict(
        dataset=dataset, image_size=image_size or 0, arch=arch, attacked=attacked, target=None if forget else target,
        ipc=ipc, steps=steps, epochs=epochs, iterations=iterations, lr_images=lr, real_batch=real_batch,
        craft_victims=craft_victims, eval_victims=eval_victims, seed=seed, victim_recipes=victim_recipes,
        eval_recipes=eval_recipes)))
    config.validate()
    goal = "any" if forget else str(target)
    out = out or Path("runs") / f"attack-{api.short_name(config.dataset)}-{attacked}to{goal}"
    try:
        run = api.attack(config, out=out, data_root=data_root, force=force, resume=resume, device=device,
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


@app.command(name="adapt")
def adapt_command(
    source: str = _option("usps", panel=DATA, metavar="NAME", help="Dataset the networks were pretrained on."),
    dataset: str = _option("mnist", panel=DATA, metavar="NAME",
                           help="Dataset to adapt them to (the distilled images are its own)."),
    data_root: Optional[Path] = DataRoot,
    arch: str = _option("lenet", panel=METHOD, metavar="NAME", help="Network of the pretrained networks."),
    known_weights: bool = _option(False, panel=METHOD,
                                  help="Adapt one known pretrained network (and measure on it) instead of any "
                                       "network of the source pool."),
    ipc: int = _option(1, panel=METHOD, metavar="N", help="Images per class per step."),
    steps: int = _option(10, panel=METHOD, metavar="N", help="Steps of the learned schedule."),
    epochs: int = _option(3, panel=METHOD, metavar="N", help="Passes over the steps."),
    real_batch: int = _option(512, panel=METHOD, metavar="N", help="Target images scored per outer step."),
    nets_per_step: int = _option(4, panel=METHOD, metavar="N", help="Pretrained networks adapted per outer step."),
    source_nets: int = _option(20, panel=METHOD, metavar="N", help="The pretrained pool distilled against."),
    seed: int = _option(0, panel=METHOD, metavar="N", help="Seed of the distillation's draws."),
    iterations: int = _option(1000, panel=SCHEDULE, metavar="N", help="Outer optimisation steps."),
    lr: float = _option(0.01, "--lr", panel=SCHEDULE, metavar="X", help="Adam step size for the images."),
    eval_every: int = _option(50, panel=SCHEDULE, metavar="N", help="Validate every N steps."),
    eval_nets: int = _option(20, panel=EVALUATION, metavar="N", help="Held-out pretrained networks measured on."),
    out: Optional[Path] = _option(None, parser=_path, panel=OUTPUT, metavar="DIR",
                                  help="Output folder (default: `runs/adapt-<source>-to-<dataset>`)."),
    force: bool = Force,
    resume: bool = Resume,
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
) -> None:
    """Distil a few target images whose learned steps adapt networks pretrained on another dataset to this one."""
    _use_threads(threads)
    config = api.AdaptConfig(**canonical_names(dict(
        dataset=dataset, source=source, arch=arch, known_weights=known_weights, ipc=ipc, steps=steps, epochs=epochs,
        real_batch=real_batch, nets_per_step=nets_per_step, source_nets=source_nets, seed=seed,
        iterations=iterations, lr_images=lr, eval_every=eval_every, eval_nets=eval_nets)))
    config = api.AdaptConfig(**{**config.__dict__, "source": canonical_names({"dataset": config.source})["dataset"]})
    config.validate()
    out = out or Path("runs") / f"adapt-{api.short_name(config.source)}-to-{api.short_name(config.dataset)}"
    try:
        run = api.adapt(config, out=out, data_root=data_root, force=force, resume=resume, device=device,
                        progress=not quiet)
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    r = run.results
    measured_on = "one known network" if r["known_weights"] else f"{r['adapted']['n_nets']} held-out networks"
    typer.echo(f"{r['images']} distilled {r['target']} images adapt networks pretrained on {r['source']} "
               f"({measured_on}):")
    for name, label in (("adapted", "distilled images, learned steps"), ("no_adaptation", "no adaptation"),
                        ("random_real_steps", "random real images, same steps"),
                        ("random_real_fine_tuned", "random real images, fine-tuned")):
        m = r[name]
        extra = f" [lr {m['lr']:g}]" if "lr" in m else ""
        typer.echo(f"  {label:32} {100 * m['mean']:.2f}% ± {100 * m['std']:.2f}{extra}")
    typer.echo(f"  (distilled in {r['distill_seconds']:.0f} s)")
    for name, path in run.files.items():
        typer.echo(f"  {name}: {path}")


@app.command(name="eval")
def eval_command(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    protocol: str = _option("auto", panel=EVALUATION, metavar="NAME",
                            help="auto, fixed, schedule or standard (README: Evaluation protocol)."),
    arch: Optional[str] = _option(None, panel=EVALUATION, metavar="NAME",
                                  help="Network to train (default: the one the set was made for): mlp, lenet, "
                                       "convnet, convnet_dc, alexnet, alexcifarnet, vgg11, resnet18."),
    nets: int = _option(5, panel=EVALUATION, metavar="N",
                        help="Networks to train (fixed init always uses its one network)."),
    augment: str = _option("", panel=EVALUATION, metavar="NAME", show_default=False,
                           help="Augment the standard protocol's training: dsa, dc (DC's MNIST augmentation), or a "
                                "strategy like crop_scale_rotate (default: none)."),
    epochs: int = _option(0, panel=EVALUATION, metavar="N",
                          help="Standard-protocol epochs (0: 300, or 1000 with augmentation)."),
    lr: float = _option(0.0, panel=EVALUATION, metavar="X",
                        help="Standard-protocol learning rate (0: the set's learned rate if it has one, else 0.01)."),
    recipes: bool = _option(False, "--recipes", panel=EVALUATION,
                            help="Train under every standard recipe (none/300, dsa/1000, and dc/1000 on grayscale or "
                                 "crop+flip/1000 on colour data) on ours and the DC code's ConvNet (or --arch), and "
                                 "mark the worst."),
    data_root: Optional[Path] = DataRoot,
    dataset: Optional[str] = MovedData,
    as_json: bool = _option(False, "--json", panel=OUTPUT, help="Print one JSON object."),
    quiet: bool = _option(False, panel=OUTPUT, help="No progress bars (--json shows none either)."),
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
) -> None:
    """Train networks on a synthetic set and report their test accuracy."""
    _use_threads(threads)
    if recipes:
        clash = [name for name, value in (("--protocol", protocol != "auto"), ("--augment", augment),
                                          ("--epochs", epochs), ("--lr", lr)) if value]
        if clash:
            raise DistillError(f"--recipes trains with each standard recipe's own augmentation, epochs and rate "
                                   f"(the standard protocol); drop {', '.join(clash)}")
        table = api.evaluate_recipes(file, archs=[arch] if arch else None, n_nets=nets, data_root=data_root,
                                     device=device, progress=not (as_json or quiet), dataset=dataset)
        if as_json:
            typer.echo(json.dumps({"file": str(file), **table.to_dict(),
                                   **api.environment(api.pick_device(device))}))
        else:
            typer.echo(f"{file}: worst {table.worst.result.accuracy_mean:.2%} ({table.worst.recipe}, "
                       f"{table.worst.arch}), best {table.best.result.accuracy_mean:.2%} ({table.best.recipe}, "
                       f"{table.best.arch})\n{table}")
        return
    result = api.evaluate(file, protocol=protocol, arch=arch, n_nets=nets, data_root=data_root, device=device,
                          progress=not (as_json or quiet), augment=augment, epochs=epochs, lr=lr, dataset=dataset)
    if as_json:
        # where the networks were trained: on a CPU the last digits depend on the thread count
        typer.echo(json.dumps({"file": str(file), **result.to_dict(), **api.environment(api.pick_device(device))}))
    else:
        typer.echo(f"{file}: {result}")


@app.command(name="audit")
def audit_command(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    nets: int = _option(3, panel=EVALUATION, metavar="N",
                        help="Reference networks (trained on the full data once, then cached)."),
    threshold: float = _option(0.2, panel=EVALUATION, metavar="X",
                               help="Flag the set when one class loses this share of accuracy more than the "
                                    "median class does."),
    data_root: Optional[Path] = DataRoot,
    dataset: Optional[str] = MovedData,
    as_json: bool = _option(False, "--json", panel=OUTPUT, help="Print one JSON object."),
    quiet: bool = _option(False, panel=OUTPUT, help="No progress bars (--json shows none either)."),
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
) -> None:
    """Say whether a set is a poison before anyone trains on it: exit 1 if it is flagged, 0 if not.

    Reference networks trained on the full training split take the set as a victim would (its learned steps, or a
    short fine-tuning on it); a class that loses far more accuracy than the others on the held-out validation split
    is what poisons do and clean sets do not. The evidence is printed beside the verdict.
    """
    _use_threads(threads)
    result = api.audit(file, nets=nets, threshold=threshold, data_root=data_root, device=device,
                       progress=not (as_json or quiet), dataset=dataset)
    if as_json:
        typer.echo(json.dumps({"file": str(file), **result.as_dict()}))
    else:
        typer.echo(api.audit_report(file, result))
    raise typer.Exit(1 if result.flagged else 0)


@app.command()
def relabel(
    file: Path = typer.Argument(..., parser=_path, help="A .safetensors synthetic set."),
    teacher_labels: float = _option(0.5, panel=METHOD, metavar="X",
                                    help="Share (0 to 1) of each label taken from the full-data network's "
                                         "predictions."),
    teacher_temperature: float = _option(2.0, panel=METHOD, metavar="X", help="Temperature of those predictions."),
    data_root: Optional[Path] = DataRoot,
    dataset: Optional[str] = MovedData,
    out: Optional[Path] = _option(None, parser=_path, panel=OUTPUT, metavar="FILE",
                                  help="Where to save the relabelled set (default: `<file>-teacher.safetensors` "
                                       "beside it)."),
    force: bool = _option(False, panel=OUTPUT, help="Replace --out if it exists."),
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    threads: Optional[int] = Threads,
) -> None:
    """Blend the full-data network's softened predictions into a set's labels (the same as `run --teacher-labels`,
    for a set already made). The network is the one the full-data baseline trains, cached after its first use."""
    _use_threads(threads)
    out = out or file.with_name(f"{file.stem}-teacher.safetensors")
    result = api.relabel(file, out, teacher_labels, teacher_temperature, data_root=data_root, device=device,
                         force=force, progress=not quiet, dataset=dataset)
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
    rerun = api.rerun_command(file, synset.meta)
    if as_json:
        typer.echo(json.dumps({**info, **({"rerun": rerun} if rerun else {})}))
        return
    for key, value in info.items():
        if key == "results":
            for label, text in api.recorded_results(file, value if isinstance(value, dict) else {},
                                                    info.get("dataset", "")):
                typer.echo(f"{label + ':':12} {text}")
            continue
        typer.echo(f"{key + ':':12} {value}")
    if rerun:
        typer.echo(f"{'re-run:':12} {rerun}")


@app.command()
def data(
    dataset: Optional[str] = typer.Argument(None, metavar="[NAME|PATH]",
                                            help="A dataset to describe: a built-in name, or your own folder or .npz."),
    image_size: Optional[int] = _option(None, min=1, metavar="N", help="As for run: resize your own images to N x N."),
    data_root: Optional[Path] = _data_root(panel=None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Which datasets are present or missing, and where; with a dataset, what it holds: classes, images per class
    and split, size, channels, mean and std."""
    if dataset is not None:
        info = api.describe_dataset(dataset, image_size or 0, data_root)
        if as_json:
            typer.echo(json.dumps(info))
            return
        typer.echo(f"{info['source']}: {len(info['classes'])} classes, {info['size']}x{info['size']} pixels, "
                   f"{info['channels']} channel{'s' * (info['channels'] != 1)}")
        width = max(len("class"), *(len(name) for name in info["classes"]))
        typer.echo(f"  {'class':{width}}  {'train':>7}  {'test':>7}")
        for name, n_train, n_test in zip(info["classes"], info["train_per_class"], info["test_per_class"]):
            typer.echo(f"  {name:{width}}  {n_train:7d}  {n_test:7d}")
        typer.echo(f"  {'all':{width}}  {sum(info['train_per_class']):7d}  {sum(info['test_per_class']):7d}")
        typer.echo(f"  mean {', '.join(f'{m:.4f}' for m in info['mean'])}; std "
                   f"{', '.join(f'{s:.4f}' for s in info['std'])} (training images, pixels in [0, 1])")
        typer.echo(f"  test split: {info['test_split']}")
        return
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
