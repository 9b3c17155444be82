"""Dataset distillation through the standard protocol itself: the original hypergradient (Wang et al. 2018, as in
`dd`), with the inner training being exactly the one every set in `distill` is evaluated with (GUIDE §5).

    loss(images, labels) = CE( f(theta_T, real_x), real_y ),   theta_T = train_sgd(theta_0, images, labels)

theta_0 is a fresh random network every step and `train_sgd` the evaluation's own SGD (momentum 0.9, weight decay,
the step decay at half the epochs, 300 epochs or `--eval-epochs`), unrolled with a graph. So the loss is, up to the
draw of the network and of the real batch, the very quantity the standard protocol's test accuracy estimates: no
proxy (regression, matched gradients or trajectories) stands between the set and what it is judged by.

The price is time: every epoch of every evaluation step is back-propagated through. Memory stays small because
`train_sgd(checkpoint=True)` keeps only each epoch's weights and momenta and recomputes the epoch's graph on the way
back, so sets evaluated with augmentation for 1,000 epochs (MNIST's DC augmentation) are distilled through exactly
that augmented training, each step's draws replayed. On two CPU threads a step at one image per class (ConvNet)
takes about 40 s for 300 plain epochs and two minutes for 1,000 augmented ones, in under 5 GB. So the method is a
final stage, started from a set another method distilled (`--image-init path/to/set.safetensors`), and it learns the
labels the evaluation trains with (`--learn-labels`), which a regression's targets are not.

`--opt through=recipes` trains through a different recipe every step instead of the run's own: one of the standard
recipes (`distill eval --recipes`) on one of the two ConvNets, drawn at random. A set is then pushed towards doing well
under each of them, which is what a user with their own standard recipe needs; `--validation worst` keeps the step
whose worst recipe scores best on the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from distill import parallel
from distill.augment import augmentation_for
from distill.data import Task
from distill.errors import DistillError
from distill.evaluate import RECIPE_ARCHS, standard_recipes, standard_sgd
from distill.methods.base import Method, Options, check_count, register
from distill.models import create_model, init_params
from distill.synset import SyntheticSet
from distill.train import classification_loss, train_sgd


@dataclass(frozen=True)
class UnrollOptions(Options):
    real_batch: int = 512  # real images the trained network is scored on per outer step
    through: str = "evaluation"  # train through the run's evaluation (its augmentation and epochs) every step, or
    # "recipes": through a standard recipe on one of the two ConvNets, drawn anew every step

    def check(self, method: str) -> None:
        """Refuse a real batch below 1, or an unknown `through`, before any data loads."""
        check_count(method, "real_batch", self.real_batch)
        if self.through not in ("evaluation", "recipes"):
            raise DistillError(f"{method}: --opt through must be 'evaluation' or 'recipes', got {self.through!r}")


@register
class StandardProtocolUnroll(Method):
    name = "unroll"
    Options = UnrollOptions
    learns = frozenset({"labels"})  # the unrolled training fits the set's targets, the labels evaluation trains with
    trains_through_evaluation = True
    parallel = True  # the outer loss is a mean over the real batch: each rank scores its share
    # a final stage (`--image-init SET`): about 40 s a step on two CPU threads, so few steps, each validated as
    # evaluation trains; on MNIST through DC's augmentation for 1,000 epochs, as its start sets are evaluated
    defaults = {"arch": "convnet", "init": "random", "optimizer": "adam", "lr_images": 0.003, "learn_labels": True,
                "lr_labels": 0.03, "iterations": 60, "decay_every": 0, "eval_augment": "none", "eval_every": 10,
                "validation": "standard"}
    dataset_defaults = {"mnist": {"eval_augment": "dc", "eval_epochs": 0, "iterations": 50}}

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        # (network, augmentation, training) to train through: the run's own, or every standard recipe on each ConvNet
        if self.options.through == "recipes":
            device = task.train_x.device
            models = {arch: create_model(arch, task.image_shape, task.num_classes).to(device) for arch in RECIPE_ARCHS}
            self.ways = [(models[arch], augmentation_for(recipe.augment, task.spec.name),
                          standard_sgd(augment=recipe.augment, epochs=recipe.epochs))
                         for arch in RECIPE_ARCHS for recipe in standard_recipes(synset)]
        else:
            self.ways = [(self.model, augmentation_for(self.config.eval_augment, task.spec.name),
                          standard_sgd(augment=self.config.eval_augment, epochs=self.config.eval_epochs))]

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        device = self.task.train_x.device
        way = 0 if len(self.ways) == 1 else int(torch.randint(len(self.ways), (1,), generator=rng))
        model, augment, sgd = self.ways[way]  # one way: no draw, the stream every committed unroll set was made with
        start = init_params(model, rng, self.config.scheme(), device=device)
        trained = train_sgd(model, start, synset.images, synset.targets(), sgd, rng, augment=augment,
                            create_graph=True, checkpoint=True)
        whole = torch.randint(len(self.task.train_x), (self.options.real_batch,), generator=rng).to(device)
        idx = parallel.my_part(whole)  # under torch.distributed each rank scores its share of the real batch
        logits = functional_call(model, trained, (self.task.train_x[idx],))
        return classification_loss(logits, self.task.train_y[idx]) * (len(idx) / len(whole))
