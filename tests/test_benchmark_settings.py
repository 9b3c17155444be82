"""benchmarks/run.py and its settings files (benchmarks/settings/*.toml): every committed results file must still be
what its recorded command runs. The settings go through the shipped presets, which merge a run's `options` into their
own, so a preset that gains an option would otherwise change an older setting's meaning without anyone noticing (it
happened: the MNIST preset's bfloat16 and 1,024-image batch leaked into the issue-5 settings written before them)."""

import importlib
import json
import shlex
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest

import distill
import distill.api
from distill.config import DistillConfig, resolve
from helpers import full_options

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def run(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # benchmarks/run.py imports its neighbour common.py
    return importlib.import_module("run")


def effective(config: DistillConfig) -> dict:
    """A configuration with the method's options written out: settings name every option, the presets and older
    results files only the ones they change."""
    full = asdict(config)
    full["options"] = full_options(full["method"], full["options"])
    return json.loads(json.dumps(full))  # as a results file holds it (lists, not tuples)


def recorded(path: Path) -> DistillConfig:
    """The configuration a results file ran, as this version of distill reads it (fields older files lack take
    today's defaults: the warning saying so is the point of load_config, not of this test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return distill.load_config(path)


def committed_runs(run):
    """(results file, its contents, the setting its command names, the parsed command line) for every committed
    results file that benchmarks/run.py made."""
    settings = run.load_settings()
    for path in sorted((BENCHMARKS / "results").glob("*.json")):
        found = json.loads(path.read_text())
        words = shlex.split(found["command"])
        if "benchmarks/run.py" not in words:
            continue
        args = run.parser().parse_args(words[words.index("benchmarks/run.py") + 1:])
        yield path, found, settings[args.name], args


def test_every_results_file_is_what_its_recorded_command_runs_now(run):
    """The command each results file records must name its setting, give back that very command (the guard against
    replacing a committed row compares them as text), and run the configuration the file recorded. A preset row run
    under a time limit may now name the steps that run took, so that `distill run` repeats it."""
    checked = {"distill": 0, "attack": 0, "select": 0, "plain": 0, "adapt": 0}
    for path, found, setting, args in committed_runs(run):
        name = run.run_name(setting.name, args.seed)
        assert found["name"] == name == path.stem
        if setting.kind == "distill":
            command, options = run.command_and_options(setting, args)
            assert command + (f" --seed {args.seed}" if args.seed else "") == found["command"], path.name
            now = effective(DistillConfig(**resolve(**options, seed=args.seed)))
            ran = effective(recorded(path))
            if found.get("steps_taken") and now["iterations"] == found["steps_taken"]:
                ran["iterations"] = found["steps_taken"]  # the preset now names the steps the timed run took,
                if now["max_minutes"] == 0:  # which repeat it without its time limit
                    ran["max_minutes"] = 0
            assert {k: (ran[k], now[k]) for k in now if ran[k] != now[k]} == {}, path.name
            assert found.get("change") == setting.change, path.name
        elif setting.kind == "attack":
            options = {**setting.options, **({"seed": args.seed} if args.seed else {})}
            assert asdict(distill.AttackConfig(**options)) == asdict(distill.AttackConfig(**found["config"]))
        elif setting.kind == "select":
            assert [c["name"] for c in found["candidates"]] == [run.run_name(n, s) for n, s in setting.candidates]
        elif setting.kind == "adapt":
            options = {**setting.options, "source": setting.source, **({"seed": args.seed} if args.seed else {})}
            assert asdict(distill.api.AdaptConfig(**options)) == found["config"], path.name
            assert found["command"] == f"{run.COMMAND} {setting.name}", path.name
        else:
            assert (found["source"], found["artifact"]) == (
                setting.source, f"benchmarks/artifacts/{setting.artifact}.safetensors")
        checked[setting.kind] += 1
    assert checked["distill"] >= 120 and checked["attack"] == 5 and checked["select"] == 1 and checked["plain"] == 3
    assert checked["adapt"] == 1


def test_every_setting_is_a_run_distill_accepts(run, monkeypatch):
    """Each setting, run or not yet, resolves to a configuration that validates (image_init paths are from the
    repository's root, where the benchmarks run)."""
    monkeypatch.chdir(ROOT)
    settings = run.load_settings()
    for setting in settings.values():
        if setting.kind == "distill":
            DistillConfig(**resolve(**setting.options)).validate()
        elif setting.kind == "attack":
            distill.AttackConfig(**setting.options).validate()
        elif setting.kind == "select":
            assert all(settings[name].kind == "distill" for name, _seed in setting.candidates)
        elif setting.kind == "adapt":
            distill.api.AdaptConfig(**setting.options, source=setting.source).validate()
        else:
            assert (BENCHMARKS / "results" / f"{setting.source}.json").is_file(), setting.name
    assert len(settings) >= 140
    assert settings["attack-mnist-forget3"].options["target"] is None  # `forget = true`


@pytest.mark.parametrize("setting, given", [("fashion-mnist-unroll-ipc1-from-frepo", {}),
                                            ("mnist-unroll-ipc1-from-frepo", {}),
                                            ("mnist-unroll-ipc1-from-unroll", {"iterations": 40})])
def test_the_unroll_stage_as_the_readme_runs_it_is_the_benchmarked_one(run, setting, given):
    """`distill run --dataset D --ipc 1 --method unroll --image-init SET` (the README's second stage; the MNIST third
    stage adds `--iterations 40`) must repeat the committed stage as its results file's command ran it (with no time
    limit): the method's defaults, with the dataset's and the options the README gives, are its setting."""
    stage = next(run.command_and_options(s, a)[1] for _p, _f, s, a in committed_runs(run) if s.name == setting)
    resolved = resolve(dataset=stage["dataset"], ipc=1, method="unroll", image_init=stage["image_init"], **given)
    resolved["options"], stage["options"] = (full_options("unroll", o.get("options", {})) for o in (resolved, stage))
    assert {k: (resolved[k], v) for k, v in stage.items() if resolved[k] != v} == {}


SETTINGS_FILE = '''
[defaults]
eval_nets = 1

[templates.tiny]
iterations = 3
dataset = "digits"
method = "dm"
ipc = 1
eval_every = 2
options.real_batch = 16

[base-run]
base = "tiny"
artifact = true
change = "the first"

[second]  # its base's options, one changed; never its change or its artifact
base = "base-run"
ipc = 2

[both]
kind = "select"
candidates = [{ setting = "base-run", seed = 0 }, { setting = "second", seed = 3 }]

[picks]  # a coreset: nothing is distilled, so a real run takes seconds
artifact = true
dataset = "digits"
method = "random"
arch = "mlp"
ipc = 1
'''


def test_a_settings_file_reads_bases_defaults_and_kinds(run, tmp_path):
    (tmp_path / "a.toml").write_text(SETTINGS_FILE)
    settings = run.load_settings(tmp_path)
    assert settings["base-run"].options == {"iterations": 3, "eval_nets": 1, "dataset": "digits", "method": "dm",
                                            "ipc": 1, "eval_every": 2, "options": {"real_batch": 16}}
    assert settings["base-run"].artifact == "base-run" and settings["base-run"].change == "the first"
    assert settings["second"].options["ipc"] == 2 and settings["second"].change is None
    assert settings["second"].artifact is None
    assert settings["both"].candidates == (("base-run", 0), ("second", 3))
    merged = run.merge({"options": {"a": 1, "b": 2}, "x": 1}, {"options": {"b": 3}})
    assert merged == {"options": {"a": 1, "b": 3}, "x": 1}  # a method's options merged key by key


@pytest.mark.parametrize("text, message", [
    ('[a]\nbase = "b"\n[b]\nbase = "a"\n', "a -> b -> a: a base that is its own base"),
    ('[a]\nbase = "nothing"\n', "a's base nothing is neither a template nor a setting"),
    ('[templates.a]\nchange = "x"\n', "template a may hold options and a base only"),
    ('[a]\nkind = "sweep"\n', "kind 'sweep' is not one of"),
    ('[a]\nkind = "select"\ncandidates = [{ setting = "b" }]\n[b]\nkind = "attack"\n', "candidate b is not a"),
    ('[a]\nkind = "plain"\nsource = "s"\n', "a plain setting names its source and its artifact"),
    ("[a\n", "Expected ']'"),
])
def test_a_broken_settings_file_is_refused_in_one_line(run, tmp_path, text, message):
    (tmp_path / "x.toml").write_text(text)
    with pytest.raises(distill.DistillError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run.load_settings(tmp_path)


def test_a_name_in_two_settings_files_is_refused(run, tmp_path):
    (tmp_path / "a.toml").write_text("[same]\nipc = 1\n")
    (tmp_path / "b.toml").write_text("[same]\nipc = 2\n")
    with pytest.raises(distill.DistillError, match="setting same is in both a.toml and b.toml"):
        run.load_settings(tmp_path)


def test_run_py_runs_a_setting_and_records_its_command(run, monkeypatch, tmp_path, capsys):
    """The command line's changes reach the run and its recorded command (only where they differ from the setting),
    a selection keeps the candidate best on validation, an option that a kind does not take is refused before
    anything runs, and a real run (a coreset on the bundled digits) writes its files. A seed other than 0 is part of
    the run's name: `NAME --seed 1` once copied its set over benchmarks/artifacts/NAME.safetensors, the committed set
    that NAME's results file describes, while writing its numbers to NAME-seed1.json."""
    import sys

    common = importlib.import_module("common")
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "a.toml").write_text(SETTINGS_FILE)
    monkeypatch.setattr(run, "SETTINGS", tmp_path / "settings")
    for module in (run, common):
        monkeypatch.setattr(module, "HERE", tmp_path)

    def main(*words):
        monkeypatch.setattr(sys, "argv", ["run.py", *words])
        run.main()

    prefix = "DISTILL_DATA=../shared/data python benchmarks/run.py"
    (tmp_path / "artifacts").mkdir()
    committed = tmp_path / "artifacts" / "picks.safetensors"
    committed.write_bytes(b"the committed set")
    main("picks", "--seed", "1")  # a real run, through common.run_setting
    result = json.loads((tmp_path / "results" / "picks-seed1.json").read_text())
    assert result["name"] == "picks-seed1" and result["command"] == f"{prefix} picks --seed 1"
    assert result["config"]["seed"] == 1 and result["published"] is None and "change" not in result
    assert committed.read_bytes() == b"the committed set"
    assert (tmp_path / "artifacts" / "picks-seed1.safetensors").is_file()

    calls, best = [], {"base-run": 0.5, "base-run-seed1": 0.5, "second-seed3": 0.75}  # stand-in runs' validation

    def ran(name, options, command, seed=0, **kw):
        calls.append(dict(name=name, options=options, command=command, seed=seed, **kw))
        out = tmp_path / "runs" / run.run_name(name, seed)
        out.mkdir(parents=True, exist_ok=True)
        for file in ("synset.safetensors", "grid.png", "val_curve.png"):
            (out / file).write_text(out.name)
        return {"name": out.name, "config": {"seed": seed}, "best_val_acc": best[out.name], "accuracy_mean": 0.9,
                "distill_seconds": 1.0, "command": command}

    monkeypatch.setattr(run, "run_setting", ran)
    main("base-run", "--iterations", "2", "--eval-every", "2", "--max-minutes", "1.5", "--seed", "1")
    assert calls[-1]["command"] == f"{prefix} base-run --max-minutes 1.5 --iterations 2"  # --seed: run_setting's
    assert calls[-1]["options"]["iterations"] == 2 and calls[-1]["options"]["max_minutes"] == 1.5
    assert calls[-1]["seed"] == 1 and calls[-1]["artifact"] == "base-run"
    assert calls[-1]["extra"] == {"change": "the first", "published": None}
    main("both")
    chosen = json.loads((tmp_path / "results" / "both.json").read_text())
    assert chosen["selected"] == "second-seed3" and chosen["command"] == f"{prefix} both"
    assert (tmp_path / "artifacts" / "both.safetensors").read_text() == "second-seed3"
    assert [(c["name"], c["seed"], c["command"]) for c in calls[-2:]] == [
        ("base-run", 0, f"{prefix} base-run"), ("second", 3, f"{prefix} second")]

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main("both", "--seed", "1")
    assert "--seed: not an option of both (kind select" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main("base-rn")
    assert "did you mean base-run" in capsys.readouterr().err
    main("--list", "second")
    assert capsys.readouterr().out.startswith("second [a.toml, distill] {")
