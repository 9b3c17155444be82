"""benchmarks/common.py's run_setting, the one place every benchmark run (benchmarks/run.py) writes its results and its
set, and the experiments beside the benchmarks (experiments/*.py). The settings files and run.py itself:
tests/test_benchmark_settings.py."""

import importlib
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
EXPERIMENTS = BENCHMARKS.parent / "experiments"


def _script(*args, timeout=120):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=BENCHMARKS.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_results_tables_are_the_results_files():
    """Every number in RESULTS.md, and in the README's best-results table and its sentence on the main command's
    result, comes from a committed results file: table.py --check rebuilds them all (and checks that every link into
    RESULTS.md from the README and docs/ names one of its rows or headings)."""
    done = _script(BENCHMARKS / "table.py", "--check")
    assert done.returncode == 0, done.stderr


def test_benchmark_scripts_report_user_errors_in_one_line(tmp_path):
    """A DistillError in a benchmark script is one line and a non-zero exit, as on the command line; --nets 0 is
    refused by the parser."""
    missing = _script(EXPERIMENTS / "cross_arch.py", tmp_path / "nothing.safetensors", "--archs", "mlp")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("cross_arch.py: error:"), missing.stderr
    nets = _script(EXPERIMENTS / "augment_sweep.py", "mnist-frepo-ipc10", "--augments", "dc,dsa", "--nets", "0")
    assert nets.returncode == 2 and "must be at least 1" in nets.stderr


def test_teacher_sweep_refuses_a_bad_blend_before_any_network_trains():
    done = _script(EXPERIMENTS / "teacher_sweep.py", "fashion-mnist-frepo-ipc1", "--blends", "0:2,-1:4")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--blends" in done.stderr


def test_git_commit_marks_uncommitted_code(monkeypatch, tmp_path):
    import subprocess

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("common")
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (repo / "a.txt").write_text("one")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(common, "HERE", repo / "benchmarks")
    clean = common.git_commit()
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (repo / "a.txt").write_text("two")
    assert common.git_commit() == f"{clean}-dirty"


def test_cross_arch_never_drops_a_committed_tables_rows():
    """Another protocol (or the same set named by an absolute path) used to replace the whole table with one row."""
    table = BENCHMARKS / "results" / "cross-arch-mnist-frepo-ipc10.json"
    before = table.read_bytes()
    done = _script(EXPERIMENTS / "cross_arch.py", BENCHMARKS / "artifacts" / "mnist-frepo-ipc10.safetensors",
                   "--archs", "mlp", "--nets", "1", "--augment", "dsa", "--epochs", "100")
    assert done.returncode == 2 and "would drop its rows" in done.stderr
    assert "holds the table of benchmarks/artifacts/mnist-frepo-ipc10.safetensors" in done.stderr  # one name
    assert table.read_bytes() == before


def test_cross_arch_keeps_a_table_of_a_set_as_committed_earlier_apart_from_the_set_now():
    """The MNIST MTT table measures the set before it took teacher labels (--at): a row of today's set, with the
    table's own protocol, would have joined it unmarked."""
    table = BENCHMARKS / "results" / "cross-arch-mnist-mtt-ipc10.json"
    before = table.read_bytes()
    assert json.loads(before)["set_as_of"].startswith("d23865f")
    done = _script(EXPERIMENTS / "cross_arch.py", "benchmarks/artifacts/mnist-mtt-ipc10.safetensors", "--archs", "mlp",
                   "--nets", "1", "--augment", "dsa", "--epochs", "300", "--lr", "0.01")
    assert done.returncode == 2 and "as committed at d23865f" in done.stderr and "would drop its rows" in done.stderr
    assert table.read_bytes() == before


def test_an_augmentation_sweep_stopped_early_never_replaces_a_complete_one(monkeypatch, tmp_path):
    import json
    import sys

    import torch

    from distill.synset import SyntheticSet, save

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    common, sweep = importlib.import_module("common"), importlib.import_module("augment_sweep")
    for module in (common, sweep):
        monkeypatch.setattr(module, "HERE", tmp_path)
    (tmp_path / "results").mkdir()
    meta = {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": [0.5], "std": [0.5],
            "method": "dm", "arch": "convnet", "ipc": 1, "steps": 1, "epochs": 1, "init": "random"}
    save(SyntheticSet(torch.randn(10, 1, 8, 8), torch.arange(10), meta), tmp_path / "artifacts" / "s.safetensors")
    (tmp_path / "results" / "s.json").write_text(json.dumps({"config": {"dataset": "digits", "eval_augment": "",
                                                                         "eval_epochs": 0}}))
    complete = tmp_path / "results" / "augment-sweep-s.json"
    complete.write_text('{"complete": true}')
    calls = []

    def measured_then_stopped(*args):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return {"validation": {"mean": 0.5, "std": 0.0}, "test": {"mean": 0.5, "std": 0.0}}

    monkeypatch.setattr(sweep, "measure_on_splits", measured_then_stopped)
    monkeypatch.setattr(sys, "argv", ["augment_sweep.py", "s", "--augments", "none,dsa", "--nets", "1"])
    try:
        sweep.main()
    except KeyboardInterrupt:
        pass
    assert complete.read_text() == '{"complete": true}'
    partial = json.loads((tmp_path / "results" / "augment-sweep-s.json.partial").read_text())
    assert partial["complete"] is False and [r["augment"] for r in partial["rows"]] == ["none"]


def test_remeasure_refuses_results_that_are_not_a_preset_row():
    """It used to rewrite the dd headline's own evaluation (one network) with the dd preset's (five)."""
    headline = BENCHMARKS / "results" / "mnist-dd-fixed-10img.json"
    before = headline.read_bytes()
    done = _script(EXPERIMENTS / "remeasure.py", "mnist-dd-fixed-10img", "--because", "a test")
    assert done.returncode == 1 and "not a preset row's results file" in done.stderr
    assert headline.read_bytes() == before


def test_a_time_limited_setting_can_be_repeated_at_its_recorded_step_count(monkeypatch):
    """A `-cpu30` setting ends when its time runs out, so its step count depends on the machine; --iterations with
    --max-minutes 0 repeats the steps its results file took, and the recorded command says so."""
    import sys

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    run = importlib.import_module("run")
    seen = {}
    monkeypatch.setattr(run, "run_setting", lambda name, options, command, **kw: seen.update(options=options,
                                                                                            command=command))
    monkeypatch.setattr(sys, "argv", ["run.py", "mnist-frepo-ipc1-dsa-cpu30", "--max-minutes", "0",
                                      "--iterations", "2495"])
    run.main()
    assert seen["options"]["iterations"] == 2495 and seen["options"]["max_minutes"] == 0
    assert seen["command"].endswith("run.py mnist-frepo-ipc1-dsa-cpu30 --max-minutes 0 --iterations 2495")


def test_a_preset_row_run_with_other_options_is_refused_unless_replace(monkeypatch, tmp_path):
    """`run.py NAME --iterations 3` (trying something) used to replace NAME's committed results and set; the
    command that made a file may still replace it, and --replace lets any other through."""
    results = BENCHMARKS / "results" / "mnist-frepo-ipc50.json"
    before = results.read_bytes()
    done = _script(BENCHMARKS / "run.py", "mnist-frepo-ipc50", "--iterations", "3")
    assert done.returncode == 1 and "--replace" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert results.read_bytes() == before

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("common")
    monkeypatch.setattr(common, "HERE", tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "n.json").write_text('{"command": "python benchmarks/run.py n"}')
    common.check_replaces_only_its_own("n", "python benchmarks/run.py n")
    common.check_replaces_only_its_own("new-name", "anything")
    try:
        common.check_replaces_only_its_own("n", "python benchmarks/run.py n --iterations 3")
        raise AssertionError("a different command was let through")
    except common.distill.DistillError as exc:
        assert "run.py n`" in str(exc)
    replaced = common.run_setting("n", dict(dataset="digits", method="random", arch="mlp", ipc=1, eval_nets=1),
                                  "python benchmarks/run.py n --iterations 3", replace=True)
    assert replaced["command"] == "python benchmarks/run.py n --iterations 3"


def test_every_committed_rows_recorded_command_may_replace_it(monkeypatch):
    """The guard compares commands as text, so a change to how run.py spells its command would refuse every
    committed row's own command: each results file's recorded `benchmarks/run.py` command must reach the distillation,
    the attack or the plain check (stubbed here) without --replace, a distillation's options accepted as it would
    validate them."""
    import json
    import shlex
    import sys

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    run = importlib.import_module("run")

    class Reached(Exception):
        pass

    from distill.config import DistillConfig, resolve

    def distill_stub(out=None, force=False, resume=False, device=None, **options):
        DistillConfig(**resolve(**options)).validate()
        raise Reached

    def reached(*_args, **_options):
        raise Reached

    monkeypatch.setattr(run.distill, "distill", distill_stub)
    monkeypatch.setattr(run.distill, "attack", reached)
    monkeypatch.setattr(run, "copy_atomic", reached)  # a plain check's first step after the guard
    monkeypatch.setattr(run, "finished", lambda *_args: None)  # a selection reuses finished candidates: none in a clone
    checked = 0
    for path in sorted((BENCHMARKS / "results").glob("*.json")):
        words = shlex.split(json.loads(path.read_text()).get("command", ""))
        if "benchmarks/run.py" not in words:
            continue
        monkeypatch.setattr(sys, "argv", words[words.index("benchmarks/run.py"):])
        try:
            run.main()
        except Reached:
            checked += 1
    assert checked >= 130


def test_every_teacher_sweep_in_the_results_repeats_on_the_set_it_measured(monkeypatch):
    """13 of the 16 recorded sweep commands were refused once their sets took their blends; RESULTS.md's command
    (table.pinned: --at the commit whose set a sweep measured) must reach its first network with that set:
    the as-distilled labels' mean top probability is the sweep's first row's."""
    import json
    import shlex
    import subprocess
    import sys

    import pytest

    if subprocess.run(["git", "cat-file", "-e", "a1bdaae7539b^{commit}"], cwd=BENCHMARKS).returncode != 0:
        pytest.skip("needs the repository's history (a shallow clone lacks the sweeps' commits)")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    sweep, table = importlib.import_module("teacher_sweep"), importlib.import_module("table")

    class Reached(Exception):
        pass

    def first_network(synset, *_args):
        probabilities = synset.target_probabilities()
        raise Reached(probabilities.max(1).values.mean().item() if synset.labels.ndim == 2 else 1.0)

    class NoData:
        num_classes = 10

        def to(self, _device):
            return self

    monkeypatch.setattr(sweep, "measure_on_splits", first_network)
    monkeypatch.setattr(sweep, "load_task", lambda _name: NoData())
    checked = 0
    for path in sorted((BENCHMARKS / "results").glob("teacher-sweep-*.json")):
        result = json.loads(path.read_text())
        if table.outside_file_note(result):  # its set as distilled was never committed
            continue
        words = shlex.split(table.pinned(result["command"], result))
        monkeypatch.setattr(sys, "argv", words[words.index("experiments/teacher_sweep.py"):])
        with pytest.raises(Reached) as reached:
            sweep.main()
        assert reached.value.args[0] == pytest.approx(result["blends"][0]["top_probability"], abs=1e-4), path.name
        checked += 1
    assert checked >= 15
    common = importlib.import_module("common")
    with pytest.raises(common.distill.DistillError, match="not a commit"):
        common.committed_set("mnist-dc-ipc1", at="no-such-commit")


def test_teacher_sweep_measures_the_committed_blend_on_its_labels_as_committed(monkeypatch):
    """Blending a set as distilled again gives the committed labels only to the last digits (the MNIST 10-per-class
    set's recovered labels: within 0.0028, enough to move validation as much as the blends differ), so the row of
    the blend the committed set holds trains on the committed labels, and the other rows on blends made here."""
    import sys

    import torch

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    sweep = importlib.import_module("teacher_sweep")
    committed = sweep.distill.load(BENCHMARKS / "artifacts" / "mnist-frepo-ipc10.safetensors")
    trained, written = [], {}

    def measure_on_splits(synset, *_args):
        trained.append(synset.labels.clone())
        score = {"mean": 0.9 + 0.01 * len(trained), "std": 0.0}
        return {"validation": score, "test": score}

    def blend_here(synset, _task, weight, _temperature, *_args):  # a stand-in teacher: no network is trained
        return sweep.SyntheticSet(synset.images, torch.full_like(synset.labels, 0.1) * weight + (1 - weight) *
                                  synset.labels, dict(synset.meta))

    class NoData:
        num_classes = 10

        def to(self, _device):
            return self

    monkeypatch.setattr(sweep, "measure_on_splits", measure_on_splits)
    monkeypatch.setattr(sweep, "with_teacher_labels", blend_here)
    monkeypatch.setattr(sweep, "load_task", lambda _name: NoData())
    monkeypatch.setattr(sweep, "write_json", lambda data, path: written.update(data))
    monkeypatch.setattr(sys, "argv", ["teacher_sweep.py", "mnist-frepo-ipc10", "--blends", "0:2,0.5:4,1:4",
                                      "--no-control", "--as-distilled",
                                      str(BENCHMARKS / "artifacts" / "mnist-frepo-ipc10-as-distilled.safetensors")])
    sweep.main()
    as_distilled = sweep.distill.load(BENCHMARKS / "artifacts" / "mnist-frepo-ipc10-as-distilled.safetensors")
    assert committed.meta["teacher_labels"] == {"weight": 0.5, "temperature": 4.0}
    assert torch.equal(trained[0], as_distilled.labels)
    assert torch.equal(trained[1], committed.labels)  # as committed, not blended again
    assert torch.allclose(trained[2], torch.full_like(trained[2], 0.1))  # all of the stand-in teacher
    assert [row["labels"] for row in written["blends"]] == ["as distilled", "as committed", "blended here"]
    assert written["chosen"] == {"weight": 1.0, "temperature": 4.0}  # the best validation row
