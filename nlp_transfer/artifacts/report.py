"""Run reports: ``metrics.json`` and the training-curves PNG (loss and the eval metric per step)."""

from __future__ import annotations

import json
import logging
import math
import os

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
