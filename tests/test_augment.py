"""Differentiable siamese augmentation: shapes, shared draws, reproducibility, gradients, and each op's meaning."""

import dataclasses
import math

import pytest
import torch

from distill.augment import (DEFAULT_STRATEGY, DSA, AugmentParams, augment_option, augmentation_for, augmentation_label,
                             parse_strategy, strategy_for)
from distill.errors import DistillError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 32, 32)])
@pytest.mark.parametrize("one_op", [True, False])
def test_shapes_kept(shape, one_op):
    x = torch.randn(shape, generator=_gen(0))
    dsa = DSA(DEFAULT_STRATEGY, one_op=one_op)
    for seed in range(6):
        assert dsa(x, _gen(seed)).shape == x.shape


def test_siamese_same_params_same_transform_for_any_batch_size():
    a = torch.randn(2, 3, 32, 32, generator=_gen(1))
    b = torch.cat([a[:1], torch.randn(5, 3, 32, 32, generator=_gen(2))])
    for one_op in (True, False):
        dsa = DSA(DEFAULT_STRATEGY, one_op=one_op)
        for seed in range(4):
            params = dsa.draw(_gen(seed))
            assert torch.allclose(dsa.apply(a, params)[0], dsa.apply(b, params)[0], atol=1e-6)


def test_generator_alone_decides():
    x = torch.randn(2, 3, 32, 32, generator=_gen(3))
    dsa = DSA(DEFAULT_STRATEGY, one_op=False)
    torch.manual_seed(0)
    first = dsa(x, _gen(11))
    torch.manual_seed(1)  # the global RNG must not matter
    assert torch.equal(first, dsa(x, _gen(11)))
    assert any(not torch.allclose(first, dsa(x, _gen(s))) for s in range(12, 16))


def test_gradient_reaches_pixels():
    x = torch.randn(2, 3, 16, 16, generator=_gen(4), requires_grad=True)
    DSA(DEFAULT_STRATEGY, one_op=False)(x, _gen(5)).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_flip_mirrors_when_drawn():
    x = torch.randn(2, 1, 8, 8, generator=_gen(6))
    dsa = DSA("flip", one_op=False)
    flipped = [s for s in range(10) if dsa.draw(_gen(s)).flip]
    assert flipped and len(flipped) < 10
    assert torch.equal(dsa.apply(x, dsa.draw(_gen(flipped[0]))), x.flip(-1))


def test_training_calls_draw_per_image():
    """`dsa(x, g)` (what network training calls) gives every image its own parameters, as DSA's non-siamese
    DiffAugment does; a shared draw transforms identical images identically."""
    x = torch.randn(1, 1, 16, 16, generator=_gen(8)).expand(6, 1, 16, 16)
    dsa = DSA("rotate")
    per_image = dsa(x, _gen(9))
    assert not torch.allclose(per_image[0], per_image[1], atol=1e-3)
    shared = dsa.apply(x, dsa.draw(_gen(9)))
    assert all(torch.allclose(shared[0], shared[i]) for i in range(6))


def test_per_image_draw_is_each_images_own_transform():
    x = torch.randn(4, 3, 16, 16, generator=_gen(10))
    dsa = DSA(DEFAULT_STRATEGY, one_op=False)
    params = dsa.draw(_gen(11), images=4)
    together = dsa.apply(x, params)
    for i in range(4):
        own = AugmentParams(ops=params.ops, **{name: getattr(params, name)[i : i + 1] for name in (
            "brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "angle")})
        assert torch.allclose(dsa.apply(x[i : i + 1], own), together[i : i + 1], atol=1e-6)


def test_strategy_for_digits_has_no_flip():
    assert "flip" not in parse_strategy(strategy_for("mnist"))
    assert "flip" not in parse_strategy(strategy_for("digits"))
    assert "flip" in parse_strategy(strategy_for("cifar10"))
    assert "flip" in parse_strategy(strategy_for("fashion-mnist"))


def test_parse_strategy():
    assert parse_strategy("color_crop_cutout") == ["color", "crop", "cutout"]
    assert parse_strategy("") == [] and parse_strategy("none") == []
    with pytest.raises(DistillError, match="valid operations"):
        parse_strategy("color_zoom")
    with pytest.raises(DistillError):
        DSA("color_zoom")


def test_crop_keeps_constant_interior():
    x = torch.full((2, 1, 16, 16), 3.0)
    dsa = DSA("crop", one_op=False)
    for seed in range(5):
        y = dsa(x, _gen(seed))
        assert torch.allclose(y[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2], atol=1e-5)


def test_cutout_zeros_a_square():
    x = torch.ones(1, 1, 16, 16)
    y = DSA("cutout")(x, _gen(0))
    assert 0 < (y == 0).sum() <= 64 and ((y == 0) | (y == 1)).all()


def test_zero_rotation_is_identity():
    x = torch.randn(2, 3, 32, 32, generator=_gen(7))
    assert torch.allclose(DSA("rotate").apply(x, AugmentParams(ops=("rotate",), angle=0.0)), x, atol=1e-5)


def test_dc_augmentation_gives_each_image_one_of_its_operations():
    """DC's MNIST evaluation augmentation: crop, scale or rotate, chosen per image, rotations up to 45 degrees."""
    dc = augmentation_for("dc", "mnist")
    assert dc.ops == ["crop", "scale", "rotate"] and "one op per image" in dc.label
    x = torch.randn(12, 1, 28, 28, generator=_gen(12))
    params = dc.draw(_gen(13), images=12)
    assert len(set(params.op_of_image.tolist())) > 1
    together = dc.apply(x, params)
    for i, op in enumerate(params.op_of_image.tolist()):
        alone = dataclasses.replace(params, ops=(dc.ops[op],), op_of_image=None)
        assert torch.allclose(dc.apply(x, alone)[i], together[i], atol=1e-6)
    angles = DSA("rotate", rotate=45.0).draw(_gen(14), images=2000).angle.abs()
    assert 0.7 < angles.max().item() <= math.pi / 4  # up to 45 degrees, DSA's own stop at 15 (0.26 rad)


def test_augment_option_names_the_option_that_gives_a_recorded_label():
    """`distill show` turns the label a results header recorded back into the --augment that re-measures it."""
    for dataset in ("mnist", "fashion-mnist", "digits"):
        for option in ("none", "dc", "dsa"):
            assert augment_option(augmentation_label(augmentation_for(option, dataset)), dataset) == option
    assert augment_option("crop_flip", "mnist") == "crop_flip"  # an explicit strategy is its own option
    assert augment_option("color_crop_cutout_flip_scale_rotate", "mnist") != "dsa"  # MNIST's DSA has no flip
    assert augment_option("crop, one op per image, rotate up to 90 degrees", "mnist") is None  # no option gives it
