"""Offline metrics. Plain functions on numpy arrays (scikit-learn/scipy underneath, as the Hub's `evaluate`
modules for these metrics are themselves), so nothing is fetched from the Hub, ever.

single-label: accuracy, f1 (macro), precision (macro), recall (macro), mcc
multi-label:  f1_micro, f1_macro, subset_accuracy (threshold 0.5 on the sigmoid)
regression:   mse, pearson
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

# The metric each problem type reports as its headline (and uses for model selection when asked).
MAIN_METRIC = {
    "single_label_classification": "accuracy",
    "multi_label_classification": "f1_micro",
    "regression": "mse",
}


def classification_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Single-label metrics from predicted and true class ids."""
    p, r, f1, _ = precision_recall_fscore_support(references, predictions, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "f1": float(f1),
        "precision": float(p),
        "recall": float(r),
        "mcc": float(matthews_corrcoef(references, predictions)),
    }


def multilabel_metrics(probabilities: np.ndarray, references: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Multi-label metrics from per-label probabilities and multi-hot references."""
    pred = (probabilities >= threshold).astype(int)
    ref = references.astype(int)
    return {
        "f1_micro": float(f1_score(ref, pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(ref, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(ref, pred)),
    }


def regression_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Mean squared error and Pearson correlation (nan when either side is constant)."""
    predictions = predictions.reshape(-1).astype(float)
    references = references.reshape(-1).astype(float)
    mse = float(np.mean((predictions - references) ** 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = float(pearsonr(predictions, references)[0]) if len(predictions) > 1 else float("nan")
    return {"mse": mse, "pearson": pearson}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def compute_from_logits(logits: np.ndarray, labels: np.ndarray, problem_type: str) -> dict[str, float]:
    """Metrics for raw model outputs of a given problem type."""
    if isinstance(logits, tuple):
        logits = logits[0]
    if problem_type == "regression":
        return regression_metrics(logits, labels)
    if problem_type == "multi_label_classification":
        return multilabel_metrics(_sigmoid(logits), labels)
    return classification_metrics(np.argmax(logits, axis=-1), labels)


def make_compute_metrics(problem_type: str):
    """A ``compute_metrics`` function for `transformers.Trainer`."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        return compute_from_logits(eval_pred.predictions, eval_pred.label_ids, problem_type)

    return compute_metrics
