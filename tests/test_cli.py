"""The `distill` command as a user runs it: every fixable problem is one line on stderr, exit code 2, no traceback,
and nothing already on disk is replaced. Plus exact resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import distill
from distill.synset import SyntheticSet, content_hash, save

SHARED = Path(os.environ.get("DISTILL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY_RUN = ["--method", "dd", "--iterations", "30", "--opt", "real_batch=128", "--eval-every", "10",
            "--checkpoint-every", "5", "--quiet"]


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_user_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


def tiny_set(tmp_path) -> Path:
    synset = SyntheticSet(torch.randn(10, 1, 8, 8), torch.arange(10),
                          {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": [0.5],
                           "std": [0.5], "method": "dd", "arch": "lenet", "ipc": 1, "steps": 1, "epochs": 1,
                           "init": "random"}, torch.zeros(10, dtype=torch.long), torch.tensor([0.02]).log())
    return save(synset, tmp_path / "good.safetensors")


def test_help_rewraps_docstrings_and_keeps_placeholders():
    """Help is markdown: a docstring's source line breaks must not split a sentence, and the <placeholders> of the
    default paths must survive (markdown drops bare ones as HTML)."""
    wide = {"COLUMNS": "200"}
    top = cli("--help", env=wide)
    assert top.returncode == 0, top.stderr
    relabel_line = next(line for line in top.stdout.splitlines() if " relabel " in line)
    assert "for a set already made" in relabel_line  # one sentence, one line at this width
    for command, placeholder in (("run", "runs/<dataset>-<method>"), ("attack", "runs/attack-<dataset>-<a>to<t>"),
                                 ("relabel", "<file>-teacher.safetensors")):
        shown = cli(command, "--help", env=wide)
        assert shown.returncode == 0, shown.stderr
        assert placeholder in shown.stdout, command


def test_unknown_dataset(tmp_path):
    assert_user_error(cli("run", "--dataset", "imagenet-42", "--out", tmp_path / "o"), "unknown dataset")
    assert not (tmp_path / "o").exists()


def test_missing_files_offline(tmp_path):
    result = cli("run", "--dataset", "mnist", "--data-root", tmp_path, "--out", tmp_path / "o",
                 env={"DISTILL_OFFLINE": "1"})
    assert_user_error(result, "missing train-images-idx3-ubyte.gz")


def test_truncated_gz(tmp_path):
    source = SHARED / "mnist"
    if not source.is_dir():
        pytest.skip("needs the MNIST files (DISTILL_DATA)")
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for item in source.glob("*.gz"):
        (folder / item.name).symlink_to(item.resolve())
    damaged = folder / "train-images-idx3-ubyte.gz"
    damaged.unlink()
    damaged.write_bytes((source / damaged.name).read_bytes()[:5000])
    result = cli("run", "--dataset", "mnist", "--data-root", tmp_path / "data", "--out", tmp_path / "o",
                 env={"DISTILL_OFFLINE": "1"})
    assert_user_error(result, "train-images-idx3-ubyte.gz")


def test_artifact_with_wrong_shapes(tmp_path):
    good = tiny_set(tmp_path)
    tensors = load_file(good)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as handle:
        header = handle.metadata()
    tensors["images"] = torch.randn(10, 1, 9, 8)
    header["sha256"] = content_hash(tensors, header)  # a file written wrong, not changed since: the shape check
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=header)
    assert_user_error(cli("eval", tmp_path / "bad.safetensors"), "images have shape")
    assert_user_error(cli("show", tmp_path / "bad.safetensors"), "images have shape")


def test_artifact_with_tampered_header(tmp_path):
    raw = bytearray(tiny_set(tmp_path).read_bytes())
    raw[12:20] = b"\xff" * 8  # inside the JSON header
    (tmp_path / "bad.safetensors").write_bytes(bytes(raw))
    assert_user_error(cli("eval", tmp_path / "bad.safetensors"), "bad.safetensors")


def test_artifact_that_is_a_pickle(tmp_path):
    torch.save({"images": torch.zeros(1)}, tmp_path / "evil.safetensors")
    assert_user_error(cli("show", tmp_path / "evil.safetensors"), "pickle")


def test_ipc_zero(tmp_path):
    assert_user_error(cli("run", "--ipc", "0", "--out", tmp_path / "o"), "--ipc must be at least 1")
    assert not (tmp_path / "o").exists()


def test_teacher_share_above_one(tmp_path):
    assert_user_error(cli("run", "--teacher-labels", "2", "--out", tmp_path / "o"), "--teacher-labels")
    assert not (tmp_path / "o").exists()


def test_bad_moving_average_or_validation(tmp_path):
    assert_user_error(cli("run", "--ema", "1", "--out", tmp_path / "o"), "--ema must be in [0, 1)")
    assert_user_error(cli("run", "--validation", "slow", "--out", tmp_path / "o"), "--validation must be one of")
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_user_error(cli("run", "--out", blocker / "run", *TINY_RUN), "a-file is a file")
    assert blocker.read_text() == "not a folder"


def test_empty_path_is_refused_not_read_as_the_current_folder(tmp_path):
    """`--out "$DIR"` with DIR unset passes an empty string, which Path() reads as the current folder: a run would
    write there and `--data-root ""` would look for (and download) data there. Each path is refused instead."""
    tiny = tiny_set(tmp_path)
    commands = [["run", "--out", "", *TINY_RUN], ["attack", "--out", " "], ["relabel", tiny, "--out", ""],
                ["eval", ""], ["show", ""], ["data", "--data-root", ""], ["eval", tiny, "--data-root", ""]]
    work = tmp_path / "cwd"
    work.mkdir()
    for args in commands:
        result = subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], capture_output=True,
                                text=True, cwd=work, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert "is empty" in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert list(work.iterdir()) == []


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "synset.safetensors").write_text("the user's earlier result")
    assert_user_error(cli("run", "--out", out, *TINY_RUN), "--force")
    assert (out / "synset.safetensors").read_text() == "the user's earlier result"
    assert sorted(p.name for p in out.iterdir()) == ["synset.safetensors"]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    args = ["run", "--no-eval", *TINY_RUN, "--iterations", "60", "--seed", "3"]
    straight = cli(*args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "distill.cli", *args, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "synset.safetensors").exists()

    assert_user_error(cli(*args, "--out", out), "--resume")  # a half-done run is not silently restarted
    resumed = cli(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = distill.load(tmp_path / "straight" / "synset.safetensors")
    b = distill.load(out / "synset.safetensors")
    assert torch.allclose(a.images, b.images, atol=1e-6, rtol=0)
    assert torch.allclose(a.lrs, b.lrs, atol=1e-6, rtol=0)
    assert not torch.equal(a.images, distill.load(tmp_path / "straight" / "synset.safetensors").images * 0)


def test_ctrl_c_says_which_step_the_checkpoint_holds_and_how_to_resume(tmp_path, capsys):
    """An interrupted run ends with exit code 130 and one line, not a bare exit or a traceback: where the run can go
    on from, or that there is nothing to go on from yet."""
    from distill.cli import _interrupted

    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "distill.cli", "run", "--no-eval", *TINY_RUN, "--iterations",
                                "100000", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # (a shell's background job ignores SIGINT, and a Python started so never turns it into KeyboardInterrupt: the
    # child gets the default back, whatever the test runner was started by)
    checkpoint = out / "checkpoint.safetensors"
    try:
        deadline = time.time() + 120
        while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=60)[1]
    finally:
        process.kill()  # a run of 100,000 steps left behind would take a CPU for hours
        process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"distill: interrupted; {checkpoint} holds step ") and last.endswith(
        "the same command with --resume goes on from there"), last

    assert _interrupted(tmp_path / "empty").exit_code == 130
    assert capsys.readouterr().err == (f"distill: interrupted before the run's first checkpoint; nothing in "
                                       f"{tmp_path / 'empty'} to resume\n")


def test_run_writes_set_pictures_and_summary_and_eval_reads_them(tmp_path):
    out = tmp_path / "o"
    result = cli("run", "--out", out, *TINY_RUN, "--eval-nets", "2", "--init", "random", "--device", "cpu",
                 "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "full training set" in result.stdout and "random real images" in result.stdout
    assert " s on cpu (1 thread)" in result.stdout  # results on a CPU repeat on the same thread count
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("checkpoint")) == [
        "grid.png", "summary.json", "synset.safetensors", "val_curve.png"]
    for picture in ("grid.png", "val_curve.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["init"] == "random" and summary["config"]["iterations"] == 30
    stored = distill.load(out / "synset.safetensors")
    assert stored.meta["config"] == summary["config"]  # the artifact records the whole run configuration
    assert stored.meta["results"]["distilled"]["n_nets"] == 2

    evaluated = cli("eval", out / "synset.safetensors", "--json", "--nets", "3", "--threads", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["protocol"] == "schedule" and report["n_nets"] == 3 and len(report["accuracies"]) == 3
    # where the networks were trained, as run results record it
    assert report["device"] == "cpu" and report["threads"] == 1 and report["torch"] == torch.__version__
    assert 0.0 <= report["accuracy_std"] <= report["accuracy_mean"] <= 1.0

    shown = cli("show", out / "synset.safetensors", "--json")
    assert json.loads(shown.stdout)["images"] == [10, 1, 8, 8]


def test_data_lists_present_and_missing(tmp_path):
    result = cli("data", "--data-root", tmp_path, "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["digits"]["present"] and not rows["mnist"]["present"]
    assert "train-images-idx3-ubyte.gz" in rows["mnist"]["missing"]


def test_run_a_matching_method_then_evaluate_it_across_architectures_with_augmentation(tmp_path):
    out = tmp_path / "dm"
    result = cli("run", "--method", "dm", "--iterations", "4", "--eval-every", "2", "--eval-nets", "1",
                 "--eval-epochs", "3", "--opt", "real_batch=16", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "(dm, random init) trained convnet" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["options"] == {"real_batch": "16"} and summary["config"]["optimizer"] == "sgd"
    assert summary["results"]["distilled"]["detail"]["augment"] == "color_crop_cutout_scale_rotate"
    shown = cli("show", out / "synset.safetensors").stdout  # how the recorded accuracy was measured, to re-measure it
    # the random-real baseline trained the same way, and says so in the same words
    assert shown.count("(standard, 3 epochs, augmented: color_crop_cutout_scale_rotate)") == 2
    assert summary["results"]["random_real"]["detail"]["sgd"] == summary["results"]["distilled"]["detail"]["sgd"]
    # and the command that trains networks as those were trained
    assert f"re-measure:  distill eval {out / 'synset.safetensors'} --augment dsa --epochs 3 --nets 1" in shown
    for arch in ("mlp", "alexnet", "vgg11"):
        result = cli("eval", out / "synset.safetensors", "--arch", arch, "--nets", "1", "--epochs", "2",
                     "--augment", "dsa", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["arch"] == arch and report["protocol"] == "standard" and report["n_nets"] == 1
        assert report["detail"]["augment"] == "color_crop_cutout_scale_rotate"


def test_bad_method_option_and_bad_augmentation(tmp_path):
    assert_user_error(cli("run", "--method", "dm", "--opt", "bogus=1", "--out", tmp_path / "o"), "bogus")
    assert_user_error(cli("run", "--method", "dm", "--opt", "real_batch", "--out", tmp_path / "o"), "key=value")
    assert_user_error(cli("run", "--method", "dd", "--eval-augment", "dsa", "--out", tmp_path / "o"),
                      "evaluated with the schedule")
    tiny = tiny_set(tmp_path)
    assert_user_error(cli("eval", tiny, "--protocol", "standard", "--augment", "zoom"), "zoom")
    assert_user_error(cli("eval", tiny, "--arch", "resnet18", "--protocol", "standard"), "resnet18")
    assert_user_error(cli("eval", tiny, "--protocol", "standard", "--lr", "-1"), "positive")
    assert_user_error(cli("eval", tiny, "--lr", "0.05"), "standard protocol only")  # auto: its own schedule
    assert_user_error(cli("eval", tiny, "--protocol", "standard", "--epochs", "-3"), "epochs must be positive")
    assert_user_error(cli("eval", tiny, "--epochs", "500"), "--epochs applies to the standard protocol only")
    assert not (tmp_path / "o").exists()


def test_layer_lrs_run_saves_a_rate_per_parameter_tensor_and_evaluates_with_them(tmp_path):
    out = tmp_path / "layers"
    result = cli("run", "--layer-lrs", "--epochs", "2", "--out", out, "--eval-nets", "1", *TINY_RUN)
    assert result.returncode == 0, result.stderr
    stored = distill.load(out / "synset.safetensors")
    columns = json.loads(cli("show", out / "synset.safetensors", "--json").stdout)["lrs_columns"]
    assert stored.lrs.shape == (2, len(columns)) and columns[0] == "conv1.weight"
    assert len(set(stored.lrs[0].tolist())) > 1  # the rates were learned apart, not one shared value
    saved = stored.meta["results"]["distilled"]["accuracy_mean"]
    evaluated = json.loads(cli("eval", out / "synset.safetensors", "--json").stdout)
    assert evaluated["accuracy_mean"] == pytest.approx(saved)  # the file trains the network exactly as the run did
