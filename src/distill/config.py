"""The configuration of a run (`DistillConfig`) and of a poisoning attack (`AttackConfig`): their fields, the shipped
presets layered under the options a user gives (`resolve`), and every check that refuses a bad option in one line
before any data is read or any file is touched. Recorded configurations (run them again) are `distill.records`.

Both configurations share `CommonConfig`: the data, the network, the set's shape and the outer loop."""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from distill.augment import augmentation_for
from distill.data import builtin_spec, get_spec, looks_like_path
from distill.errors import DistillError
from distill.loop import LoopConfig
from distill.methods import METHODS, get_method, learns, selects
from distill.methods.base import parse_options
from distill.models import DEFAULT_INIT, INIT_SCHEMES, MODELS
from distill.presets import BEST_METHOD, OWN_DATA_METHOD, PRESETS, canonical_names
from distill.synset import INIT_MODES
from distill.teacher import check_teacher_options

CORESET_INITS = ("herding", "kcenter")  # image starts taken from a coreset method's picks
IMAGE_INITS = ("real", "noise", *CORESET_INITS)  # or the path of a saved set (SET_SUFFIX): a later stage's start
SET_SUFFIX = ".safetensors"
LOOP_OPTIONS = ("iterations", "lr_images", "lr_lrs", "lr_labels", "init_lr", "decay_every", "decay_factor", "optimizer",
                "momentum", "eval_every", "checkpoint_every", "keep_best", "clamp_pixels", "ema", "validation",
                "max_minutes", "image_init")  # what a coreset takes none of: it picks real images, no loop runs
FLAGS = {"lr_images": "--lr", "keep_best": "--keep-last"}  # the command line's name where it is not the field's
MOVED_TO_OPTIONS = ("real_batch", "nets_per_step")  # run options of earlier versions that are now dd's and unroll's
# own (`options`, `--opt real_batch=N`): named in the refusal of a run that gives them the old way


def flag(name: str) -> str:
    """The command-line option that sets a configuration field (`lr_images` is `--lr`): the name refusals use, so
    that a message points at what the user typed."""
    return FLAGS.get(name, f"--{name.replace('_', '-')}")


def check_type(name: str, value, expected: type) -> None:
    """A value given from Python with the wrong type (`ipc="2"`, `n_nets="3"`) is one line, not a TypeError deep
    inside the work. An int will do for a float; a bool is no number here, though Python counts True an int."""
    kinds = (int, float) if expected is float else (expected,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and expected is not bool):
        raise DistillError(f"{name} must be of type {expected.__name__}, got {value!r}")


def check_field_types(config) -> None:
    """Every field of a configuration (`check_type`); a field's type is its default's (or its default factory's:
    `options` from a JSON file may be a list), and None is taken only where the field is declared optional."""
    for f in fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if default is MISSING or (value is None and "None" in str(f.type)):
            continue
        check_type(f.name, value, type(default))


def given_path(name: str, value) -> Path | None:
    """A path argument of the Python API as a Path (None: not given). An empty one is refused, as the command line
    refuses it: Path("") would quietly mean the current folder, and it is most likely an unset variable."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise DistillError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
    if not os.fspath(value).strip():
        raise DistillError(f"{name} is empty; give a path (an empty one would mean the current folder)")
    return Path(value)


SEED_LIMIT = 2**32  # seeds 0 .. 2**32 - 1: each outer step's generator is seeded with seed x 1,000,003 + step


def check_common(config, rates: tuple[str, ...]) -> None:
    """The checks a run's and an attack's options share, so that each is refused in one line before any work
    rather than as a traceback or a silently wrong run: field types, names spelt as the registries and presets key
    them, positive step sizes (`rates`), a seed torch can take, and a step-size decay that decays."""
    check_field_types(config)
    spec = get_spec(config.dataset, config.image_size)
    if config.dataset != spec.name:
        raise DistillError(f"write the dataset as {spec.name!r}, not {config.dataset!r}: the shipped presets are "
                           "keyed by that name (distill.distill and the command line rewrite it themselves)")
    if config.arch not in MODELS:
        hint = f"; did you mean {config.arch.lower()!r}?" if config.arch.lower() in MODELS else ""
        raise DistillError(f"unknown network {config.arch!r}; choose one of: {', '.join(sorted(MODELS))}{hint}")
    for name in rates:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise DistillError(f"{flag(name)} must be a positive number, got {value}")
    if not 0 <= config.seed < SEED_LIMIT:
        raise DistillError(f"--seed must be between 0 and {SEED_LIMIT - 1}, got {config.seed}")
    if config.decay_every < 0:
        raise DistillError(f"--decay-every must be 0 (never decay) or more steps, got {config.decay_every}")
    if not 0 < config.decay_factor <= 1:
        raise DistillError(f"decay_factor must be in (0, 1] (each decay multiplies the step sizes by it), got "
                           f"{config.decay_factor}")


def check_counts(config, names: tuple[str, ...]) -> None:
    """Counts (images, steps, networks, ...) a run or an attack needs at least one of."""
    for name in names:
        if getattr(config, name) < 1:
            raise DistillError(f"{flag(name)} must be at least 1, got {getattr(config, name)}")



VALIDATIONS = ("quick", "standard", "worst")
FREE_ON_RESUME = ("eval_nets", "eval_augment", "eval_epochs", "max_minutes", "teacher_labels",
                  "teacher_temperature")  # options a resumed run may change: they shape the final labels and
# measurement or when to stop, not the steps, so `--resume` on a finished run re-evaluates it (or blends other
# teacher labels) without distilling again, and a run stopped by its time limit can go on with another


def free_on_resume(config: DistillConfig) -> tuple[str, ...]:
    """FREE_ON_RESUME, less the evaluation's augmentation and epochs where they shape the steps themselves: a method
    that trains through the evaluation (`unroll`), and `--validation standard`, which validates (so keeps sets) with
    it."""
    if get_method(config.method).trains_through_evaluation or config.validation == "standard":
        return tuple(name for name in FREE_ON_RESUME if name not in ("eval_augment", "eval_epochs"))
    return FREE_ON_RESUME



@dataclass(frozen=True)
class CommonConfig:
    """What a distillation and a poisoning attack share: the data, the network, the set's shape (and the schedule
    it learns), and the outer loop. Each configuration adds its own fields (and its own defaults where they
    differ); both are stored whole in their artifacts and summaries, so any result can be re-made."""

    dataset: str = "digits"  # a built-in name, or the path of a folder of class sub-folders of images or of an .npz
    image_size: int = 0  # resize and centre-crop a user's images to this many pixels square (0: as they are)
    zca: bool = False  # whiten the images with the training split's ZCA (as the kernel and trajectory papers do on
    # CIFAR); the set file stores the matrix, and its images live in the whitened space
    arch: str = "lenet"
    ipc: int = 1  # images per class per step
    steps: int = 1
    epochs: int = 10  # the paper used 3; 10 trains small data (digits) much better for the same 10 images
    image_init: str = "real"  # real | noise | herding | kcenter | a set file: real samples give short runs (the digits
    # main job) a head start; for long fixed-init MNIST runs the paper's noise went faster and higher (91% validation
    # at 3,600 steps against 86%); herding / kcenter start from that coreset's picks (one image per class and step),
    # chosen in the features of the full-data network as the coreset baselines are; the path of a saved set
    # (.safetensors) starts from its images and labels, to refine another method's set (the `unroll` stage)
    init_lr: float = 0.02
    iterations: int = 800
    lr_images: float = 0.01
    lr_lrs: float = 0.01
    decay_every: int = 400
    decay_factor: float = 0.5
    eval_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0  # the distillation's draws (starting images, networks, batches); validation and evaluation
    # networks come from fixed seeds, the same for every run, so that runs differing in seed meet the same networks

    def loop(self) -> LoopConfig:
        """The outer loop's settings; a configuration with more of them adds its own (`DistillConfig.loop`)."""
        return LoopConfig(iterations=self.iterations, lr_images=self.lr_images, lr_lrs=self.lr_lrs,
                          decay_every=self.decay_every, decay_factor=self.decay_factor, eval_every=self.eval_every,
                          checkpoint_every=self.checkpoint_every, seed=self.seed)


@dataclass(frozen=True)
class DistillConfig(CommonConfig):
    """Every option of a run."""

    method: str = "dd"
    init: str = "fixed"  # fixed | random (the attack's victims are `loaded`)
    init_scheme: str = ""  # "" = the network's default (xavier for LeNet, as in the original code)
    layer_lrs: bool = False  # learn one rate per step and per parameter tensor instead of one per step
    learn_labels: bool = False  # learn soft labels too (saved as probabilities); methods that learn "labels"
    images: int = 0  # images per step, free of the classes (0: ipc x classes): with learned labels, a set may hold
    # fewer images than there are classes, each image's label a learned distribution over all of them
    lr_labels: float = 0.01
    eval_nets: int = 5
    keep_best: bool = True  # keep the set that scored best on the validation split
    clamp_pixels: bool = False  # keep the images valid pictures (pixels in [0, 1]) after every outer step
    ema: float = 0.0  # 0: off; else validate and keep a moving average of the set over the steps with this decay
    # (e.g. 0.99: about the last 100 steps; see LoopConfig.ema)
    validation: str = "quick"  # how the loop validates (every `eval_every` steps, for keep_best): "quick", one random
    # network trained VALIDATION_EPOCHS without augmentation; "standard", one trained as the final evaluation trains
    # (eval_augment, eval_epochs): slower, but it ranks the sets by what the final evaluation measures; "worst", one
    # network per standard recipe and ConvNet (`distill eval --recipes`), the lowest of them: the worst case
    max_minutes: float = 0.0  # stop distilling after this long in all (a resumed run's earlier minutes count), at a
    # step boundary (0: no limit); the summary records the steps taken, and `iterations` set to that repeats the run
    optimizer: str = "adam"  # adam | sgd (with `momentum`): the outer optimiser over the synthetic tensors
    momentum: float = 0.5
    # standard-protocol augmentation: "" none, "dsa" (the dataset's DSA strategy), "dc" (DC's MNIST one), a strategy
    eval_augment: str = ""
    eval_epochs: int = 0  # standard-protocol epochs; 0: 300, or 1000 with augmentation
    teacher_labels: float = 0.0  # after distilling, blend this share of the full-data network's predictions into
    # the labels (0: none; see distill.teacher)
    teacher_temperature: float = 2.0  # the temperature of those predictions
    options: dict = field(default_factory=dict)  # the method's own hyperparameters (its `Options`; --opt key=value)

    def loop(self) -> LoopConfig:
        return replace(super().loop(), lr_labels=self.lr_labels, keep_best=self.keep_best,
                       clamp_pixels=self.clamp_pixels, time_limit=60 * self.max_minutes, ema=self.ema,
                       optimizer=self.optimizer, momentum=self.momentum)

    def check_applies(self) -> None:
        """Refuse options the method would silently ignore while the summary records them as if they had run: the
        loop's options (and a starting image) for coresets, which only pick real images; a learned schedule's shape
        and rates for methods without one; momentum without the sgd optimiser; a label step size without learned
        labels.

        Only options the user gave count: a value that is DistillConfig's default or the one the method's defaults
        and the shipped preset set for (dataset, method, ipc) is filled in for every run, asked for or not."""
        defaults, preset = asdict(DistillConfig()), resolve(dataset=self.dataset, method=self.method, ipc=self.ipc)
        given = lambda name: getattr(self, name) not in (defaults[name], preset[name])  # noqa: E731
        schedule = learns(self.method, "schedule")
        if selects(self.method):
            for name in LOOP_OPTIONS:
                if given(name):
                    raise DistillError(f"{flag(name)} shapes a distillation, and {self.method!r} only picks real "
                                       "images (nothing is distilled or started from); drop it")
        if not (schedule or learns(self.method, "train_lr")):
            for name in ("init_lr", "lr_lrs"):
                if given(name):
                    raise DistillError(f"{flag(name)} applies to methods that learn a training learning rate (dd's "
                                       f"schedule, mtt's rate); {self.method!r} learns none")
        if self.clamp_pixels and self.zca:
            raise DistillError("--clamp-pixels keeps pixels in [0, 1], and with --zca the images are whitened (no "
                               "pixel range applies); drop one")
        if given("momentum") and self.optimizer != "sgd":
            raise DistillError(f"--momentum applies to the sgd outer optimiser, and this run uses "
                               f"{self.optimizer!r}; add --optimizer sgd or drop --momentum")
        if given("lr_labels") and not self.learn_labels:
            raise DistillError("--lr-labels is the step size of learned labels; add --learn-labels or drop it")
        if given("validation") and self.validation in VALIDATIONS and schedule:
            raise DistillError(f"--validation chooses how sets trained with the standard protocol are validated; a "
                               f"{self.method} set is validated with the schedule it learned; drop it")
        if not schedule:
            for name in ("steps", "epochs"):
                if given(name):
                    raise DistillError(f"--{name} shapes the learned schedule of dd; {self.method!r} has none "
                                       "(its sets are evaluated with the standard protocol)")

    def scheme(self) -> str:
        return self.init_scheme or DEFAULT_INIT.get(self.arch, "default")

    def validate(self) -> None:
        """Reject bad options before any data is read or any file is touched."""
        check_common(self, rates=("init_lr", "lr_images", "lr_lrs", "lr_labels"))
        parse_options(get_method(self.method), self.options)
        check_counts(self, ("ipc", "steps", "epochs", "iterations", "eval_every", "checkpoint_every", "eval_nets"))
        self.check_applies()
        if self.method == "attack":
            raise DistillError("the poisoning attack has its own command: distill attack")
        if self.method == "adapt":
            raise DistillError("domain adaptation has its own command: distill adapt --source NAME --dataset NAME")
        if self.init_scheme and self.init_scheme not in INIT_SCHEMES:
            raise DistillError(f"unknown --init-scheme {self.init_scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
                               " (or leave it empty for the network's own)")
        if self.init not in INIT_MODES:
            raise DistillError(f"unknown init mode {self.init!r}; choose one of: {', '.join(INIT_MODES)}")
        if self.image_init not in IMAGE_INITS and not self.image_init.endswith(SET_SUFFIX):
            raise DistillError(f"--image-init must be one of {', '.join(IMAGE_INITS)} or a saved set "
                               f"(*{SET_SUFFIX}), got {self.image_init!r}")
        if self.image_init.endswith(SET_SUFFIX) and not Path(self.image_init).is_file():
            raise DistillError(f"--image-init {self.image_init}: no such set file")
        if not learns(self.method, "schedule") and self.init != "random":
            raise DistillError(f"method {self.method!r} trains fresh random networks; use --init random")
        if self.learn_labels and not learns(self.method, "labels"):
            learners = sorted(n for n, m in METHODS.items() if "labels" in m.learns)
            raise DistillError(f"method {self.method!r} cannot learn labels; --learn-labels works with: "
                               f"{', '.join(learners)}")
        if self.images < 0:
            raise DistillError(f"--images must be at least 1 (or 0: --ipc images per class), got {self.images}")
        if self.images and not self.learn_labels:
            raise DistillError("--images N makes a set of N images free of the classes, whose labels are learned as "
                               "distributions over all of them: add --learn-labels (or use --ipc)")
        if self.images and self.ipc != 1:
            raise DistillError(f"--images {self.images} and --ipc {self.ipc} both set the set's size; give one")
        needs_features = (self.method if get_method(self.method).needs_features else
                          f"--image-init {self.image_init}" if self.image_init in CORESET_INITS else None)
        if needs_features and self.arch in MODELS and not hasattr(MODELS[self.arch], "embed"):
            with_features = sorted(name for name, model in MODELS.items() if hasattr(model, "embed"))
            raise DistillError(f"{needs_features} compares network features, which {self.arch!r} does not expose; "
                               f"use --arch {' / '.join(with_features)}")
        if self.layer_lrs and not learns(self.method, "schedule"):
            raise DistillError(f"--layer-lrs needs a method that learns a training schedule (dd); "
                               f"{self.method!r} does not")
        if self.optimizer not in ("adam", "sgd"):
            raise DistillError(f"--optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise DistillError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.validation not in VALIDATIONS:
            raise DistillError(f"--validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}")
        if not 0 <= self.ema < 1:
            raise DistillError(f"--ema must be in [0, 1) (0: off), got {self.ema}")
        if not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise DistillError(f"--max-minutes must be 0 (no limit) or more, got {self.max_minutes}")
        if self.eval_epochs < 0:
            raise DistillError(f"--eval-epochs must be 0 (automatic) or more, got {self.eval_epochs}")
        augmentation_for(self.eval_augment, self.dataset)
        if learns(self.method, "schedule") and (self.eval_augment not in ("", "none") or self.eval_epochs):
            raise DistillError(f"--eval-augment and --eval-epochs shape the standard protocol, and a {self.method} "
                               "set is evaluated with the schedule it learned; drop them (or evaluate the saved set "
                               "with distill eval FILE --protocol standard)")
        check_teacher_options(self.teacher_labels, self.teacher_temperature)


def resolve(**options) -> dict:
    """The full option dict for a run: DistillConfig's defaults, then the method's (`Method.defaults`, then its
    `dataset_defaults`), then the shipped preset for (dataset, method, ipc) (`distill.presets`), then `options`.
    Without a method, the best measured one for (dataset, ipc) where there is one (`BEST_METHOD`), `dm` on a user's
    own data (`OWN_DATA_METHOD`), else `dd`. An
    option given as None counts as not given (every field has a value of its own), as on the command line."""
    check_known(options, "")
    options = canonical_names({name: value for name, value in options.items() if value is not None})
    # what the lookups and the merge below read, checked before they read it (a list as ipc is no key)
    for name, expected in (("dataset", str), ("method", str), ("ipc", int), ("options", dict)):
        if name in options:
            check_type(name, options[name], expected)
    base = asdict(DistillConfig())
    dataset = options.get("dataset", base["dataset"])
    ipc = options.get("ipc", base["ipc"])
    fallback = OWN_DATA_METHOD if looks_like_path(dataset) and builtin_spec(dataset) is None else base["method"]
    method = options.get("method") or BEST_METHOD.get((dataset, ipc), fallback)
    base["method"] = method
    cls = METHODS.get(method)  # an unknown one is refused by validation, in its own words
    preset = PRESETS.get((dataset, method, ipc), {})
    merged = {**base, **(cls.defaults if cls else {}), **(cls.dataset_defaults.get(dataset, {}) if cls else {}),
              **preset}
    if "options" in options or "options" in preset:
        merged["options"] = {**preset.get("options", {}), **options.get("options", {})}
    merged.update({k: v for k, v in options.items() if k != "options"})
    return merged


def check_known(options: dict, kind: str, config_class: type = None) -> None:
    """Refuse keyword options that are no field of the configuration, naming where the moved ones went."""
    names = {f.name for f in fields(config_class or DistillConfig)}
    unknown = sorted(set(options) - names)
    if not unknown:
        return
    moved = [name for name in unknown if name in MOVED_TO_OPTIONS and config_class in (None, DistillConfig)]
    hint = (f" ({', '.join(moved)} is now an option of the method: options={{'{moved[0]}': N}}, "
            f"--opt {moved[0]}=N)" if moved else "")
    raise DistillError(f"unknown {kind}option(s): {', '.join(unknown)}{hint}")


ATTACK_IMAGE_INITS = ("real", "noise")  # real: images of the attacked class, as label flipping starts; noise: pixels
HELD_OUT_SEED = 1000  # held-out victims use seeds 1000, 1001, ...: never the crafting pool's 0, 1, ...
VALIDATION_SEED = 500  # three more victims, seen by neither pool, choose which step's poison is kept


@dataclass(frozen=True)
class AttackConfig(CommonConfig):
    """Every option of a poisoning attack (`distill attack`): the shared fields, with the attack's own defaults
    where they differ, and the attack's own."""

    dataset: str = "mnist"
    epochs: int = 3
    init_lr: float = 0.003  # victims are confident: a few large steps would wreck every class
    iterations: int = 1500
    lr_images: float = 0.03
    lr_lrs: float = 0.03
    decay_every: int = 500
    attacked: int = 3
    target: int | None = 8  # None: forget (misclassify as anything)
    real_batch: int = 512  # real images per outer step, half of them from the attacked class
    nets_per_step: int = 1  # crafting victims the poison is applied to per outer step (their losses averaged)
    craft_victims: int = 10
    eval_victims: int = 10
    victim_recipes: str = "one"  # the crafting and validation victims' training: "one" recipe, or "varied" (five)
    eval_recipes: str = "same"  # the held-out victims': "same" as the crafting pool's, or "unseen" (recipes it never
    # used: other rates, schedules, lengths, batches, weight decays and augmentations)
    # what the attack is as a run of the set's machinery (`distill.start`): the `attack` method, from loaded victims
    method: ClassVar[str] = "attack"
    init: ClassVar[str] = "loaded"
    layer_lrs: ClassVar[bool] = False
    learn_labels: ClassVar[bool] = False

    @property
    def mode(self) -> str:
        return "forget" if self.target is None else "targeted"

    @property
    def options(self) -> dict:
        """The `attack` method's options (`distill.methods.attack.AttackOptions`), as a run's `options` holds a
        method's: so the method is built as every method is (`distill.methods.create`)."""
        return {"real_batch": self.real_batch, "nets_per_step": self.nets_per_step, "attacked": self.attacked,
                "target": -1 if self.target is None else self.target, "craft_victims": self.craft_victims,
                "victim_recipes": self.victim_recipes}

    def validate(self) -> None:
        check_common(self, rates=("init_lr", "lr_images", "lr_lrs"))
        spec = get_spec(self.dataset, self.image_size)
        k = spec.num_classes
        if not 0 <= self.attacked < k:
            raise DistillError(f"--attacked must be a class of {spec.name} (0..{k - 1}), got {self.attacked}")
        if self.target is not None and not 0 <= self.target < k:
            raise DistillError(f"--target must be a class of {spec.name} (0..{k - 1}), got {self.target}")
        if self.target == self.attacked:
            raise DistillError("--target must differ from --attacked (use --forget to erase a class)")
        if self.image_init not in ATTACK_IMAGE_INITS:
            hint = (f"; did you mean {self.image_init.strip().lower()!r}?" if self.image_init.strip().lower() in
                    ATTACK_IMAGE_INITS else "")
            raise DistillError(f"image_init of an attack must be one of {', '.join(ATTACK_IMAGE_INITS)} (real: images "
                               f"of the attacked class; noise: random pixels), got {self.image_init!r}{hint}")
        check_counts(self, ("ipc", "steps", "epochs", "iterations", "real_batch", "nets_per_step", "craft_victims",
                            "eval_victims", "eval_every", "checkpoint_every"))
        if self.real_batch < 2:
            raise DistillError("--real-batch must be at least 2")
        if self.victim_recipes not in ("one", "varied"):
            raise DistillError(f"--victim-recipes must be 'one' or 'varied', got {self.victim_recipes!r}")
        if self.eval_recipes not in ("same", "unseen"):
            raise DistillError(f"--eval-recipes must be 'same' or 'unseen', got {self.eval_recipes!r}")
        if self.craft_victims > VALIDATION_SEED:  # seeds from VALIDATION_SEED on belong to the other two pools
            raise DistillError(f"--craft-victims can be at most {VALIDATION_SEED}: the crafting pool's seeds run "
                               f"from 0, and {VALIDATION_SEED} on are the validation and held-out victims, which it "
                               "must not include")
        if self.nets_per_step > self.craft_victims:
            raise DistillError(f"nets_per_step ({self.nets_per_step}) cannot exceed --craft-victims "
                               f"({self.craft_victims})")

    def scheme(self) -> str:
        return DEFAULT_INIT.get(self.arch, "default")


ADAPT_VALIDATION_NETS = 3  # pretrained networks from VALIDATION_SEED on, in neither pool, choose the kept step


@dataclass(frozen=True)
class AdaptConfig(CommonConfig):
    """Every option of a domain adaptation (`distill adapt`): networks pretrained on `source` are adapted to
    `dataset` (the target) by distilled target images and their learned steps, as in the original paper (USPS to
    MNIST: 100 images, ten steps of one image per class, three epochs)."""

    dataset: str = "mnist"
    source: str = "usps"
    steps: int = 10
    epochs: int = 3
    init_lr: float = 0.01
    iterations: int = 1000
    lr_images: float = 0.01
    lr_lrs: float = 0.01
    decay_every: int = 400
    eval_every: int = 50
    real_batch: int = 512  # target images the adapted networks are scored on per outer step
    nets_per_step: int = 4  # pretrained networks adapted per outer step (their losses averaged)
    source_nets: int = 20  # the pretrained pool the images are distilled against ("unknown weights": seeds 0, 1 ...)
    known_weights: bool = False  # adapt one known pretrained network (seed 0), and measure on it, not on others
    eval_nets: int = 20  # held-out pretrained networks (seeds HELD_OUT_SEED on) the adaptation is measured on
    method: ClassVar[str] = "adapt"
    init: ClassVar[str] = "loaded"
    layer_lrs: ClassVar[bool] = False
    learn_labels: ClassVar[bool] = False

    @property
    def options(self) -> dict:
        """The `adapt` method's options (`distill.methods.adapt.AdaptOptions`), as a run's `options` holds them."""
        return {"real_batch": self.real_batch, "nets_per_step": self.nets_per_step}

    def validate(self) -> None:
        check_common(self, rates=("init_lr", "lr_images", "lr_lrs"))
        source, target = get_spec(self.source), get_spec(self.dataset, self.image_size)
        if source.name == target.name:
            raise DistillError(f"--source and --dataset are both {target.name}: adaptation moves networks from one "
                               "dataset to another")
        if source.channels != target.channels or source.num_classes != target.num_classes:
            raise DistillError(f"{source.name} ({source.num_classes} classes, {source.channels} channel(s)) and "
                               f"{target.name} ({target.num_classes} classes, {target.channels} channel(s)) need the "
                               "same classes and channels (the source images are resized to the target's size)")
        if self.image_init not in ATTACK_IMAGE_INITS:
            raise DistillError(f"image_init of an adaptation must be one of {', '.join(ATTACK_IMAGE_INITS)}, got "
                               f"{self.image_init!r}")
        check_counts(self, ("ipc", "steps", "epochs", "iterations", "real_batch", "nets_per_step", "source_nets",
                            "eval_nets", "eval_every", "checkpoint_every"))
        if self.source_nets > VALIDATION_SEED:
            raise DistillError(f"--source-nets can be at most {VALIDATION_SEED} (the seeds from {VALIDATION_SEED} on "
                               "are the validation and held-out networks)")
        if self.nets_per_step > self.source_nets and not self.known_weights:
            raise DistillError(f"nets_per_step ({self.nets_per_step}) cannot exceed --source-nets ({self.source_nets})")

    def scheme(self) -> str:
        return DEFAULT_INIT.get(self.arch, "default")
