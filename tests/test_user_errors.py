"""Options and files a user gets wrong: each is refused in one line before any work (and before any folder is
made), and nothing the user already has is replaced. Mostly in-process, so fast; the command line's own paths
are in test_cli.py."""

import json
import math
import os
import stat
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import distill
from distill.config import DistillConfig, resolve
from distill.output import check_output_file
from distill.data import get_spec
from distill.data.files import ensure_files
from distill.errors import DistillError
from distill.evaluate import standard_sgd
from distill.loop import CHECKPOINT_NAME
from distill.config import AttackConfig
from distill.synset import SyntheticSet, UnverifiedSetWarning, content_hash, load, save
from test_cli import assert_user_error, cli, tiny_set

DM = DistillConfig(dataset="digits", method="dm", arch="convnet", init="random")


def test_resume_and_force_exclude_each_other(tmp_path):
    with pytest.raises(DistillError, match="exclude each other"):
        distill.distill(out=tmp_path / "run", resume=True, force=True, progress=False)


def test_resume_without_a_checkpoint_fails_at_once_and_makes_no_folder(tmp_path):
    out = tmp_path / "never-ran"
    with pytest.raises(DistillError, match="no checkpoint"):
        distill.distill(method="mtt", out=out, resume=True, progress=False)  # mtt would train experts first
    assert not out.exists()


def test_resume_of_a_coreset_never_replaces_the_run_in_the_folder(tmp_path):
    """A coreset has nothing to resume: `--resume` used to let it write over another method's run."""
    out = tmp_path / "dd-run"
    out.mkdir()
    (out / CHECKPOINT_NAME).write_text("the dd run's checkpoint")
    (out / "summary.json").write_text("the dd run's summary")
    with pytest.raises(DistillError, match="nothing to continue"):
        distill.distill(method="random", arch="lenet", out=out, resume=True, progress=False)
    assert (out / "summary.json").read_text() == "the dd run's summary"


def test_bad_option_leaves_no_empty_output_folder(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(DistillError, match="init-scheme"):
        distill.distill(init_scheme="foo", out=out, progress=False)
    with pytest.raises(DistillError, match="mnist: missing"):
        distill.distill(dataset="mnist", data_root=tmp_path / "no-data", out=out, progress=False,
                        method="dm", ipc=1)
    assert not (tmp_path / "a").exists()


def test_failed_download_leaves_no_empty_data_folders(tmp_path, monkeypatch):
    def unreachable(*_args, **_kwargs):
        raise OSError("no network here")

    monkeypatch.setattr("urllib.request.urlopen", unreachable)
    monkeypatch.delenv("DISTILL_OFFLINE", raising=False)
    with pytest.raises(DistillError, match="download failed"):
        ensure_files(get_spec("mnist"), tmp_path / "root" / "mnist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given, canonical", [("MNIST", "mnist"), ("fmnist", "fashion-mnist"),
                                              ("Fashion_MNIST", "fashion-mnist")])
def test_any_accepted_spelling_of_a_dataset_finds_its_presets(given, canonical):
    assert resolve(dataset=given, ipc=1) == resolve(dataset=canonical, ipc=1)
    assert resolve(dataset=given, ipc=1, arch="ConvNet")["arch"] == "convnet"


def test_configs_built_by_hand_must_spell_names_as_the_registries_do():
    with pytest.raises(DistillError, match="did you mean 'lenet'"):
        DistillConfig(arch="LeNet").validate()
    with pytest.raises(DistillError, match="write the dataset as 'mnist'"):
        DistillConfig(dataset="MNIST").validate()
    with pytest.raises(DistillError, match="did you mean 'lenet'"):
        AttackConfig(arch="LeNet").validate()


@pytest.mark.parametrize("options, fragment", [
    ({"decay_every": -1}, "--decay-every must be 0"),
    ({"decay_factor": 0.0}, "decay_factor must be in"),
    ({"decay_factor": 2.0}, "decay_factor must be in"),
    ({"seed": -1}, "--seed must be between"),
    ({"seed": 2**40}, "--seed must be between"),
    ({"lr_images": 0.0}, "--lr must be a positive number"),  # the flag's name, not the field's (--lr-images)
])
def test_run_options_out_of_range(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        replace(DistillConfig(), **options).validate()


@pytest.mark.parametrize("options, fragment", [
    ({"lr_images": -1.0}, "--lr must be a positive number"),
    ({"lr_images": math.nan}, "--lr must be a positive number"),
    ({"init_lr": math.inf}, "--init-lr must be a positive number"),
    ({"decay_every": -5}, "--decay-every must be 0"),
])
def test_attack_options_out_of_range(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        replace(AttackConfig(dataset="digits"), **options).validate()


def test_attack_refuses_unknown_keywords_as_a_user_error():
    with pytest.raises(DistillError, match="unknown option"):
        distill.attack(foo=1)


@pytest.mark.parametrize("options, fragment", [
    ({"options": {"nets_per_step": 3}}, "unknown option.*for method 'dm': nets_per_step"),  # dm has no such option
    ({"steps": 4}, "--steps shapes the learned schedule"),
    ({"epochs": 2}, "--epochs shapes the learned schedule"),
])
def test_options_a_method_would_ignore_are_refused(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        replace(DM, **options).validate()


def test_options_refused_for_some_methods_still_work_where_they_apply():
    replace(DistillConfig(), options={"real_batch": 128, "nets_per_step": 2}, steps=3, epochs=2).validate()  # dd's
    replace(DM, method="unroll", options={"real_batch": 64}).validate()  # the unroll stage scores real batches too


@pytest.mark.parametrize("name", ["real_batch", "nets_per_step"])
def test_a_run_option_that_moved_into_the_methods_options_says_where_it_went(name):
    """`real_batch` and `nets_per_step` were run options of earlier versions; now each method that has them keeps
    them among its own options. Given the old way, the refusal names the new one."""
    with pytest.raises(DistillError, match=f"{name} is now an option of the method: options=.*--opt {name}=N"):
        distill.distill(method="dd", **{name: 2})


@pytest.mark.parametrize("lr", [math.nan, math.inf, -0.1])
def test_standard_protocol_refuses_a_learning_rate_that_trains_nothing(lr):
    with pytest.raises(DistillError, match="learning rate must be a positive number"):
        standard_sgd(lr=lr)


def test_relabel_checks_its_output_before_any_work(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(DistillError, match="is a folder"):
        check_output_file(folder, force=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DistillError, match="is a file"):
        distill.relabel(tiny_set(tmp_path), blocker / "out.safetensors", progress=False)
    with pytest.raises(DistillError, match="exists"):
        distill.relabel(tiny_set(tmp_path), blocker, progress=False)
    assert blocker.read_text() == "x"


def test_files_are_written_with_the_usual_permissions(tmp_path):
    """Written through a temporary file (made owner-only), a result used to stay unreadable by anyone else."""
    previous = os.umask(0o022)
    try:
        path = tiny_set(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_file_that_cannot_be_written_is_a_user_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DistillError, match="cannot write"):
        save(load(tiny_set(tmp_path)), blocker / "set.safetensors")


def _tampered(tmp_path, **header) -> str:
    """A copy of a good set with some header fields replaced (as JSON text, as the format stores them) and its hash
    made anew: a file some other tool wrote wrong, which the header checks (not the hash) must catch."""
    good = tiny_set(tmp_path)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as handle:
        meta = {**handle.metadata(), **header}
    tensors = load_file(str(good))
    path = tmp_path / "tampered.safetensors"
    save_file(tensors, str(path), metadata={**meta, "sha256": content_hash(tensors, meta)})
    return str(path)


def _byte_ranges(path) -> dict[str, tuple[int, int]]:
    """Where each tensor's bytes lie in a safetensors file (after the 8-byte length and the JSON header), and the
    header's own JSON."""
    raw = Path(path).read_bytes()
    length = int.from_bytes(raw[:8], "little")
    layout = json.loads(raw[8:8 + length])
    ranges = {name: (8 + length + a, 8 + length + b) for name, entry in layout.items() if name != "__metadata__"
              for a, b in [entry["data_offsets"]]}
    return {**ranges, "header": (8, 8 + length)}


def _with_byte_flipped(path, offset: int, out) -> str:
    raw = bytearray(Path(path).read_bytes())
    raw[offset] ^= 0x01
    Path(out).write_bytes(bytes(raw))
    return str(out)


def test_one_changed_byte_in_any_tensor_is_refused_by_eval_show_and_load(tmp_path):
    """Every tensor of a set with a learned schedule and a fixed network (images, labels, lrs, step, init.*), a byte
    at its start, middle and end: one bit changed, and load, show and eval each refuse the file in one line."""
    good = str(tmp_path / "good.safetensors")
    made = distill.distill(dataset="digits", method="dd", init="fixed", steps=2, epochs=1, iterations=1,
                           progress=False, evaluate=False)
    save(made.synset, good)
    ranges = {k: v for k, v in _byte_ranges(good).items() if k != "header"}
    assert {"images", "labels", "lrs", "step"} <= set(ranges) and any(k.startswith("init.") for k in ranges)
    for name, (start, end) in ranges.items():
        for offset in (start, (start + end) // 2, end - 1):
            bad = _with_byte_flipped(good, offset, tmp_path / "bad.safetensors")
            with pytest.raises(DistillError, match="do not match the hash recorded when it was written"):
                load(bad)
    for command in ("show", "eval"):
        assert_user_error(cli(command, bad), "do not match the hash recorded when it was written")


def test_a_changed_header_field_is_refused_too(tmp_path):
    good = tiny_set(tmp_path)
    start, end = _byte_ranges(good)["header"]
    text = Path(good).read_bytes()[start:end]
    offset = start + text.index(b'"digits"') + 1  # a letter of the dataset's name: still valid JSON
    with pytest.raises(DistillError, match="do not match the hash"):
        load(_with_byte_flipped(good, offset, tmp_path / "bad.safetensors"))


def test_a_file_written_before_hashes_loads_with_a_note(tmp_path):
    good = tiny_set(tmp_path)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as handle:
        meta = {k: v for k, v in handle.metadata().items() if k != "sha256"}
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(good)), str(old), metadata=meta)
    with pytest.warns(UnverifiedSetWarning, match="records no hash"):
        synset = load(old)
    assert torch.equal(synset.images, load(good).images)
    resaved = save(synset, tmp_path / "resaved.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(resaved)  # saving again records one


@pytest.mark.parametrize("header, fragment", [
    ({"dataset": "nope"}, "unknown dataset"),
    ({"dataset": "mnist"}, "mnist has 10 classes of [1, 28, 28] images"),  # 8x8 images claimed as MNIST
    ({"mean": "5"}, "mean must be 1 number"),
    ({"std": "[0.0]"}, "std must be positive"),
    ({"ipc": "7"}, "holds 10 images, but ipc x classes x steps"),
    ({"steps": '"x"'}, "steps must be a whole number"),
    ({"epochs": "0"}, "epochs must be a whole number"),
    ({"init": "bogus"}, "init must be one of"),
    ({"method": '"no such method!"'}, "method must be a method's name"),
    ({"arch": "nonexistent-net"}, "unknown network"),
    ({"class_names": "[1]"}, "class_names must be 10 names"),
])
def test_tampered_headers_are_refused_on_load(tmp_path, header, fragment):
    with pytest.raises(DistillError) as error:
        load(_tampered(tmp_path, **header))
    assert fragment in str(error.value)


def test_show_skips_recorded_results_it_cannot_read(tmp_path):
    path = _tampered(tmp_path, results=json.dumps({"distilled": {"protocol": "standard"}}))
    shown = cli("show", path)
    assert shown.returncode == 0, shown.stderr
    assert "distilled:" not in shown.stdout and "dataset:" in shown.stdout


def test_show_reports_a_poisons_held_out_effect():
    shown = cli("show", Path(__file__).resolve().parents[1] / "benchmarks/artifacts/mnist-attack-3to8.safetensors")
    assert shown.returncode == 0, shown.stderr
    assert "poison:      success 98.0% ± 0.9 on held-out victims" in shown.stdout


def test_mixed_case_names_on_the_command_line_run_as_their_canonical_names(tmp_path):
    out = tmp_path / "run"
    done = cli("run", "--dataset", "DIGITS", "--method", "dd", "--arch", "LeNet", "--iterations", "1", "--no-eval",
               "--quiet", "--out", out)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "summary.json").read_text())["config"]
    assert (config["dataset"], config["arch"], config["init_scheme"]) == ("digits", "lenet", "")
    assert load(out / "synset.safetensors").meta["init_scheme"] == "xavier"  # lenet's own, found once spelt right


def test_eval_refuses_a_nan_learning_rate_in_one_line(tmp_path):
    assert_user_error(cli("eval", tiny_set(tmp_path), "--protocol", "standard", "--lr", "nan"),
                      "learning rate must be a positive number")


def test_tampered_set_is_refused_by_every_command_in_one_line(tmp_path):
    path = _tampered(tmp_path, dataset="mnist")
    for command in ("show", "eval"):
        assert_user_error(cli(command, path), "the header says 10 classes of [1, 8, 8]")


def test_a_set_made_here_still_loads(tmp_path):
    synset = load(tiny_set(tmp_path))
    assert isinstance(synset, SyntheticSet) and torch.equal(synset.labels, torch.arange(10))


def test_show_says_when_a_set_records_no_accuracy(tmp_path):
    """A relabelled set (the blend drops what was measured before it) or one saved unmeasured used to print
    nothing at all where the accuracies go."""
    shown = cli("show", tiny_set(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "accuracy:    none recorded in this file; measure it with distill eval" in shown.stdout


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_new_files_is_refused_before_the_run(tmp_path):
    """/proc is writable as far as os.access can tell root, yet no file can be made there: a run used to be refused
    only when it saved its result, after the whole distillation."""
    with pytest.raises(DistillError, match="does not take new files"):
        distill.distill(out="/proc/distill-run", progress=False)


def test_attack_pools_stay_disjoint():
    """The crafting pool's seeds run from 0; from 500 on they would include the validation and held-out victims."""
    with pytest.raises(DistillError, match="--craft-victims can be at most 500"):
        AttackConfig(dataset="digits", craft_victims=501).validate()
    with pytest.raises(DistillError, match="cannot exceed --craft-victims"):
        AttackConfig(dataset="digits", craft_victims=2, nets_per_step=3).validate()


def test_a_poison_larger_than_the_attacked_class_is_refused_before_any_victim_trains(monkeypatch):
    monkeypatch.setattr("distill.poison.victim_pool", lambda *a, **k: pytest.fail("victims trained"))
    with pytest.raises(DistillError, match="the poison needs 120 images of the attacked class"):
        distill.attack(dataset="digits", ipc=12, progress=False)  # digits has 115 training images of class 3


def test_a_checkpoint_from_before_a_field_existed_still_resumes(tmp_path):
    """A checkpoint records the run's whole configuration; one written before a field was added (here `images`)
    ran with the value every run had then, so it must resume, not be refused as 'different options'."""
    out = tmp_path / "run"
    distill.distill(dataset="digits", method="dd", iterations=4, checkpoint_every=2, eval_every=2, out=out,
                    progress=False, evaluate=False)
    checkpoint = out / CHECKPOINT_NAME
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as handle:
        meta = handle.metadata()
    config = json.loads(meta["config"])
    del config["images"]
    save_file(load_file(str(checkpoint)), str(checkpoint), metadata={**meta, "config": json.dumps(config)})
    resumed = distill.distill(dataset="digits", method="dd", iterations=4, checkpoint_every=2, eval_every=2, out=out,
                              resume=True, progress=False, evaluate=False)
    assert torch.equal(resumed.synset.images, load(out / "synset.safetensors").images)
    config["images"] = 3  # a field it did record, changed: still refused
    save_file(load_file(str(checkpoint)), str(checkpoint), metadata={**meta, "config": json.dumps(config)})
    with pytest.raises(DistillError, match="different options"):
        distill.distill(dataset="digits", method="dd", iterations=4, checkpoint_every=2, eval_every=2, out=out,
                        resume=True, progress=False, evaluate=False)
