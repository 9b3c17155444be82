"""What the benchmarks (benchmarks/run.py) and the experiments (experiments/*.py) share: run one setting through
`distill.distill(...)` and write benchmarks/results/<name>.json with the fields GUIDE §7 asks for (and the exact command
that reproduces it); where a run was measured (device, threads, git commit); the committed sets as of a commit."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import distill
from distill.report import write_json

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    """The CPU model and the vector instructions torch uses on it ("AMD EPYC (AVX2)"): two CPUs of one model name can
    differ tenfold in a bfloat16 step, and networks trained on them differ in the last bits."""
    return f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_gb() -> float | None:
    """The process's peak resident memory so far, in GiB (what a run needs of the machine's RAM); None where the
    platform does not report it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 2)


_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def peak_memory_of(command: list[str]) -> float:
    """The peak resident memory (MB) of `command`, run as the only child of a fresh process (Linux: the kernel's
    count for that process, whatever allocator it used)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    kilobytes, code = done.stdout.split()[-2:]
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed ({code}): {done.stderr[-2000:]}")
    return int(kilobytes) / 1024


def device_name(device: str) -> str:
    """The GPU's name for a CUDA run, else the CPU model (results files record where they were measured)."""
    return torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()


def gpu_sharing(device: str) -> dict:
    """How many runs shared the GPU, and whether side by side under CUDA MPS, as benchmarks/gpu_session.sh tells
    its runs (DISTILL_RUNS_ON_DEVICE, DISTILL_MPS): a run's seconds mean little without it. Empty on the CPU."""
    runs = os.environ.get("DISTILL_RUNS_ON_DEVICE")
    if not (device.startswith("cuda") and runs):
        return {}
    return {"processes_on_device": int(runs), "mps": os.environ.get("DISTILL_MPS") == "1"}


def committed_set(name: str, at: str | None = None) -> tuple[dict, Path]:
    """A committed benchmark set's run configuration (benchmarks/results/<name>.json) and its set file
    (benchmarks/artifacts/<name>.safetensors); exits with what is missing when either is. With `at` (a commit), both
    as committed then, the set copied to benchmarks/runs/at-<commit>/: a sweep recorded on a set that has changed
    since (a teacher blend, a longer run) is repeated on the set it measured."""
    results_file, artifact = HERE / "results" / f"{name}.json", HERE / "artifacts" / f"{name}.safetensors"
    if at is None:
        if not (results_file.is_file() and artifact.is_file()):
            sys.exit(f"{name}: needs benchmarks/results/{name}.json and benchmarks/artifacts/{name}.safetensors")
        return json.loads(results_file.read_text())["config"], artifact
    commit = commit_of(at)
    return json.loads(blob_at(commit, results_file))["config"], file_at(commit, artifact)


def commit_of(at: str) -> str:
    """The full hash `at` (a commit, tag or branch) names in this repository."""
    found = git_output("rev-parse", "--verify", "--quiet", f"{at}^{{commit}}")
    if found is None:
        raise distill.DistillError(f"--at {at}: not a commit of this repository")
    return found.decode().strip()


def short_commit(at: str | None) -> str | None:
    """`--at` as a script records it: the commit's hash, not a name that moves (HEAD~3, a branch)."""
    return commit_of(at)[:12] if at else None


def blob_at(commit: str, path: Path) -> bytes:
    """A repository file's bytes as committed at `commit` (a hash commit_of or short_commit gave)."""
    try:
        where = path.resolve().relative_to(HERE.parent).as_posix()
    except ValueError:
        raise distill.DistillError(f"--at {commit}: {path} is not in the repository") from None
    blob = git_output("show", f"{commit}:{where}")
    if blob is None:
        raise distill.DistillError(f"--at {commit}: commit {commit[:12]} has no {where}")
    return blob


def file_at(commit: str, path: Path) -> Path:
    """A repository file as committed at `commit` (a hash commit_of or short_commit gave), copied (atomically) to
    benchmarks/runs/at-<commit>/ for the scripts that read a path: a sweep or table recorded on a set that has
    changed since is repeated on the set it measured."""
    blob = blob_at(commit, path)
    copy = HERE / "runs" / f"at-{commit[:12]}" / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    partial = copy.with_name(f".{copy.name}.partial")
    partial.write_bytes(blob)
    os.replace(partial, copy)
    return copy


def git_output(*args: str) -> bytes | None:
    """A git command's output in this repository, None when it fails (no such commit or file, no git)."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, cwd=HERE)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def measure_on_splits(synset, task, n_nets: int, augment: str, sgd) -> dict:
    """Train `n_nets` fresh networks on `synset` with the standard protocol (`sgd`, `augment`) and measure each on
    the held-out validation split and the test split: the sweeps choose a variant by the first and only report the
    second, on the same networks."""
    from distill.evaluate import evaluate_set, mean_std  # noqa: PLC0415

    result = evaluate_set(synset, task, n_nets=n_nets, sgd=sgd, augment=augment, validation=True)
    return {"validation": mean_std(result.detail["val_accuracies"]), "test": mean_std(result.accuracies),
            "val_accuracies": result.detail["val_accuracies"], "test_accuracies": result.accuracies}


def git_commit() -> str:
    """HEAD, marked `-dirty` when tracked files differ from it: a result from uncommitted code says so."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if changed else head


def copy_atomic(source: Path, destination: Path) -> None:
    """Copy through a temporary file renamed into place: a committed artifact is never left half written."""
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)


def positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1 (--nets)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_main(main) -> None:
    """Run a benchmark script's main: a problem the user can fix (a DistillError) ends as one line on stderr and a
    non-zero exit, as on the command line, not as a traceback."""
    try:
        sys.exit(main())
    except distill.DistillError as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {exc}")


def run_name(setting: str, seed: int) -> str:
    """The name a (setting, seed) run's folder and results file go by: seed 0 keeps the setting's own name."""
    return f"{setting}-seed{seed}" if seed else setting


def check_replaces_only_its_own(name: str, command: str) -> None:
    """Refuse, before any network trains, to overwrite benchmarks/results/<name>.json made by another command (a
    preset's row run again with `--iterations 100` to try something would quietly replace its committed result and
    set). The command that made a file reproduces it and may always replace it; anything else needs --replace."""
    path = HERE / "results" / f"{name}.json"
    if not path.is_file():
        return
    recorded = json.loads(path.read_text()).get("command")
    if recorded != command:
        raise distill.DistillError(
            f"benchmarks/results/{name}.json was made by `{recorded}`; this command (`{command}`) would replace it "
            "and its committed set. Run the recorded command to reproduce it, or add --replace to replace it")


def run_setting(name: str, options: dict, command: str, artifact: str | None = None, seed: int = 0,
                device: str | None = None, resume: bool = False, extra: dict | None = None,
                replace: bool = False) -> dict:
    """Distill with `options` (through the presets, as `distill run` does), write the results file, and copy the
    set to benchmarks/artifacts/<artifact>.safetensors when asked. A seed other than 0 is part of the name
    (<name>-seed<N>), so runs of one setting with several seeds keep their own results files and their own set
    files: a second seed's run never replaces the committed set of the first, which its results file describes.
    A results file another command made is replaced only with `replace` (check_replaces_only_its_own)."""
    name = run_name(name, seed)
    artifact = run_name(artifact, seed) if artifact else None
    command += f" --seed {seed}" if seed else ""
    if not replace:
        check_replaces_only_its_own(name, command)
    out = HERE / "runs" / name
    run = distill.distill(out=out, force=not resume, resume=resume, device=device, seed=seed, **options)
    r = run.results
    config = run.synset.meta["config"]
    result = {
        "name": name, "dataset": config["dataset"], "method": config["method"], "ipc": config["ipc"],
        "images": len(run.synset.labels), "arch": config["arch"], "init": config["init"],
        "protocol": r["distilled"]["protocol"],
        "eval_augment": r["distilled"]["detail"].get("augment", "none"),
        "accuracy_mean": r["distilled"]["accuracy_mean"], "accuracy_std": r["distilled"]["accuracy_std"],
        "n_eval_nets": r["distilled"]["n_nets"], "accuracies": r["distilled"]["accuracies"],
        "full_data": {k: r["full_data"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets")},
        "random_real": {k: r["random_real"][k] for k in ("accuracy_mean", "accuracy_std", "n_nets", "protocol")},
        "best_val_acc": max((h["val_acc"] for h in run.history if "val_acc" in h), default=None),
        "final_val_acc": next((h["val_acc"] for h in reversed(run.history) if "val_acc" in h), None),
        "val_history": [[h["step"], h["val_acc"]] for h in run.history if "val_acc" in h],  # [step, accuracy]
        "steps_taken": r.get("steps_taken"),
        "distill_seconds": r["distill_seconds"], "device": device_name(r["device"]),
        "threads": torch.get_num_threads(), "peak_memory_gb": peak_memory_gb(), "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(), "command": command,
        "config": config, **gpu_sharing(r["device"]), **(extra or {}),
    }
    if artifact:  # the set first, its results file last: a failed copy leaves the two in step
        (HERE / "artifacts").mkdir(exist_ok=True)
        copy_atomic(out / "synset.safetensors", HERE / "artifacts" / f"{artifact}.safetensors")
        copy_atomic(out / "grid.png", HERE / "artifacts" / f"{artifact}.png")
        if run.history:
            copy_atomic(out / "val_curve.png", HERE / "artifacts" / f"{artifact}-val.png")
    (HERE / "results").mkdir(exist_ok=True)
    write_json(result, HERE / "results" / f"{name}.json")
    print(json.dumps({k: result[k] for k in ("name", "accuracy_mean", "accuracy_std", "n_eval_nets",
                                              "distill_seconds")}))
    return result
