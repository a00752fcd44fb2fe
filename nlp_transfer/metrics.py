"""Offline metrics. Plain functions on numpy arrays (scikit-learn/scipy underneath, as the Hub's `evaluate`
modules for these metrics are themselves), so nothing is fetched from the Hub, ever.

single-label: accuracy, f1 (macro), precision (macro), recall (macro), mcc, ece (expected calibration error of the
              softmax confidence, 15 equal-width bins)
multi-label:  f1_micro, f1_macro, subset_accuracy (threshold 0.5 on the sigmoid)
regression:   mse, pearson
extractive QA: SQuAD exact match and F1 (v1.1 / v2.0; HasAns_ / NoAns_ splits for v2), written here from the
               official evaluation scripts' definitions and checked against hand-worked examples (tests/unit)
"""

from __future__ import annotations

import logging
import re
import string
import warnings
from collections import Counter

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

logger = logging.getLogger(__name__)

# The metric each problem type reports as its headline (and uses for model selection when asked).
MAIN_METRIC = {
    "single_label_classification": "accuracy",
    "multi_label_classification": "f1_micro",
    "regression": "mse",
}


def classification_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Single-label metrics from predicted and true class ids. A model that predicts one class for every example
    of a split holding several (a collapse, common in few-shot runs) is warned about: its accuracy is then only the
    majority share."""
    predicted, present = np.unique(predictions), np.unique(references)
    if len(predicted) == 1 and len(present) > 1:
        logger.warning(
            "the model predicts one class (id %d) for all %d evaluated examples, which hold %d classes: a collapse. "
            "With few labels, try --pooling mean --contrastive_iterations 20 --strategy frozen --head_solver lbfgs, "
            "more steps, or another --seed",
            int(predicted[0]), len(references), len(present),
        )  # fmt: skip
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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


ECE_BINS = 15


def calibration_bins(probabilities: np.ndarray, references: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """The reliability diagram's data: the top-class confidence of each example put into ``bins`` equal-width bins
    of (0, 1]; per non-empty bin its range, count, mean confidence and accuracy."""
    conf = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == references
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)  # (lo, hi]; 0 goes to the first
    out = []
    for b in range(bins):
        keep = which == b
        if keep.any():
            out.append({
                "low": float(edges[b]), "high": float(edges[b + 1]), "count": int(keep.sum()),
                "confidence": float(conf[keep].mean()), "accuracy": float(correct[keep].mean()),
            })  # fmt: skip
    return out


def expected_calibration_error(probabilities: np.ndarray, references: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): the count-weighted mean over confidence bins of |accuracy - mean confidence|."""
    n = len(references)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in calibration_bins(
        probabilities, references, bins)))  # fmt: skip


def negative_log_likelihood(logits: np.ndarray, references: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits / temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(references)), references], 1e-12, None))))


def fit_temperature(logits: np.ndarray, references: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the negative log-likelihood of softmax(logits/T),
    searched on log T in [1e-2, 1e2] (bounded scalar minimisation; the NLL is convex in 1/T)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, references, float(np.exp(log_t))),
        bounds=(np.log(1e-2), np.log(1e2)), method="bounded", options={"xatol": 1e-5},
    )  # fmt: skip
    return float(np.exp(res.x))


def per_class_report(predictions: np.ndarray, references: np.ndarray, names: list[str]) -> dict:
    """Per class: precision, recall, F1 and support; and the confusion matrix (rows: true class, columns: predicted,
    in ``names`` order)."""
    from sklearn.metrics import confusion_matrix

    ids = list(range(len(names)))
    p, r, f1, support = precision_recall_fscore_support(
        references, predictions, labels=ids, average=None, zero_division=0
    )
    return {
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(references, predictions, labels=ids).tolist(),
        "labels": list(names),
    }


def compute_from_logits(logits: np.ndarray, labels: np.ndarray, problem_type: str) -> dict[str, float]:
    """Metrics for raw model outputs of a given problem type."""
    if isinstance(logits, tuple):
        logits = logits[0]
    if problem_type == "regression":
        return regression_metrics(logits, labels)
    if problem_type == "multi_label_classification":
        return multilabel_metrics(_sigmoid(logits), labels)
    labels = np.asarray(labels)
    out = classification_metrics(np.argmax(logits, axis=-1), labels)
    out["ece"] = expected_calibration_error(softmax(logits), labels)
    return out


class ClassificationMetrics:
    """``compute_metrics`` for `transformers.Trainer`. Keeps what it scored last (``last``: the logits and
    references), so a run can write per-class reports and fit a temperature without another evaluation pass."""

    def __init__(self, problem_type: str):
        self.problem_type = problem_type
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        self.last = (np.asarray(logits), np.asarray(eval_pred.label_ids))
        return compute_from_logits(logits, eval_pred.label_ids, self.problem_type)


def make_compute_metrics(problem_type: str) -> ClassificationMetrics:
    """A ``compute_metrics`` function for `transformers.Trainer` (see `ClassificationMetrics`)."""
    return ClassificationMetrics(problem_type)


# ------------------------------------------------------------------------------------------ SQuAD EM / F1
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD answer normalisation: lower-case, drop ASCII punctuation, drop the articles a/an/the,
    collapse whitespace (in that order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised strings (bag of words). When either side normalises to nothing, 1.0 if
    both do, else 0.0 (SQuAD v2.0's rule; v1.1 never has empty gold answers)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(
    predictions: dict[str, str], references: dict[str, list[str]], *, version_2_with_negative: bool = False
) -> dict[str, float]:
    """SQuAD exact match and F1, in percent (0-100) as the official scripts report them.

    Each question scores the best match over its gold answers. Gold answers that normalise to nothing are ignored;
    a question left with none is unanswerable and its only gold answer is "" (SQuAD v2.0).

    Args:
        predictions (`dict[str, str]`): question id -> predicted answer ("" = no answer).
        references (`dict[str, list[str]]`): question id -> gold answer texts (empty for unanswerable).
        version_2_with_negative (`bool`, defaults to `False`): also report ``HasAns_*`` (answerable questions) and
            ``NoAns_*`` (unanswerable ones) with their counts.

    Returns:
        `dict` with ``exact_match``, ``f1`` and ``total`` (+ the v2 splits).
    """
    missing = [k for k in references if k not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no prediction (first: {missing[0]!r})")
    em, f1, has_answer = {}, {}, {}
    for qid, golds in references.items():
        golds = [g for g in golds if normalize_answer(g)] or [""]
        pred = predictions[qid]
        em[qid] = max(squad_exact_match(pred, g) for g in golds)
        f1[qid] = max(squad_f1(pred, g) for g in golds)
        has_answer[qid] = golds != [""]

    def mean(values: list[float]) -> float:
        return 100.0 * sum(values) / len(values) if values else 0.0

    out = {"exact_match": mean(list(em.values())), "f1": mean(list(f1.values())), "total": len(references)}
    if version_2_with_negative:
        for name, keep in (("HasAns", True), ("NoAns", False)):
            ids = [q for q in references if has_answer[q] == keep]
            out[f"{name}_exact_match"] = mean([em[q] for q in ids])
            out[f"{name}_f1"] = mean([f1[q] for q in ids])
            out[f"{name}_total"] = len(ids)
    return out


QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")
ANSWER_LENGTHS = ((1, 1, "1 word"), (2, 2, "2 words"), (3, 3, "3 words"), (4, 5, "4-5 words"), (6, 10**9, "6+ words"))


def question_type(question: str) -> str:
    """The question's first wh-word (what/which/who/when/where/why/how; whom/whose count as who), else other."""
    words = re.findall(r"[a-z]+", question.lower())
    found = next((w for w in words if w in QUESTION_WORDS), None)
    return {"whom": "who", "whose": "who"}.get(found, found or "other")


def squad_breakdown(
    predictions: dict[str, str], references: dict[str, list[str]], questions: dict[str, str]
) -> dict[str, dict[str, dict]]:
    """SQuAD EM/F1 (percent) and counts by question type (`question_type`) and by the length in words of the
    shortest gold answer (``no answer`` for unanswerable v2 questions)."""
    groups: dict[str, dict[str, list[str]]] = {"by_question_type": {}, "by_answer_length": {}}
    for qid, golds in references.items():
        kept = [g for g in golds if normalize_answer(g)]
        groups["by_question_type"].setdefault(question_type(questions.get(qid, "")), []).append(qid)
        n = min((len(normalize_answer(g).split()) for g in kept), default=0)
        length = next((name for lo, hi, name in ANSWER_LENGTHS if lo <= n <= hi), "no answer")
        groups["by_answer_length"].setdefault(length, []).append(qid)
    out = {}
    for kind, by in groups.items():
        out[kind] = {}
        for name, ids in sorted(by.items(), key=lambda kv: -len(kv[1])):
            m = squad_metrics({q: predictions[q] for q in ids}, {q: references[q] for q in ids})
            out[kind][name] = {"exact_match": m["exact_match"], "f1": m["f1"], "count": len(ids)}
    return out
