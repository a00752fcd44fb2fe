"""Run reports: ``metrics.json``, the training-curves PNG (loss and the eval metric per step), and the confusion
matrix and reliability diagram PNGs of classification runs."""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np

logger = logging.getLogger(__name__)


def write_metrics(path: str, metrics: dict) -> None:
    """Write metrics as sorted, indented JSON (nan/inf become null so every JSON reader accepts the file)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    with open(path, "w", encoding="utf-8") as f:
        json.dump({k: clean(v) for k, v in metrics.items()}, f, indent=2, sort_keys=True)
        f.write("\n")


def plot_training_curves(log_history: list[dict], path: str, *, main_metric: str | None = None) -> bool:
    """Plot training loss (and eval loss) per step, and the eval ``main_metric`` per step, into a PNG.

    Args:
        log_history (`list[dict]`): ``trainer.state.log_history``.
        path (`str`): where to write the PNG.
        main_metric (`str`, *optional*): metric name without the ``eval_`` prefix, e.g. ``accuracy``.

    Returns:
        `bool`: whether a plot was written (False when nothing was logged).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [h for h in log_history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return False
    key = f"eval_{main_metric}" if main_metric else None
    has_metric = key is not None and any(key in h for h in evals)
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(11 if has_metric else 6, 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if has_metric:
        ax = axes[0][1]
        pts = [(h["step"], h[key]) for h in evals if key in h]
        ax.plot(*zip(*pts), "o-", color="tab:green")
        ax.set_xlabel("step")
        ax.set_ylabel(main_metric)
        ax.set_title(f"Validation {main_metric}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: str, *, title: str) -> None:
    """The confusion matrix (rows: true label, columns: predicted) with its counts, into a PNG."""
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    high = m.max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > high / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(curves: dict[str, list[dict]], path: str, *, title: str) -> None:
    """Reliability diagram: accuracy against mean confidence per confidence bin (`metrics.calibration_bins`), one
    line per entry of ``curves`` (e.g. before / after calibration), with the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    for name, bins in curves.items():
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class score)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trials(trials: list[dict], key: str, path: str) -> None:
    """A search's objective per trial (pruned trials hollow) and the best so far, into a PNG."""
    plt = _pyplot()
    done = [t for t in trials if t.get(key) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for state, style in (("complete", "o"), ("pruned", "x")):
        pts = [(t["trial"], t[key]) for t in done if t["state"] == state]
        if pts:
            ax.plot(*zip(*pts), style, linestyle="none", label=f"{state} trial")
    maximize = not (key.endswith("loss") or key.endswith("mse"))
    best, line = None, []
    for t in sorted((t for t in done if t["state"] == "complete"), key=lambda t: t["trial"]):
        v = t[key]
        best = v if best is None or (v > best if maximize else v < best) else best
        line.append((t["trial"], best))
    if line:
        ax.step(*zip(*line), where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(key)
    ax.set_title("Hyperparameter search")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
