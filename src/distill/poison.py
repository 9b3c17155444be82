"""The poisoning attack end to end (issue 3): victim pools, crafting, measurement on held-out victims, and the
label-flipping baseline at equal budget.

Two disjoint pools of well-trained networks: the crafting pool is what the attack optimises against; the held-out
pool is never seen while crafting and is what the reported numbers come from (the crafting pool's are reported too,
to show the gap). A victim "takes the poison" by running the poison's learned schedule from its own weights, exactly
the steps the attack was optimised for.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from distill import report
from distill.config import HELD_OUT_SEED, VALIDATION_SEED, AttackConfig, check_known
from distill.data import Task
from distill.device import environment
from distill.errors import DistillError
from distill.evaluate import mean_std
from distill.methods import create
from distill.methods.attack import VICTIM_RECIPES, victim_pool
from distill.models import create_model
from distill.presets import canonical_names
from distill.run import execute, optimise
from distill.start import initial_synset
from distill.synset import SyntheticSet, save
from distill.train import Params, predictions, train_with_schedule

VALIDATION_VICTIMS = 3  # validation victims (seeds VALIDATION_SEED on), seen by neither pool, choose the kept step


def _stats(pred: torch.Tensor, y: torch.Tensor, attacked: int, target: int | None) -> dict:
    hit = y == attacked
    success = (pred[hit] == target) if target is not None else (pred[hit] != attacked)
    return {"success": success.float().mean().item(), "attacked_acc": (pred[hit] == attacked).float().mean().item(),
            "others_acc": (pred[~hit] == y[~hit]).float().mean().item(),
            "overall_acc": (pred == y).float().mean().item()}


class PoisonMeter:
    """Measures poisons on one pool of victims (test split): before/after numbers for every victim, their mean ±
    std, per-class accuracy and the summed confusion matrices. The victims' predictions before any poison are made
    once, here: every poison (and every rate of the label-flip sweep) is compared against the same ones."""

    def __init__(self, task: Task, victims: list[Params], arch: str, attacked: int, target: int | None):
        self.task, self.victims, self.attacked, self.target = task, victims, attacked, target
        self.model = create_model(arch, task.image_shape, task.num_classes).to(task.test_x.device)
        self.before = [predictions(self.model, victim, task.test_x) for victim in victims]

    def __call__(self, synset: SyntheticSet) -> dict:
        k, y, attacked, target = self.task.num_classes, self.task.test_y, self.attacked, self.target
        rows, before_cm, after_cm = [], torch.zeros(k, k, dtype=torch.long), torch.zeros(k, k, dtype=torch.long)
        per_class_before, per_class_after = [], []
        for victim, before in zip(self.victims, self.before):
            after = predictions(self.model, train_with_schedule(self.model, victim, synset), self.task.test_x)
            rows.append({"before": _stats(before, y, attacked, target), "after": _stats(after, y, attacked, target)})
            before_cm += torch.bincount(y.cpu() * k + before.cpu(), minlength=k * k).view(k, k)
            after_cm += torch.bincount(y.cpu() * k + after.cpu(), minlength=k * k).view(k, k)
            per_class_before.append([(before[y == c] == c).float().mean().item() for c in range(k)])
            per_class_after.append([(after[y == c] == c).float().mean().item() for c in range(k)])
        summary = {f"{when}_{key}": mean_std([r[when][key] for r in rows])
                   for when in ("before", "after") for key in ("success", "attacked_acc", "others_acc", "overall_acc")}
        summary["others_drop"] = mean_std([r["before"]["others_acc"] - r["after"]["others_acc"] for r in rows])
        summary["n_victims"] = len(self.victims)
        summary["per_class"] = {"before": [statistics.fmean(c) for c in zip(*per_class_before)],
                                "after": [statistics.fmean(c) for c in zip(*per_class_after)]}
        summary["confusion_before"], summary["confusion_after"] = before_cm.tolist(), after_cm.tolist()
        summary["victims"] = rows
        return summary


def label_flip_set(task: Task, like: SyntheticSet, attacked: int, target: int | None, lr: float, seed: int):
    """The equal-budget baseline: as many real images of the attacked class as the poison has, relabelled as the
    target (forget: as the class each would be most confused with is unknown, so as the next class), trained with
    the same number of steps and epochs at one constant learning rate."""
    generator = torch.Generator().manual_seed(seed)
    pool = (task.train_y.cpu() == attacked).nonzero().flatten()
    pick = pool[torch.randperm(len(pool), generator=generator)[: len(like.labels)]]
    flipped = target if target is not None else (attacked + 1) % task.num_classes
    labels = torch.full((len(pick),), flipped, dtype=torch.long)
    lrs = torch.full((like.num_steps * like.num_epochs,), float(lr))
    return SyntheticSet(task.train_x.cpu()[pick], labels, dict(like.meta, method="label-flip"), like.step.cpu(),
                        lrs.log(), zca=like.zca)


def attack_score(before: dict, after: dict) -> float:
    """How validation ranks poisons (and the baseline's learning rates): success, minus three times any loss of
    accuracy on the other classes beyond half a point."""
    return after["success"] - 3 * max(0.0, before["others_acc"] - after["others_acc"] - 0.005)


def validation_judge(model, task: Task, judges: list[Params], attacked: int, target: int | None):
    """A function judging a poison on the validation split by the mean over `judges` of its success, the accuracy
    the other classes lose (`others_drop`) and its `attack_score`. The victims' scores before any poison are
    measured once, here."""
    before = [_stats(predictions(model, v, task.val_x), task.val_y, attacked, target) for v in judges]

    def judge(poison: SyntheticSet) -> dict[str, float]:
        after = [_stats(predictions(model, train_with_schedule(model, v, poison), task.val_x), task.val_y, attacked,
                        target) for v in judges]
        return {"success": statistics.fmean(a["success"] for a in after),
                "others_drop": statistics.fmean(b["others_acc"] - a["others_acc"] for b, a in zip(before, after)),
                "score": statistics.fmean(attack_score(b, a) for b, a in zip(before, after))}

    return judge


FLIP_LRS = tuple(round(10 ** (e / 8), 7) for e in range(-32, 1))  # 1e-4 .. 1, eight per decade


def label_flip_baseline(task: Task, like: SyntheticSet, judge, held_out: PoisonMeter, seed: int,
                        damage_budget: float) -> dict:
    """Label flipping over the FLIP_LRS sweep, measured on the held-out pool the same way as the poison, at two
    learning rates:

    - `best`: the rate the validation victims (`judge`) score best (the rule that picks the poison's kept step);
    - `matched`: the most successful rate whose held-out damage to the other classes is at most `damage_budget`
      (the poison's own held-out damage): the two compared at equal harm as well as equal budget. Its rate is
      picked on the very victims it is measured on, which favours the baseline, never the poison. When no rate is
      that gentle, the gentlest one.
    """
    flips = {lr: label_flip_set(task, like, held_out.attacked, held_out.target, lr, seed) for lr in FLIP_LRS}
    measured = {lr: held_out(flip) for lr, flip in flips.items()}
    sweep = [{"lr": lr, **judge(flip), "held_out_success": measured[lr]["after_success"]["mean"],
              "held_out_others_drop": measured[lr]["others_drop"]["mean"]} for lr, flip in flips.items()]
    best = max(sweep, key=lambda r: r["score"])
    gentle = [r for r in sweep if r["held_out_others_drop"] <= damage_budget]
    matched = (max(gentle, key=lambda r: r["held_out_success"]) if gentle
               else min(sweep, key=lambda r: r["held_out_others_drop"]))
    return {"best": measured[best["lr"]] | {"lr": best["lr"]},
            "matched": measured[matched["lr"]] | {"lr": matched["lr"], "damage_budget": damage_budget},
            "sweep": sweep}


def _start_from_label_flip(synset: SyntheticSet, task: Task, config: AttackConfig) -> None:
    """Start as label flipping does: every poison image a real image of the attacked class, labelled as the target
    (forget: labels spread over all the other classes, where the baseline uses the next class). The images are other
    draws than the baseline's and the schedule starts at `init_lr`; the optimisation then reshapes the pixels and
    the schedule so the flip carries over to unseen victims without hurting the other classes."""
    k = task.num_classes
    if config.target is not None:
        labels = torch.full_like(synset.labels, config.target)
    else:
        others = torch.tensor([c for c in range(k) if c != config.attacked], device=synset.labels.device)
        labels = others[torch.arange(len(synset.labels), device=others.device) % len(others)]
    pool = (task.train_y == config.attacked).nonzero().flatten()
    generator = torch.Generator().manual_seed(config.seed + 1)
    pick = pool[torch.randperm(len(pool), generator=generator)[: len(labels)].to(pool.device)]
    synset.labels = labels
    with torch.no_grad():
        if config.image_init == "real":
            synset.images.copy_(task.train_x[pick])


def check_attacked_class_size(task: Task, config: AttackConfig) -> None:
    """Every poison image (and every image of the label-flipping baseline) is a distinct real image of the attacked
    class: refuse, before any victim trains, a poison larger than that class."""
    needed = config.ipc * task.num_classes * config.steps
    have = int((task.train_y == config.attacked).sum())
    if needed > have:
        raise DistillError(f"the poison needs {needed} images of the attacked class (--ipc x classes x --steps), and "
                           f"{task.spec.name} has {have} training images of class {config.attacked}")


@dataclass
class AttackResult:
    """What `attack` returns: the poison, its measurements (held-out, crafting and validation victims, the
    label-flipping baseline) and the files written."""

    synset: SyntheticSet
    results: dict
    files: dict[str, Path] = field(default_factory=dict)


def attack(config: AttackConfig | None = None, out: str | os.PathLike | None = None,
           data_root: str | os.PathLike | None = None, force: bool = False, resume: bool = False,
           device: str | None = None, progress: bool = True, **options) -> AttackResult:
    """Craft a distilled poison against `attacked` (to `target`, or forgotten), then measure it on held-out victims
    beside the label-flipping baseline. With `out`: the poison, its grid, the confusion matrices and a summary (no
    other run may use that folder meanwhile)."""
    if config is not None and not isinstance(config, AttackConfig):
        raise DistillError(f"config must be an AttackConfig, got {type(config).__name__}; give options as keywords "
                           "(distill.attack(**options))")
    config = config or AttackConfig()
    check_known(options, "", AttackConfig)
    if options:
        config = AttackConfig(**canonical_names({**asdict(config), **options}))
    config.validate()
    return execute(config, out, data_root, device, force, resume,
                   lambda task, out_path, target: run_attack(config, task, out_path, target, force, resume, progress))


def run_attack(config: AttackConfig, task: Task, out_path: Path | None, target_device: torch.device, force: bool,
               resume: bool, progress: bool) -> AttackResult:
    """`attack`'s work, once its options are checked, its output folder is held and its data loaded."""
    check_attacked_class_size(task, config)
    method = create(config)
    held_out = victim_pool(task, config.arch, range(HELD_OUT_SEED, HELD_OUT_SEED + config.eval_victims), progress,
                           "unseen" if config.eval_recipes == "unseen" else config.victim_recipes)
    judges = victim_pool(task, config.arch, range(VALIDATION_SEED, VALIDATION_SEED + VALIDATION_VICTIMS), progress,
                         config.victim_recipes)

    synset = initial_synset(config, task)
    _start_from_label_flip(synset, task, config)
    synset.meta["attack"] = {"attacked": config.attacked, "target": config.target, "mode": config.mode}
    model = create_model(config.arch, task.image_shape, task.num_classes).to(target_device)

    # validation victims, not crafting ones: a poison that only fools the victims it was crafted against scores
    # low, so the loop keeps the step that generalises best
    judge = validation_judge(model, task, judges, config.attacked, config.target)
    loop_result = optimise(method, synset, config, task, lambda poison: judge(poison)["score"], out_path, resume,
                           progress)
    crafting = method.pool
    poison = synset.detached()
    held_out_meter = PoisonMeter(task, held_out, config.arch, config.attacked, config.target)
    results = {"distill_seconds": round(loop_result.seconds, 2), "kept_step": loop_result.best_step,
               **environment(target_device), "mode": config.mode,
               "victim_recipes": [r.name for r in VICTIM_RECIPES[config.victim_recipes]],
               "eval_recipes": [r.name for r in VICTIM_RECIPES["unseen" if config.eval_recipes == "unseen"
                                                               else config.victim_recipes]],
               "attacked": config.attacked, "target": config.target, "images": len(poison.labels),
               "gradient_steps": poison.num_steps * poison.num_epochs,
               "held_out": held_out_meter(poison),
               "crafting": PoisonMeter(task, crafting, config.arch, config.attacked, config.target)(poison),
               "validation": judge(poison)}
    flips = label_flip_baseline(task, poison, judge, held_out_meter, config.seed,
                                damage_budget=max(results["held_out"]["others_drop"]["mean"], 0.0))
    results["label_flip"], results["label_flip_matched"] = flips["best"], flips["matched"]
    results["label_flip_sweep"] = flips["sweep"]
    scalars = {k: v for k, v in results.items() if not isinstance(v, (dict, list))}  # the measurements stay in
    poison.meta["results"] = scalars | {  # summary.json; the set's header keeps the headline
        "held_out_success": results["held_out"]["after_success"],
        "held_out_others_drop": results["held_out"]["others_drop"]}
    run = AttackResult(poison, results)
    if out_path is not None:
        names = list(task.spec.class_names)
        overwrite = force or resume
        run.files = {
            "synset": save(poison, out_path / "synset.safetensors", overwrite=overwrite),
            "grid": report.image_grid(poison, out_path / "grid.png", names),
            "confusion": report.confusion_pair(results["held_out"]["confusion_before"],
                                               results["held_out"]["confusion_after"], names,
                                               out_path / "confusion.png"),
            "curve": report.validation_curve(loop_result.history, out_path / "val_curve.png",
                                             f"attack {config.attacked}->"
                                             f"{config.target if config.target is not None else 'any'}"),
        }
        run.files["summary"] = report.write_json({"config": asdict(config), "data": {"classes": names},
                                                  "results": results, "history": loop_result.history},
                                                 out_path / "summary.json")
    return run
