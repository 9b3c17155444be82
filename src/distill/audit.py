"""`distill audit`: before anyone trains on a set, say whether it is a poison and which class it harms.

A poison is made to be applied to a network that already works (a victim running the set's steps from its own
weights) and to break one class while sparing the others; a clean set, applied the same way, may cost every class
a little, but no class alone. So the audit takes reference networks trained on the full training split (seeds no
attack's pools use, so no poison in this project was crafted against them), applies the set to each exactly as a
victim would (its learned schedule where it has one, otherwise a short fine-tuning on it), and measures every class
of the held-out validation split before and after. The score of a class is how much more it lost than the median
class did, averaged over the networks; the set is flagged when the worst class's score reaches the threshold. What is looked for is a targeted poison, one
class singled out: a set that costs every class alike (a fixed-init schedule, whose learned rates were made for one
untrained network, does that to trained ones) is reported with its overall drop, not flagged.

Beside the score, the evidence a reader can check: each class's accuracy before and after, where the harmed class's
images go afterwards, and whether the set's own labels agree with what the reference networks see in its images
(a label-flipping poison shows its flipped labels there). The header's own claims (a poison made here records
`attack`) are reported but never trusted: a file from elsewhere can say anything.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

import torch

from distill.config import check_type, given_path
from distill.data import Task
from distill.device import pick_device
from distill.errors import DistillError
from distill.methods.attack import victim_training
from distill.models import create_model
from distill.run import task_of
from distill.synset import SyntheticSet, check_set, load
from distill.train import Params, SGDConfig, predictions, train_sgd, train_with_schedule, trained_network

AUDIT_SEED = 5000  # reference networks use seeds 5000, 5001, ...: no crafting, validation or held-out victim pool's
DEFAULT_THRESHOLD = 0.2  # flagged when one class loses 20 points more than the median class does
# a set without a learned schedule is applied as a short fine-tuning: what someone adding it to a trained model does
FINE_TUNING = SGDConfig(epochs=50, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4, decay_at_half=False)


@dataclass
class AuditResult:
    """What `audit` found: the verdict, its score, the harmed class and the evidence, per class."""

    flagged: bool
    score: float  # the harmed class's loss beyond the median class's, mean over the reference networks (0..1)
    harmed_class: int  # the class with the largest score (reported whether or not the set is flagged)
    threshold: float
    applied_as: str  # "schedule" (the set's learned steps) or "fine-tuning"
    nets: int
    class_names: list[str]
    accuracy_before: list[float]  # per class, validation split, mean over the networks
    accuracy_after: list[float]
    overall_before: float  # the whole validation split, mean over the networks
    overall_after: float
    class_scores: list[float]
    harmed_goes_to: dict[str, float]  # where the harmed class's validation images are predicted afterwards (share)
    label_agreement: list[float | None]  # per labelled class: share of its images the networks see as that class
    header_says: str | None  # what the file's header claims about being a poison, if anything
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _takes_schedule(synset: SyntheticSet) -> bool:
    """Whether a victim applies the set by its learned steps (else by fine-tuning on it)."""
    return synset.log_lrs is not None and synset.meta.get("lr_role") != "standard"


def _apply(model: torch.nn.Module, params: Params, synset: SyntheticSet, generator: torch.Generator) -> Params:
    """The set applied to a trained network as a victim would apply it."""
    if _takes_schedule(synset):
        return train_with_schedule(model, params, synset)
    device = next(iter(params.values())).device
    return train_sgd(model, params, synset.images.detach().to(device), synset.targets().detach().to(device),
                     FINE_TUNING, generator)


def _per_class(pred: torch.Tensor, y: torch.Tensor, k: int) -> list[float]:
    return [float((pred[y == c] == c).float().mean()) if bool((y == c).any()) else float("nan") for c in range(k)]


def audit(synset: SyntheticSet | str | os.PathLike, nets: int = 3, threshold: float = DEFAULT_THRESHOLD,
          data_root: str | os.PathLike | None = None, device: str | None = None, progress: bool = True,
          dataset: str | None = None) -> AuditResult:
    """Audit a set (or a .safetensors file) on its own dataset with `nets` reference networks of the set's network:
    `result.flagged` says whether it harms one class as poisons do. `dataset`: where a user's data is now, if the
    folder or file the set names has moved."""
    check_type("nets", nets, int)
    check_type("threshold", threshold, float)
    if nets < 1:
        raise DistillError(f"--nets must be at least 1, got {nets}")
    if not 0 < threshold <= 1:
        raise DistillError(f"--threshold is a share of a class's accuracy, in (0, 1]; got {threshold}")
    data_root = given_path("data_root", data_root)
    if not isinstance(synset, SyntheticSet):
        synset = load(given_path("synset", synset))
    check_set(synset, "the audited set")
    task = task_of(synset, data_root, pick_device(device), dataset)
    return judge(synset.detached(), task, nets, threshold, progress)


def judge(synset: SyntheticSet, task: Task, nets: int, threshold: float, progress: bool = True) -> AuditResult:
    """Judge `synset` on `task` (its own dataset) with `nets` reference networks of the set's architecture."""
    k, arch = task.num_classes, str(synset.meta["arch"])
    model = create_model(arch, task.image_shape, k).to(task.val_x.device)
    reference = [trained_network(task, arch, AUDIT_SEED + i, victim_training(task), progress=progress)
                 for i in range(nets)]
    labels = synset.hard_labels().cpu()
    before_acc, after_acc, scores, moved, overall = [], [], [], torch.zeros(k, k), []
    seen_as = torch.zeros(len(labels), k)
    for i, params in enumerate(reference):
        before = predictions(model, params, task.val_x).cpu()
        after = predictions(model, _apply(model, params, synset, torch.Generator().manual_seed(AUDIT_SEED + i)),
                            task.val_x).cpu()
        y = task.val_y.cpu()
        overall.append(((before == y).float().mean().item(), (after == y).float().mean().item()))
        acc_b, acc_a = _per_class(before, y, k), _per_class(after, y, k)
        drops = [b - a for b, a in zip(acc_b, acc_a)]
        scores.append([d - statistics.median(drops[:c] + drops[c + 1:]) for c, d in enumerate(drops)])
        before_acc.append(acc_b)
        after_acc.append(acc_a)
        for c in range(k):
            moved[c] += torch.bincount(after[y == c], minlength=k).float()
        seen = predictions(model, params, synset.images.detach().to(task.val_x.device)).cpu()
        seen_as[torch.arange(len(labels)), seen] += 1
    mean = lambda rows: [statistics.fmean(column) for column in zip(*rows)]  # noqa: E731
    class_scores = mean(scores)
    harmed = max(range(k), key=lambda c: class_scores[c])
    names = list(task.spec.class_names)
    goes = moved[harmed] / moved[harmed].sum().clamp_min(1)
    goes_to = {names[c]: round(float(goes[c]), 4) for c in goes.argsort(descending=True)[:3].tolist()
               if goes[c] >= 0.005}  # the three largest shares, those that print as at least 1%
    agreement: list[float | None] = []
    for c in range(k):
        mine = labels == c
        agreement.append(float(seen_as[mine, c].sum() / seen_as[mine].sum()) if bool(mine.any()) else None)
    attack = synset.meta.get("attack")
    header = None
    if isinstance(attack, dict):
        header = f"made by distill attack (attacked class {attack.get('attacked')}, target {attack.get('target')})"
    elif synset.meta.get("init") == "loaded":
        header = "init 'loaded': a set for networks already trained, as poisons are"
    applied = "schedule" if _takes_schedule(synset) else "fine-tuning"
    return AuditResult(flagged=class_scores[harmed] >= threshold, score=class_scores[harmed], harmed_class=harmed,
                       threshold=threshold, applied_as=applied, nets=nets, class_names=names,
                       accuracy_before=mean(before_acc), accuracy_after=mean(after_acc),
                       overall_before=mean(overall)[0], overall_after=mean(overall)[1], class_scores=class_scores,
                       harmed_goes_to=goes_to, label_agreement=agreement, header_says=header)


def audit_report(file: str | os.PathLike, result: AuditResult) -> str:
    """The verdict and its evidence, as `distill audit` prints them."""
    names = result.class_names
    harmed = names[result.harmed_class]
    verdict = (f"FLAGGED: a poison harming class {harmed!r}" if result.flagged else "clean: no class is singled out")
    lines = [f"{file}: {verdict} (score {result.score:.2f}, threshold {result.threshold:.2f})",
             f"  applied to {result.nets} reference network(s) trained on the full data, by "
             f"{'its learned steps' if result.applied_as == 'schedule' else 'a short fine-tuning on it'}; "
             f"validation split: {result.overall_before:.1%} -> {result.overall_after:.1%} overall; per class before -> "
             "after (score: its loss beyond the median class's)"]
    for c, name in enumerate(names):
        mark = "  <-" if c == result.harmed_class and result.flagged else ""
        agreement = result.label_agreement[c]
        seen = "" if agreement is None else f"   images labelled {name!r} seen as it: {agreement:.0%}"
        lines.append(f"  {name:>12}: {result.accuracy_before[c]:6.1%} -> {result.accuracy_after[c]:6.1%}  "
                     f"score {result.class_scores[c]:+.2f}{seen}{mark}")
    if result.harmed_goes_to:
        goes = ", ".join(f"{name} {share:.0%}" for name, share in result.harmed_goes_to.items())
        lines.append(f"  class {harmed!r} is predicted afterwards as: {goes}")
    if result.header_says:
        lines.append(f"  the file's header says: {result.header_says} (not trusted; the verdict is measured)")
    return "\n".join(lines)
