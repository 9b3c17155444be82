"""Coreset baselines: `random`, `herding` and `k-center` pick real training images instead of learning new ones,
and are saved in the same artifact format, so every distilled set can be compared with them on equal terms.

Herding and k-center work in the feature space of a network trained on the whole training split (the `arch` of the
run, cached on disk), as in the DC paper's baselines. There is nothing to optimise, so the loop does not run.
"""

from __future__ import annotations

import torch

from distill.coreset import select
from distill.data import Task
from distill.methods.base import Selector, register
from distill.models import create_model, embed, no_grad_in_chunks
from distill.synset import SyntheticSet
from distill.train import full_data_config, trained_network


class CoresetSelector(Selector):
    defaults = {"arch": "convnet", "init": "random", "iterations": 1, "eval_augment": "none"}

    def features(self, task: Task, progress: bool = True) -> torch.Tensor:
        """What the selection compares: the pixels (random, which ignores them) or the full-data network's
        features."""
        if not self.needs_features:
            return task.train_x.flatten(1)
        arch = self.config.arch
        params = trained_network(task, arch, seed=0, config=full_data_config(arch), progress=progress)
        model = create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device)
        return no_grad_in_chunks(lambda x: embed(model, params, x), task.train_x)

    def select(self, task: Task, synset: SyntheticSet, generator: torch.Generator, progress: bool = True) -> None:
        """Replace the set's images with the selected real ones (class by class, `ipc` each)."""
        idx = select(self.name, self.features(task, progress), task.train_y, int(synset.meta["ipc"]), generator)
        with torch.no_grad():
            synset.images.copy_(task.train_x[idx.to(task.train_x.device)])
            synset.labels.copy_(task.train_y[idx.to(task.train_y.device)])


@register
class RandomCoreset(CoresetSelector):
    name = "random"


@register
class HerdingCoreset(CoresetSelector):
    name = "herding"
    needs_features = True


@register
class KcenterCoreset(CoresetSelector):
    name = "kcenter"
    needs_features = True
