"""Build the README's results table from benchmarks/results/*.json (so every number there has a results file and
a command behind it).

    python benchmarks/table.py           # print the table
    python benchmarks/table.py --write   # replace the table between the markers in README.md
    python benchmarks/table.py --check   # exit 1 unless README.md holds exactly this table (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distill.methods import get_method
from distill.presets import PUBLISHED
from distill.synset import atomic_write_text

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


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
        setting = (f"{r['dataset']} · {r['method']} · {r['arch']} · {r['init']} init ({r['protocol']}) · "
                   f"{c['steps'] * c['epochs']} gradient steps · {c.get('image_init', 'real')} start · "
                   f"{c['iterations']:,} outer steps{extras}")
        rr, fd = r["random_real"], r["full_data"]
        rows.append(
            f"| {setting} | {r['images']} | **{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
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
            f"| {r['dataset']} | {r['method']}{f' · seed {seed}' if seed else ''} | {r['ipc']} | "
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
    if getattr(get_method(r["method"]), "selects", False):
        return "—"
    return f"{r.get('steps_taken') or r['config']['iterations']:,}"


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
        rows.append(f"| {r['name']} | {r['change']} | "
                    f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
                    f"{r['n_eval_nets']} | {augment_cell(r.get('eval_augment', 'none'), r)} | {steps(r)} | "
                    f"{r['distill_seconds'] / 60:.1f} min ({where(r)}) | `{r['command']}` |")
    rows += ["", "| best set | source | plain PyTorch (test %) | distill eval (test %) | augment, epochs | command |",
             "|---|---|---|---|---|---|"]
    for r in (r for r in found if "trained_with" in r):
        d = r["distill_accuracy"]
        rows.append(f"| `{r['artifact']}` | {r['source']} | "
                    f"**{percent(r['accuracy_mean'], r['accuracy_std'], r['n_eval_nets'])}** | "
                    f"{percent(d['accuracy_mean'], d['accuracy_std'], d['n_eval_nets'])} | {r['eval_augment']}, "
                    f"{r['epochs']} | `{r['command']}` |")
    return "\n".join(rows)


def outside_file_note(result: dict) -> str:
    """For a sweep whose `--as-distilled` file was never committed: where the results file says how it was made."""
    path = result["command"].partition("--as-distilled ")[2].split(" ")[0]
    if not path or (HERE.parent / path).is_file():
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
            top = f"{b['top_probability']:.3f}" if "top_probability" in b else "—"
            chosen = (b["weight"], b["temperature"]) == (r["chosen"]["weight"], r["chosen"]["temperature"])
            mark = "**" if chosen else ""
            weight = "none (as distilled)" if not b["weight"] else f"{b['weight']:g}"
            temperature = f"{b['temperature']:g}" if b["weight"] else "—"
            rows.append(f"| {r['set']} | {mark}{weight}{mark} | {temperature} | "
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
            rows.append(f"| {r['set']} | {mark}{row['augment']}{mark}{own} | {row['epochs']} | "
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
        rows += [f"Set `{r['set']}` ({r['method']}, {r['ipc']} img/class, distilled with {r['distilled_with']}"
                 f"{labels}; "
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
        rows.append(f"| {r['dataset']} {goal} | {r['images']} images, {r['gradient_steps']} steps | "
                    f"{r['n_eval_victims']} | **{cells(r['held_out']).replace(' | ', '** | ', 1)} | {matched} | "
                    f"{cells(r['label_flip'])} | `{r['command']}` |")
    return "\n".join(rows)


def main() -> None:
    text = table() + \
        "\n\nPoisoning (issue 3): success = share of the attacked class's test images predicted as the target " \
        "(forget: predicted as anything else), mean ± std over held-out victims never seen while crafting; " \
        "\"other classes, change\" = accuracy change (points) on every other class.\n\n" + attack_table() + \
        "\n\nStandard methods and coresets (issue 4): ConvNet, fresh random networks, standard protocol (1000 epochs " \
        "with augmentation: DSA's, or DC's own on MNIST for `dc`; 300 without), beside the papers' numbers. " \
        "\"steps\" are the outer steps the distillation took; GPU runs were stopped by a time limit (see " \
        "\"Methods\"). †: measured when training augmentation drew one set of random parameters per batch, shared " \
        "by its images; the others draw per image, as the DSA and DC code do (see \"Known gaps\"). ‡ W at T: the " \
        "set's labels are (1 − W) × its own + W × the full-data ConvNet's predictions at temperature T, the blend " \
        "the validation split chose (\"Teacher labels\" below).\n\n" + \
        methods_table() + \
        "\n\nTowards the state of the art (issue 5): each experiment is one change to a preset or to a set it " \
        "made, its distillation time and machine in its row (30 minutes on the 2-core CPU for the first ones, " \
        "minutes of one GPU or hours of one CPU thread for later ones; a row its time limit ended repeats on any " \
        "machine with `--max-minutes 0 --iterations <its steps>`, plus `--replace` to let it replace the row); " \
        "then the best 1-per-class sets trained " \
        "without `distill` (examples/train_plain.py). What each row changed and what came of it: " \
        "docs/state-of-the-art.md.\n\n" + sota_table() + \
        "\n\nTeacher labels (issue 5): a committed set's labels blended with the full-data network's predictions, " \
        "mean ± std over fresh ConvNets trained with the set's own evaluation; the validation split chooses the " \
        "blend (bold), the test split is only reported; where a set has changed since its sweep, `--at COMMIT` " \
        "sweeps it as committed then.\n\n" + teacher_table() + \
        "\n\nEvaluation augmentation (issue 5): a committed set, labels as committed, trained with the standard " \
        "protocol under each augmentation (300 epochs without, 1000 with), mean ± std over fresh ConvNets; the " \
        "validation split chooses (bold), the test split is only reported.\n\n" + augment_table() + \
        "\n\nCross-architecture (test %, mean ± std over fresh networks of each kind):\n\n" + cross_arch_table()
    args = parse_args()
    if not (args.write or args.check):
        print(text)
        return
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"README.md lacks the markers {BEGIN} ... {END}")
    head, rest = readme.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    if args.check:
        if current != f"\n{text}\n":
            sys.exit("README.md's tables differ from benchmarks/results: run python benchmarks/table.py --write")
        print("README.md's tables match benchmarks/results")
        return
    atomic_write_text(README, f"{head}{BEGIN}\n{text}\n{END}{tail}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace the README's tables with these")
    action.add_argument("--check", action="store_true", help="exit 1 unless the README's tables are these")
    return parser.parse_args()


if __name__ == "__main__":
    main()
