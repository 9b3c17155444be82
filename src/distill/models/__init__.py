"""Network registry (one name per architecture) and weight initialisation that takes an explicit RNG.

Every network here is a plain `nn.Module` without running statistics, so `torch.func.functional_call` can run it
with any parameter dictionary: the distillation methods unroll training on tensors, never on module state.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from distill.errors import DistillError

ModelFactory = Callable[[tuple[int, int, int], int], nn.Module]
MODELS: dict[str, ModelFactory] = {}
DEFAULT_INIT: dict[str, str] = {}


def register_model(name: str, default_init: str = "default") -> Callable[[ModelFactory], ModelFactory]:
    """Add a network factory `(image_shape, num_classes) -> nn.Module` to the registry under `name`."""

    def add(factory: ModelFactory) -> ModelFactory:
        MODELS[name] = factory
        DEFAULT_INIT[name] = default_init
        return factory

    return add


def create_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the network called `name` for images of `image_shape` (C, H, W) and `num_classes` outputs."""
    key = name.lower()
    if key not in MODELS:
        raise DistillError(f"unknown network {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[key](tuple(image_shape), num_classes)


INIT_SCHEMES = ("default", "xavier", "kaiming")


def init_params(model: nn.Module, generator: torch.Generator, scheme: str = "default",
                device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Fresh parameters for `model` drawn from `generator`, as a name -> tensor dict for functional_call.

    'default' reproduces PyTorch's own layer initialisation (kaiming-uniform with a=sqrt(5), fan-in uniform bias),
    'xavier' is Glorot-normal with zero bias (the original Dataset Distillation code), 'kaiming' is He-normal.
    Normalisation layers start at weight 1, bias 0. Drawing from an explicit generator keeps runs reproducible and
    resumable without touching the global RNG. The tensors are made on the generator's device (the CPU for the
    generators this project seeds), so a seed gives the same network on any machine, and then moved to `device`
    when one is given.
    """
    if scheme not in INIT_SCHEMES:
        raise DistillError(f"unknown initialiser {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}")
    params: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        prefix = f"{module_name}." if module_name else ""
        weight, bias = own.get("weight"), own.get("bias")
        is_norm = isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d))
        if weight is not None:
            new = torch.empty_like(weight, device=generator.device)
            if is_norm:
                new.fill_(1.0)
            elif scheme == "xavier":
                nn.init.xavier_normal_(new, generator=generator)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(new, nonlinearity="relu", generator=generator)
            else:
                nn.init.kaiming_uniform_(new, a=math.sqrt(5), generator=generator)
            params[prefix + "weight"] = new
        if bias is not None:
            new = torch.zeros_like(bias, device=generator.device)
            if scheme == "default" and not is_norm and weight is not None:
                fan_in = weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                new.uniform_(-bound, bound, generator=generator)
            params[prefix + "bias"] = new
    missing = set(dict(model.named_parameters())) - set(params)
    if missing:
        raise RuntimeError(f"init_params does not know how to initialise {sorted(missing)}")
    if device is not None:
        params = {name: value.to(device) for name, value in params.items()}
    return params


class _Embedder(nn.Module):
    """Runs a network's `embed` (features before the classifier) as its forward, under the same parameter names."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x).flatten(1)


def embed(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The features `model` computes for `x` with `params`: what distribution matching and herding compare."""
    if not hasattr(model, "_distill_embedder"):
        object.__setattr__(model, "_distill_embedder", _Embedder(model))
    wrapped = {f"net.{k}": v for k, v in params.items()}
    return torch.func.functional_call(model._distill_embedder, wrapped, (x,))


# Images per forward pass when the outputs need no gradient. Every network here normalises each image on its own (no
# batch statistics), so chunks give the same outputs as one pass (the ConvNet's to the bit; a linear layer's matrix
# product may round its last bit differently for another number of rows). On the CPU small chunks are faster:
# the activations of a few dozen images stay in cache, those of a thousand go through memory. One thread, the
# frepo presets at 1 per class: a Fashion-MNIST step (512 real images) 0.70 s in chunks of 32 against 0.93 s in
# one pass, an MNIST step (1,024) 1.39 s against 1.83 s (experiments/profile_step.py, --no-grad-chunk 1024 for one
# pass). A GPU wants large batches: there the chunks only bound memory.
CPU_NO_GRAD_CHUNK = 32
GPU_NO_GRAD_CHUNK = 2048


def no_grad_in_chunks(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`forward(x)` without gradients, a chunk of images at a time: for outputs that are constants (test accuracy,
    the real batch's features and teacher predictions in feature regression, the real class means in distribution
    matching, the training set's features for herding, the teacher's labels for a set)."""
    chunk = CPU_NO_GRAD_CHUNK if x.device.type == "cpu" else GPU_NO_GRAD_CHUNK
    with torch.no_grad():
        return torch.cat([forward(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def in_model_order(model: nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "",
                   device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """`model`'s parameters taken from `tensors` (keyed `prefix` + name, as a checkpoint or cache file stores them,
    which safetensors hands back sorted by name), in the network's own order: the order a freshly made parameter
    dict has, so that sums over the parameters round alike whether the network was trained here or read back."""
    return {name: tensors[prefix + name].to(device) for name, _ in model.named_parameters()}


def model_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """The module's current parameters as a detached name -> tensor dict."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


from distill.models import alexnet, convnet, lenet, mlp, resnet, vgg  # noqa: E402,F401  (registers the networks)
