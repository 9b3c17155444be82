"""Time one outer step of each matching method, so a GPU session can see where a step's time goes before it spends
its minutes on long runs (README, "Known gaps": the H200 steps were slow). Writes
benchmarks/results/profile-<device>-<dataset>-ipc<N>[-flags].json.

    DISTILL_DATA=../shared/data python experiments/profile_step.py                      # every method, MNIST, 10/class
    DISTILL_DATA=../shared/data python experiments/profile_step.py --methods dsa --profile   # plus the top operators
    DISTILL_DATA=../shared/data python experiments/profile_step.py --cudnn-benchmark --tf32  # the same with autotuning
    DISTILL_DATA=../shared/data python experiments/profile_step.py --methods frepo --ipc 1 --image-init real \
        --opt real_dtype=bfloat16                                                  # one method option changed
    DISTILL_DATA=../shared/data python experiments/profile_step.py --methods frepo --ipc 1 --no-grad-chunk 1024
                                                 # gradient-free forward passes over up to 1,024 images at a time

A step is what the shared loop does: the method's loss at that step, then the gradient of the set's tensors. The
settings are the shipped presets (the papers' 256 real images per class on a GPU), so the times are those of the
benchmarked runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # benchmarks/common.py, shared
from common import HERE, device_name, git_commit

from distill import models
from distill.config import DistillConfig, resolve
from distill.device import pick_device
from distill.methods import create
from distill.start import initial_synset
from distill.data import load_task
from distill.errors import DistillError
from distill.methods.base import options_from_pairs
from distill.loop import step_generator
from distill.report import write_json


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(method, synset, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per outer step (loss and gradient), after `warmup` untimed steps."""
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            began = time.perf_counter()
        loss = method.loss(synset, step, step_generator(0, step))
        torch.autograd.grad(loss, synset.trainable(), allow_unused=True)
    synchronize(device)
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--methods", default="dc,dsa,dm,mtt")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune its convolutions")
    parser.add_argument("--tf32", action="store_true", help="TF32 for matrix products and convolutions")
    parser.add_argument("--profile", action="store_true", help="print the operators that took the most time")
    parser.add_argument("--image-init", default=None, help="instead of the preset's (a step's cost does not depend on "
                        "it, and a coreset start needs the full-data network)")
    parser.add_argument("--no-grad-chunk", type=int, default=None, help="images per gradient-free forward pass "
                        f"(default {models.CPU_NO_GRAD_CHUNK} on the CPU, {models.GPU_NO_GRAD_CHUNK} on a GPU): what "
                        "the chunks save")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a method option over the preset's (repeatable)")
    args = parser.parse_args()
    try:
        opts = options_from_pairs(args.opt)
    except DistillError as error:
        parser.error(str(error))
    if args.no_grad_chunk is not None:
        if args.no_grad_chunk < 1:
            parser.error("--no-grad-chunk must be at least 1")
        models.CPU_NO_GRAD_CHUNK = models.GPU_NO_GRAD_CHUNK = args.no_grad_chunk
    overrides = {"image_init": args.image_init} if args.image_init else {}
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    device = pick_device(args.device)
    task = load_task(args.dataset).to(device)
    rows = {}
    for name in args.methods.split(","):
        config = DistillConfig(**resolve(dataset=args.dataset, method=name, ipc=args.ipc, **overrides))
        config = dataclasses.replace(config, options={**config.options, **opts})
        config.validate()
        synset = initial_synset(config, task)
        method = create(config)
        method.setup(task, synset)
        rows[name] = {"seconds_per_step": time_steps(method, synset, args.steps, args.warmup, device),
                      "options": config.options}
        print(name, json.dumps(rows[name]), flush=True)
        if args.profile:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as profiler:
                time_steps(method, synset, 2, 0, device)
            key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
            print(profiler.key_averages().table(sort_by=key, row_limit=15), flush=True)
    flags = [f for f, on in (("cudnn-benchmark", args.cudnn_benchmark), ("tf32", args.tf32)) if on]
    flags += [f"{k}-{v}" for k, v in opts.items()]
    flags += [f"no-grad-chunk-{args.no_grad_chunk}"] if args.no_grad_chunk is not None else []
    name = "-".join(["profile", device.type, args.dataset, f"ipc{args.ipc}", *flags])
    write_json({"name": name, "dataset": args.dataset, "ipc": args.ipc, "methods": rows, "flags": flags,
                "device": device_name(str(device)), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "git_commit": git_commit(), "command": "DISTILL_DATA=../shared/data python experiments/profile_step.py "
                + " ".join(sys.argv[1:])}, HERE / "results" / f"{name}.json")


if __name__ == "__main__":
    sys.exit(main())
