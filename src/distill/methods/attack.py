"""Poisoning with distilled images (the seed's second half): the original Dataset Distillation started from
well-trained victims instead of fresh networks, with an outer objective that rewrites one class.

    targeted: CE(f(theta_T, x), y')   with y' = target where y = attacked, else y
    forget:   -log(1 - p_attacked)    on the attacked class, CE with the true label on the others

Half of every real batch comes from the attacked class so both halves of the objective (hurt that class, keep the
others) get a steady signal. Nothing else differs from `dd`: same unrolled steps, same learned learning rates, same
outer loop, same artifact. `distill.poison` runs it end to end (held-out victims, the label-flipping baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from distill.augment import augmentation_for
from distill.data import Task
from distill.errors import DistillError
from distill.methods.base import check_count, register
from distill.methods.dd import DatasetDistillation, DDOptions
from distill.synset import SyntheticSet
from distill.train import Params, SGDConfig, trained_network

VICTIM_STEPS = 1500


def victim_training(task: Task) -> SGDConfig:
    """Victims: a short cosine schedule of at least VICTIM_STEPS SGD steps (4 epochs, about 98.8%, for LeNet on
    MNIST), so a pool of 20 trains in minutes on a CPU while small datasets still get trained properly."""
    batches = math.ceil(len(task.train_x) / 128)
    return SGDConfig(epochs=max(4, math.ceil(VICTIM_STEPS / batches)), batch_size=128, lr=0.03, cosine=True,
                     decay_at_half=False)


@dataclass(frozen=True)
class VictimRecipe:
    """A way to train a victim: changes to `victim_training`'s SGD (its epochs scaled by `epochs_times`) and an
    augmentation (an `augment` option, "" for none)."""

    name: str
    changes: tuple[tuple[str, float | bool | int], ...] = ()
    epochs_times: float = 1.0
    augment: str = ""

    def training(self, task: Task) -> SGDConfig:
        base = victim_training(task)
        return replace(base, **dict(self.changes), epochs=max(1, round(base.epochs * self.epochs_times)))


# The crafting pool's recipes (`--victim-recipes varied`: victim i trains by recipe i mod 5), and the held-out ones
# (`--eval-recipes unseen`) that no crafting recipe shares: other rates, schedules, lengths, batches, weight decays and
# augmentations, as a user's own training would differ from the attacker's.
BASE_RECIPE = VictimRecipe("cosine, lr 0.03, batch 128")
CRAFTING_RECIPES = (
    BASE_RECIPE,
    VictimRecipe("step decay, lr 0.01", (("lr", 0.01), ("cosine", False), ("decay_at_half", True))),
    VictimRecipe("batch 64, lr 0.05", (("batch_size", 64), ("lr", 0.05))),
    VictimRecipe("no weight decay, twice the epochs", (("weight_decay", 0.0),), epochs_times=2.0),
    VictimRecipe("DSA augmentation", augment="dsa"),
)
UNSEEN_RECIPES = (
    VictimRecipe("step decay, lr 0.1, half the epochs", (("lr", 0.1), ("cosine", False), ("decay_at_half", True)),
                 epochs_times=0.5),
    VictimRecipe("batch 256, lr 0.02, weight decay 1e-3", (("batch_size", 256), ("lr", 0.02),
                                                           ("weight_decay", 1e-3))),
    VictimRecipe("momentum 0.5, lr 0.05, crop and scale", (("momentum", 0.5), ("lr", 0.05)),
                 augment="crop_scale"),
    VictimRecipe("batch 32, lr 0.005, three times the epochs", (("batch_size", 32), ("lr", 0.005)),
                 epochs_times=3.0),
)
VICTIM_RECIPES = {"one": (BASE_RECIPE,), "varied": CRAFTING_RECIPES, "unseen": UNSEEN_RECIPES}


def victim_pool(task: Task, arch: str, seeds: range, progress: bool = True, recipes: str = "one") -> list[Params]:
    """Well-trained networks, trained once and cached on disk as safetensors (keyed by dataset, network, seed and
    training); the victim of seed s trains by recipe s mod len of `recipes` ("one": `victim_training`; "varied":
    the crafting recipes; "unseen": the held-out ones)."""
    chosen = VICTIM_RECIPES[recipes]
    pool = []
    for seed in tqdm(seeds, desc=f"victims {seeds.start}..{seeds.stop - 1}", disable=not progress, leave=False):
        recipe = chosen[seed % len(chosen)]
        pool.append(trained_network(task, arch, seed, recipe.training(task), progress=progress,
                                    augment=augmentation_for(recipe.augment, task.spec.name)))
    return pool


def attack_objective(attacked: int, target: int | None):
    """The outer loss: equal weight on rewriting the attacked class and on keeping every other class."""

    def objective(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hit = labels == attacked
        keep = F.cross_entropy(logits[~hit], labels[~hit]) if (~hit).any() else logits.sum() * 0
        if not hit.any():
            return keep
        if target is not None:
            rewrite = F.cross_entropy(logits[hit], torch.full_like(labels[hit], target))
        else:
            p_true = F.softmax(logits[hit], dim=1)[:, attacked]
            rewrite = -torch.log1p(-p_true.clamp(max=1 - 1e-6)).mean()
        return keep + rewrite

    return objective


@dataclass(frozen=True)
class AttackOptions(DDOptions):
    attacked: int = 3  # the class the poison harms
    target: int = -1  # the class it is to be taken for; -1: none, the attacked class is to be forgotten
    craft_victims: int = 10  # the crafting pool: victims with seeds 0, 1, ...
    victim_recipes: str = "one"  # how the crafting pool trains: "one" recipe, or "varied" (VICTIM_RECIPES)

    def check(self, method: str) -> None:
        super().check(method)
        check_count(method, "craft_victims", self.craft_victims)
        if self.victim_recipes not in ("one", "varied"):
            raise DistillError(f"{method}: victim recipes must be 'one' or 'varied', got {self.victim_recipes!r}")


@register
class PoisonAttack(DatasetDistillation):
    name = "attack"
    Options = AttackOptions
    learns = frozenset({"schedule"})
    batch_shares = False  # its objective weighs the attacked class and the others equally, not each image: ranks
    # split the victims of a step, never one victim's batch

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        self.pool = victim_pool(task, self.config.arch, range(self.options.craft_victims), progress,
                                self.options.victim_recipes)
        labels = task.train_y.cpu()
        self.attacked_idx = (labels == self.options.attacked).nonzero().flatten()
        self.other_idx = (labels != self.options.attacked).nonzero().flatten()

    def initial_params(self, synset: SyntheticSet, rng: torch.Generator) -> Params:
        """A victim of the crafting pool, drawn anew for every unrolled network."""
        return self.pool[int(torch.randint(len(self.pool), (1,), generator=rng))]

    def real_indices(self, rng: torch.Generator) -> torch.Tensor:
        half = self.options.real_batch // 2
        a = self.attacked_idx[torch.randint(len(self.attacked_idx), (half,), generator=rng)]
        b = self.other_idx[torch.randint(len(self.other_idx), (self.options.real_batch - half,), generator=rng)]
        return torch.cat([a, b])

    def objective(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = self.options.target if self.options.target >= 0 else None
        return attack_objective(self.options.attacked, target)(logits, labels)
