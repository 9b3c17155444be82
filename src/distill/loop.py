"""The one outer loop every method runs in (GUIDE §3).

It owns the optimiser over the synthetic tensors, the step-decay schedule, the progress bar, periodic validation,
checkpoints with exact resume, and the divergence guard. Methods only provide `loss(synset, step, rng)` (and, if they
carry state from step to step, such as an online pool of networks, `state_dict()` / `load_state_dict()`, which
checkpoints save as `method.<name>` tensors and a rollback of the divergence guard restores with the set).

Exact resume works because nothing random is carried between steps: step t draws all its randomness from a generator
seeded with (seed, t). A checkpoint therefore only needs the synthetic tensors, Adam's moments, the step counter and
the guard's step-size scale, and a run killed at any point and resumed ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from distill import parallel
from distill.errors import DistillError
from distill.methods.base import Method
from distill.synset import SyntheticSet, _atomic_write

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass(frozen=True)
class LoopConfig:
    iterations: int = 1000
    lr_images: float = 0.01
    lr_lrs: float = 0.01
    lr_labels: float = 0.01
    beta1: float = 0.5
    optimizer: str = "adam"  # adam | sgd (SGD with `momentum`, what DC, DSA, DM and MTT used)
    momentum: float = 0.5
    decay_every: int = 0  # 0: no decay
    decay_factor: float = 0.5
    eval_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    max_rollbacks: int = 8
    spike_factor: float = 10.0  # a loss over this many times the median of the last SPIKE_WINDOW steps is a
    # divergence too (0: only NaN/inf are): unrolled training that blows up falls off a cliff it never climbs back
    keep_best: bool = True  # end with the set that scored best on the validation split, not merely the last one
    clamp_pixels: bool = False  # after every step, keep the images valid pictures (pixels in [0, 1])
    time_limit: float = 0.0  # seconds of distillation after which the loop stops at the next step (0: none); the
    # step reached is recorded (`LoopResult.steps`), so `--iterations <steps>` repeats the run without the limit
    ema: float = 0.0  # 0: off; else the decay of an exponential moving average of the synthetic tensors over the
    # steps (Polyak averaging), started at the initial set. Validation, keep_best and the final set then use the
    # average: each step's gradient comes from one random pool network and real batch, so the set itself jitters
    # around where the steps lead, and the average sits nearer the middle


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "val_acc"}
    seconds: float = 0.0
    rollbacks: int = 0
    best_step: int | None = None  # the step whose set was kept (keep_best), if validation ran
    best_val: float | None = None
    steps: int = 0  # outer steps taken: `iterations`, or fewer when the time limit stopped the loop


SPIKE_WINDOW = 50


def _spiked(loss: float, history: list[dict], factor: float) -> bool:
    """Whether `loss` is a blow-up: over `factor` times the median loss of the last SPIKE_WINDOW steps (only for
    losses that are positive, as every method's is; a run's first steps are never judged)."""
    recent = [r["loss"] for r in history[-SPIKE_WINDOW:]]
    if factor <= 0 or len(recent) < SPIKE_WINDOW:
        return False
    typical = statistics.median(recent)
    return typical > 0 and loss > factor * typical


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for outer step `step`: independent of everything that happened before it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class _State:
    """The synthetic tensors plus the optimiser, with snapshot/restore (for the guard) and file checkpoints (for
    resume). Every trainable tensor of the set (images, log learning rates, label logits) is one parameter group
    with its own step size, and is saved as `synset.<name>`."""

    def __init__(self, synset: SyntheticSet, config: LoopConfig):
        self.synset = synset
        step_sizes = {"images": config.lr_images, "log_lrs": config.lr_lrs, "label_logits": config.lr_labels}
        groups = [{"params": [tensor], "lr": step_sizes[name], "base_lr": step_sizes[name]}
                  for name, tensor in synset.named_trainable().items()]
        # the moving average of every trainable tensor (config.ema), saved as `ema.<name>`; empty when off
        self.ema = {name: tensor.detach().clone() for name, tensor in synset.named_trainable().items()
                    } if config.ema else {}
        if config.optimizer == "sgd":
            self.optimiser = torch.optim.SGD(groups, momentum=config.momentum)
        elif config.optimizer == "adam":
            self.optimiser = torch.optim.Adam(groups, betas=(config.beta1, 0.999))
        else:
            raise DistillError(f"unknown optimizer {config.optimizer!r}; choose adam or sgd")

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"synset.{name}": tensor.detach() for name, tensor in self.synset.named_trainable().items()}
        for index, state in self.optimiser.state_dict()["state"].items():
            for name, value in state.items():
                if value is None:  # torch 2.2-2.3's SGD keeps momentum_buffer None without momentum: nothing to save
                    continue
                out[f"adam.{index}.{name}"] = torch.as_tensor(value).detach()
        out.update({f"ema.{name}": tensor for name, tensor in self.ema.items()})
        return out

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.tensors().items()}

    def load_synset(self, saved: dict[str, torch.Tensor]) -> None:
        """Copy saved `synset.<name>` tensors into the set's trainable tensors."""
        with torch.no_grad():
            for name, tensor in self.synset.named_trainable().items():
                if f"synset.{name}" in saved:
                    tensor.copy_(saved[f"synset.{name}"].to(tensor.device))

    def update_ema(self, decay: float) -> None:
        with torch.no_grad():
            for name, tensor in self.synset.named_trainable().items():
                self.ema[name].lerp_(tensor.detach(), 1 - decay)

    def optimised(self) -> dict[str, torch.Tensor]:
        """A copy of the set's trainable tensors as the optimiser left them, keyed `synset.<name>`."""
        return {f"synset.{name}": tensor.detach().clone() for name, tensor in self.synset.named_trainable().items()}

    def kept(self) -> dict[str, torch.Tensor]:
        """The set as `keep_best` and the end of the loop see it: the moving average when there is one."""
        if self.ema:
            return {f"synset.{name}": tensor.clone() for name, tensor in self.ema.items()}
        return self.optimised()

    @contextmanager
    def averaged(self):
        """Put the moving average in the set's tensors for a while (validation), then the optimised ones back."""
        if not self.ema:
            yield
            return
        current = self.optimised()
        self.load_synset(self.kept())
        try:
            yield
        finally:
            self.load_synset(current)

    def restore(self, saved: dict[str, torch.Tensor]) -> None:
        device = self.synset.images.device
        self.load_synset(saved)
        for name in self.ema:
            if f"ema.{name}" in saved:
                self.ema[name] = saved[f"ema.{name}"].to(device).clone()
        state_dict = self.optimiser.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in saved.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value.clone() if name == "step" else value.to(device).clone()
        state_dict["state"] = state
        self.optimiser.load_state_dict(state_dict)

    def set_lr(self, scale: float) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = group["base_lr"] * scale


def _lr_scale(config: LoopConfig, step: int, guard_scale: float) -> float:
    decay = config.decay_factor ** (step // config.decay_every) if config.decay_every else 1.0
    return decay * guard_scale


def method_snapshot(method: Method) -> dict[str, torch.Tensor]:
    """A copy of the method's own state, keyed `method.<name>`: with the set and its optimiser (`_State.snapshot`),
    what the divergence guard rolls back to, so that a rollback leaves no part of the run at the step it left."""
    return {f"method.{k}": v.detach().clone() for k, v in method.state_dict().items()}


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file was written at, or None where there is none that can be read."""
    try:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), framework="pt") as handle:
            return int(handle.metadata()["step"])
    except Exception:  # noqa: BLE001 - missing, half-written or foreign: no step to go on from
        return None


def _under(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors saved under `prefix` (`best.`, `method.`, `good.`), keyed without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(path: Path, state: _State, step: int, guard_scale: float, result: LoopResult, config: dict,
                    best: dict[str, torch.Tensor] | None = None, method_state: dict[str, torch.Tensor] | None = None,
                    good: tuple[int, dict[str, torch.Tensor]] | None = None):
    """Everything the loop needs to go on exactly as if never stopped: the set and optimiser, the best set so far,
    the method's own state and the divergence guard's fallback (`good`: the step and state it would roll back to)."""
    meta = {"step": str(step), "guard_scale": repr(guard_scale), "history": json.dumps(result.history),
            "seconds": repr(result.seconds), "rollbacks": str(result.rollbacks), "config": json.dumps(config),
            "best": json.dumps([result.best_step, result.best_val])}
    tensors = {k: v.cpu().contiguous() for k, v in state.tensors().items()}
    tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in (best or {}).items()})
    if good is not None:
        meta["good_step"] = str(good[0])
        tensors.update({f"good.{k}": v.cpu().contiguous() for k, v in good[1].items()})
    tensors.update({f"method.{k}": v.detach().cpu().contiguous() for k, v in (method_state or {}).items()})
    _atomic_write(path, lambda name: save_file(tensors, name, metadata=meta))


def run_loop(
    method: Method,
    synset: SyntheticSet,
    config: LoopConfig,
    validate: Callable[[SyntheticSet], float] | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    run_config: dict | None = None,
    progress: bool = True,
    free_on_resume: tuple[str, ...] = (),
    added_since: dict | None = None,
) -> LoopResult:
    """Optimise `synset` in place to minimise `method.loss`. Returns the loss / validation history.

    `--resume` insists on the options the checkpoint was written with, except `free_on_resume`: options that do not
    change the optimisation (how the final set is evaluated), so a finished run can be re-evaluated differently."""
    state = _State(synset, config)
    result = LoopResult()
    best: dict[str, torch.Tensor] = {}  # the synthetic tensors that scored best on validation so far
    start_step, guard_scale = 0, 1.0
    good: tuple[int, dict[str, torch.Tensor]] | None = None  # the divergence guard's fallback (step, state)
    checkpoint = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    run_config = run_config or {}
    if resume:
        if checkpoint is None or not checkpoint.is_file():
            raise DistillError(f"--resume: no checkpoint at {checkpoint}")
        try:
            saved_tensors = load_file(str(checkpoint))
            from safetensors import safe_open  # noqa: PLC0415

            with safe_open(str(checkpoint), framework="pt") as handle:
                saved_meta = handle.metadata()
        except Exception as exc:  # noqa: BLE001
            raise DistillError(f"--resume: cannot read {checkpoint} ({exc})") from None
        pinned = lambda c: {k: v for k, v in c.items() if k not in free_on_resume}  # noqa: E731
        saved_config = {**(added_since or {}), **json.loads(saved_meta["config"])}  # a checkpoint written before a
        # field existed ran with the value every run had then (`added_since`), and resumes under this version
        if pinned(saved_config) != pinned(json.loads(json.dumps(run_config))):
            raise DistillError(f"--resume: {checkpoint} was written by a run with different options; "
                               "use the same options, or start afresh with --force")
        state.restore({k: v for k, v in saved_tensors.items() if not k.startswith(("best.", "method.", "good."))})
        method.load_state_dict(_under(saved_tensors, "method."))
        best = {k: v.to(synset.images.device) for k, v in _under(saved_tensors, "best.").items()}
        # the guard's fallback: where an uninterrupted run would roll back to (checkpoints before it kept none)
        if "good_step" in saved_meta:
            good = (int(saved_meta["good_step"]), _under(saved_tensors, "good."))
        result.best_step, result.best_val = json.loads(saved_meta.get("best", "[null, null]"))
        start_step, guard_scale = int(saved_meta["step"]), float(saved_meta["guard_scale"])
        result.history = json.loads(saved_meta["history"])
        result.seconds, result.rollbacks = float(saved_meta["seconds"]), int(saved_meta["rollbacks"])

    good = good or (start_step, {**state.snapshot(), **method_snapshot(method)})
    began = time.perf_counter() - result.seconds
    last_val = result.history[-1].get("val_acc") if result.history else None
    # closed however the loop ends, so that a Ctrl-C's message is not drawn over by a bar left open
    device = synset.images.device
    with tqdm(total=config.iterations, initial=start_step, desc=f"distill ({method.name})",
              disable=not progress or not parallel.is_main(), dynamic_ncols=True) as bar:

        def say(message: str) -> None:  # one line above the bar, from rank 0 only
            if parallel.is_main():
                bar.write(message)

        step = start_step
        spent = bool(config.time_limit) and start_step > 0 and result.seconds >= config.time_limit
        if spent:  # a resumed run whose time limit its earlier minutes used up: no step, so the set stays the one saved
            say(f"time limit of {config.time_limit / 60:g} min already spent by the run resumed at step {step}")
        while step < config.iterations and not spent:
            state.set_lr(_lr_scale(config, step, guard_scale))
            # the method's state before this step's loss moves it (dc trains its network there, frepo its pool):
            # with the set as it is now, the guard's fallback if the step turns out good
            method_before = method_snapshot(method) if step % 10 == 0 else None
            loss = method.loss(synset, step, step_generator(config.seed, step))
            grads = torch.autograd.grad(loss, state.synset.trainable(), allow_unused=True)
            # under torch.distributed: the gradients and the loss over all ranks, so every rank takes the same step
            grads = parallel.reduce_gradients(list(grads), state.synset.trainable(), method.parallel)
            loss_value = parallel.reduce_value(loss.item(), method.parallel, device)
            finite = math.isfinite(loss_value) and all(g is None or bool(torch.isfinite(g).all()) for g in grads)
            spiked = finite and _spiked(loss_value, result.history, config.spike_factor)
            if finite and not spiked:
                if step % 10 == 0:  # the state this loss was just measured on is known good: the guard's fallback
                    good = (step, {**state.snapshot(), **method_before})
                for tensor, grad in zip(state.synset.trainable(), grads):
                    tensor.grad = grad
                state.optimiser.step()
                state.optimiser.zero_grad(set_to_none=True)
                if config.clamp_pixels:
                    synset.clamp_to_pixel_range_()
                if config.ema:
                    state.update_ema(config.ema)
                finite = all(bool(torch.isfinite(t).all()) for t in state.synset.trainable())
            if not finite or spiked:
                result.rollbacks += 1
                if result.rollbacks > config.max_rollbacks:
                    raise DistillError(f"distillation diverged {result.rollbacks} times; try a smaller --lr")
                guard_scale /= 2
                why = (f"loss {loss_value:.3g} is over {config.spike_factor:g}x its recent median" if spiked
                       else "loss or gradient is not finite")
                say(f"step {step}: {why}; rolling back to step {good[0]} and halving the step size "
                    f"(now x{guard_scale:g})")
                step = good[0]
                state.restore(good[1])
                method_state = _under(good[1], "method.")
                if method_state:  # the method's own state as it was then too (dc's network, frepo's pool)
                    method.load_state_dict(method_state)
                result.history = [r for r in result.history if r["step"] <= step]
                bar.n = step
                bar.refresh()
                continue
            step += 1
            timed_out = bool(config.time_limit) and time.perf_counter() - began >= config.time_limit
            out_of_time = parallel.any_rank(timed_out, device)
            last_step = step == config.iterations or out_of_time
            record = {"step": step, "loss": round(loss_value, 5)}
            if validate is not None and (step % config.eval_every == 0 or last_step):
                with state.averaged():  # rank 0 validates, and every rank keeps the set it chose
                    last_val = parallel.from_main(validate(synset) if parallel.is_main() else None, device)
                record["val_acc"] = round(last_val, 5)
                if result.best_val is None or last_val > result.best_val:
                    result.best_step, result.best_val = step, last_val
                    best = state.kept()
            result.history.append(record)
            bar.set_postfix(loss=f"{loss_value:.4f}", val=("-" if last_val is None else f"{last_val:.2%}"))
            bar.update(1)
            result.seconds = time.perf_counter() - began
            if checkpoint is not None and parallel.is_main() and (step % config.checkpoint_every == 0 or last_step):
                save_checkpoint(checkpoint, state, step, guard_scale, result, run_config, best, method.state_dict(),
                                good)
            if out_of_time and step < config.iterations:
                say(f"time limit of {config.time_limit / 60:g} min reached at step {step} of {config.iterations}")
                break
    result.steps = step
    if config.keep_best and best:
        state.load_synset(best)
    elif config.ema:
        state.load_synset(state.kept())
    result.seconds = time.perf_counter() - began
    return result


def loop_config_dict(config: LoopConfig) -> dict:
    return asdict(config)
