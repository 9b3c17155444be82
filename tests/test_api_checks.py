"""Checks at the public entry points, each found by a user: two runs into one output folder, options a method ignores
recorded as if they had run, wrong types and None from Python, an attack's unchecked `image_init`, and device types
PyTorch has no device for. Each is refused in one line before any work (or, for the folder lock, before any file)."""

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import distill
from distill import output, presets
from distill.device import backend_available
from distill import run as pipeline
from distill.config import DistillConfig, resolve
from distill.device import pick_device
from distill.output import LOCK_NAME
from distill.errors import DistillError
from distill.config import AttackConfig
from distill.synset import SyntheticSet, save

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = dict(dataset="digits", method="dd", iterations=2, eval_every=2, checkpoint_every=2, progress=False,
            evaluate=False)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]


HOLDER = """import sys
from pathlib import Path
from distill.output import prepare_output
with prepare_output(Path(sys.argv[1]), force=False, resume=False):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def another_run(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding `folder` as a run does (inside prepare_output), until its stdin closes or it is
    killed; yields once it holds the lock."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=120)
        holder.stdout.close()


def is_locked(lock: Path) -> bool:
    """Whether some open file holds the kernel's lock on `lock` (tried through an open file of our own)."""
    import fcntl
    probe = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(probe)
    return False


def refusal(out: Path, pid: int) -> str:
    """The whole refusal of a held folder, as a pattern: it names the holder and no longer says to delete anything."""
    return (rf"^{re.escape(str(out))} is in use by another run \(process {pid} on {re.escape(socket.gethostname())}"
            r"\): wait for it to end, or give another --out$")


def tiny_set(folder: Path) -> Path:
    synset = SyntheticSet(torch.randn(10, 1, 8, 8), torch.arange(10),
                          {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": [0.5],
                           "std": [0.5], "method": "dd", "arch": "lenet", "ipc": 1, "steps": 1, "epochs": 1,
                           "init": "random"}, torch.zeros(10, dtype=torch.long), torch.tensor([0.02]).log())
    return save(synset, folder / "tiny.safetensors")


# Defect 1: one output folder, one run at a time


def test_a_second_run_into_a_held_folder_is_refused_before_writing_anything(tmp_path):
    out = tmp_path / "same"
    lock = out / LOCK_NAME
    with another_run(out) as holder:
        written, inode = lock.read_text(), lock.stat().st_ino
        assert written == f"{holder.pid} {socket.gethostname()}\n"
        for force in (False, True):  # --force replaces a finished run, never one still running
            with pytest.raises(DistillError, match=refusal(out, holder.pid)):
                distill.distill(**TINY, out=out, force=force)
        with pytest.raises(DistillError, match=refusal(out, holder.pid)):  # attacks too, before any victim trains
            distill.attack(dataset="digits", iterations=1, craft_victims=1, eval_victims=1, out=out, progress=False)
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
        assert lock.read_text() == written and lock.stat().st_ino == inode  # the running run's lock is left alone
        assert is_locked(lock)
    assert not out.exists()  # the holder, ending, removed its lock and the folder it made


def test_the_command_line_refuses_a_held_folder_in_one_line(tmp_path):
    out = tmp_path / "same"
    with another_run(out) as holder:
        result = cli("run", "--dataset", "digits", "--method", "dd", "--iterations", "2", "--out", out)
    assert_one_line_error(result, f"{out} is in use by another run (process {holder.pid} on ")
    assert result.stderr.rstrip().endswith("): wait for it to end, or give another --out"), result.stderr


def test_a_run_holds_the_lock_while_it_works_and_leaves_none_behind(tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    real_loop = pipeline.run_loop

    def watched_loop(*args, **kwargs):
        seen.append(((out / LOCK_NAME).read_text().split()[0], is_locked(out / LOCK_NAME)))
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_loop", watched_loop)
    run = distill.distill(**TINY, out=out)
    assert seen == [(str(os.getpid()), True)]  # a lock the kernel holds, not only a file
    assert not (out / LOCK_NAME).exists()
    assert run.files["synset"].is_file()


def test_an_interrupted_run_releases_the_lock_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_loop", interrupted)
    out = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt):
        distill.distill(**TINY, out=out)
    assert not (tmp_path / "a").exists()


def test_a_lock_file_nobody_holds_is_taken_over_whatever_process_it_names(tmp_path):
    """A lock file is only the holder's name for the refusal: one left by a dead run is free, even when the process
    it names is alive (a reused process id, here this very process) or it names none (a run killed before writing)."""
    for left in (f"{os.getpid()} {socket.gethostname()}\n", ""):
        out = tmp_path / f"left-{len(left)}"
        out.mkdir()
        (out / LOCK_NAME).write_text(left)
        distill.distill(**TINY, out=out)
        assert (out / "synset.safetensors").is_file() and not (out / LOCK_NAME).exists()


def test_a_killed_run_frees_the_folder_at_once(tmp_path):
    """A run killed with SIGKILL cannot remove its lock file, but its lock dies with it: the next run goes on."""
    out = tmp_path / "killed"
    with another_run(out) as holder:
        with pytest.raises(DistillError, match=refusal(out, holder.pid)), output.prepare_output(out, False, False):
            pass
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
        assert (out / LOCK_NAME).read_text() == f"{holder.pid} {socket.gethostname()}\n"  # left behind
        assert not is_locked(out / LOCK_NAME)
        with output.prepare_output(out, force=False, resume=False):
            assert (out / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
            assert is_locked(out / LOCK_NAME)
    assert list(out.iterdir()) == []  # our lock is gone; the folder, made by the killed run, stays


@pytest.mark.parametrize("third_run", [True, False])
def test_a_lock_file_replaced_between_open_and_lock_is_opened_again(tmp_path, monkeypatch, third_run):
    """Between a run's open of the lock file and its lock, the holder may end (removing the file while still
    holding it) and a third run make a new one: the lock granted on the removed file must not let the run go on
    beside the third (the old check-remove-create takeover let two runs through), so it opens the path again."""
    lock = tmp_path / LOCK_NAME
    lock.write_text("")
    real_lock_file, others = output.lock_file, []

    def racing(handle):
        if not others:  # the first lock asked for: just before it, the holder ends and maybe a third run begins
            others.append(None)
            lock.unlink()
            if third_run:
                others.append(output.take_lock(lock))
        return real_lock_file(handle)

    monkeypatch.setattr(output, "lock_file", racing)
    if third_run:
        with pytest.raises(DistillError, match=refusal(tmp_path, os.getpid())):
            output.take_lock(lock)
        output.release_lock(lock, others[-1])
    else:
        handle = output.take_lock(lock)
        assert os.fstat(handle).st_ino == lock.stat().st_ino and is_locked(lock)
        output.release_lock(lock, handle)
    assert not lock.exists()


# Defect 4: options a method would ignore


def resolved(**options) -> DistillConfig:
    """A configuration as `distill run --method dd` builds it: the given options over the method's defaults and the
    preset (`dd` unless they name another)."""
    return DistillConfig(**resolve(dataset="digits", **{"method": "dd", **options}))


@pytest.mark.parametrize("options, fragment", [
    ({"method": "herding", "iterations": 500}, "--iterations shapes a distillation, and 'herding' only picks"),
    ({"method": "herding", "lr_images": 3.0}, "--lr shapes a distillation"),
    ({"method": "kcenter", "ema": 0.5}, "--ema shapes a distillation"),
    ({"method": "herding", "max_minutes": 2.0}, "--max-minutes shapes a distillation"),
    ({"method": "herding", "clamp_pixels": True}, "--clamp-pixels shapes a distillation"),
    ({"method": "herding", "keep_best": False}, "--keep-last shapes a distillation"),
    ({"method": "random", "image_init": "noise"}, "--image-init shapes a distillation"),
    ({"method": "random", "image_init": "runs/m-dc/synset.safetensors"}, "--image-init shapes a distillation"),
    ({"method": "dm", "init_lr": 5.0}, "--init-lr applies to methods that learn a training learning rate"),
    ({"method": "dm", "lr_lrs": 3.0}, "--lr-lrs applies to methods that learn a training learning rate"),
    ({"optimizer": "adam", "momentum": 0.9}, "--momentum applies to the sgd outer optimiser"),
    ({"method": "mtt", "momentum": 0.9}, "--momentum applies to the sgd outer optimiser"),
    ({"method": "dm", "lr_labels": 0.1}, "--lr-labels is the step size of learned labels"),
    ({"method": "dd", "validation": "standard"}, "a dd set is validated with the schedule it learned"),
])
def test_options_a_method_ignores_are_refused(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        resolved(**options).validate()


@pytest.mark.parametrize("options", [
    {"method": "herding"}, {"method": "random", "seed": 3, "eval_nets": 2},  # a coreset's own and evaluation's
    {"method": "mtt", "init_lr": 0.05, "lr_lrs": 0.1}, {"method": "dd", "init_lr": 0.05, "lr_lrs": 0.1},
    {"method": "dc", "momentum": 0.9}, {"method": "dc", "optimizer": "adam"},  # the preset's momentum is no choice
    {"optimizer": "sgd", "momentum": 0.9}, {"method": "frepo", "learn_labels": True, "lr_labels": 0.1},
    {"method": "unroll", "learn_labels": False},  # its preset's label step size is not the user's
    {"method": "dm", "validation": "standard", "image_init": "noise"},
])
def test_those_options_still_work_where_they_apply(options):
    resolved(**options).validate()


def test_the_command_line_refuses_a_coreset_with_loop_options_in_one_line(tmp_path):
    result = cli("run", "--dataset", "digits", "--method", "herding", "--iterations", "500", "--lr", "3", "--ema",
                 "0.5", "--image-init", "noise", "--clamp-pixels", "--out", tmp_path / "o")
    assert_one_line_error(result, "--iterations shapes a distillation")
    assert not (tmp_path / "o").exists()


def test_every_preset_is_still_accepted():
    """The new refusals must not refuse a shipped setting (the committed benchmark commands: test_benchmark_runs's
    test_every_committed_rows_recorded_command_may_replace_it, which validates each one's options)."""
    for dataset, method, ipc in presets.PRESETS:
        DistillConfig(**resolve(dataset=dataset, method=method, ipc=ipc)).validate()


# Defect 9: the Python API's types


def test_wrong_types_from_python_are_one_line(tmp_path):
    tiny = tiny_set(tmp_path)
    with pytest.raises(DistillError, match="n_nets must be of type int, got '3'"):
        distill.evaluate(tiny, n_nets="3")
    with pytest.raises(DistillError, match="config must be a DistillConfig, got dict"):
        distill.distill({"ipc": 2})
    with pytest.raises(DistillError, match="config must be an AttackConfig, got dict"):
        distill.attack({"ipc": 2})
    with pytest.raises(DistillError, match="ipc must be of type int, got"):
        distill.distill(dataset="digits", ipc=[2])  # a list used to fail in the preset lookup as unhashable
    with pytest.raises(DistillError, match="options must be of type dict"):
        distill.distill(dataset="digits", options=["real_batch=8"])


def test_none_is_not_given(tmp_path):
    assert resolve(dataset="mnist", ipc=1, method=None)["method"] == presets.BEST_METHOD[("mnist", 1)]
    assert resolve(dataset="digits", ipc=None, method=None)["method"] == presets.BEST_METHOD[("digits", 1)]
    # at 2 per class no method was measured best on the digits: the seed's dd
    run = distill.distill(**{**TINY, "method": None, "ipc": 2}, options=None)  # was a TypeError, method=None refused
    assert run.synset.meta["config"]["method"] == "dd" and run.synset.meta["config"]["options"] == {}
    result = distill.evaluate(tiny_set(tmp_path), n_nets=1, augment=None, epochs=None, lr=None, progress=False)
    assert result.n_nets == 1  # augment=None was an AttributeError inside the augmentation


def test_an_empty_path_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistillError, match="out is empty"):
        distill.distill(**TINY, out="")
    with pytest.raises(DistillError, match="data_root is empty"):
        distill.distill(**TINY, data_root=" ")
    with pytest.raises(DistillError, match="out is empty"):
        distill.attack(dataset="digits", out="")
    assert list(tmp_path.iterdir()) == []


# Defect 10: the attack's starting images


@pytest.mark.parametrize("image_init, fragment", [("Real", "did you mean 'real'"), ("herding", "got 'herding'")])
def test_an_attack_refuses_a_start_it_does_not_take(image_init, fragment):
    with pytest.raises(DistillError, match=f"image_init of an attack must be one of real, noise.*{fragment}"):
        distill.attack(dataset="digits", image_init=image_init, iterations=1, craft_victims=1, eval_victims=1,
                       progress=False)
    replace(AttackConfig(dataset="digits"), image_init="noise").validate()


def test_an_attack_resumed_without_a_folder_says_so():
    with pytest.raises(DistillError, match="--resume needs the output folder of the run to continue"):
        distill.attack(dataset="digits", resume=True, progress=False)


# Defect 11: device types PyTorch has no device for


@pytest.mark.parametrize("device", ["xpu", "hpu", "meta", "mtia:0"])
def test_a_device_type_that_is_not_there_is_one_line(device):
    kind = device.split(":")[0]
    if kind != "meta" and backend_available(kind):
        pytest.skip(f"this machine has a {kind} device")
    with pytest.raises(DistillError, match="available.*cpu"):
        pick_device(device)


def test_eval_on_an_absent_device_type_is_one_line(tmp_path):
    tiny = tiny_set(tmp_path)
    assert_one_line_error(cli("eval", tiny, "--device", "meta"), "--device meta")
    if not backend_available("xpu"):
        assert_one_line_error(cli("eval", tiny, "--device", "xpu"), "has no xpu device here")
