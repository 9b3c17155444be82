"""Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021) for images [N, C, H, W], already normalised.

Why it is built this way:

- Differentiable: every operation is plain torch arithmetic, a flip, or `F.affine_grid`/`F.grid_sample`, so a loss
  on augmented synthetic images sends its gradient back to the synthetic pixels.
- Siamese where it must be: drawing the random parameters (`DSA.draw`) is separate from using them (`DSA.apply`). A
  shared draw (the default, one value per parameter) applies to every image of any batch, so a real batch and a
  synthetic batch of another size get the identical transformation and their gradients or features stay comparable.
- Per image where the originals are: a network *trained* on augmented images (evaluation, DC/DSA's inner loop, MTT's
  experts and synthetic steps) gets its own parameters for every image, `DSA(x, generator)`, as the DSA code's
  `DiffAugment` does when it is not siamese. One operation is still chosen per call. Shared and per-image draws are
  the same `AugmentParams` (K values per parameter, K = 1 or the batch size), applied by the same code.
- Reproducible: random numbers come only from the `torch.Generator` handed in, never the global RNG. They stay on
  the generator's device and move to the images' device when applied, so one draw serves tensors on any device.

The operations and constants follow the DSA code (`ParamDiffAug`): brightness 1.0, saturation 2.0, contrast 0.5,
crop (translation) 0.125, cutout 0.5, flip 0.5, scale 1.2, rotate 15 degrees. As there, by default each call picks
ONE operation of the strategy at random and applies only that (DSA's `aug_mode='S'`, also what DM and MTT use);
`one_op=False` applies them all in sequence instead (DSA's `aug_mode='M'`).
Zero padding fills with 0, which for normalised images is the dataset mean colour.

`augmentation_for("dc", ...)` is DC's own evaluation augmentation for MNIST (`get_daparam` in the DC code): crop,
scale or rotate, one operation chosen *per image*, rotations up to 45 degrees. The DC paper's MNIST numbers were
measured with it, so its presets evaluate DC's MNIST sets the same way.
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
DC_STRATEGY = "crop_scale_rotate"  # DC's MNIST evaluation augmentation: these ops, one chosen per image,
DC_ROTATE = 45.0  # with rotations up to 45 degrees (its crop of 4 pixels and scale of 0.8-1.2 are DSA's within a pixel)


def strategy_for(dataset_name: str) -> str:
    """The DSA strategy for a dataset: digits lose "flip" (flipping changes what a digit means), all else keep it."""
    return DIGITS_STRATEGY if dataset_name.strip().lower() in NO_FLIP_DATASETS else DEFAULT_STRATEGY


def augmentation_for(augment: str, dataset_name: str) -> DSA | None:
    """An `augment` option as an augmentation: "" / "none" -> None, "dsa" -> the dataset's DSA strategy, "dc" -> DC's
    MNIST evaluation augmentation, anything else an explicit strategy such as "crop_scale_rotate". Methods and
    evaluation all read their option through this."""
    if augment in ("", "none"):
        return None
    if augment == "dc":
        return DSA(DC_STRATEGY, op_per_image=True, rotate=DC_ROTATE)
    return DSA(strategy_for(dataset_name) if augment == "dsa" else augment)


def augmentation_label(augmentation: DSA | None) -> str:
    """How results files name an augmentation (`augmentation_for`'s result): its label, or "none" for none.
    Evaluation and experiments/remeasure.py, which records a sweep's networks in its place, both describe it so."""
    return augmentation.label if augmentation else "none"


def augment_option(label: str, dataset_name: str) -> str | None:
    """The `augment` option whose augmentation `augmentation_label` names `label`, so that an accuracy recorded with
    it can be measured again: "none", "dc" or "dsa" where the dataset's one carries that label, the label itself
    where it is a strategy, None where no option gives it."""
    for option in ("none", "dc", "dsa", label):
        try:
            if augmentation_label(augmentation_for(option, dataset_name)) == label:
                return option
        except DistillError:
            continue
    return None


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
                           f"valid operations: {', '.join(STRATEGIES)} (joined with '_'), or 'none' "
                           "('dsa' and 'dc' name the DSA and DC augmentations where an augment option is asked for)")
    if len(set(ops)) != len(ops):
        raise DistillError(f"augmentation strategy {strategy!r} repeats an operation; name each at most once")
    return ops


@dataclass(frozen=True)
class AugmentParams:
    """One draw of DSA parameters: every field holds K values, one per image (K = the batch size) or K = 1, shared by
    every image of any batch (the siamese draw).

    `ops` are applied in order; a field matters only when its operation is in `ops`, and is None otherwise. Positions
    (`crop`, `cutout`) are uniforms in [0, 1) turned into whole pixels at apply time, so the same draw fits any image
    size. Plain numbers are accepted too (one shared value), which keeps hand-made parameters short.
    """

    ops: tuple[str, ...]
    op_of_image: torch.Tensor | None = None  # [K] index into `ops` per image: each image gets only its own op
    brightness: torch.Tensor | float | None = None  # [K], added to every pixel
    saturation: torch.Tensor | float | None = None  # [K], factor on the spread around the per-pixel channel mean
    contrast: torch.Tensor | float | None = None  # [K], factor on the spread around the image mean
    crop: torch.Tensor | None = None  # [K, 2] (x, y) uniforms; 0.5 is no shift
    cutout: torch.Tensor | None = None  # [K, 2] (x, y) uniforms for the square's centre
    flip: torch.Tensor | bool | None = None  # [K] booleans
    scale: torch.Tensor | None = None  # [K, 2] (x, y) factors
    angle: torch.Tensor | float | None = None  # [K] radians


class DSA:
    """Differentiable siamese augmentation with a fixed strategy.

    `DSA(strategy)(x, generator)` is the `augment(x, generator)` that `distill.train.train_sgd` calls per batch: one
    operation for the batch, its parameters drawn per image. For real-vs-synthetic matching, `params = dsa.draw(g)`
    once (shared) and `dsa.apply(real, params)`, `dsa.apply(syn, params)`.

    With `one_op=True` (the default, as in the DSA code) each draw picks one operation of the strategy uniformly and
    applies only it, "color" counting as one operation made of brightness, saturation and contrast. With
    `one_op=False` every operation is applied in the strategy's order. `op_per_image=True` picks the one operation
    per image instead (DC's evaluation augmentation); `rotate` is the largest rotation in degrees.
    """

    def __init__(self, strategy: str, one_op: bool = True, op_per_image: bool = False, rotate: float = ROTATE) -> None:
        self.ops = parse_strategy(strategy)
        self.one_op = one_op
        self.op_per_image = op_per_image
        self.rotate = rotate

    def __repr__(self) -> str:
        return f"DSA({self.label!r}, one_op={self.one_op})"

    @property
    def label(self) -> str:
        """How results name this augmentation: the strategy, plus whatever differs from DSA's own."""
        text = "_".join(self.ops) or "none"
        if self.op_per_image:
            text += ", one op per image"
        if self.rotate != ROTATE:
            text += f", rotate up to {self.rotate:g} degrees"
        return text

    def draw(self, generator: torch.Generator, images: int = 1) -> AugmentParams:
        """Draw parameters from `generator` alone: `images=1` gives one shared set (siamese), `images=N` one set per
        image of an N-image batch. One operation is chosen for the whole draw, or one per image with `op_per_image`."""
        if not self.ops:
            return AugmentParams(ops=())
        device = generator.device

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(images, *shape, generator=generator, device=device)

        values: dict = {}
        if self.op_per_image and len(self.ops) > 1:
            ops = tuple(self.ops)
            values["op_of_image"] = torch.randint(len(ops), (images,), generator=generator, device=device)
        elif self.one_op and len(self.ops) > 1:
            ops = (self.ops[int(torch.randint(len(self.ops), (1,), generator=generator, device=device).item())],)
        else:
            ops = tuple(self.ops)
        for op in ops:
            if op == "color":
                b, s, c = uniform(3).unbind(1)
                values.update(brightness=(b - 0.5) * BRIGHTNESS, saturation=s * SATURATION, contrast=c + CONTRAST)
            elif op == "crop":
                values["crop"] = uniform(2)
            elif op == "cutout":
                values["cutout"] = uniform(2)
            elif op == "flip":
                values["flip"] = uniform() < FLIP
            elif op == "scale":
                values["scale"] = uniform(2) * (SCALE - 1 / SCALE) + 1 / SCALE
            elif op == "rotate":
                values["angle"] = (uniform() - 0.5) * 2 * self.rotate / 180 * math.pi
        return AugmentParams(ops=ops, **values)

    def apply(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply `params` (shared, or one set per image of `x`) to a batch [N, C, H, W]; shapes are kept and gradients
        reach `x`."""
        if params.op_of_image is not None:  # each image through its own operation only
            chosen = _per_image(_values(params.op_of_image, x))
            out = x
            for i, op in enumerate(params.ops):
                out = torch.where(chosen == i, _APPLY[op](x, params), out)
            return out
        for op in params.ops:
            x = _APPLY[op](x, params)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a training batch with parameters drawn per image (DSA's non-siamese `DiffAugment`)."""
        return self.apply(x, self.draw(generator, images=len(x)))


def _values(v: torch.Tensor | float | bool, x: torch.Tensor, width: int = 0) -> torch.Tensor:
    """A parameter as a tensor on x's device: [K] (or [K, width]), K = 1 or len(x)."""
    t = torch.as_tensor(v, device=x.device)
    t = t.to(x.dtype) if t.is_floating_point() else t
    return t.reshape(-1, width) if width else t.reshape(-1)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    """[K] values shaped to broadcast over [N, C, H, W]."""
    return v.view(-1, 1, 1, 1)


def _color(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    x = x + _per_image(_values(p.brightness, x))
    mean = x.mean(dim=1, keepdim=True)
    x = mean + (x - mean) * _per_image(_values(p.saturation, x))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * _per_image(_values(p.contrast, x))


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Resample the images of `x` with 2x3 affine maps `theta` [K, 2, 3] (output grid -> input grid), zero padding."""
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _matrix(a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
            ty: torch.Tensor) -> torch.Tensor:
    """[K, 2, 3] affine matrices [[a, b, tx], [c, d, ty]] from [K] entries."""
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def _pixels(u: torch.Tensor, n: int) -> torch.Tensor:
    """Uniforms in [0, 1) as whole numbers 0 .. n-1."""
    return (u * n).long().clamp(max=n - 1)


def _crop(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    # DSA's "crop": shift by a whole number of pixels in [-shift, shift] per axis, zero padding. With
    # align_corners=False a shift of k pixels is 2k/size in grid units, and samples land exactly on pixel centres.
    h, w = x.shape[-2:]
    u = _values(p.crop, x, width=2)
    shifts = []
    for axis, size in enumerate((w, h)):
        shift = int(size * CROP + 0.5)
        shifts.append((2 * (_pixels(u[:, axis], 2 * shift + 1) - shift) / size).to(x.dtype))
    one, zero = torch.ones_like(shifts[0]), torch.zeros_like(shifts[0])
    return _affine(x, _matrix(one, zero, shifts[0], zero, one, shifts[1]), align_corners=False)


def _cutout(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    # As in DSA: the square's centre may sit anywhere (so it can be partly outside); the rest of the image is kept.
    h, w = x.shape[-2:]
    u = _values(p.cutout, x, width=2)
    inside = []
    for axis, size in ((1, h), (0, w)):  # rows from the y uniform, columns from the x uniform
        side = int(size * CUTOUT + 0.5)
        low = (_pixels(u[:, axis], size + 1 - side % 2) - side // 2).view(-1, 1)
        position = torch.arange(size, device=x.device).view(1, -1)
        inside.append((position >= low) & (position < low + side))
    rows, columns = inside
    square = rows[:, :, None] & columns[:, None, :]  # [K, H, W]
    return x * (~square).to(x.dtype).unsqueeze(1)


def _flip(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    return torch.where(_per_image(_values(p.flip, x)), x.flip(-1), x)


def _scale(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    s = _values(p.scale, x, width=2)
    zero = torch.zeros_like(s[:, 0])
    return _affine(x, _matrix(s[:, 0], zero, zero, zero, s[:, 1], zero), align_corners=True)


def _rotate(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    angle = _values(p.angle, x)
    c, s, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return _affine(x, _matrix(c, s, zero, -s, c, zero), align_corners=True)


_APPLY = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}
