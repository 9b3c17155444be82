"""Domain adaptation end to end (issue 53, after the original paper's section 5.2): pretrained source networks,
distilled target images, measurement on held-out pretrained networks beside the paper's baselines.

Three disjoint groups of networks pretrained on the source dataset (its images resized to the target's size): the
pool the images are distilled against (seeds 0, 1, ...), three validation networks that choose the kept step, and
the held-out networks every reported number comes from (never seen while distilling). With known weights, the pool
and the measured network are one and the same (seed 0), as in the paper's known-initialisation setting.

Baselines on the same held-out networks: no adaptation (the source network on the target test split), random real
target images of the same count taking the set's learned steps, and fine-tuning on those real images (SGD with
momentum, its rate chosen on the validation networks).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.nn import functional as F

from distill import report
from distill.config import ADAPT_VALIDATION_NETS, HELD_OUT_SEED, VALIDATION_SEED, AdaptConfig, check_known
from distill.data import Task, load_task
from distill.device import environment
from distill.errors import DistillError
from distill.evaluate import mean_std, random_real_set
from distill.methods import create
from distill.methods.attack import victim_training
from distill.models import create_model
from distill.presets import canonical_names
from distill.run import execute, optimise
from distill.start import initial_synset
from distill.synset import SyntheticSet, save
from distill.train import Params, SGDConfig, accuracy, train_sgd, train_with_schedule, trained_network

FINE_TUNE_RATES = (0.001, 0.003, 0.01, 0.03, 0.1)  # the fine-tuning baseline's rate, chosen on validation networks
FINE_TUNE_EPOCHS = 50  # full-batch steps on the real images (a hundred fit in one batch)


def source_task(source: str, target: Task, data_root: Path | None) -> Task:
    """The source dataset with its images resized (bilinear, antialiased) to the target's size: the networks
    pretrained on it take target-sized inputs. Its own normalisation is kept: a network pretrained elsewhere was
    trained on its own data's statistics."""
    task = load_task(source, data_root).to(target.train_x.device)
    size = tuple(target.image_shape[1:])
    if tuple(task.image_shape[1:]) == size:
        return task

    def resize(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)

    # the spec says the new size (networks are built from it; their cache key holds their parameter shapes)
    return Task(replace(task.spec, size=size[0]), train_x=resize(task.train_x), train_y=task.train_y, val_x=resize(task.val_x),
                val_y=task.val_y, test_x=resize(task.test_x), test_y=task.test_y)


def pretrained(source: Task, arch: str, seeds: range, progress: bool) -> list[Params]:
    """Networks trained on the (resized) source data, once, cached: the victims' short cosine schedule."""
    return [trained_network(source, arch, seed, victim_training(source), progress=progress) for seed in seeds]


def adapted_accuracies(model, nets: list[Params], synset: SyntheticSet, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Each network's accuracy on (x, y) after taking the set's learned steps from its own weights."""
    return [accuracy(model, train_with_schedule(model, params, synset), x, y) for params in nets]


def fine_tuned_accuracies(model, nets: list[Params], images: torch.Tensor, labels: torch.Tensor, lr: float,
                          x: torch.Tensor, y: torch.Tensor) -> list[float]:
    sgd = SGDConfig(epochs=FINE_TUNE_EPOCHS, batch_size=max(256, len(images)), lr=lr, momentum=0.9,
                    weight_decay=5e-4, decay_at_half=True)
    return [accuracy(model, train_sgd(model, params, images, labels, sgd, torch.Generator().manual_seed(i)), x, y)
            for i, params in enumerate(nets)]


def summary(values: list[float]) -> dict:
    return {**mean_std(values), "values": values, "n_nets": len(values)}


@dataclass
class AdaptResult:
    """What `adapt` returns: the set, its measurements beside the baselines, and the files written."""

    synset: SyntheticSet
    results: dict
    files: dict[str, Path] = field(default_factory=dict)


def adapt(config: AdaptConfig | None = None, out: str | os.PathLike | None = None,
          data_root: str | os.PathLike | None = None, force: bool = False, resume: bool = False,
          device: str | None = None, progress: bool = True, **options) -> AdaptResult:
    """Distil target images that adapt networks pretrained on `source` to `dataset`, then measure them on held-out
    pretrained networks beside no adaptation, random real images and fine-tuning. With `out`: the set, its grid, the
    validation curve and a summary."""
    if config is not None and not isinstance(config, AdaptConfig):
        raise DistillError(f"config must be an AdaptConfig, got {type(config).__name__}; give options as keywords "
                           "(distill.adapt(**options))")
    config = config or AdaptConfig()
    check_known(options, "", AdaptConfig)
    if options:
        config = AdaptConfig(**canonical_names({**asdict(config), **options}))
    config.validate()
    root = None if data_root is None else Path(data_root)
    return execute(config, out, data_root, device, force, resume,
                   lambda task, out_path, target: run_adapt(config, task, root, out_path, target, force, resume,
                                                            progress))


def run_adapt(config: AdaptConfig, task: Task, data_root: Path | None, out_path: Path | None,
              target_device: torch.device, force: bool, resume: bool, progress: bool) -> AdaptResult:
    """`adapt`'s work, once its options are checked, its output folder is held and its target data loaded."""
    source = source_task(config.source, task, data_root)
    if config.known_weights:
        pool = held_out = pretrained(source, config.arch, range(1), progress)
    else:
        pool = pretrained(source, config.arch, range(config.source_nets), progress)
        held_out = pretrained(source, config.arch, range(HELD_OUT_SEED, HELD_OUT_SEED + config.eval_nets), progress)
    judges = held_out if config.known_weights else pretrained(
        source, config.arch, range(VALIDATION_SEED, VALIDATION_SEED + ADAPT_VALIDATION_NETS), progress)
    method = create(config)
    method.pool = pool
    synset = initial_synset(config, task)
    synset.meta["adapt"] = {"source": source.spec.name, "known_weights": config.known_weights}
    model = create_model(config.arch, task.image_shape, task.num_classes).to(target_device)

    def validate(candidate: SyntheticSet) -> float:
        return mean_std(adapted_accuracies(model, judges, candidate, task.val_x, task.val_y))["mean"]

    loop_result = optimise(method, synset, config, task, validate, out_path, resume, progress)
    adapted = synset.detached()
    test_x, test_y = task.test_x, task.test_y
    real = random_real_set(task, adapted, seed=0)  # as many real target images per class and step as the set has
    real_images, real_labels = real.images.to(target_device), real.hard_labels().to(target_device)
    rate = max(FINE_TUNE_RATES, key=lambda lr: mean_std(fine_tuned_accuracies(
        model, judges, real_images, real_labels, lr, task.val_x, task.val_y))["mean"])
    results = {
        "distill_seconds": round(loop_result.seconds, 2), "kept_step": loop_result.best_step,
        **environment(target_device), "source": source.spec.name, "target": task.spec.name,
        "known_weights": config.known_weights, "images": len(adapted.labels),
        "gradient_steps": adapted.num_steps * adapted.num_epochs,
        "adapted": summary(adapted_accuracies(model, held_out, adapted, test_x, test_y)),
        "no_adaptation": summary([accuracy(model, params, test_x, test_y) for params in held_out]),
        "random_real_steps": summary(adapted_accuracies(model, held_out, real, test_x, test_y)),
        "random_real_fine_tuned": {**summary(fine_tuned_accuracies(model, held_out, real_images, real_labels, rate,
                                                                   test_x, test_y)), "lr": rate},
        "pool": {"source_nets": len(pool), "held_out_seeds": "0 (the pool itself)" if config.known_weights else
                 f"{HELD_OUT_SEED}..{HELD_OUT_SEED + config.eval_nets - 1}"},
    }
    adapted.meta["results"] = {"adapted": {k: v for k, v in results["adapted"].items() if k != "values"},
                               "no_adaptation": {k: v for k, v in results["no_adaptation"].items() if k != "values"}}
    run = AdaptResult(adapted, results)
    if out_path is not None:
        overwrite = force or resume
        run.files = {"synset": save(adapted, out_path / "synset.safetensors", overwrite=overwrite),
                     "grid": report.image_grid(adapted, out_path / "grid.png", list(task.spec.class_names)),
                     "curve": report.validation_curve(loop_result.history, out_path / "val_curve.png",
                                                      f"adapt {source.spec.name} -> {task.spec.name}")}
        run.files["summary"] = report.write_json({"config": asdict(config), "results": results,
                                                  "history": loop_result.history}, out_path / "summary.json")
    return run
