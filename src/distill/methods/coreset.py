"""Coreset baselines as methods: `random`, `herding` and `k-center` pick real training images instead of learning
new ones, and are saved in the same artifact format, so every distilled set can be compared with them on equal terms.

Herding and k-center work in the feature space of a network trained on the whole training split (the `arch` of the
run, cached on disk), as in the DC paper's baselines. There is nothing to optimise, so the loop does not run.
"""

from __future__ import annotations

import torch

from distill.coreset import select
from distill.data import Task
from distill.methods import register_method
from distill.models import create_model, embed, no_grad_in_chunks
from distill.synset import SyntheticSet
from distill.train import full_data_config, trained_network


class CoresetSelection:
    learns_schedule = False
    selects = True  # the API calls `pick` instead of running the loop
    name = ""

    def __init__(self, config):
        self.config = config

    def features(self, task: Task, progress: bool = True) -> torch.Tensor:
        if self.name == "random":
            return task.train_x.flatten(1)
        arch = self.config.arch
        params = trained_network(task, arch, seed=0, config=full_data_config(arch), progress=progress)
        model = create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device)
        return no_grad_in_chunks(lambda x: embed(model, params, x), task.train_x)

    def pick(self, task: Task, synset: SyntheticSet, generator: torch.Generator, progress: bool = True) -> None:
        """Replace the set's images with the selected real ones (class by class, `ipc` each)."""
        idx = select(self.name, self.features(task, progress), task.train_y, int(synset.meta["ipc"]), generator)
        with torch.no_grad():
            synset.images.copy_(task.train_x[idx.to(task.train_x.device)])
            synset.labels.copy_(task.train_y[idx.to(task.train_y.device)])

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:  # noqa: D102 - nothing to prepare
        pass

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        raise RuntimeError("coreset methods select images; they have no loss to optimise")


for _name in ("random", "herding", "kcenter"):
    register_method(_name)(type(f"{_name.title()}Coreset", (CoresetSelection,), {"name": _name}))
