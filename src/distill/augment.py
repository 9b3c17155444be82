"""Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021) for images [N, C, H, W], already normalised.

Why it is built this way:

- Differentiable: every operation is plain torch arithmetic, a flip, or `F.affine_grid`/`F.grid_sample`, so a loss
  on augmented synthetic images sends its gradient back to the synthetic pixels.
- Siamese: drawing the random parameters (`DSA.draw`) is separate from using them (`DSA.apply`). One draw is shared
  by every image of a call, whatever the batch size, so a real batch and a synthetic batch of another size can get
  the identical transformation and their gradients or features stay comparable.
- Reproducible: random numbers come only from the `torch.Generator` handed in, never the global RNG. They are turned
  into plain Python numbers, so one `AugmentParams` serves tensors on any device.

The operations and constants follow the DSA code (`ParamDiffAug`): brightness 1.0, saturation 2.0, contrast 0.5,
crop (translation) 0.125, cutout 0.5, flip 0.5, scale 1.2, rotate 15 degrees. As there, by default each call picks
ONE operation of the strategy at random and applies only that (DSA's `aug_mode='S'`, also what DM and MTT use);
`one_op=False` applies them all in sequence instead (DSA's `aug_mode='M'`).
Zero padding fills with 0, which for normalised images is the dataset mean colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from distill.errors import DistillError

STRATEGIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DIGITS_STRATEGY = "color_crop_cutout_scale_rotate"  # no flip: a mirrored digit is another symbol, or none
NO_FLIP_DATASETS = frozenset({"digits", "mnist", "usps", "svhn"})

BRIGHTNESS = 1.0  # brightness shift ~ U(-0.5, 0.5) * BRIGHTNESS
SATURATION = 2.0  # channel-spread factor ~ U(0, 1) * SATURATION
CONTRAST = 0.5  # image-spread factor ~ U(0, 1) + CONTRAST
CROP = 0.125  # translation by up to this share of the size, whole pixels
CUTOUT = 0.5  # side of the zeroed square as a share of the size
FLIP = 0.5  # probability of a horizontal flip
SCALE = 1.2  # each axis scaled by U(1 / SCALE, SCALE)
ROTATE = 15.0  # degrees, angle ~ U(-ROTATE, ROTATE)


def strategy_for(dataset_name: str) -> str:
    """The DSA strategy for a dataset: digits lose "flip" (flipping changes what a digit means), all else keep it."""
    return DIGITS_STRATEGY if dataset_name.strip().lower() in NO_FLIP_DATASETS else DEFAULT_STRATEGY


def augmentation_for(augment: str, dataset_name: str) -> DSA | None:
    """An `augment` option as an augmentation: "" / "none" -> None, "dsa" -> the dataset's DSA strategy, anything else
    an explicit strategy such as "crop_scale_rotate". Methods and evaluation all read their option through this."""
    if augment in ("", "none"):
        return None
    return DSA(strategy_for(dataset_name) if augment == "dsa" else augment)


def parse_strategy(strategy: str) -> list[str]:
    """The operations of a strategy string such as "color_crop_cutout", in order; "" or "none" means none.

    Unknown or repeated operations raise `DistillError`, so a typo fails before any training starts.
    """
    text = strategy.strip().lower()
    if text in ("", "none"):
        return []
    ops = text.split("_")
    unknown = [op for op in ops if op not in STRATEGIES]
    if unknown:
        raise DistillError(f"unknown augmentation {', '.join(repr(op) for op in unknown)} in {strategy!r}; "
                           f"valid operations: {', '.join(STRATEGIES)} (joined with '_'), or 'none'")
    if len(set(ops)) != len(ops):
        raise DistillError(f"augmentation strategy {strategy!r} repeats an operation; name each at most once")
    return ops


@dataclass(frozen=True)
class AugmentParams:
    """One draw of DSA parameters, shared by every image it is applied to (the siamese part).

    `ops` are applied in order; a field matters only when its operation is in `ops`. Positions (`crop`, `cutout`)
    are uniforms in [0, 1) turned into whole pixels at apply time, so the same draw fits any image size.
    """

    ops: tuple[str, ...]
    brightness: float = 0.0  # added to every pixel
    saturation: float = 1.0  # factor on the spread around the per-pixel channel mean
    contrast: float = 1.0  # factor on the spread around the image mean
    crop: tuple[float, float] = (0.5, 0.5)  # (x, y) uniforms; 0.5 is no shift
    cutout: tuple[float, float] = (0.5, 0.5)  # (x, y) uniforms for the square's centre
    flip: bool = False
    scale: tuple[float, float] = (1.0, 1.0)  # (x, y) factors
    angle: float = 0.0  # radians


class DSA:
    """Differentiable siamese augmentation with a fixed strategy.

    `DSA(strategy)(x, generator)` is the `augment(x, generator)` that `distill.train.train_sgd` calls per batch;
    for real-vs-synthetic matching, `params = dsa.draw(g)` once and `dsa.apply(real, params)`,
    `dsa.apply(syn, params)`.

    With `one_op=True` (the default, as in the DSA code) each draw picks one operation of the strategy uniformly and
    applies only it, "color" counting as one operation made of brightness, saturation and contrast. With
    `one_op=False` every operation is applied in the strategy's order.
    """

    def __init__(self, strategy: str, one_op: bool = True) -> None:
        self.ops = parse_strategy(strategy)
        self.one_op = one_op

    def __repr__(self) -> str:
        return f"DSA({'_'.join(self.ops) or 'none'!r}, one_op={self.one_op})"

    def draw(self, generator: torch.Generator) -> AugmentParams:
        """Draw one set of parameters from `generator` alone (on the generator's device, returned as plain numbers)."""
        if not self.ops:
            return AugmentParams(ops=())
        device = generator.device

        def uniform(n: int = 1) -> list[float]:
            return torch.rand(n, generator=generator, device=device).tolist()

        if self.one_op and len(self.ops) > 1:
            ops = (self.ops[int(torch.randint(len(self.ops), (1,), generator=generator, device=device).item())],)
        else:
            ops = tuple(self.ops)
        values: dict = {}
        for op in ops:
            if op == "color":
                b, s, c = uniform(3)
                values.update(brightness=(b - 0.5) * BRIGHTNESS, saturation=s * SATURATION, contrast=c + CONTRAST)
            elif op == "crop":
                values["crop"] = tuple(uniform(2))
            elif op == "cutout":
                values["cutout"] = tuple(uniform(2))
            elif op == "flip":
                values["flip"] = uniform()[0] < FLIP
            elif op == "scale":
                values["scale"] = tuple(u * (SCALE - 1 / SCALE) + 1 / SCALE for u in uniform(2))
            elif op == "rotate":
                values["angle"] = (uniform()[0] - 0.5) * 2 * ROTATE / 180 * math.pi
        return AugmentParams(ops=ops, **values)

    def apply(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply `params` to a batch [N, C, H, W] of any size; shapes are kept and gradients reach `x`."""
        for op in params.ops:
            x = _APPLY[op](x, params)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.draw(generator))


def _color(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    x = x + p.brightness
    mean = x.mean(dim=1, keepdim=True)
    x = mean + (x - mean) * p.saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * p.contrast


def _affine(x: torch.Tensor, theta: list[list[float]], align_corners: bool) -> torch.Tensor:
    """Resample every image of `x` with the same 2x3 affine map (output grid -> input grid), zero padding."""
    t = torch.tensor(theta, dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(t, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _pixels(u: float, n: int) -> int:
    """A uniform in [0, 1) as one of the n whole numbers 0 .. n-1."""
    return min(int(u * n), n - 1)


def _crop(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    # DSA's "crop": shift by a whole number of pixels in [-shift, shift] per axis, zero padding. With
    # align_corners=False a shift of k pixels is 2k/size in grid units, and samples land exactly on pixel centres.
    h, w = x.shape[-2:]
    shifts = []
    for u, size in zip(p.crop, (w, h)):
        shift = int(size * CROP + 0.5)
        shifts.append(2 * (_pixels(u, 2 * shift + 1) - shift) / size)
    return _affine(x, [[1.0, 0.0, shifts[0]], [0.0, 1.0, shifts[1]]], align_corners=False)


def _cutout(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    # As in DSA: the square's centre may sit anywhere (so it can be partly outside); the rest of the image is kept.
    h, w = x.shape[-2:]
    keep = torch.ones(h, w, dtype=x.dtype, device=x.device)
    bounds = []
    for u, size in zip((p.cutout[1], p.cutout[0]), (h, w)):
        side = int(size * CUTOUT + 0.5)
        low = _pixels(u, size + 1 - side % 2) - side // 2
        bounds.append((max(low, 0), max(low + side, 0)))
    (top, bottom), (left, right) = bounds
    keep[top:bottom, left:right] = 0
    return x * keep


def _flip(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    return x.flip(-1) if p.flip else x


def _scale(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    sx, sy = p.scale
    return _affine(x, [[sx, 0.0, 0.0], [0.0, sy, 0.0]], align_corners=True)


def _rotate(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    c, s = math.cos(p.angle), math.sin(p.angle)
    return _affine(x, [[c, s, 0.0], [-s, c, 0.0]], align_corners=True)


_APPLY = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}
