"""Distill scikit-learn's 8x8 digits into 10 images (fixed-init LeNet, original Dataset Distillation) and report
validation and test accuracy of the network trained on them. Runs in well under a minute on 2 CPU cores."""

import math

import torch

from distill.data import load_task
from distill.loop import LoopConfig, run_loop
from distill.methods.dd import DatasetDistillation
from distill.models import create_model, init_params
from distill.synset import SyntheticSet
from distill.train import accuracy, unroll_schedule

torch.manual_seed(0)
task = load_task("digits")
steps, epochs = 1, 3
model = create_model("lenet", task.image_shape, task.num_classes)
init = init_params(model, torch.Generator().manual_seed(1), "xavier")
labels = torch.arange(task.num_classes)
images = torch.stack([task.train_x[task.train_y == c][0] for c in labels.tolist()]).clone().requires_grad_(True)
meta = {"dataset": "digits", "num_classes": 10, "image_shape": list(task.image_shape), "mean": list(task.spec.mean),
        "std": list(task.spec.std), "method": "dd", "arch": "lenet", "ipc": 1, "steps": steps, "epochs": epochs,
        "init": "fixed"}
synset = SyntheticSet(images, labels, meta, torch.zeros(10, dtype=torch.long),
                      torch.full((steps * epochs,), math.log(0.02)).requires_grad_(True), init)
method = DatasetDistillation("lenet", "fixed", "xavier", real_batch=512)
method.setup(task, synset)


def trained(s):
    return unroll_schedule(model, s.init_params, s.images.detach(), s.labels, s.step, s.lrs.detach(), steps, epochs,
                           create_graph=False)


run_loop(method, synset, LoopConfig(iterations=1500, lr_images=0.05, eval_every=100),
         validate=lambda s: accuracy(model, trained(s), task.val_x, task.val_y))
params = trained(synset)
print(f"untrained test accuracy: {accuracy(model, init, task.test_x, task.test_y):.2%}")
print(f"10 distilled images, test accuracy: {accuracy(model, params, task.test_x, task.test_y):.2%}")
