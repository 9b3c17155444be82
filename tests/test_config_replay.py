"""`distill run --config FILE` and `distill.load_config`: a recorded run is run again exactly as recorded (no preset
applied), the options given replace its fields, and a file that holds no usable configuration is one line on
stderr, exit code 2, and no output folder."""

import json
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import distill
from distill.config import DistillConfig, resolve
from distill.records import migrate, recorded_cpu_threads
from distill.cli import main
from distill.errors import DistillError
from test_cli import TINY_RUN, assert_user_error, cli

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A tiny dd run on the bundled digits, whose summary.json the tests replay."""
    out = tmp_path_factory.mktemp("replay") / "recorded"
    result = cli("run", "--no-eval", *TINY_RUN, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def config_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["config"]


def in_process(monkeypatch, capsys, *args) -> subprocess.CompletedProcess:
    """`distill ARGS` through the command's entry point in this process (no interpreter and torch start-up per
    case), as what `assert_user_error` reads: its exit code, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["distill", *map(str, args)])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it; put it back after
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exited.value.code, captured.out, captured.err)


def test_replaying_a_summary_makes_the_same_set_bit_for_bit(recorded, tmp_path):
    again = tmp_path / "again"
    result = cli("run", "--config", recorded / "summary.json", "--no-eval", "--quiet", "--out", again)
    assert result.returncode == 0, result.stderr
    assert config_of(again) == config_of(recorded)
    first, second = (distill.load(out / "synset.safetensors") for out in (recorded, again))
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert torch.equal(first.lrs, second.lrs)


def test_a_set_file_replays_the_run_its_header_records(recorded, tmp_path):
    """The set is often all a user was given: its header records the run that made it, which --config repeats."""
    again = tmp_path / "from-set"
    result = cli("run", "--config", recorded / "synset.safetensors", "--no-eval", "--quiet", "--out", again)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # a set of this version records every field
    assert config_of(again) == config_of(recorded)
    assert torch.equal(distill.load(recorded / "synset.safetensors").images,
                       distill.load(again / "synset.safetensors").images)
    bare = distill.load(recorded / "synset.safetensors")
    bare.meta.pop("config")
    saved = distill.save(bare, tmp_path / "bare.safetensors")
    with pytest.raises(DistillError, match="its header records no run configuration"):
        distill.load_config(saved)


def test_an_option_given_replaces_only_that_field(recorded, tmp_path):
    varied = tmp_path / "seed1"
    result = cli("run", "--config", recorded / "summary.json", "--seed", "1", "--no-eval", "--quiet", "--out", varied)
    assert result.returncode == 0, result.stderr
    before, after = config_of(recorded), config_of(varied)
    assert {k: (before[k], after[k]) for k in before if before[k] != after[k]} == {"seed": (0, 1)}
    assert after["iterations"] == 30  # the recorded value, not the preset's 800
    assert not torch.equal(distill.load(recorded / "synset.safetensors").images,
                           distill.load(varied / "synset.safetensors").images)


def test_opt_is_merged_into_the_recorded_method_options(tmp_path):
    """A plain JSON object of fields (no "config" key) works too; `--opt` replaces the keys it gives and keeps the
    recorded others, where without --config it would start from the preset's."""
    fields = asdict(DistillConfig(**resolve(dataset="digits", method="dm", iterations=2, eval_every=2,
                                                    checkpoint_every=2)))
    fields["options"] = {"real_batch": 16, "augment": "none"}
    plain = tmp_path / "dm.json"
    plain.write_text(json.dumps(fields))
    out = tmp_path / "dm"
    result = cli("run", "--config", plain, "--opt", "real_batch=8", "--no-eval", "--quiet", "--out", out)
    assert result.returncode == 0, result.stderr
    assert config_of(out) == {**fields, "options": {"real_batch": "8", "augment": "none"}}


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    ("{not json", "is not JSON (Expecting property name"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not JSON"),
    ("[1, 2]", "holds a JSON list, not an object of run options"),
    ('{"ipc": 2, "frobnicate": 1}', "unknown field(s) frobnicate: no run options of this version of distill"),
    ('{"config": {"ipc": 2, "shiny_new_option": 1, "older": 2}, "results": {}}',
     "unknown field(s) older, shiny_new_option in its \"config\": the file was made by another version of distill"),
    ('{"ipc": "2"}', "ipc must be of type int, got '2'"),
    ('{"options": ["real_batch=8"]}', "options must be of type dict"),
    ('{"ipc": 0}', "--ipc must be at least 1, got 0 (as "),  # DistillConfig.validate: the value is the file's
    ('{"method": "dm", "options": {"bogus": 1}}', "unknown option(s) for method 'dm': bogus"),
])
def test_a_file_without_a_usable_configuration_is_one_line(content, fragment, tmp_path, monkeypatch, capsys):
    file = tmp_path / "config.json"
    if isinstance(content, str):
        file.write_text(content)
    elif isinstance(content, bytes):
        file.write_bytes(content)
    out = tmp_path / "o"
    assert TINY_RUN[:2] == ["--method", "dd"]
    result = in_process(monkeypatch, capsys, "run", "--config", file, "--out", out, *TINY_RUN[2:])  # the file's method
    assert_user_error(result, fragment)
    assert str(file) in result.stderr
    assert not out.exists()


def test_a_folder_an_attack_and_a_bad_override_are_refused(recorded, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    for args, fragment in (
            ([recorded], f"{recorded} is a folder; give a JSON file, e.g. {recorded / 'summary.json'}"),
            ([RESULTS / "attack-mnist-3to8.json"], "holds a poisoning attack's configuration (distill attack)"),
            ([RESULTS / "teacher-sweep-mnist-frepo-ipc1.json"],
             "records a benchmark's measurements (a sweep, a profile, ...), not a run's configuration; the command it "
             "records repeats them: DISTILL_DATA=../shared/data python experiments/teacher_sweep.py"),
            ([recorded / "summary.json", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
            ([recorded / "summary.json", "--method", "mtt"], "unknown option(s) for method 'mtt': real_batch")):
        assert_user_error(in_process(monkeypatch, capsys, "run", "--config", *args, "--out", out), fragment)
    assert not out.exists()


def test_a_missing_file_is_one_line_from_the_installed_command(tmp_path):
    assert_user_error(cli("run", "--config", tmp_path / "nope.json", "--out", tmp_path / "o"),
                      f"{tmp_path / 'nope.json'}: no such file")
    assert not (tmp_path / "o").exists()


def test_load_config_reads_a_benchmark_results_file_as_recorded():
    path = RESULTS / "digits-dd-default.json"
    recorded = json.loads(path.read_text())["config"]
    config = distill.load_config(path)
    # recorded when real_batch and nets_per_step were run options: they are dd's own options now (records.migrate)
    assert "real_batch" in recorded and "real_batch" not in asdict(config)
    assert isinstance(config, DistillConfig) and asdict(config) == migrate(recorded)
    assert config.options == {"real_batch": recorded["real_batch"], "nets_per_step": recorded["nets_per_step"]}
    older = RESULTS / "mnist-dm-ipc1.json"  # made before ema, validation and others were fields: their defaults
    recorded = json.loads(older.read_text())["config"]
    assert "ema" not in recorded
    with pytest.warns(UserWarning, match=r"records no .*\bema\b.*: today's defaults are used, so the run may differ"):
        assert asdict(distill.load_config(older)) == {**asdict(DistillConfig()), **migrate(recorded)}
    assert "real_batch" in recorded and distill.load_config(older).options == {"real_batch": 64}  # dm's own, kept


def test_load_config_applies_no_preset(tmp_path):
    """A plain object's missing fields take DistillConfig's defaults, not the method's preset (convnet, sgd, ...)."""
    plain = tmp_path / "dm.json"
    plain.write_text('{"method": "dm", "ipc": 10}')
    config = distill.load_config(plain)
    assert config == DistillConfig(method="dm", ipc=10)
    assert resolve(method="dm", ipc=10)["arch"] != config.arch  # what a preset would have changed
    with pytest.raises(DistillError, match="is not JSON"):
        distill.load_config(RESULTS.parent / "run.py")


def test_show_prints_the_command_that_runs_a_set_again(recorded, tmp_path):
    """`distill show` names the command that repeats the run behind a set; run as printed (its --out moved under
    tmp_path), it makes the same images. A run its --max-minutes stopped repeats by its step count (a poison's
    command: tests/test_attack.py)."""
    import shlex

    set_file = recorded / "synset.safetensors"
    shown = cli("show", set_file)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("re-run:"))
    words = shlex.split(line.removeprefix("re-run:"))
    assert words[:4] == ["distill", "run", "--config", str(set_file)] and words[4] == "--out"
    again = tmp_path / "again"
    result = cli(*words[1:4], "--out", again, *words[6:], "--no-eval", "--quiet")
    assert result.returncode == 0, result.stderr
    assert torch.equal(distill.load(set_file).images, distill.load(again / "synset.safetensors").images)

    limited = distill.load(set_file)
    limited.meta["config"] = {**limited.meta["config"], "max_minutes": 2.0}
    limited.meta["results"] = {**limited.meta.get("results", {}), "steps_taken": 7}
    limited_file = distill.save(limited, tmp_path / "limited.safetensors")
    threads = f" --threads {recorded_cpu_threads(limited.meta)}"  # as the recorded run had them
    assert cli("show", limited_file).stdout.rstrip().endswith("--iterations 7 --max-minutes 0" + threads)
    limited.meta["results"] = {**limited.meta["results"], "steps_taken": limited.meta["config"]["iterations"]}
    finished = cli("show", distill.save(limited, tmp_path / "finished.safetensors")).stdout.rstrip()
    assert finished.endswith("-rerun --max-minutes 0" + threads)  # all its steps within the limit: no limit, same steps
    limited.meta["results"] = {k: v for k, v in limited.meta["results"].items() if k != "steps_taken"}
    unknown = cli("show", distill.save(limited, tmp_path / "unknown.safetensors")).stdout
    line = next(line for line in unknown.splitlines() if line.startswith("re-run:"))
    assert line.endswith("-rerun" + threads + " (the run was limited to 2 minutes, so the steps it took depend on "
                         "the machine)")  # every option before the remark, so the command copies up to it



def test_a_run_records_its_cpu_threads_and_show_names_them(tmp_path):
    """`--threads` sets PyTorch's CPU thread count; the run records it, and the re-run line asks for it: a CPU run
    repeats bit for bit only on the count it ran with."""
    out = tmp_path / "one-thread"
    result = cli("run", "--no-eval", "--quiet", *TINY_RUN, "--threads", "1", "--device", "cpu", "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["threads"] == 1 and summary["results"]["device"] == "cpu"
    assert recorded_cpu_threads(summary) == 1
    shown = cli("show", out / "synset.safetensors", "--json")
    assert shown.returncode == 0, shown.stderr
    assert " --threads 1" in json.loads(shown.stdout)["rerun"]
    refused = cli("run", "--threads", "0", "--out", tmp_path / "never")
    assert refused.returncode == 2 and "--threads" in refused.stderr and not (tmp_path / "never").exists()


@pytest.mark.parametrize("device, threads_offset, warned", [
    ("cpu", 1, True),  # another count: the last digits can differ
    ("cpu", 0, False),  # the same count: bit for bit
    ("cuda:0", 1, False),  # a GPU run: the CPU count does not enter its sums
])
def test_replaying_on_another_thread_count_warns(device, threads_offset, warned, recorded, tmp_path, monkeypatch,
                                                 capsys):
    summary = json.loads((recorded / "summary.json").read_text())
    count = torch.get_num_threads() + threads_offset
    summary["results"] = {**summary["results"], "device": device, "threads": count}
    file = tmp_path / "summary.json"
    file.write_text(json.dumps(summary))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = in_process(monkeypatch, capsys, "run", "--config", file, "--no-eval", "--quiet", "--device", "cpu",
                            "--out", tmp_path / "o")
    assert result.returncode in (0, None), result.stderr
    expected = (f"{file} records a run on {count} CPU thread(s), and this one uses {torch.get_num_threads()}: the "
                f"results can differ in their last digits (--threads {count} repeats it exactly)")
    assert (expected in [str(w.message) for w in caught]) is warned, [str(w.message) for w in caught]


def test_recorded_cpu_threads_needs_a_cpu_run_that_recorded_them():
    assert recorded_cpu_threads({"results": {"device": "cpu", "threads": 4}}) == 4
    assert recorded_cpu_threads({"results": {"device": "cuda:0", "threads": 4}}) is None
    assert recorded_cpu_threads({"results": {"device": "cpu"}}) is None  # an older version's record
    assert recorded_cpu_threads({"results": {"device": "cpu", "threads": True}}) is None
    assert recorded_cpu_threads({"config": {}}) is None
