"""Data-parallel distillation under torchrun on the CPU (gloo, 127.0.0.1): the same seed gives the same set with one
process and with two (up to the order the shares' gradients are summed in), a run killed under torchrun resumes to
where an uninterrupted one ends, and two launchers meeting at a c10d rendezvous (two machines, simulated on this
one) make the same set too."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import distill

TINY = ["--dataset", "digits", "--iterations", "4", "--eval-every", "2", "--checkpoint-every", "2", "--seed", "3",
        "--no-eval", "--quiet"]
OPTIONS = {"dm": ["--method", "dm", "--opt", "real_batch=32"],  # each rank matches half the classes
           "dd": ["--method", "dd", "--opt", "real_batch=64", "--opt", "nets_per_step=2"],  # a network each
           "dd-batch": ["--method", "dd", "--opt", "real_batch=64"],  # one network, half its real batch each
           "dsa": ["--method", "dsa", "--ipc", "2", "--opt", "real_batch=16"],  # half the classes each
           "frepo": ["--method", "frepo", "--opt", "real_batch=64", "--learn-labels"]}  # half the real batch each
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # each rank, and the one process it is compared with


def torchrun(*args, nproc=2, launcher=("--standalone",), popen=None, env=ONE_THREAD):
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, f"--nproc_per_node={nproc}", "-m", "distill",
               "run", *map(str, args)]
    if popen is not None:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux: read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def one_process(*args, env=ONE_THREAD):
    done = subprocess.run([sys.executable, "-m", "distill", "run", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def assert_same_set(a, b, tolerance=1e-5):
    """Within 1e-5: the two runs sum the same shares in another order, a few float32 roundings apart a step."""
    for name in ("images", "labels", "lrs"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None
            continue
        assert torch.allclose(x.float(), y.float(), rtol=0, atol=tolerance), (name, (x - y).abs().max())


@pytest.mark.parametrize("method", list(OPTIONS))
def test_two_processes_make_the_one_process_set(tmp_path, method):
    one_process(*TINY, *OPTIONS[method], "--out", tmp_path / "one")
    two = torchrun(*TINY, *OPTIONS[method], "--out", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    a, b = (distill.load(tmp_path / name / "synset.safetensors") for name in ("one", "two"))
    assert_same_set(a, b)
    assert not torch.equal(a.images, distill.load(tmp_path / "two" / "synset.safetensors").images * 0)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_mtt_ranks_train_their_share_of_the_experts_and_split_the_matches(tmp_path):
    """Each rank trains one of the two experts (into a cache of this run's own, so nothing comes from the one-process
    run's), both ranks then hold both, and the step's two matches are one a rank: the one-process set."""
    pairs = ("experts=2", "train_epochs=2", "expert_epochs=1", "max_start_epoch=1", "syn_steps=3", "matches=2")
    mtt = [*TINY, "--method", "mtt", *[f for o in pairs for f in ("--opt", o)]]
    caches = {name: tmp_path / f"cache-{name}" for name in ("one", "two")}
    one_process(*mtt, "--out", tmp_path / "one", env={**ONE_THREAD, "DISTILL_CACHE": str(caches["one"])})
    two = torchrun(*mtt, "--out", tmp_path / "two", env={**ONE_THREAD, "DISTILL_CACHE": str(caches["two"])})
    assert two.returncode == 0, two.stderr
    experts = sorted(p.name for p in caches["two"].rglob("*expert*.safetensors"))
    assert len(experts) == 2 and experts == sorted(p.name for p in caches["one"].rglob("*expert*.safetensors"))
    a, b = (distill.load(tmp_path / name / "synset.safetensors") for name in ("one", "two"))
    assert_same_set(a, b)
    assert not torch.equal(a.lrs, torch.full_like(a.lrs, 0.01))  # the learned rate moved


def test_a_run_killed_under_torchrun_resumes_to_the_uninterrupted_set(tmp_path):
    args = [*TINY, *OPTIONS["dm"], "--iterations", "40", "--checkpoint-every", "5"]
    straight = torchrun(*args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "killed"
    process = torchrun(*args, "--out", out, popen={})
    deadline = time.time() + 300
    while not (out / "checkpoint.safetensors").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in [*descendants(process.pid), process.pid]:  # both ranks (torchrun starts them in sessions of their
        with contextlib.suppress(ProcessLookupError):  # own) and the launcher, at once: a machine going down
            os.kill(pid, signal.SIGKILL)
    process.wait()
    assert not (out / "synset.safetensors").exists(), "the run finished before it could be killed"
    resumed = torchrun(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_set(distill.load(tmp_path / "straight" / "synset.safetensors"),
                    distill.load(out / "synset.safetensors"), tolerance=1e-6)


def test_two_machines_meeting_at_a_rendezvous_make_the_one_process_set(tmp_path):
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = ("--nnodes=2", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=distill-test")
    args = [*TINY, *OPTIONS["dm"], "--out", tmp_path / "two-machines"]
    machines = [torchrun(*args, nproc=1, launcher=launcher, popen={}) for _ in range(2)]
    for machine in machines:
        _, errors = machine.communicate(timeout=600)
        assert machine.returncode == 0, errors
    one_process(*TINY, *OPTIONS["dm"], "--out", tmp_path / "one")
    assert_same_set(distill.load(tmp_path / "one" / "synset.safetensors"),
                    distill.load(tmp_path / "two-machines" / "synset.safetensors"))


def test_nproc_launches_the_same_run_through_torchrun(tmp_path):
    done = subprocess.run([sys.executable, "-m", "distill", "run", *TINY, *OPTIONS["dm"], "--nproc",
                           "2", "--out", tmp_path / "launched"], env=ONE_THREAD, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("distilled images") == 1  # rank 0 alone reports
    one_process(*TINY, *OPTIONS["dm"], "--out", tmp_path / "one")
    assert_same_set(distill.load(tmp_path / "one" / "synset.safetensors"),
                    distill.load(tmp_path / "launched" / "synset.safetensors"))
