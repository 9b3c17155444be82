"""Pictures and summaries of a run: the image grid, the validation curve, and the JSON summary.

Everything is written atomically (a temporary file renamed into place), so an interrupted run never leaves half a
picture where a user's earlier one was.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distill.data import short_name  # noqa: E402
from distill.synset import SyntheticSet, _atomic_write, atomic_write_text  # noqa: E402


def _save_figure(fig, path: Path) -> Path:
    _atomic_write(Path(path), lambda name: fig.savefig(name, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def image_grid(synset: SyntheticSet, path: Path, class_names: list[str] | None = None, max_rows: int = 20) -> Path:
    """A grid of the synthetic images: a row per step (and per image of a class within a step), a column per class,
    the class names on top, the learned learning rate of each step at the left."""
    images = synset.unnormalised_images()
    labels = synset.hard_labels().cpu()
    steps = synset.step.cpu() if synset.step is not None else labels.new_zeros(len(labels))
    k = synset.num_classes
    names = class_names or synset.meta.get("class_names") or [str(c) for c in range(k)]
    if synset.meta.get("images"):  # no column per class: a column per image, its label distribution below it
        return _distribution_grid(synset, images, steps, names, path, max_rows)
    rows: list[tuple[int, list[int | None]]] = []  # (step, image index per class)
    for s in sorted(set(steps.tolist())):
        per_class = [((labels == c) & (steps == s)).nonzero().flatten().tolist() for c in range(k)]
        for r in range(max(len(p) for p in per_class)):
            rows.append((s, [p[r] if r < len(p) else None for p in per_class]))
    shown = rows[:max_rows]
    fig, axes = plt.subplots(len(shown), k, figsize=(1.1 * k, 1.1 * len(shown) + 0.3), squeeze=False)
    lrs = synset.lrs.detach().cpu().tolist() if synset.log_lrs is not None else None
    for r, (s, indices) in enumerate(shown):
        for c, index in enumerate(indices):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if index is not None:
                picture = images[index].permute(1, 2, 0).numpy()
                ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(names[c], fontsize=8)
            if c == 0 and lrs is not None:
                rate = lrs[s] if isinstance(lrs[s], float) else sum(lrs[s]) / len(lrs[s])  # per-layer: their mean
                ax.set_ylabel(f"step {s}\nlr {rate:.3g}", fontsize=7)
    dataset = short_name(str(synset.meta.get("dataset", "")))
    title = f"{synset.meta.get('method', '')} · {dataset} · {len(labels)} images"
    if len(rows) > len(shown):
        title += f" (first {len(shown)} of {len(rows)} rows)"
    fig.suptitle(title, fontsize=9)
    return _save_figure(fig, path)


def _distribution_grid(synset: SyntheticSet, images: torch.Tensor, steps: torch.Tensor, names: list[str], path: Path,
                       max_rows: int) -> Path:
    """The grid of a set whose size is free of the classes (`--images`): a row of pictures per step, and under each
    picture a bar chart of its label, a distribution over every class (the class names along its axis)."""
    probabilities = synset.target_probabilities().detach().cpu()
    k, per_step = synset.num_classes, int(synset.meta["images"])
    shown_steps = sorted(set(steps.tolist()))[: max(1, max_rows // 2)]
    fig, axes = plt.subplots(2 * len(shown_steps), per_step, figsize=(max(1.6 * per_step, 4), 2.6 * len(shown_steps)),
                             squeeze=False, gridspec_kw={"height_ratios": [1.0, 0.8] * len(shown_steps)})
    lrs = synset.lrs.detach().cpu().tolist() if synset.log_lrs is not None else None
    for r, s in enumerate(shown_steps):
        for column, index in enumerate((steps == s).nonzero().flatten().tolist()):
            picture_ax, bars_ax = axes[2 * r][column], axes[2 * r + 1][column]
            picture = images[index].permute(1, 2, 0).numpy()
            picture_ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            picture_ax.set_xticks([])
            picture_ax.set_yticks([])
            top = int(probabilities[index].argmax())
            picture_ax.set_title(f"{names[top]} {probabilities[index, top]:.0%}", fontsize=7)
            bars_ax.bar(range(k), probabilities[index].numpy(), color="tab:blue")
            bars_ax.set_ylim(0, 1)
            bars_ax.set_xticks(range(k))
            bars_ax.set_xticklabels([n[:6] for n in names], rotation=90, fontsize=5)
            bars_ax.tick_params(axis="y", labelsize=5)
            if column == 0 and lrs is not None:
                rate = lrs[s] if isinstance(lrs[s], float) else sum(lrs[s]) / len(lrs[s])
                picture_ax.set_ylabel(f"step {s}\nlr {rate:.3g}", fontsize=7)
    dataset = short_name(str(synset.meta.get("dataset", "")))
    fig.suptitle(f"{synset.meta.get('method', '')} · {dataset} · {len(images)} images, labels learned over {k} "
                 "classes", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def validation_curve(history: list[dict], path: Path, title: str = "") -> Path:
    """Validation accuracy (and the outer loss) against the outer step."""
    points = [(h["step"], h["val_acc"]) for h in history if "val_acc" in h]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if points:
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", markersize=3, label="validation")
    ax.set_xlabel("outer step")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]  # a results file keeps only validation
    if losses:
        loss_ax = ax.twinx()
        loss_ax.plot([p[0] for p in losses], [p[1] for p in losses], color="tab:gray", alpha=0.35, linewidth=0.6)
        loss_ax.set_ylabel("outer loss", color="tab:gray")
    ax.set_title(title, fontsize=9)
    return _save_figure(fig, path)


def write_json(data: dict, path: Path) -> Path:
    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=False) + "\n")
    return Path(path)


def confusion_pair(before: list[list[int]], after: list[list[int]], class_names: list[str], path: Path) -> Path:
    """Row-normalised confusion matrices (true class down, predicted across) before and after an attack."""
    import numpy as np  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, matrix, title in zip(axes, (before, after), ("before the poison", "after the poison")):
        m = np.asarray(matrix, dtype=float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, fontsize=6, rotation=90)
        ax.set_yticks(ticks, class_names, fontsize=6)
        for i in ticks:
            for j in ticks:
                if m[i, j] >= 0.05:
                    ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=5,
                            color="white" if m[i, j] > 0.5 else "black")
    return _save_figure(fig, path)
