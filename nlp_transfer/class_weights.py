"""``--class_weights auto|none|<list>``: weighted cross-entropy for single-label classification, through the
Trainer's own ``compute_loss_func`` hook (no Trainer subclass), and the warning for an imbalanced training split.

The loss is ``sum_i w[y_i] * CE_i / N`` over the examples of the (accumulated) batch: the Trainer passes ``N`` as
``num_items_in_batch``, so gradient accumulation and several processes scale it as they do the model's own loss.
``auto`` weights (``n / (classes * n_class)``) average 1 over the training split, so the loss keeps its scale and
the default learning rates still fit. Trainers that compute their own loss (distillation, domain adaptation,
multi-task) refuse the option instead of silently ignoring it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

IMBALANCE_RATIO = 5.0  # largest / smallest class count at which an unweighted run is warned about


def resolve(spec, labels: np.ndarray, names: list[str]) -> list[float] | None:
    """The weight per label id for ``spec`` (`config.parse_class_weights`' output) and the training labels; None
    for unweighted. Warns about imbalance when ``spec`` is None (not asked either way)."""
    labels = np.asarray(labels, dtype=int)
    counts = np.bincount(labels[labels >= 0], minlength=len(names))  # -1: unlabelled rows (distill --unlabeled_file)
    if spec is None or spec == "none":
        present = counts[counts > 0]
        if spec is None and len(present) > 1 and present.max() >= IMBALANCE_RATIO * present.min():
            shares = ", ".join(f"{n} {100 * c / counts.sum():.0f}%" for n, c in zip(names, counts))
            logger.warning(
                "the training split is imbalanced (%s): consider --class_weights auto (or --class_weights none to "
                "keep the plain loss and silence this)", shares,
            )  # fmt: skip
        return None
    if spec == "auto":
        if (counts == 0).any():
            missing = [n for n, c in zip(names, counts) if c == 0]
            raise NLPTransferError(
                f"--class_weights auto: label(s) {', '.join(missing)} have no training example, so inverse frequency "
                "is undefined: give the weights as a list, or add examples"
            )
        return [float(w) for w in counts.sum() / (len(names) * counts)]
    if len(spec) != len(names):
        raise NLPTransferError(
            f"--class_weights gives {len(spec)} weight(s) for {len(names)} labels ({', '.join(names)}): give one per "
            "label, in that order"
        )
    return [float(w) for w in spec]


def weighted_cross_entropy(weights: list[float]):
    """A Trainer ``compute_loss_func``: ``sum w[y] * CE / num_items_in_batch`` (the batch size when not given)."""
    w = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        per_example = F.cross_entropy(logits.float(), labels.long(), weight=w.to(logits.device), reduction="none")
        n = num_items_in_batch if num_items_in_batch is not None else labels.numel()
        return per_example.sum() / n

    loss.weights = list(weights)
    return loss
