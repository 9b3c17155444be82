"""Dataset Condensation with gradient matching (Zhao, Mopuri & Bilen, ICLR 2021).

The synthetic images of class c should produce the same training gradient as real images of class c:

    loss = sum_c D( grad_theta CE(f_theta(x_real_c), c),  grad_theta CE(f_theta(x_syn_c), c) )

with D the layer-wise distance of the paper: for every weight tensor, reshaped to [out, rest], the sum over output
units of (1 - cosine similarity); biases and normalisation parameters are left out. The network theta follows a
trajectory of its own: a fresh network every `outer_loop` steps, trained for `inner_loop` epochs on the current
synthetic set between two updates of the images (the paper's inner and outer loops).

One outer-loop step of the paper is one step of our loop, so the loop (optimiser, decay, checkpoints, validation)
stays the shared one. The network between steps is state of this method, checkpointed with the set
(`state_dict`), so a run resumed at any step goes on with the network an uninterrupted run has there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn import functional as F

from distill import parallel
from distill.augment import augmentation_for
from distill.data import Task
from distill.methods.base import ClassSampler, Method, Options, check_count, check_positive, register
from distill.models import in_model_order, init_params
from distill.synset import SyntheticSet
from distill.train import SGDConfig, train_sgd

# The paper's loop lengths per images-per-class: (outer_loop, inner_loop).
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass(frozen=True)
class DCOptions(Options):
    real_batch: int = 256  # real images per class per step
    outer_loop: int = 0  # 0: the paper's value for this ipc (LOOPS)
    inner_loop: int = 0  # 0: the paper's value for this ipc
    lr_net: float = 0.01  # SGD step size of the network trained between image updates
    train_batch: int = 256
    augment: str = "none"  # "dsa": siamese augmentation (that is the `dsa` method), "none", or a strategy string

    def check(self, method: str) -> None:
        """Refuse counts below 1 (the loop lengths may be 0, the paper's value) and a step size that is not a
        positive number, before any data loads."""
        check_count(method, "real_batch", self.real_batch)
        check_count(method, "outer_loop", self.outer_loop, zero="the paper's value for this ipc")
        check_count(method, "inner_loop", self.inner_loop, zero="the paper's value for this ipc")
        check_positive(method, "lr_net", self.lr_net)
        check_count(method, "train_batch", self.train_batch)


def gradient_distance(real: list[torch.Tensor], syn: list[torch.Tensor]) -> torch.Tensor:
    """The paper's layer-wise distance: per output unit, 1 - cos(real gradient, synthetic gradient); 1-D tensors
    (biases, normalisation) are skipped, as in the original."""
    total = syn[0].sum() * 0
    for g_real, g_syn in zip(real, syn):
        if g_real.ndim == 1:
            continue
        a, b = g_real.flatten(1), g_syn.flatten(1)
        cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
        total = total + (1 - cosine).sum()
    return total


@register
class GradientMatching(Method):
    name = "dc"
    Options = DCOptions
    parallel = True  # a sum over classes: each rank matches its share of them (the network trains on every rank)
    defaults = {"arch": "convnet", "init": "random", "optimizer": "sgd", "lr_images": 0.1, "momentum": 0.5,
                "iterations": 1000, "decay_every": 0, "eval_augment": "none", "eval_every": 100}
    # DC's code evaluates MNIST sets with its own augmentation (docs/presets.md)
    dataset_defaults = {"mnist": {"eval_augment": "dc", "eval_epochs": 0}}
    params: dict | None = None  # the network carried from step to step within an outer loop

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        self.sample = ClassSampler(task)
        self.augment = augmentation_for(self.options.augment, task.spec.name)
        self.labels = synset.hard_labels()
        ipc = int(synset.meta["ipc"])
        default_outer, default_inner = LOOPS.get(ipc, (10, 50) if ipc >= 10 else (1, 1))
        self.outer_loop = self.options.outer_loop or default_outer
        self.inner_loop = self.options.inner_loop or default_inner

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network carried from step to step within an outer loop, for checkpoints (exact resume)."""
        return {} if self.params is None else {f"net.{k}": v.detach() for k, v in self.params.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Put the checkpointed network back, in the network's own parameter order (the loss sums layer by layer,
        so another order would round differently). A checkpoint without one starts a fresh network, as before."""
        self.params = in_model_order(self.model, state, "net.", self.task.train_x.device) if state else None

    def _network_for(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> dict:
        """A fresh network at the start of each outer loop; otherwise the current one after `inner_loop` more epochs
        on the synthetic set (as it is after the previous step's update)."""
        if step % self.outer_loop == 0 or self.params is None:
            device = synset.images.device
            self.params = init_params(self.model, rng, self.config.scheme(), device=device)
            return self.params
        sgd = SGDConfig(epochs=self.inner_loop, batch_size=self.options.train_batch, lr=self.options.lr_net,
                        momentum=0.0, weight_decay=0.0, decay_at_half=False)
        self.params = train_sgd(self.model, self.params, synset.images.detach(), self.labels, sgd, rng,
                                augment=self.augment)
        return self.params

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        params = self._network_for(synset, step, rng)
        weights = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        names = list(weights)
        total = synset.images.sum() * 0
        mine = parallel.share(self.task.num_classes)  # every rank draws for every class, and matches its own
        for c in range(self.task.num_classes):
            real = self.sample(c, self.options.real_batch, rng)
            syn = synset.images[self.labels == c]
            draw = self.augment.draw(rng) if self.augment is not None else None
            if c not in mine:
                continue
            if draw is not None:
                real, syn = self.augment.apply(real, draw), self.augment.apply(syn, draw)
            target_real = torch.full((len(real),), c, device=real.device)
            target_syn = torch.full((len(syn),), c, device=syn.device)
            g_real = torch.autograd.grad(F.cross_entropy(functional_call(self.model, weights, (real,)), target_real),
                                         [weights[k] for k in names])
            g_syn = torch.autograd.grad(F.cross_entropy(functional_call(self.model, weights, (syn,)), target_syn),
                                        [weights[k] for k in names], create_graph=True)
            total = total + gradient_distance([g.detach() for g in g_real], list(g_syn))
        return total
