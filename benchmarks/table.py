"""Build RESULTS.md, and the README's generated parts, from benchmarks/results/*.json, so that every number in
them has a results file and a command behind it.

    python benchmarks/table.py           # write RESULTS.md and the README's generated parts
    python benchmarks/table.py --check   # exit 1 unless both are exactly what the results files give (a test runs it)
    python benchmarks/table.py --print   # print RESULTS.md instead of writing anything

The README's generated parts sit between markers: the sentence on the main command's result
(<!-- main-result:begin --> ... <!-- main-result:end -->, from the results file MAIN_RESULT names: when the main
command changes, point MAIN_RESULT at the results file that measures the new one) and the table of the best results
(<!-- best:begin --> ... <!-- best:end -->, one row per setting the presets choose a method for, see best_table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from distill.presets import BEST_METHOD, PUBLISHED

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = ROOT / "README.md"
RESULTS = ROOT / "RESULTS.md"
MAIN_RESULT = "digits-frepo-ipc1"  # the results file of the README's main command (`distill run`, no options)
SEED_RESULT = "digits-dd-default"  # the same with the paper's algorithm, one option away (`distill run --method dd`)
FIXED_INIT_HEADLINE = "mnist-dd-fixed-10img"  # the original paper's setting: one fixed network, a learned schedule
MARKERS = {"main-result": ("<!-- main-result:begin -->", "<!-- main-result:end -->"),
           "best": ("<!-- best:begin -->", "<!-- best:end -->")}


def result(name: str) -> dict:
    return json.loads((HERE / "results" / f"{name}.json").read_text())


def anchor(r: dict) -> str:
    """An HTML anchor named after the results file, so that RESULTS.md#NAME links to its row."""
    return f'<a id="{r["name"]}"></a>'


def percent(mean: float, std: float, n: int) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if n > 1 else "")


def table() -> str:
    rows = ["| setting | images | distilled (test %) | eval nets | random real | full data | distill time | "
            "command |", "|---|---|---|---|---|---|---|---|"]
    for path in sorted((HERE / "results").glob("*.json")):
        r = json.loads(path.read_text())
        if "random_real" not in r or r["method"] != "dd":
            continue
        c = r["config"]
        extras = "".join(f" · {label}" for key, label in (("layer_lrs", "a learned rate per layer"),
                                                          ("learn_labels", "learned soft labels"),
                                                          ("clamp_pixels", "pixels kept in [0, 1]")) if c.get(key))
        if c.get("seed"):
            extras += f" · seed {c['seed']}"
        if r.get("candidates"):
            total = sum(c["distill_seconds"] for c in r["candidates"]) / 60
            extras += (f" · **headline**: the best on validation of {len(r['candidates'])} runs (each a row of this "
                       f"table; {total:.0f} min of distillation in all)")
        taken = r.get("steps_taken")
        outer = (f"{taken:,} of {c['iterations']:,} outer steps (its time limit)"
                 if isinstance(taken, int) and taken < c["iterations"] else f"{c['iterations']:,} outer steps")
        if r.get("published") is not None:
            extras += f" · the paper: {r['published']:.1f}"
        setting = (f"{r['dataset']} · {r['method']} · {r['arch']} · {r['init']} init ({r['protocol']}) · "
                   f"{c['steps'] * c['epochs']} gradient steps · {c.get('image_init', 'real')} start · "
                   f"{outer}{extras}")
        rr, fd = r["random_real"], r["full_data"]
        rows.append(
            f"| {anchor(r)}{setting} | {r['images']} | "
            f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
            f"{r['n_eval_nets']} | {percent(rr['accuracy_mean'], rr['accuracy_std'], rr['n_nets'])} | "
            f"{percent(fd['accuracy_mean'], fd['accuracy_std'], fd['n_nets'])} | "
            f"{r['distill_seconds'] / 60:.1f} min ({where(r)}) | "
            f"`{r['command']}` |")
    return "\n".join(rows)


METHOD_ORDER = ("dc", "dsa", "dm", "mtt", "frepo", "random", "herding", "kcenter")


def methods_table() -> str:
    """Issue 4: the standard methods and coresets beside the papers' numbers (ConvNet, standard protocol)."""
    rows = ["| dataset | method | img/class | ours (test %) | published | eval nets | eval augment | random real | "
            "full data | steps | distill time | command |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    found = [json.loads(p.read_text()) for p in (HERE / "results").glob("*.json")]
    found = [r for r in found if r.get("method") in METHOD_ORDER and "random_real" in r  # not cross-arch tables,
             and "change" not in r]  # nor issue 5's experiments (their own table)
    found.sort(key=lambda r: (r["dataset"], METHOD_ORDER.index(r["method"]), r["ipc"], r["config"].get("seed", 0)))
    for r in found:
        rr, fd = r["random_real"], r["full_data"]
        published = r.get("published") or PUBLISHED.get((r["dataset"], r["method"], r["ipc"]))
        seed = r["config"].get("seed", 0)  # the preset run again with another seed: its spread, not a rival
        rows.append(
            f"| {anchor(r)}{r['dataset']} | {r['method']}{f' · seed {seed}' if seed else ''} | {r['ipc']} | "
            f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}**{teacher_mark(r)} | "
            f"{'—' if published is None else f'{published:.1f}'} | {r['n_eval_nets']} | "
            f"{augment_cell(r.get('eval_augment', 'none'), r)} | "
            f"{percent(rr['accuracy_mean'], rr['accuracy_std'], rr['n_nets'])}"
            f"{BATCH_DRAWS if batch_draws(rr) else ''} | "
            f"{percent(fd['accuracy_mean'], fd['accuracy_std'], fd['n_nets'])} | "
            f"{steps(r)} | {r['distill_seconds'] / 60:.1f} min ({where(r)}) | `{r['command']}` |")
    return "\n".join(rows)


TEACHER = " ‡"  # marks sets whose labels are blended with the full-data network's predictions (teacher labels)


def teacher_mark(r: dict) -> str:
    """‡ with the blend, when the measured set carries teacher labels."""
    share = r["config"].get("teacher_labels", 0.0)
    return f"{TEACHER} {share:g} at T {r['config']['teacher_temperature']:g}" if share else ""


BATCH_DRAWS = " †"  # marks numbers measured while training augmentation drew one set of parameters per batch


def batch_draws(r: dict) -> bool:
    """Whether this measurement (a results file, or a random-real baseline that `remeasure.py` kept, which says so)
    predates per-image augmentation draws."""
    return "eval_augment_draws" in r or r.get("per_batch_draws", False)


def draws_mark(augment: str, r: dict) -> str:
    """† when measurement `r`, trained with `augment`, drew one set of augmentation parameters per batch."""
    return BATCH_DRAWS if augment != "none" and batch_draws(r) else ""


def augment_cell(augment: str, r: dict) -> str:
    """The augmentation a results file `r` names, marked when it was measured with one draw per batch."""
    return augment + draws_mark(augment, r)


def steps(r: dict) -> str:
    """Outer steps the run took (coresets take none)."""
    if selects(r["method"]):
        return "—"
    return f"{r.get('steps_taken') or r['config']['iterations']:,}"


def selects(method: str) -> bool:
    """Whether `method` picks real images (a coreset) rather than distilling."""
    try:
        from distill.methods import selects as picks  # noqa: PLC0415
    except ImportError:  # before methods had a base contract, a coreset's class said so itself
        from distill.methods import get_method  # noqa: PLC0415

        return bool(getattr(get_method(method), "selects", False))
    return picks(method)


def where(r: dict) -> str:
    """The device, and how many runs shared it (GPU; side by side under CUDA MPS, else time-slicing it) or how many
    threads it had (CPU)."""
    if "processes_on_device" in r:
        return f"{r['device']}, shared by {r['processes_on_device']} runs{' under MPS' if r.get('mps') else ''}"
    return f"{r['device']}, {r.get('threads', '?')} thr."


def sota_table() -> str:
    """Issue 5: one change at a time towards the state of the art (benchmarks/sota.py), and the best sets trained
    with plain PyTorch (benchmarks/best.py)."""
    rows = ["| experiment | change | ours (test %) | eval nets | eval augment | steps | distill time | command |",
            "|---|---|---|---|---|---|---|---|"]
    found = sorted((json.loads(p.read_text()) for p in (HERE / "results").glob("*.json")), key=lambda r: r["name"])
    for r in (r for r in found if "change" in r):
        rows.append(f"| {anchor(r)}{r['name']} | {r['change']} | "
                    f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
                    f"{r['n_eval_nets']} | {augment_cell(r.get('eval_augment', 'none'), r)} | {steps(r)} | "
                    f"{r['distill_seconds'] / 60:.1f} min ({where(r)}) | `{r['command']}` |")
    rows += ["", "| best set | source | plain PyTorch (test %) | distill eval (test %) | augment, epochs | command |",
             "|---|---|---|---|---|---|"]
    for r in (r for r in found if "trained_with" in r):
        d = r["distill_accuracy"]
        rows.append(f"| {anchor(r)}`{r['artifact']}` | {r['source']} | "
                    f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
                    f"{percent(d['accuracy_mean'], d['accuracy_std'], d['n_eval_nets'])} | {r['eval_augment']}, "
                    f"{r['epochs']} | `{r['command']}` |")
    return "\n".join(rows)


def outside_file_note(result: dict) -> str:
    """For a sweep whose `--as-distilled` file was never committed: where the results file says how it was made."""
    path = result["command"].partition("--as-distilled ")[2].split(" ")[0]
    if not path or (ROOT / path).is_file():
        return ""
    return (f" ({path} is not in the repository: `as_distilled_made_by` in "
            f"benchmarks/results/{result['name']}.json says how it was made)")


def pinned(command: str, result: dict) -> str:
    """A recorded command that repeats its measurement at HEAD: where the set has changed since (a teacher blend, a
    longer run), the results file's `set_as_of` names the commit whose set it measured, and --at measures that one."""
    at = result.get("set_as_of")
    return f"{command} --at {at[:12]}" if at and " --at " not in command else command


def teacher_table() -> str:
    """Teacher labels (benchmarks/teacher_sweep.py): each blend's validation and test accuracy on a committed set;
    validation chooses, the chosen row in bold, then the uniform-smoothing control."""
    rows = ["| set | teacher weight | temperature | mean top probability | validation % | test % | command |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted((HERE / "results").glob("teacher-sweep-*.json")):
        r = json.loads(path.read_text())
        n = r["n_eval_nets"]
        for i, b in enumerate(r["blends"]):
            command = (f"`{pinned(r['command'], r)}`" + outside_file_note(r) if i == 0 else "″")
            first = anchor(r) if i == 0 else ""
            top = f"{b['top_probability']:.3f}" if "top_probability" in b else "—"
            chosen = (b["weight"], b["temperature"]) == (r["chosen"]["weight"], r["chosen"]["temperature"])
            mark = "**" if chosen else ""
            weight = "none (as distilled)" if not b["weight"] else f"{b['weight']:g}"
            temperature = f"{b['temperature']:g}" if b["weight"] else "—"
            rows.append(f"| {first}{r['set']} | {mark}{weight}{mark} | {temperature} | "
                        f"{top} | {mark}{percent(b['validation']['mean'], b['validation']['std'], n)}{mark} | "
                        f"{percent(b['test']['mean'], b['test']['std'], n)} | {command} |")
        control = r.get("uniform_smoothing_control")
        if control:
            rows.append(f"| {r['set']} | control: own labels smoothed uniformly (ε {control['smoothing']:.3f}) | — | "
                        f"{control['top_probability']:.3f} | "
                        f"{percent(control['validation']['mean'], control['validation']['std'], n)} | "
                        f"{percent(control['test']['mean'], control['test']['std'], n)} | ″ |")
    return "\n".join(rows)


def augment_table() -> str:
    """Evaluation augmentation (benchmarks/augment_sweep.py): a committed set trained with each augmentation named,
    its validation and test accuracy; validation chooses, the chosen row in bold."""
    rows = ["| set | augmentation | epochs | validation % | test % | command |", "|---|---|---|---|---|---|"]
    for path in sorted((HERE / "results").glob("augment-sweep-*.json")):
        r = json.loads(path.read_text())
        n = r["n_eval_nets"]
        for i, row in enumerate(r["rows"]):
            mark = "**" if row["augment"] == r["chosen"] else ""
            own = " (the set's evaluation when swept)" if row["own"] else ""
            command = (f"`{r['command']}`" + ("" if r["complete"] else " (not every augmentation measured yet)")
                       if i == 0 else "″")
            first = anchor(r) if i == 0 else ""
            rows.append(f"| {first}{r['set']} | {mark}{row['augment']}{mark}{own} | {row['epochs']} | "
                        f"{mark}{percent(row['validation']['mean'], row['validation']['std'], n)}{mark} | "
                        f"{percent(row['test']['mean'], row['test']['std'], n)} | {command} |")
    return "\n".join(rows)


def cross_arch_table() -> str:
    rows = []
    for path in sorted((HERE / "results").glob("cross-arch-*.json")):
        r = json.loads(path.read_text())
        archs = list(r["archs"])
        commands = dict.fromkeys(pinned(a.get("command", r["command"]), r) for a in r["archs"].values())
        epochs = r.get("epochs") or (300 if r["augment"] == "none" else 1000)
        marked = any(draws_mark(r["augment"], a) for a in r["archs"].values())
        labels = f"; {r['labels']}" if "labels" in r else ""
        rows += [f"{anchor(r)}Set `{r['set']}` ({r['method']}, {r['ipc']} img/class, "
                 f"distilled with {r['distilled_with']}{labels}; "
                 f"standard protocol, augmentation: {r['augment']}, {epochs} epochs; {r['device']}, "
                 f"{r.get('threads', '?')} thr.; a row's learning rate below it" +
                 (f"; {BATCH_DRAWS.strip()}: one augmentation draw per batch" if marked else "") + "): " +
                 ", ".join(f"`{c}`" for c in commands), "",
                 "| | " + " | ".join(archs) + " |", "|---|" + "---|" * len(archs),
                 "| test % | " + " | ".join(percent(a["accuracy_mean"], a["accuracy_std"], a["n_nets"]) +
                                           draws_mark(r["augment"], a) for a in r["archs"].values()) + " |",
                 "| lr | " + " | ".join(f"{a['lr']:.3g}" for a in r["archs"].values()) + " |", ""]
    return "\n".join(rows)


def attack_table() -> str:
    rows = ["| attack | poison | held-out victims | success (distilled) | other classes, change | label flip at ≤ the "
            "poison's harm: success | change | label flip, best score: success | change | command |",
            "|---|---|---|---|---|---|---|---|---|---|"]

    def cells(m: dict) -> str:
        lr = f" (lr {m['lr']:g})" if "lr" in m else ""
        return (f"{percent(m['after_success']['mean'], m['after_success']['std'], 2)} | "
                f"{-100 * m['others_drop']['mean']:+.2f}{lr}")

    for path in sorted((HERE / "results").glob("attack-*.json")):
        r = json.loads(path.read_text())
        goal = f"{r['attacked']} → {r['target']}" if r["target"] is not None else f"forget {r['attacked']}"
        matched = cells(r["label_flip_matched"]) if "label_flip_matched" in r else "— | —"
        rows.append(f"| {anchor(r)}{r['dataset']} {goal} | {r['images']} images, {r['gradient_steps']} steps | "
                    f"{r['n_eval_victims']} | **{cells(r['held_out']).replace(' | ', '** | ', 1)} | {matched} | "
                    f"{cells(r['label_flip'])} | `{r['command']}` |")
    return "\n".join(rows)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def stages(r: dict) -> list[dict]:
    """The runs that made a set, first to last: a run started from a committed set (`--image-init
    benchmarks/artifacts/NAME.safetensors`) follows the run whose results file NAME describes."""
    chain = [r]
    while str(chain[0].get("config", {}).get("image_init", "")).startswith("benchmarks/artifacts/"):
        chain.insert(0, result(Path(chain[0]["config"]["image_init"]).stem))
    return chain


def kind(r: dict) -> str:
    return "GPU" if "processes_on_device" in r or "NVIDIA" in r.get("device", "") else "CPU"


def main_sentence() -> str:
    """The README's sentence on what the main command gives, from the results file that measured it."""
    r, seed = result(MAIN_RESULT), result(SEED_RESULT)
    rr, fd = r["random_real"], r["full_data"]
    labels = "learned labels" if r["config"].get("learn_labels") else "hard labels"
    epochs = r["config"].get("eval_epochs") or (1000 if r.get("eval_augment") not in (None, "", "none") else 300)
    return (f"Measured by `{r['command']}` "
            f"([`benchmarks/results/{r['name']}.json`](RESULTS.md#{r['name']})): {r['images']} images "
            f"(`{r['method']}`) → **{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}%** test "
            f"accuracy for fresh {r['arch']}s ({r.get('eval_augment') or 'no'} augmentation, {epochs:,} epochs, "
            f"{labels}), against {percent(fd['accuracy_mean'], fd['accuracy_std'], fd['n_nets'])}% for the same "
            f"network trained on the whole training split and "
            f"{percent(rr['accuracy_mean'], rr['accuracy_std'], rr['n_nets'])}% for {r['images']} random real "
            f"images; the distillation took {r['distill_seconds']:.0f} s ({where(r)}). The paper's algorithm, "
            f"`distill run --method dd` ([{seed['name']}](RESULTS.md#{seed['name']})), gives "
            f"{percent(seed['accuracy_mean'], seed['accuracy_std'], seed['n_eval_nets'])}% with its fixed "
            f"{seed['arch']} and learned schedule.")


def best_table() -> str:
    """One row per (dataset, images per class) the presets choose a method for (`presets.BEST_METHOD`): the
    preset's results file (what `distill run --dataset D --ipc N` repeats), and, where a later stage refined that set
    into the best one measured, that stage's too: the committed best sets' plain-PyTorch checks (results files with
    `trained_with`) name it as their `source`. Then the original paper's fixed-init setting."""
    staged = {}
    for path in sorted((HERE / "results").glob("*.json")):
        check = json.loads(path.read_text())
        if "trained_with" in check and "source" in check:
            r = result(check["source"])
            staged[(r["dataset"], r["ipc"])] = r
    recipes = {}  # results name -> its set under every standard recipe (benchmarks/recipes.py)
    for path in sorted((HERE / "results").glob("recipes-*.json")):
        measured = json.loads(path.read_text())
        recipes[measured["source"]] = measured
    rows = ["| dataset | img/class | test % | how | evaluation augment | worst standard recipe | random real | "
            "full data | distill time | row |", "|---|---|---|---|---|---|---|---|---|---|"]

    def worst(r: dict) -> str:
        measured = recipes.get(r["name"])
        if measured is None:
            return "not measured"
        w = measured["worst"]
        return (f"{percent(w['accuracy_mean'], w['accuracy_std'], measured['n_nets'])} ({w['recipe']}, {w['arch']}; "
                f"[all](RESULTS.md#recipes))")

    def row(r: dict, how: str, time: str) -> str:
        rr, fd = r["random_real"], r["full_data"]
        augment = r["config"].get("eval_augment") or "none"
        return (f"| {r['dataset']} | {r['ipc']} | **{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}"
                f"** | {how} | {augment} | {worst(r)} | "
                f"{percent(rr['accuracy_mean'], rr['accuracy_std'], rr['n_nets'])} | "
                f"{percent(fd['accuracy_mean'], fd['accuracy_std'], fd['n_nets'])} | {time} | "
                f"[{r['name']}](RESULTS.md#{r['name']}) |")

    order = ("mnist", "fashion-mnist")
    for dataset, ipc in sorted(BEST_METHOD, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[0], k[1])):
        preset = result(f"{dataset}-{BEST_METHOD[(dataset, ipc)]}-ipc{ipc}")
        teacher = ", teacher labels" if preset["config"].get("teacher_labels") else ""
        rows.append(row(preset, f"`{preset['method']}`{teacher} (the default: one `distill run`)",
                        f"{minutes(preset['distill_seconds'])} {kind(preset)}"))
        best = staged.get((dataset, ipc))
        if best and best["name"] != preset["name"]:
            chain = stages(best)
            how = " → ".join(f"`{s['method']}`" for s in chain)
            rows.append(row(best, f"{how} (each run starts from the set before)",
                            " + ".join(f"{minutes(s['distill_seconds'])} {kind(s)}" for s in chain)))
    r = result(FIXED_INIT_HEADLINE)
    rows.append(row(r, f"`dd`, fixed init: the one {r['arch']} stored with the set, trained by the learned schedule "
                       "(the original paper's setting)",
                    f"{minutes(r['distill_seconds'])} {kind(r)}, best on validation of {len(r['candidates'])} runs"))
    return "\n".join(rows)


def memory_table() -> str:
    """Issue 51: peak memory of CIFAR-10-sized runs against the 2.5 GB limit."""
    path = HERE / "results" / "memory-cifar10-sized.json"
    if not path.is_file():
        return "Not measured yet: `DISTILL_DATA=../shared/data python benchmarks/memory.py`."
    r = json.loads(path.read_text())
    rows = ["| case | peak memory | under the limit | command |", "|---|---|---|---|"]
    for case in r["cases"]:
        rows.append(f"| {case['case']} | {case['peak_mb'] / 1024:.2f} GB | "
                    f"{'yes' if case['under_limit'] else '**no**'} ({r['limit_mb'] / 1000:g} GB) | "
                    f"`{case['command']}` |")
    rows.append(f"\n<a id=\"{r['name']}\"></a>Measured by `{r['command']}` on {r['device']}, {r['threads']} "
                f"thread(s), commit {r['git_commit'][:7]}.")
    return "\n".join(rows)


def scale_table() -> str:
    """Issue 52: dd's unrolled steps in segments, and steps split over processes."""
    parts = []
    path = HERE / "results" / "unroll-memory-mnist-dd.json"
    if path.is_file():
        r = json.loads(path.read_text())
        parts.append("| unrolled steps | whole graph: peak (above the floor) | segments of 10: peak (above the floor) "
                     "| time a step, whole / segments |\n|---|---|---|---|")
        by = {(row["unrolled_steps"], row["segment"]): row for row in r["rows"]}
        for steps in sorted({row["unrolled_steps"] for row in r["rows"]}):
            whole, part = by[(steps, 0)], by[(steps, 10)]
            parts.append(f"| {steps} | {whole['peak_mb']:.0f} MB ({whole['above_floor_mb']:.0f}) | "
                         f"{part['peak_mb']:.0f} MB ({part['above_floor_mb']:.0f}) | "
                         f"{whole['seconds_per_outer_step']:.2f} s / {part['seconds_per_outer_step']:.2f} s |")
        parts.append(f"\n<a id=\"{r['name']}\"></a>`dd` on MNIST, LeNet, 100 images (10 steps of one image per class, "
                     f"1, 3 and 10 epochs), a few outer steps each; the floor is `{r['floor_command']}` "
                     f"({r['floor_mb']:.0f} MB: torch and the data). Measured by `{r['command']}` on {r['device']}, "
                     f"commit {r['git_commit'][:7]}.")
    path = HERE / "results" / "scaling-mnist.json"
    if path.is_file():
        r = json.loads(path.read_text())
        parts.append("\n| method | 1 process × 2 threads | 2 processes × 1 thread | speed-up | all-reduced a step | "
                     "command |\n|---|---|---|---|---|---|")
        for row in r["rows"]:
            parts.append(f"| {row['method']} | {row['one_process_two_threads_s']:.3f} s | "
                         f"{row['two_processes_one_thread_s']:.3f} s | {row['speedup']:.2f}× | "
                         f"{row['allreduce_bytes_per_step'] / 1e6:.2f} MB | `{row['command']}` |")
        parts.append(f"\n<a id=\"{r['name']}\"></a>Time per outer step on MNIST, {r['steps']} steps each, one "
                     f"machine. Measured by `{r['command']}` on {r['device']}, commit {r['git_commit'][:7]}.")
    return "\n".join(parts) if parts else "Not measured yet."


def adapt_table() -> str:
    """Issue 53: networks pretrained on one dataset adapted to another by distilled images (distill adapt)."""
    rows = ["| source → target | images | pretrained networks measured | no adaptation | distilled, learned steps | "
            "random real, same steps | random real, fine-tuned | distill time | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted((HERE / "results").glob("adapt-*.json")):
        r = json.loads(path.read_text())
        cell = lambda m: percent(m["mean"], m["std"], m["n_nets"])  # noqa: E731
        measured = "one known network" if r["known_weights"] else f"{r['n_eval_nets']} held-out"
        rows.append(f"| <a id=\"{r['name']}\"></a>{r['source']} → {r['dataset']} | {r['images']} | {measured} | "
                    f"{cell(r['no_adaptation'])} | **{cell(r['adapted'])}** | {cell(r['random_real_steps'])} | "
                    f"{cell(r['random_real_fine_tuned'])} (lr {r['random_real_fine_tuned']['lr']:g}) | "
                    f"{r['distill_seconds'] / 60:.1f} min ({where(r)}) | `{r['command']}` |")
    return "\n".join(rows) if len(rows) > 2 else "Not measured yet."


def recipes_table() -> str:
    """Issue 54: committed sets under every standard recipe (benchmarks/recipes.py), the worst in bold."""
    parts = []
    for path in sorted((HERE / "results").glob("recipes-*.json")):
        r = json.loads(path.read_text())
        worst = r["worst"]
        rows = [f"<a id=\"recipes-{r['set']}\"></a>**{r['set']}** (the set of [{r['source']}](RESULTS.md#"
                f"{r['source']})): worst {percent(worst['accuracy_mean'], worst['accuracy_std'], r['n_nets'])} "
                f"({worst['recipe']}, {worst['arch']}). `{r['command']}`, {r['device']}, commit {r['git_commit'][:7]}."
                "\n", "| recipe | network | test % |", "|---|---|---|"]
        for row in r["rows"]:
            cell = percent(row["accuracy_mean"], row["accuracy_std"], r["n_nets"])
            is_worst = row["recipe"] == worst["recipe"] and row["arch"] == worst["arch"]
            rows.append(f"| {row['recipe']} | {row['arch']} | {f'**{cell}**' if is_worst else cell} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) if parts else "Not measured yet."


def results_md() -> str:
    sections = [
        ("The original method (dd)",
         "The seed's method, on LeNet. \"distilled\" is the test accuracy of networks trained only on the synthetic "
         "images (fixed init: the one stored network with the learned schedule; random init: fresh networks with the "
         "learned schedule, mean ± std). \"random real\" is the same number of real training images picked at random "
         "and trained with the standard protocol (from the same fixed network where there is one); \"full data\" is "
         "the same network trained on the whole training split. How the MNIST fixed-init headline got there: "
         "[docs/dd-headline.md](docs/dd-headline.md).",
         table()),
        ("Poisoning",
         "Success = share of the attacked class's test images predicted as the target (forget: predicted as anything "
         "else), mean ± std over held-out victims never seen while crafting; \"other classes, change\" = accuracy "
         "change (points) on every other class. The protocol and the label-flipping baseline: "
         "[docs/poisoning.md](docs/poisoning.md).",
         attack_table()),
        ("Standard methods and coresets",
         "ConvNet, fresh random networks, standard protocol (1000 epochs with augmentation: DSA's, or DC's own on "
         "MNIST for `dc`; 300 without), beside the papers' numbers. \"steps\" are the outer steps the distillation "
         "took; GPU runs were stopped by a time limit ([docs/presets.md](docs/presets.md) says which machine each "
         "preset came from). †: measured when training augmentation drew one set of random parameters per batch, "
         "shared by its images; the others draw per image, as the DSA and DC code do "
         "([docs/known-gaps.md](docs/known-gaps.md)). ‡ W at T: the set's labels are (1 − W) × its own + W × the "
         "full-data ConvNet's predictions at temperature T, the blend the validation split chose "
         "([Teacher labels](#teacher-labels) below).",
         methods_table()),
        ("Towards the state of the art",
         "Each experiment is one change to a preset or to a set it made, its distillation time and machine in its row "
         "(30 minutes on the 2-core CPU for the first ones, minutes of one GPU or hours of one CPU thread for later "
         "ones; a row its time limit ended repeats on any machine with `--max-minutes 0 --iterations <its steps>`, "
         "plus `--replace` to let it replace the row); then the best 1-per-class sets trained without `distill` "
         "(examples/train_plain.py). What each row changed and what came of it: "
         "[docs/state-of-the-art.md](docs/state-of-the-art.md).",
         sota_table()),
        ("Teacher labels",
         "A committed set's labels blended with the full-data network's predictions, mean ± std over fresh ConvNets "
         "trained with the set's own evaluation; the validation split chooses the blend (bold), the test split is "
         "only reported; where a set has changed since its sweep, `--at COMMIT` sweeps it as committed then.",
         teacher_table()),
        ("Evaluation augmentation",
         "A committed set, labels as committed, trained with the standard protocol under each augmentation (300 "
         "epochs without, 1000 with), mean ± std over fresh ConvNets; the validation split chooses (bold), the test "
         "split is only reported.",
         augment_table()),
        ("Cross-architecture",
         "Test %, mean ± std over fresh networks of each kind. What the two sets' rows say: "
         "[docs/known-gaps.md](docs/known-gaps.md).",
         cross_arch_table().rstrip("\n")),
        ("Adaptation",
         "Networks pretrained on the source dataset (its images resized to the target's size) adapted to the target "
         "by distilled target images and their learned steps (`distill adapt`), test accuracy on the target, mean ± "
         "std over pretrained networks never seen while distilling, beside the original paper's baselines. The "
         "paper's USPS → MNIST: 67.5 ± 3.9% unadapted, 92.7 ± 1.4% adapted.",
         adapt_table()),
        ("Recipes",
         "A committed set trained by each of the field's standard recipes (`distill eval FILE --recipes`): no "
         "augmentation for 300 epochs, DSA's for 1,000, DC's MNIST augmentation for 1,000 (crop and flip on colour "
         "data), SGD with momentum 0.9 at 0.01 decayed tenfold at half time, on our ConvNet and the DC code's; mean ± "
         "std over fresh networks (the same seeds for every recipe), test split. A user training the set their own "
         "standard way gets at least the worst row.",
         recipes_table()),
        ("Memory",
         "Peak resident memory of one `distill run` process while it distils (a few steps, no final evaluation) on "
         "CIFAR-10-sized data: 50,000 colour 32×32 training images.",
         memory_table()),
        ("Scale",
         "`dd` back-propagating through its unrolled steps whole or in segments of 10 (`--opt segment=N`, 10 by "
         "default, 0 for the whole graph), and steps split over processes with torch.distributed "
         "(`distill run --nproc N`, or torchrun).",
         scale_table()),
    ]
    head = (
        "# Results\n\n"
        "<!-- Generated by benchmarks/table.py from benchmarks/results/*.json: do not edit by hand. After a new or "
        "changed results file, run `python benchmarks/table.py`; `python benchmarks/table.py --check` (a test runs "
        "it) fails while this file is stale. -->\n\n"
        "Every number here comes from a results file under `benchmarks/results/` and every row names the command "
        "that made it (a row's link target is its file's name: `RESULTS.md#mnist-frepo-ipc10` is "
        "`benchmarks/results/mnist-frepo-ipc10.json`). Run a command from the repository's root: it replaces its "
        "results file and its set (the same script with other options refuses to replace them without "
        "`--replace`). `../shared/data`, in the commands, is the copy of the datasets kept beside the repository's "
        "checkout; elsewhere leave `DISTILL_DATA` unset or point it at your own data root (README, \"Data\"). "
        "Accuracies are test accuracy in percent; the evaluation protocol is the README's \"Evaluation protocol\". "
        "The notes on these experiments are under [docs/](docs/).\n\n"
        + "".join(f"- [{title}](#{slug(title)})\n" for title, _, _ in sections))
    return head + "".join(f"\n## {title}\n\n{prose}\n\n{body}\n" for title, prose, body in sections)


def slug(title: str) -> str:
    """GitHub's anchor for a heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return kept.replace(" ", "-")


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so that a reader never sees half a file."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        os.unlink(name)
        raise


def readme_with(readme: str, parts: dict[str, str]) -> str:
    """`readme` with each generated part between its markers replaced by `parts[key]`."""
    for key, (begin, end) in MARKERS.items():
        if readme.count(begin) != 1 or readme.count(end) != 1:
            sys.exit(f"README.md must hold {begin} ... {end} once")
        head, rest = readme.split(begin, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{begin}\n{parts[key]}\n{end}{tail}"
    return readme


def broken_links(results: str) -> list[str]:
    """Links into RESULTS.md (`RESULTS.md#NAME`) from the README and docs/ whose target is neither a row's anchor
    nor a heading of `results`."""
    targets = set(re.findall(r'<a id="([^"]+)"></a>', results))
    targets |= {slug(title) for title in re.findall(r"^#+ (.+)$", results, flags=re.M)}
    broken = []
    for path in (README, *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"RESULTS\.md#([\w.-]+)", path.read_text()):
            if target not in targets:
                broken.append(f"{path.relative_to(ROOT)}: RESULTS.md#{target}")
    return broken


def main() -> None:
    args = parse_args()
    results = results_md()
    if args.print:
        print(results, end="")
        return
    readme = README.read_text()
    expected = readme_with(readme, {"main-result": main_sentence(), "best": best_table()})
    if args.check:
        stale = [name for name, now, want in (("RESULTS.md", RESULTS.read_text() if RESULTS.exists() else "", results),
                                               ("README.md", readme, expected)) if now != want]
        if stale:
            sys.exit(f"{' and '.join(stale)} differ from benchmarks/results: run python benchmarks/table.py")
        broken = broken_links(results)
        if broken:
            sys.exit("links to no row or heading of RESULTS.md:\n" + "\n".join(broken))
        print("RESULTS.md and the README's generated parts match benchmarks/results")
        return
    write_atomic(RESULTS, results)
    if expected != readme:
        write_atomic(README, expected)
    for link in broken_links(results):
        print(f"warning: {link} names no row or heading of RESULTS.md", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="exit 1 unless RESULTS.md and the README's generated parts are what the results give")
    action.add_argument("--print", action="store_true", help="print RESULTS.md instead of writing anything")
    action.add_argument("--write", action="store_true", help=argparse.SUPPRESS)  # what writing took before
    return parser.parse_args()


if __name__ == "__main__":
    main()
