"""Feature regression with an online model pool (after FRePo, Zhou, Nezhadarya & Ba, NeurIPS 2022).

Each step takes one network from a pool (or `nets_per_step` of them, the loss their mean), computes features psi of
the synthetic images and of a real batch, fits a ridge regression from the synthetic features to the synthetic set's
targets in closed form, and scores it on the real batch:

    W = psi_s^T (K_ss + lam I)^-1 Y_s,  K_ss = psi_s psi_s^T      (kernel form: only an n x n solve for n images)
    loss = || psi_t W - onehot(y_t) ||^2 / batch      (or the teacher's softened predictions: real_targets)

Only the synthetic side needs gradients (the real features are constants), so a step costs one forward pass over
the real batch and one forward/backward over the few synthetic images: far cheaper than unrolling training (`dd`)
or matching gradients (`dc`). The pool's networks are trained online on the synthetic set itself (one SGD step for
the network used) and re-initialised after `online_steps` updates, so the features range from random to fitted
(with 0, every network a step uses is a fresh random one: regression on random features, as RFAD's and KIP's are);
the pool is method state, saved in checkpoints so `--resume` stays exact. With `--learn-labels` the targets Y_s are
learned too (stored as probabilities, as every learned label in `distill`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn import functional as F

from distill import parallel
from distill.augment import augmentation_for
from distill.data import Task
from distill.errors import DistillError
from distill.methods.base import Method, Options, check_count, check_positive, register
from distill.models import embed, in_model_order, init_params, no_grad_in_chunks
from distill.synset import SyntheticSet
from distill.teacher import teacher_network
from distill.train import Params, classification_loss


@dataclass(frozen=True)
class FRePoOptions(Options):
    pool_size: int = 10  # networks in the online pool
    online_steps: int = 100  # SGD updates a pool network gets on the synthetic set before it is re-initialised;
    # 0: never trained, a fresh random network every step (random-feature regression, as RFAD's random ConvNets)
    model_lr: float = 0.01  # the pool networks' SGD step size (momentum-free, so a network is just its weights)
    real_batch: int = 256  # real training images the regression is scored on per step
    nets_per_step: int = 1  # distinct pool networks a step scores the regression with (the loss is their mean, on
    # one real batch), each then trained one step: less noise from which network a step draws, at the cost of one
    # more pass over the real batch per network (as a larger real batch costs)
    ridge: float = 1e-6  # ridge strength, relative to the mean diagonal of K_ss
    augment: str = "none"  # "dsa" (the dataset's DSA strategy), "none", or an explicit strategy like "crop_scale"
    loss: str = "mse"  # "mse": squared error of the regression on the real batch (FRePo); "ce": cross-entropy of its
    # outputs times `ce_scale` (RFAD's Platt-scaled loss, with a fixed scale): it stops pushing real images the
    # regression already classifies with a margin, and cross-entropy is what evaluation trains with. Measured worse:
    # MNIST at 1 per class, DSA, 30 CPU minutes: 84.4% against 92.0% with "mse" (benchmarks/run.py)
    ce_scale: float = 10.0
    real_targets: str = "onehot"  # what the regression must predict on the real batch: "onehot", its labels (FRePo),
    # or "teacher", the full-data network's predictions on the same (augmented) batch at `teacher_temperature`
    # (distill.teacher): how alike the classes look to a network that has seen every image, which the set's learned
    # labels and images can then carry ("dark knowledge" inside the distillation, not only blended in afterwards).
    # Measured worse: MNIST at 1 per class, DC augmentation, herding start, 30 CPU minutes: 91.5% against 93.5% with
    # "onehot"; the labels stayed soft (largest probability 0.59-0.90) and validation fell after 750 steps
    # (benchmarks/run.py mnist-frepo-ipc1-dcaug-bf16-herding-teachertargets-cpu30)
    teacher_temperature: float = 4.0
    real_dtype: str = "float32"  # "bfloat16": the real batch's forward pass (the step's main cost: hundreds of images
    # against ten) runs under bfloat16 autocast. Its features only enter the loss as constants, and the synthetic
    # images' gradient keeps a cosine of 0.99999 to the float32 one, while the step takes about half the time on a CPU
    # with bfloat16 instructions (AVX512-BF16, AMX) or on a recent GPU. Where the device lacks them (an AVX2-only
    # CPU emulates bfloat16, 14 times slower a step than float32) the batch runs in float32 with a warning: the
    # option only ever trades speed, never what the set learns

    def check(self, method: str) -> None:
        """Refuse counts below 1 (online_steps below 0), more networks a step than the pool holds, rates,
        strengths and scales that are not positive numbers, and unknown choices, before any data loads or the
        teacher trains."""
        for key, allowed in (("loss", LOSSES), ("real_dtype", REAL_DTYPES), ("real_targets", REAL_TARGETS)):
            value = getattr(self, key)
            if value not in allowed:
                raise DistillError(f"{method}: --opt {key} must be one of {', '.join(allowed)}, got {value!r}")
        for name in ("pool_size", "real_batch"):
            check_count(method, name, getattr(self, name))
        check_count(method, "online_steps", self.online_steps, zero="a fresh random network every step")
        if not 1 <= self.nets_per_step <= self.pool_size:
            raise DistillError(f"{method}: --opt nets_per_step must be between 1 and pool_size "
                               f"({self.pool_size}), got {self.nets_per_step}")
        for name in ("model_lr", "ridge", "ce_scale", "teacher_temperature"):
            check_positive(method, name, getattr(self, name))


@register
class FeatureRegression(Method):
    name = "frepo"
    Options = FRePoOptions
    learns = frozenset({"labels"})  # the regression fits the set's targets, so they can be learned
    parallel = True  # the regression's error is a mean over the real batch: each rank scores its share
    needs_features = True
    # evaluated without augmentation by default (docs/presets.md)
    defaults = {"arch": "convnet", "init": "random", "optimizer": "adam", "lr_images": 0.01, "lr_labels": 0.01,
                "iterations": 2000, "decay_every": 0, "eval_augment": "none", "eval_every": 250}

    def setup(self, task: Task, synset: SyntheticSet, progress: bool = True) -> None:
        super().setup(task, synset, progress)
        self.real_bfloat16 = self.options.real_dtype == "bfloat16" and native_bfloat16(task.train_x.device)
        if self.options.real_dtype == "bfloat16" and not self.real_bfloat16:
            self.effective_options["real_dtype"] = "float32"
            warnings.warn(f"frepo: this {task.train_x.device.type} has no native bfloat16 (it would be emulated, far "
                          "slower than float32), so the real batch runs in float32 (--opt real_dtype=bfloat16 "
                          "only trades speed)", RuntimeWarning, stacklevel=2)
        self.teacher = teacher_network(task, self.config.arch, progress) if self.options.real_targets == "teacher" \
            else None
        self.augment = augmentation_for(self.options.augment, task.spec.name)
        # staggered ages, so the pool always holds networks at every stage of training
        self.pool = [self._fresh(torch.Generator().manual_seed(self.config.seed * 7919 + i))
                     for i in range(self.options.pool_size)]
        self.ages = [i * self.options.online_steps // self.options.pool_size for i in range(self.options.pool_size)]

    def _fresh(self, rng: torch.Generator) -> Params:
        return init_params(self.model, rng, self.config.scheme(), device=self.task.train_x.device)

    def loss(self, synset: SyntheticSet, step: int, rng: torch.Generator) -> torch.Tensor:
        if self.options.nets_per_step == 1:  # the draw every earlier run made, so their sets stay reproducible
            indices = [int(torch.randint(len(self.pool), (1,), generator=rng))]
        else:
            indices = torch.randperm(len(self.pool), generator=rng)[:self.options.nets_per_step].tolist()
        idx = torch.randint(len(self.task.train_x), (self.options.real_batch,),
                            generator=rng).to(self.task.train_x.device)
        idx = parallel.my_part(idx)  # each rank scores the regression on its share of the real batch
        real_x, real_y = self.task.train_x[idx], self.task.train_y[idx]
        syn_x = synset.images
        if self.augment is not None:
            draw = self.augment.draw(rng)
            real_x, syn_x = self.augment.apply(real_x, draw), self.augment.apply(syn_x, draw)
        if self.teacher is not None:
            teacher, teacher_params = self.teacher
            with torch.autocast(real_x.device.type, dtype=torch.bfloat16, enabled=self.real_bfloat16):
                logits = no_grad_in_chunks(lambda x: functional_call(teacher, teacher_params, (x,)), real_x).float()
            real_y = (logits / self.options.teacher_temperature).softmax(1)
        syn_targets = synset.target_probabilities()
        losses = [self._network_loss(self.pool[index], syn_x, syn_targets, real_x, real_y) for index in indices]
        for index in indices:  # every rank trains the same pool members the same way: the pools stay equal
            self._train_pool_member(index, synset, rng)
        return torch.stack(losses).mean() * (len(idx) / self.options.real_batch)

    def _network_loss(self, params: Params, syn_x: torch.Tensor, syn_targets: torch.Tensor, real_x: torch.Tensor,
                      real_y: torch.Tensor) -> torch.Tensor:
        """The regression's error on the real batch in the features of one pool network."""
        with torch.autocast(real_x.device.type, dtype=torch.bfloat16, enabled=self.real_bfloat16):
            real_features = no_grad_in_chunks(lambda x: embed(self.model, params, x), real_x).float()
        syn_features = embed(self.model, params, syn_x)
        return regression_loss(syn_features, syn_targets, real_features, real_y, self.options.ridge,
                               self.options.loss, self.options.ce_scale)

    def _train_pool_member(self, index: int, synset: SyntheticSet, rng: torch.Generator) -> None:
        """One SGD step of pool network `index` on the (detached) synthetic set; a new network once it is old."""
        if self.ages[index] >= self.options.online_steps:
            self.pool[index], self.ages[index] = self._fresh(rng), 0
            return
        current = {k: v.detach().requires_grad_(True) for k, v in self.pool[index].items()}
        x = synset.images.detach()
        if self.augment is not None:
            x = self.augment(x, rng)
        loss = classification_loss(functional_call(self.model, current, (x,)), synset.targets().detach())
        grads = torch.autograd.grad(loss, list(current.values()))
        self.pool[index] = {k: (v - self.options.model_lr * g).detach() for (k, v), g in zip(current.items(), grads)}
        self.ages[index] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The pool, for checkpoints (exact resume)."""
        state = {f"pool.{i}.{k}": v for i, params in enumerate(self.pool) for k, v in params.items()}
        state["ages"] = torch.tensor(self.ages)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.task.train_x.device
        self.ages = [int(a) for a in state["ages"]]
        self.pool = [in_model_order(self.model, state, f"pool.{i}.", device) for i in range(len(self.ages))]


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware, so that `real_dtype="bfloat16"` is a speed-up there: a GPU
    that reports bfloat16 support, a CPU with the instructions oneDNN's bfloat16 kernels need (AVX512 and up). Other
    devices (MPS) are trusted with the user's choice."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # torch's own check (a private op, present since torch 1.x); trust the user's choice if it goes
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return True
    return True


LOSSES = ("mse", "ce")
REAL_DTYPES = ("float32", "bfloat16")
REAL_TARGETS = ("onehot", "teacher")


def regression_loss(syn_features: torch.Tensor, syn_targets: torch.Tensor, real_features: torch.Tensor,
                    real_targets: torch.Tensor, ridge: float, loss: str = "mse",
                    ce_scale: float = 10.0) -> torch.Tensor:
    """The error, on the real batch, of the ridge regression fitted to the synthetic set (kernel form): mean squared
    error against the real targets (class indices [B], taken as one-hot, or probabilities [B, K]), or
    (`loss="ce"`) cross-entropy of the predictions times `ce_scale`."""
    k_ss = syn_features @ syn_features.T
    lam = ridge * k_ss.diagonal().mean().detach().clamp_min(1e-12)
    eye = torch.eye(len(k_ss), device=k_ss.device, dtype=k_ss.dtype)
    alpha = torch.linalg.solve(k_ss + lam * eye, syn_targets)
    predictions = (real_features @ syn_features.T) @ alpha
    if loss == "ce":
        return F.cross_entropy(ce_scale * predictions, real_targets)
    if real_targets.ndim == 1:
        real_targets = F.one_hot(real_targets, syn_targets.shape[1])
    return ((predictions - real_targets.to(predictions.dtype)) ** 2).sum(1).mean()
