"""Soft labels from a teacher: blend the full-data network's predictions on the synthetic images into their labels.

Why: ten images say nothing about how the classes resemble each other, and a network trained on them alone learns
only "this picture is a 3". The network trained on the whole training split knows more: that this 3 is a little
like an 8 ("dark knowledge", Hinton, Vinyals & Dean 2015). Its predictions, softened by a temperature, carry that
into the labels, and the set stays a plain file of images and probabilities that any training code can use.

Blending rather than replacing keeps the set's own label dominant. On the MNIST 1-per-class preset set, blends of
half the learned label with the teacher at temperature 2 or 4, or a quarter at 2, gave 94.2-94.3% against 93.5% as
distilled and 94.0% with the teacher alone, while the learned labels smoothed towards uniform as much as the chosen
blend gave 93.2%: the teacher's knowledge helps, not mere softness
(benchmarks/results/teacher-sweep-mnist-frepo-ipc1.json; validation chooses). On the Fashion-MNIST `frepo` sets
every blend did harm, both on the one distilled from random picks, whose boot the teacher calls a sneaker, and on
the preset's, distilled from the herding picks, whose ten classes it names right (validation 79.1% as distilled,
72.2-76.7% blended), so whether to use it is a per-set choice (experiments/teacher_sweep.py makes it on the
validation split; the presets take its choice, presets.TEACHER_BLENDS). On the DC, DM and DSA sets at 1 per class it
chose half the teacher at temperature 4 every time, worth 1.5 to 2.5 points on MNIST and 0.2 and 0.8 on
Fashion-MNIST; at 10 per class, 0.2 (MNIST MTT) and 0.6 (Fashion-MNIST DSA). The teacher is the network the
full-data baseline and the herding start already train (cached on disk).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from distill.data import Task
from distill.errors import DistillError
from distill.models import create_model, no_grad_in_chunks
from distill.synset import SyntheticSet, check_not_poison
from distill.train import Params, full_data_config, trained_network


def check_teacher_options(weight: float, temperature: float) -> None:
    """Reject a blend outside [0, 1] or a non-positive temperature with a message the user can act on."""
    if not 0 <= weight <= 1:
        raise DistillError(f"--teacher-labels (the teacher's share of each label) must be in [0, 1], got {weight}")
    if not temperature > 0:
        raise DistillError(f"--teacher-temperature must be positive, got {temperature}")


def teacher_network(task: Task, arch: str, progress: bool = True) -> tuple[torch.nn.Module, Params]:
    """The teacher: the network of `arch` trained on the whole training split (the full-data baseline's, cached on
    disk, so it is trained at most once), as a module and its parameters for `functional_call`."""
    params = trained_network(task, arch, seed=0, config=full_data_config(arch), progress=progress)
    return create_model(arch, task.image_shape, task.num_classes).to(task.train_x.device), params


def teacher_probabilities(synset: SyntheticSet, task: Task, temperature: float, progress: bool = True) -> torch.Tensor:
    """The full-data network's class probabilities [N, K] for the set's images, at `temperature`."""
    model, params = teacher_network(task, synset.meta["arch"], progress)
    images = synset.images.detach().to(task.train_x.device)
    logits = no_grad_in_chunks(lambda x: functional_call(model, params, (x,)), images)
    return (logits / temperature).softmax(1).to(synset.images.device)


def check_not_blended(synset: SyntheticSet) -> None:
    """Refuse a set the teacher must not relabel: one whose labels already hold teacher predictions (blending again
    would count the teacher twice), or a poison, whose labels are the attack (`distill relabel` and the blend of a
    run both check here, the former before the data is read)."""
    check_not_poison(synset, "the teacher's labels would undo the attack and make no set to train on")
    if "teacher_labels" in synset.meta:
        raise DistillError(f"this set's labels already hold teacher predictions ({synset.meta['teacher_labels']}); "
                           "blend the set as distilled instead, so the teacher is not counted twice")


def with_teacher_labels(synset: SyntheticSet, task: Task, weight: float, temperature: float,
                        progress: bool = True) -> SyntheticSet:
    """A copy of `synset` whose labels are `(1 - weight) * its labels + weight * teacher probabilities` (soft
    labels, probabilities, as every soft label in `distill`). The meta records the blend; measured results the set
    carried are dropped, since they describe the labels before it."""
    check_teacher_options(weight, temperature)
    check_not_blended(synset)
    own = synset.target_probabilities().detach()
    blended = (1 - weight) * own + weight * teacher_probabilities(synset, task, temperature, progress)
    meta = {**{k: v for k, v in synset.meta.items() if k != "results"},
            "teacher_labels": {"weight": weight, "temperature": temperature}}
    return SyntheticSet(synset.images.detach().clone(), blended, meta, synset.step, synset.log_lrs,
                        synset.init_params, dict(synset.extra), zca=synset.zca)
