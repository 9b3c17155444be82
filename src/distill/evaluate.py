"""The evaluation protocol (GUIDE §5): how every accuracy in the project is measured.

Three ways to train on a synthetic set, all tested on the full official test split:

- `fixed`:    the one stored initial network, trained with the set's learned schedule (the seed's headline setting);
- `schedule`: fresh random networks trained with the learned schedule (the seed's random-init setting);
- `standard`: fresh random networks trained with ordinary SGD (the field's standard protocol, GUIDE §5): 300 epochs,
  or 1000 with DSA augmentation (`augment`), as the DSA, DM and MTT papers evaluate. A set that learned its own
  training learning rate (MTT; metadata `lr_role` = `standard`) is trained with that rate.

Beside every result go two baselines measured the same honest way: the network trained on the whole training split,
and random real images, as many per class as the synthetic set has.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from distill import parallel
from distill.augment import DSA, augmentation_for, augmentation_label
from distill.data import Task
from distill.errors import DistillError
from distill.models import DEFAULT_INIT, create_model, init_params
from distill.presets import canonical_names
from distill.synset import SyntheticSet, check_not_poison, check_set
from distill.train import SGDConfig, accuracy, full_data_config, train_sgd, train_with_schedule, trained_network

PROTOCOLS = ("auto", "fixed", "schedule", "standard")
EVAL_SEED = 7_000_000  # evaluation networks are drawn from seeds far from any used while distilling


def mean_std(values: list[float]) -> dict:
    """{"mean", "std"} of accuracies over networks: the population spread of the networks trained, the one way every
    "mean ± std" in `distill` is computed (results files, sweeps, attacks)."""
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


@dataclass
class EvalResult:
    """Accuracies of `n_nets` networks trained on one set under one protocol."""

    protocol: str
    arch: str
    accuracies: list[float]
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)

    @property
    def accuracy_mean(self) -> float:
        return mean_std(self.accuracies)["mean"]

    @property
    def accuracy_std(self) -> float:
        return mean_std(self.accuracies)["std"]

    @property
    def n_nets(self) -> int:
        return len(self.accuracies)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(accuracy_mean=self.accuracy_mean, accuracy_std=self.accuracy_std, n_nets=self.n_nets)
        return out

    def __str__(self) -> str:
        spread = f" ± {self.accuracy_std:.2%}" if self.n_nets > 1 else ""
        return (f"{self.accuracy_mean:.2%}{spread} ({self.protocol}, {self.arch}, "
                f"{self.n_nets} net{'s' * (self.n_nets > 1)})")


def resolve_protocol(synset: SyntheticSet, protocol: str) -> str:
    """`auto` picks the setting the set was distilled for: its fixed network, its schedule, or standard SGD. The
    set is checked first, as `load` checks a file (a set made in memory may not have been), and a poison is refused:
    every evaluation starts here, so nothing is refused only after the data is read or deep inside training."""
    check_set(synset, "the set to evaluate")
    check_not_poison(synset, "fresh networks trained on it measure nothing")
    if protocol not in PROTOCOLS:
        raise DistillError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if synset.meta.get("lr_role") == "standard":
        if protocol in ("fixed", "schedule"):
            raise DistillError(f"this set's learned learning rate is for the standard protocol, not {protocol!r}")
        return "standard"
    if protocol == "auto":
        if synset.init_params is not None and synset.meta.get("init") == "fixed":
            return "fixed"
        return "schedule" if synset.log_lrs is not None else "standard"
    if protocol == "fixed" and synset.init_params is None:
        raise DistillError("protocol 'fixed' needs a set distilled for a fixed network (it stores none)")
    if protocol in ("fixed", "schedule") and synset.log_lrs is None:
        raise DistillError(f"protocol {protocol!r} needs a learned schedule (lrs), which this set does not have")
    return protocol


def standard_sgd(synset: SyntheticSet | None = None, augment: str = "", epochs: int = 0,
                 lr: float = 0.0) -> SGDConfig:
    """The standard protocol's training: 300 epochs, 1000 with augmentation (or `epochs`), at `lr` when given, else
    at the set's own learned learning rate when it has one (MTT), else GUIDE §5's 0.01. A rate learned for the
    network a set was distilled with need not suit another one, which is why cross-architecture runs may set `lr`."""
    if not (math.isfinite(lr) and lr >= 0):
        raise DistillError(f"the learning rate must be a positive number (0 picks the default); got {lr}")
    if epochs < 0:
        raise DistillError(f"the number of training epochs must be positive (0 picks the default); got {epochs}")
    if not lr:
        lr = 0.01
        if synset is not None and synset.meta.get("lr_role") == "standard" and synset.log_lrs is not None:
            lr = float(synset.lrs.detach()[0])
    return SGDConfig(epochs=epochs or (300 if augment in ("", "none") else 1000), lr=lr)


def _train_on_set(model, start, synset: SyntheticSet, protocol: str, sgd: SGDConfig, generator: torch.Generator,
                  augment: DSA | None = None, progress: str | None = None):
    if protocol in ("fixed", "schedule"):  # a learned schedule is a few steps: no bar
        return train_with_schedule(model, start, synset)
    device = next(iter(start.values())).device
    targets = synset.targets().detach().to(device)  # learned labels where the set still learns them
    return train_sgd(model, start, synset.images.detach().to(device), targets, sgd, generator, augment=augment,
                     progress=progress)


def _check_n_nets(n_nets: int) -> None:
    """Refuse fewer than one evaluation network: there would be no accuracy to report."""
    if n_nets < 1:
        raise DistillError("the number of evaluation networks must be at least 1")


def evaluate_set(
    synset: SyntheticSet,
    task: Task,
    protocol: str = "auto",
    arch: str | None = None,
    n_nets: int = 5,
    init_scheme: str | None = None,
    sgd: SGDConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    from_fixed: bool = False,
    augment: str = "",
    validation: bool = False,
    label: str = "",
    spread: bool = True,
) -> EvalResult:
    """Train networks on `synset` under `protocol` and measure them on the test split. `from_fixed` starts the
    `standard` protocol from the set's stored network instead of random ones (for the fixed-init baseline).
    `augment` ("dsa", a DSA strategy, or "" for none) augments every training batch of the standard protocol.
    `validation` also measures each network on the held-out validation split (`detail["val_accuracies"]`), so a
    choice made between sets can rest on it and not on the test split. With `progress`, each network's training
    shows a bar of its own, named by `label` (default: the protocol and network) and the network's number: one
    network of 1,000 augmented epochs can take minutes on a CPU. Under torch.distributed the networks are spread
    over the ranks (`spread`; False: this rank trains them all, for a caller that spreads its own loop)."""
    protocol = resolve_protocol(synset, protocol)
    augmentation = augmentation_for(augment, task.spec.name)
    if augmentation is not None and protocol != "standard":
        raise DistillError("augmentation applies to the standard protocol only")
    sgd = sgd or standard_sgd(synset, augment)
    arch = canonical_names({"arch": arch or synset.meta["arch"]})["arch"]  # `LeNet` is lenet, before any comparison
    device = task.test_x.device
    model = create_model(arch, task.image_shape, task.num_classes).to(device)  # an unknown name is refused here
    own_network = arch == synset.meta["arch"]
    if protocol in ("fixed", "schedule") and not own_network:
        raise DistillError(f"the learned schedule belongs to {synset.meta['arch']}; evaluate other networks "
                           "with --protocol standard")
    _check_n_nets(n_nets)
    # the set's initialiser is the one of the network it was distilled with; another network starts as it would
    # anywhere else (LeNet xavier, ConvNet PyTorch's default), or a cross-architecture row would measure the pairing
    scheme = init_scheme or (synset.meta.get("init_scheme") if own_network else None) or DEFAULT_INIT[arch]
    runs = 1 if protocol == "fixed" else n_nets
    accuracies, val_accuracies = [], []
    began = time.perf_counter()
    label = label or f"evaluate ({protocol}, {arch})"
    measured = {}  # network -> (test, validation) accuracy; under torch.distributed each rank trains its share
    for i in parallel.share(runs) if spread else range(runs):
        bar = (label if runs == 1 else f"{label}, network {i + 1}/{runs}") if progress and parallel.is_main() else None
        generator = torch.Generator().manual_seed(EVAL_SEED + 1000 * seed + i)
        if protocol == "fixed" or (from_fixed and synset.init_params is not None):
            start = {k: v.to(device) for k, v in synset.init_params.items()}
        else:
            start = init_params(model, generator, scheme, device=device)
        trained = _train_on_set(model, start, synset, protocol, sgd, generator, augmentation, progress=bar)
        measured[i] = (accuracy(model, trained, task.test_x, task.test_y),
                       accuracy(model, trained, task.val_x, task.val_y) if validation else None)
    for test, val in parallel.gather(measured, runs) if spread else measured.values():
        accuracies.append(test)
        if validation:
            val_accuracies.append(val)
    detail = {"init_scheme": scheme, "sgd": asdict(sgd) if protocol == "standard" else None,
              "augment": augmentation_label(augmentation)}
    if validation:
        detail["val_accuracies"] = val_accuracies
    return EvalResult(protocol, arch, accuracies, time.perf_counter() - began, detail)


def random_real_set(task: Task, like: SyntheticSet, seed: int) -> SyntheticSet:
    """Real training images drawn at random, as many per class (and per step) as `like` has: the baseline a
    distilled set has to beat."""
    generator = torch.Generator().manual_seed(EVAL_SEED + seed)
    labels = like.hard_labels().cpu()
    images = torch.empty_like(like.images.detach().cpu())
    train_y = task.train_y.cpu()
    for c in labels.unique().tolist():
        slots = (labels == c).nonzero().flatten()
        pool = (train_y == c).nonzero().flatten()
        pick = pool[torch.randperm(len(pool), generator=generator)[: len(slots)]]
        images[slots] = task.train_x.cpu()[pick]
    return SyntheticSet(images, labels, dict(like.meta), like.step, like.log_lrs, like.init_params, zca=like.zca)


def random_real_baseline(task: Task, like: SyntheticSet, arch: str | None = None, n_nets: int = 5,
                         sgd: SGDConfig | None = None, progress: bool = True, augment: str = "") -> EvalResult:
    """Random real images of the same count, trained with the standard protocol (a learned schedule was tuned for
    the distilled images, so giving it to real images would be unfair to them). A set distilled for a fixed network
    is compared with real images trained from that same network."""
    _check_n_nets(n_nets)
    accuracies = []
    arch = arch or like.meta.get("arch", "convnet")
    from_fixed = like.init_params is not None and like.meta.get("init") == "fixed" and arch == like.meta.get("arch")
    began = time.perf_counter()
    mine = {}
    for i in parallel.share(n_nets):  # under torch.distributed each rank trains its share
        real = random_real_set(task, like, seed=i)
        real.meta.pop("lr_role", None)  # real images get the standard 0.01, not a rate learned for other images
        result = evaluate_set(real, task, "standard", arch, n_nets=1, sgd=sgd, seed=i,
                              progress=progress and parallel.is_main(), from_fixed=from_fixed, augment=augment,
                              label=f"baseline: random real images ({arch}), network {i + 1}/{n_nets}", spread=False)
        mine[i] = (result.accuracies[0], result.detail)
    for accuracy_i, detail in parallel.gather(mine, n_nets):
        accuracies.append(accuracy_i)
    # described as evaluate_set describes the distilled set's networks (its training and augmentation label), so the
    # two accuracies a run reports side by side say how they were measured in the same words
    return EvalResult("standard", arch, accuracies, time.perf_counter() - began,
                      {"images": "random real", "from_fixed_init": from_fixed, "sgd": detail["sgd"],
                       "augment": detail["augment"]})


def full_data_baseline(task: Task, arch: str, n_nets: int = 1, progress: bool = True) -> EvalResult:
    """The same network trained on the whole training split (cached on disk, so each is trained once)."""
    began = time.perf_counter()
    mine = {i: accuracy(create_model(arch, task.image_shape, task.num_classes).to(task.test_x.device),
                        trained_network(task, arch, seed=i, config=full_data_config(arch),
                                        progress=progress and parallel.is_main()),
                        task.test_x, task.test_y)
            for i in parallel.share(n_nets)}  # under torch.distributed each rank trains its share
    accuracies = parallel.gather(mine, n_nets)
    return EvalResult("full data", arch, accuracies, time.perf_counter() - began)


@dataclass(frozen=True)
class Recipe:
    """One of the field's standard ways to train a network on a set: an augmentation and a number of epochs (SGD,
    momentum 0.9, learning rate 0.01 or the set's own learned one, decayed tenfold at half time)."""

    name: str
    augment: str  # an `augment` option: "" none, "dsa", "dc", or a strategy
    epochs: int


RECIPE_ARCHS = ("convnet", "convnet_dc")  # ours, and the DC code's (its 32x32 padding on 28x28 images)


def standard_recipes(synset: SyntheticSet) -> list[Recipe]:
    """The standard recipes for the set's kind of data: no augmentation for 300 epochs and DSA's for 1,000 on every
    dataset; DC's MNIST augmentation for 1,000 on grayscale data, crop and flip for 1,000 on colour data."""
    colour = synset.meta["image_shape"][0] == 3
    third = Recipe("crop+flip/1000", "crop_flip", 1000) if colour else Recipe("dc/1000", "dc", 1000)
    return [Recipe("none/300", "", 300), Recipe("dsa/1000", "dsa", 1000), third]


@dataclass
class RecipeRow:
    recipe: str
    arch: str
    result: EvalResult

    def to_dict(self) -> dict:
        return {"recipe": self.recipe, "arch": self.arch, "accuracy_mean": self.result.accuracy_mean,
                "accuracy_std": self.result.accuracy_std, "accuracies": self.result.accuracies,
                "augment": self.result.detail["augment"], "sgd": self.result.detail["sgd"]}


@dataclass
class RecipeTable:
    """A set's accuracy under every standard recipe on each network, and the worst of them: what a user training it
    their own standard way can count on."""

    rows: list[RecipeRow]

    @property
    def worst(self) -> RecipeRow:
        return min(self.rows, key=lambda row: row.result.accuracy_mean)

    @property
    def best(self) -> RecipeRow:
        return max(self.rows, key=lambda row: row.result.accuracy_mean)

    def to_dict(self) -> dict:
        worst, best = self.worst, self.best
        return {"rows": [row.to_dict() for row in self.rows],
                "worst": {"recipe": worst.recipe, "arch": worst.arch, "accuracy_mean": worst.result.accuracy_mean,
                          "accuracy_std": worst.result.accuracy_std},
                "best": {"recipe": best.recipe, "arch": best.arch, "accuracy_mean": best.result.accuracy_mean,
                         "accuracy_std": best.result.accuracy_std}}

    def __str__(self) -> str:
        worst = self.worst
        lines = [f"{'recipe':<16}{'network':<12}accuracy"]
        for row in self.rows:
            mark = "   <- worst" if row is worst else ""
            lines.append(f"{row.recipe:<16}{row.arch:<12}{row.result.accuracy_mean:.2%} ± "
                         f"{row.result.accuracy_std:.2%} ({row.result.n_nets} nets){mark}")
        return "\n".join(lines)


def evaluate_recipes(synset: SyntheticSet, task: Task, archs: tuple[str, ...] = RECIPE_ARCHS, n_nets: int = 5,
                     progress: bool = True) -> RecipeTable:
    """Train `n_nets` fresh networks of each of `archs` on `synset` under each standard recipe (the standard
    protocol; the same networks' seeds for every recipe) and measure them on the test split."""
    resolve_protocol(synset, "standard")
    rows = []
    for arch in archs:
        for recipe in standard_recipes(synset):
            result = evaluate_set(synset, task, "standard", arch, n_nets, sgd=standard_sgd(synset, recipe.augment,
                                                                                           recipe.epochs),
                                  augment=recipe.augment, progress=progress,
                                  label=f"recipe {recipe.name} ({canonical_names({'arch': arch})['arch']})")
            rows.append(RecipeRow(recipe.name, result.arch, result))
    return RecipeTable(rows)
