"""The network registry: every network runs under functional_call with parameters from init_params, on MNIST- and
CIFAR-shaped images, lets gradients reach every parameter, holds no buffers, and refuses images it cannot use."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from distill import models
from distill.errors import DistillError
from distill.models import DEFAULT_INIT, MODELS, create_model, init_params, no_grad_in_chunks

ARCHS = ("mlp", "lenet", "convnet", "convnet_dc", "alexnet", "alexcifarnet", "vgg11", "resnet18")
SHAPES = ((1, 28, 28), (3, 32, 32))


def fresh(arch: str, shape: tuple[int, int, int], seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    model = create_model(arch, shape, 10)
    params = init_params(model, torch.Generator().manual_seed(seed), DEFAULT_INIT[arch])
    return model, params


def test_registry_has_cross_architecture_networks():
    assert set(ARCHS) <= set(MODELS)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch", ARCHS)
def test_functional_call_logits_and_gradients(arch, shape):
    torch.manual_seed(0)
    model, params = fresh(arch, shape)
    assert list(model.buffers()) == []
    params = {name: p.requires_grad_() for name, p in params.items()}
    x = torch.randn(3, *shape)
    logits = functional_call(model, params, (x,))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    grads = torch.autograd.grad(loss, list(params.values()))
    for name, grad in zip(params, grads):
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_init_params_is_reproducible_per_seed(arch):
    model, first = fresh(arch, (1, 16, 16), seed=1)
    _, again = fresh(arch, (1, 16, 16), seed=1)
    _, other = fresh(arch, (1, 16, 16), seed=2)
    assert first.keys() == dict(model.named_parameters()).keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_init_params_draws_on_the_generator_then_moves_to_the_device():
    model, drawn = fresh("convnet", (1, 16, 16), seed=3)
    moved = init_params(model, torch.Generator().manual_seed(3), DEFAULT_INIT["convnet"], device="meta")
    assert moved.keys() == drawn.keys()
    assert all(v.device.type == "meta" and v.shape == drawn[k].shape for k, v in moved.items())
    on_cpu = init_params(model, torch.Generator().manual_seed(3), DEFAULT_INIT["convnet"], device="cpu")
    assert all(torch.equal(on_cpu[k], drawn[k]) for k in drawn)


@pytest.mark.parametrize("arch", ("alexnet", "vgg11", "resnet18"))
def test_embed_is_the_input_of_the_classifier(arch):
    model = create_model(arch, (1, 16, 16), 10)
    x = torch.randn(2, 1, 16, 16)
    features = model.embed(x)
    assert features.shape == (2, model.classifier.in_features)
    assert torch.allclose(model.classifier(features), model(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_chunked_forward_gives_the_one_pass_outputs(arch, monkeypatch):
    """Every network normalises each image on its own, so test accuracy, feature regression and herding may run
    their gradient-free batches in chunks (a CPU speed-up) without changing a number; batch statistics would not."""
    monkeypatch.setattr(models, "CPU_NO_GRAD_CHUNK", 4)
    model, params = fresh(arch, (1, 28, 28))
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    x = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))  # chunks of 4, 4 and 2
    chunked = no_grad_in_chunks(lambda batch: functional_call(model, params, (batch,)), x)
    one_pass = functional_call(model, params, (x,))
    assert not chunked.requires_grad
    assert chunked.shape == one_pass.shape
    torch.testing.assert_close(chunked, one_pass.detach(), rtol=1e-5, atol=1e-6)  # matmul blocking: last bits


@pytest.mark.parametrize("arch", ("alexnet", "vgg11"))
def test_small_digits_images_still_fit(arch):
    model, params = fresh(arch, (1, 8, 8))
    assert functional_call(model, params, (torch.randn(2, 1, 8, 8),)).shape == (2, 10)


@pytest.mark.parametrize(
    ("arch", "shape", "message"),
    [
        ("alexnet", (3, 7, 7), "alexnet needs 3-channel images of at least 8x8; got 7x7"),
        ("alexnet", (1, 3, 3), "alexnet needs 1-channel images of at least 4x4; got 3x3"),
        ("vgg11", (3, 1, 1), "vgg11 needs images of at least 2x2; got 1x1"),
        ("resnet18", (1, 8, 8), "resnet18 needs images larger than 8x8"),
    ],
)
def test_too_small_images_are_refused_clearly(arch, shape, message):
    with pytest.raises(DistillError, match=message.replace("(", r"\(")):
        create_model(arch, shape, 10)


def test_convnet_dc_pads_only_mnist_sized_images_as_the_dc_code_does():
    """On 28x28 one-channel images the DC code's ConvNet pads its first convolution by 3 (maps 32-16-8-4); on every
    other shape it is GUIDE's ConvNet, parameter for parameter."""
    dc, plain = create_model("convnet_dc", (1, 28, 28), 10), create_model("convnet", (1, 28, 28), 10)
    assert dc.features[0].padding == (3, 3) and dc.classifier.in_features == 128 * 4 * 4
    assert plain.features[0].padding == (1, 1) and plain.classifier.in_features == 128 * 3 * 3
    for shape in ((3, 32, 32), (1, 16, 16), (1, 8, 8)):
        same = [p.shape for p in create_model("convnet_dc", shape, 10).parameters()]
        assert same == [p.shape for p in create_model("convnet", shape, 10).parameters()], shape


def test_convnet_dc_exposes_features_to_the_methods_that_compare_them():
    from distill.config import DistillConfig

    DistillConfig(dataset="mnist", method="frepo", arch="convnet_dc", init="random").validate()
