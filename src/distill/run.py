"""The run pipeline every distillation and attack goes through, and the public entry points built on it.

    resolve -> validate -> device -> hold the output folder -> data -> starting set -> loop -> measure -> write

`distill(...)` runs a whole distillation; `distill.poison.attack(...)` crafts a poison through the same steps
(`execute`, `optimise`); `evaluate(...)` measures a saved or in-memory set and `relabel(...)` blends teacher labels
into one. The command line is a thin layer over these."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from distill import parallel, report
from distill.augment import augmentation_for
from distill.config import DistillConfig, check_known, check_type, free_on_resume, given_path, resolve
from distill.data import Task, load_task, looks_like_path
from distill.device import environment, pick_device
from distill.errors import DistillError
from distill.evaluate import (RECIPE_ARCHS, EvalResult, RecipeTable, evaluate_set, full_data_baseline,
                              random_real_baseline, resolve_protocol, standard_recipes, standard_sgd)
from distill.evaluate import evaluate_recipes as recipes_table
from distill.loop import LoopResult, run_loop
from distill.methods import Method, create, learns, selects
from distill.models import DEFAULT_INIT, create_model, init_params
from distill.output import AS_DISTILLED_NAME, SYNSET_NAME, check_output_file, prepare_output
from distill.records import ADDED_SINCE, replace_fields
from distill.start import initial_synset
from distill.synset import SyntheticSet, load, save
from distill.teacher import check_not_blended, check_teacher_options, with_teacher_labels
from distill.train import accuracy, train_sgd, train_with_schedule

Result = TypeVar("Result")


def execute(config, out: str | os.PathLike | None, data_root: str | os.PathLike | None, device: str | None,
            force: bool, resume: bool, work: Callable[[Task, Path | None, torch.device], Result]) -> Result:
    """The steps every run takes once its configuration is resolved and validated: the paths and the device are
    checked, the output folder is held for the run's whole length (`prepare_output`), the data is loaded onto the
    device, and `work(task, out, device)` does the rest."""
    out_path, data_root = given_path("out", out), given_path("data_root", data_root)
    target = parallel.start(pick_device(device))  # under torchrun: this rank's device, in the process group
    # rank 0 holds the output folder and writes to it; the other ranks only read a checkpoint from it to resume
    try:
        with prepare_output(out_path if parallel.is_main() else None, force, resume and parallel.is_main()):
            task = load_task(config.dataset, data_root, image_size=config.image_size, zca=config.zca).to(target)
            return work(task, out_path, target)
    finally:
        parallel.finish()


def task_of(synset: SyntheticSet, data_root: Path | None, target: torch.device, dataset: str | None = None) -> Task:
    """The data a set was distilled from (or `dataset`, where a user's folder has moved since), at the image size
    the run used and whitened with the set's own ZCA matrix if it has one, checked to match the set's classes and
    image shape."""
    image_size = synset.meta.get("config", {}).get("image_size", 0)
    named = synset.meta["dataset"]
    if dataset is None and looks_like_path(named) and not Path(named).exists():
        raise DistillError(f"the set was distilled from {named}, which is not on this machine; pass --dataset PATH "
                           "(dataset=...) to say where that data is now")
    task = load_task(dataset or named, data_root, image_size=image_size,
                     zca=False if synset.zca is None else synset.zca)  # whitened as the set's images were
    if task.num_classes != synset.meta["num_classes"] or list(task.image_shape) != synset.meta["image_shape"]:
        raise DistillError(f"{task.spec.name} has {task.num_classes} classes of {list(task.image_shape)} images; the "
                           f"set was distilled for {synset.meta['num_classes']} classes of "
                           f"{synset.meta['image_shape']}")
    return task.to(target)


def optimise(method: Method, synset: SyntheticSet, config, task: Task, validate, out: Path | None, resume: bool,
             progress: bool, free: tuple[str, ...] = ()) -> LoopResult:
    """Set the method up on the task and run the outer loop on `synset` (in place), checkpointing into `out`."""
    method.setup(task, synset, progress)
    return run_loop(method, synset, config.loop(), validate=validate, checkpoint_dir=out, resume=resume,
                    run_config=asdict(config), progress=progress, free_on_resume=free, added_since=ADDED_SINCE)

@dataclass
class RunResult:
    """What `distill` returns: the final set, the results recorded in its summary (accuracies beside the baselines,
    time, steps), the files written, the loss/validation history, and the set before any teacher blend."""

    synset: SyntheticSet
    results: dict
    files: dict[str, Path] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    as_distilled: SyntheticSet | None = None  # the set before its teacher blend, when it has one



VALIDATION_EPOCHS = 100


def validation_accuracy(config: DistillConfig, task: Task):
    """The validator the loop calls every `eval_every` steps: held-out split, never the test split. Sets with a
    learned schedule train with it (from their fixed network, or three random ones); the others train one random
    network with a shortened standard protocol (VALIDATION_EPOCHS, no augmentation), cheap enough to run often, or
    with `validation="standard"` one trained as the final evaluation trains (its augmentation and epochs)."""
    model = create_model(config.arch, task.image_shape, task.num_classes).to(task.train_x.device)
    nets = [init_params(model, torch.Generator().manual_seed(9_000_000 + i), config.scheme()) for i in range(3)]
    as_evaluated = config.validation == "standard"
    augmentation = augmentation_for(config.eval_augment, task.spec.name) if as_evaluated else None

    def validate_standard(synset: SyntheticSet) -> float:
        start = {k: v.to(task.train_x.device) for k, v in nets[0].items()}
        sgd = (standard_sgd(synset, config.eval_augment, config.eval_epochs) if as_evaluated
               else standard_sgd(synset, epochs=VALIDATION_EPOCHS))
        trained = train_sgd(model, start, synset.images.detach(), synset.targets().detach(), sgd,
                            torch.Generator().manual_seed(9_500_000), augment=augmentation)
        return accuracy(model, trained, task.val_x, task.val_y)

    def validate_worst(synset: SyntheticSet) -> float:
        """The lowest validation accuracy over the standard recipes on both ConvNets, one network each."""
        lowest = 1.0
        for arch in RECIPE_ARCHS:
            net = create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device)
            start = init_params(net, torch.Generator().manual_seed(9_000_000), DEFAULT_INIT[arch],
                                device=task.train_x.device)
            for recipe in standard_recipes(synset):
                trained = train_sgd(net, start, synset.images.detach(), synset.targets().detach(),
                                    standard_sgd(synset, recipe.augment, recipe.epochs),
                                    torch.Generator().manual_seed(9_500_000),
                                    augment=augmentation_for(recipe.augment, task.spec.name))
                lowest = min(lowest, accuracy(net, trained, task.val_x, task.val_y))
        return lowest

    if config.validation == "worst":
        return validate_worst
    if not learns(config.method, "schedule"):
        return validate_standard

    def validate(synset: SyntheticSet) -> float:
        starts = [synset.init_params] if synset.init_params is not None else [
            {k: v.to(task.train_x.device) for k, v in net.items()} for net in nets]
        accs = []
        for start in starts:
            accs.append(accuracy(model, train_with_schedule(model, start, synset), task.val_x, task.val_y))
        return sum(accs) / len(accs)

    return validate


def measure(synset: SyntheticSet, task: Task, eval_nets: int, progress: bool = True, augment: str = "",
            epochs: int = 0) -> dict:
    """The distilled set's accuracy beside the full-data and random-real baselines (GUIDE §5). `augment` and
    `epochs` shape the standard protocol, for the set and its random-real baseline alike."""
    protocol = resolve_protocol(synset, "auto")
    if protocol != "standard":
        augment, epochs = "", 0
    distilled = evaluate_set(synset, task, "auto", n_nets=eval_nets, progress=progress, augment=augment,
                             sgd=standard_sgd(synset, augment, epochs) if protocol == "standard" else None)
    arch = synset.meta["arch"]
    full = full_data_baseline(task, arch, n_nets=1, progress=progress)
    real = random_real_baseline(task, synset, arch, n_nets=eval_nets, progress=progress, augment=augment,
                                sgd=standard_sgd(None, augment, epochs) if protocol == "standard" else None)
    return {"distilled": distilled.to_dict(), "full_data": full.to_dict(), "random_real": real.to_dict()}



def distill(
    config: DistillConfig | None = None,
    out: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    force: bool = False,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    evaluate: bool = True,
    **options,
) -> RunResult:
    """Distill a dataset: `distill(dataset="mnist", method="dm", ipc=10, out="runs/mnist-dm")`.

    Options are the fields of `DistillConfig`. Given as keywords, they are completed as the command line completes
    them: the method's defaults and the shipped preset for (dataset, method, ipc), and without `method` the most
    accurate one measured. A `DistillConfig` is taken as it is, with no preset (keywords beside it replace its
    fields). An option given as None counts as not given, as on the command line. With `out`, writes the synthetic
    set, the image grid, the validation curve and a JSON summary there (and checkpoints, so `resume=True` continues
    a killed run); no other run may use that folder meanwhile.
    """
    if config is not None and not isinstance(config, DistillConfig):
        raise DistillError(f"config must be a DistillConfig, got {type(config).__name__}; give options as keywords "
                           "(distill.distill(**options)) to have them completed by the presets")
    check_known(options, "")
    options = {name: value for name, value in options.items() if value is not None}
    if config is None:
        config = DistillConfig(**resolve(**options))  # method defaults and the shipped preset, then options
    elif options:
        config = replace_fields(config, **options)
    config.validate()
    if resume and selects(config.method):
        raise DistillError(f"--resume continues an optimisation, and {config.method!r} only picks real images: "
                           "there is nothing to continue (--force replaces the run in the output folder)")
    return execute(config, out, data_root, device, force, resume,
                   lambda task, out_path, target: run_distillation(config, task, out_path, target, force, resume,
                                                                   progress, evaluate))


def run_distillation(config: DistillConfig, task: Task, out_path: Path | None, target: torch.device, force: bool,
                     resume: bool, progress: bool, evaluate: bool) -> RunResult:
    """`distill`'s work, once its options are checked, its output folder is held and its data loaded."""
    synset = initial_synset(config, task, progress)
    method = create(config)
    if selects(config.method):  # coresets: pick real images, nothing to optimise
        began = time.perf_counter()
        method.select(task, synset, torch.Generator().manual_seed(config.seed), progress)
        loop_result = LoopResult(seconds=time.perf_counter() - began)
    else:
        loop_result = optimise(method, synset, config, task, validation_accuracy(config, task), out_path, resume,
                               progress, free_on_resume(config))
    final = as_distilled = synset.detached()
    if config.teacher_labels:
        final = with_teacher_labels(final, task, config.teacher_labels, config.teacher_temperature, progress)
    results = {"distill_seconds": round(loop_result.seconds, 2), "rollbacks": loop_result.rollbacks,
               "steps_taken": loop_result.steps, "processes": parallel.size(),
               "kept_step": loop_result.best_step if config.keep_best else loop_result.steps,
               "best_val_acc": loop_result.best_val,
               "effective_options": method.effective_options,  # what the device made it change of what was asked
               **environment(target)}
    if evaluate:  # every rank holds the same set and trains its share of the networks; rank 0 writes
        results.update(measure(final, task, config.eval_nets, progress, config.eval_augment, config.eval_epochs))
    final.meta["results"] = results
    run = RunResult(final, results, history=loop_result.history,
                    as_distilled=as_distilled if config.teacher_labels else None)
    if out_path is not None and parallel.is_main():
        run.files = write_outputs(run, config, out_path, overwrite=force or resume)
    return run


def write_outputs(run: RunResult, config: DistillConfig, out: Path, overwrite: bool) -> dict[str, Path]:
    if run.as_distilled is None and overwrite:  # an earlier run's, in a folder this run may replace: not this set's
        (out / AS_DISTILLED_NAME).unlink(missing_ok=True)
    files = {"synset": save(run.synset, out / SYNSET_NAME, overwrite=overwrite),
             **({"as_distilled": save(run.as_distilled, out / AS_DISTILLED_NAME, overwrite=overwrite)}
                if run.as_distilled is not None else {}),
             "grid": report.image_grid(run.synset, out / "grid.png"),
             "curve": report.validation_curve(run.history, out / "val_curve.png",
                                              f"{config.method} on {config.dataset}")}
    data = {"classes": run.synset.meta.get("class_names"), **run.synset.meta.get("data", {})}
    summary = {"config": asdict(config), "data": data, "results": run.results, "history": run.history,
               "files": {k: str(v) for k, v in files.items()}}
    files["summary"] = report.write_json(summary, out / "summary.json")
    return files


def relabel(
    synset: SyntheticSet | str | os.PathLike,
    out: str | os.PathLike,
    weight: float = 0.5,
    temperature: float = 2.0,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    force: bool = False,
    progress: bool = True,
    dataset: str | None = None,
) -> SyntheticSet:
    """Blend the full-data network's predictions into a set's labels (see `distill.teacher`) and save the result to
    `out` (never over an existing file unless `force`). `dataset`: where a user's data is now, if it moved."""
    check_teacher_options(weight, temperature)
    out, data_root = given_path("out", out), given_path("data_root", data_root)
    if out is None:
        raise DistillError("out is needed: the file to save the relabelled set to")
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    check_not_blended(synset)  # before the data is read
    check_output_file(out, force)
    target = pick_device(device)
    task = task_of(synset, data_root, target, dataset)
    blended = with_teacher_labels(synset.detached(), task, weight, temperature, progress)
    save(blended, out, overwrite=force)
    return blended


def evaluate(
    synset: SyntheticSet | str | os.PathLike,
    protocol: str = "auto",
    arch: str | None = None,
    n_nets: int = 5,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    augment: str | None = "",
    epochs: int | None = 0,
    lr: float | None = 0.0,
    dataset: str | None = None,
) -> EvalResult:
    """Measure a synthetic set (or a .safetensors file) on its dataset's test split under `protocol`; `augment`
    ("dsa", "dc" or a strategy), `epochs` and `lr` (0: the protocol's own) shape the standard protocol (GUIDE §5).
    None for any of those three is the same as leaving it out. `dataset`: where a user's data is now, if the folder
    or file the set names has moved."""
    augment, epochs, lr = ("" if augment is None else augment, 0 if epochs is None else epochs,
                           0.0 if lr is None else lr)
    for name, value, expected in (("protocol", protocol, str), ("n_nets", n_nets, int), ("augment", augment, str),
                                  ("epochs", epochs, int), ("lr", lr, float)):
        check_type(name, value, expected)
    if arch is not None:
        check_type("arch", arch, str)
    data_root = given_path("data_root", data_root)
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    standard = resolve_protocol(synset, protocol) == "standard"  # every check before the data is read
    for name, value in (("--lr", lr), ("--epochs", epochs)):
        if value and not standard:  # silently ignored, it would report a training the user did not ask for
            raise DistillError(f"{name} applies to the standard protocol only (the others train with the set's "
                               "schedule)")
    sgd = standard_sgd(synset, augment, epochs, lr) if standard else None
    target = pick_device(device)
    task = task_of(synset, data_root, target, dataset)
    return evaluate_set(synset.detached(), task, protocol, arch, n_nets, sgd=sgd, progress=progress, augment=augment)


def evaluate_recipes(
    synset: SyntheticSet | str | os.PathLike,
    archs: tuple[str, ...] | list[str] | None = None,
    n_nets: int = 5,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    dataset: str | None = None,
) -> RecipeTable:
    """A set (or a .safetensors file) under every standard recipe (no augmentation for 300 epochs, DSA's and DC's
    or crop and flip for 1,000) on each of `archs` (default: ours and the DC code's ConvNet), with the worst case:
    `distill eval FILE --recipes`."""
    check_type("n_nets", n_nets, int)
    archs = tuple(archs or RECIPE_ARCHS)
    for arch in archs:
        check_type("arch", arch, str)
    data_root = given_path("data_root", data_root)
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    resolve_protocol(synset, "standard")  # every check before the data is read
    task = task_of(synset, data_root, pick_device(device), dataset)
    return recipes_table(synset.detached(), task, archs, n_nets, progress)
