"""``--calibrate``: temperature scaling (Guo et al. 2017) fitted on the validation split and folded into the
classification head, so the saved folder stays plain and ``pipeline(...)`` scores are the calibrated ones.

softmax(z / T) is what the calibrated model should give. The head's last linear layer computes z = W h + b, so
dividing W and b by T makes the model output z / T itself: no wrapper, no config key, nothing a loader must know.
Labels (the argmax) do not change, so accuracy and F1 do not either; only the scores and the ECE do. The
temperature is fitted on the validation split, so the validation ECE after calibration is optimistic: a test split,
when the run has one, is the honest figure (the card says which is which).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from . import metrics
from .errors import NLPTransferError
from .heads import find_head

logger = logging.getLogger(__name__)
FLAG = "--calibrate"


def last_linear(model: nn.Module) -> nn.Linear:
    """The linear layer that produces the logits: the last ``nn.Linear`` of the classification head (the active copy
    inside a PEFT modules_to_save wrapper, the one the model calls)."""
    _, head = find_head(model, flag=FLAG)
    wrapper = getattr(head, "modules_to_save", None)
    if wrapper is not None:  # PEFT's ModulesToSaveWrapper: the trained copy the model calls
        active = getattr(head, "active_adapter", None)
        active = active[0] if isinstance(active, (list, tuple)) else active  # a list in some peft versions
        head = wrapper[active if active in wrapper else next(iter(wrapper))]
    linear = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise NLPTransferError(f"{FLAG}: the head {type(head).__name__} has no linear layer: drop {FLAG}")
    return linear[-1]


@torch.no_grad()
def fold_temperature(model: nn.Module, temperature: float) -> None:
    """Divide the logit layer's weight and bias by ``temperature`` (the model then outputs logits / T)."""
    linear = last_linear(model)
    linear.weight.div_(temperature)
    if linear.bias is not None:
        linear.bias.div_(temperature)


def calibrate(trainer, validation, *, before_evaluate=None) -> dict:
    """Evaluate ``validation``, fit T on its logits, fold it into the head. Returns what metrics.json records:
    ``calibration_temperature`` and ``eval_nll_uncalibrated`` / ``eval_nll_calibrated`` (the calibrated ECE is the
    next evaluation's ``eval_ece``; `uncalibrated_ece` gives the ECE before, per split)."""
    scorer = trainer.compute_metrics
    if not hasattr(scorer, "last"):
        raise NLPTransferError(f"{FLAG} is not supported by this recipe's evaluation: drop {FLAG}")
    if before_evaluate is not None:
        before_evaluate("validation")
    before = trainer.evaluate(validation, metric_key_prefix="uncalibrated")
    logits, labels = scorer.last
    labels = np.asarray(labels).astype(int)
    temperature = metrics.fit_temperature(logits, labels)
    fold_temperature(trainer.model, temperature)
    out = {
        "calibration_temperature": temperature,
        "eval_nll_uncalibrated": metrics.negative_log_likelihood(logits, labels),
        "eval_nll_calibrated": metrics.negative_log_likelihood(logits, labels, temperature),
    }
    logger.info(
        "calibration: temperature %.3f fitted on the validation split (%d examples) and folded into the head; "
        "validation ECE %.4f -> %.4f, NLL %.4f -> %.4f", temperature, len(labels), before["uncalibrated_ece"],
        metrics.expected_calibration_error(metrics.softmax(logits / temperature), labels),
        out["eval_nll_uncalibrated"], out["eval_nll_calibrated"],
    )  # fmt: skip
    return out


def uncalibrated_ece(predictions: dict, temperature: float) -> dict:
    """``<prefix>_ece_uncalibrated`` for each scored split (eval/test -> (calibrated logits, references))."""
    return {
        f"{prefix}_ece_uncalibrated": metrics.expected_calibration_error(
            metrics.softmax(logits * temperature), np.asarray(refs).astype(int)
        )
        for prefix, (logits, refs) in predictions.items()
    }
