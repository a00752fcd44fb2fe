import math

import numpy as np
import pytest

from nlp_transfer.metrics import classification_metrics, compute_from_logits, multilabel_metrics, regression_metrics


def test_single_label_against_hand_computed_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    m = classification_metrics(p, y)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class precision: c0 1/2, c1 2/3, c2 1/1; recall: c0 1/2, c1 2/2, c2 1/2
    prec = (1 / 2 + 2 / 3 + 1) / 3
    rec = (1 / 2 + 1 + 1 / 2) / 3
    f1s = [2 * a * b / (a + b) for a, b in [(1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2)]]
    assert m["precision"] == pytest.approx(prec)
    assert m["recall"] == pytest.approx(rec)
    assert m["f1"] == pytest.approx(sum(f1s) / 3)


def test_mcc_binary_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    tp, tn, fp, fn = 3, 3, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert classification_metrics(p, y)["mcc"] == pytest.approx(mcc)


def test_multilabel_micro_macro():
    ref = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    prob = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.6], [0.7, 0.6, 0.1]])
    # predictions: [1,0,0], [0,1,1], [1,1,0]: tp=4, fp=1, fn=1; only the last row is exactly right
    m = multilabel_metrics(prob, ref)
    assert m["f1_micro"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    # per label f1: l0 tp2 -> 1.0; l1 tp2 -> 1.0; l2 tp0 fp1 fn1 -> 0
    assert m["f1_macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)


def test_regression():
    pred = np.array([[1.0], [2.0], [3.0], [5.0]])
    ref = np.array([1.0, 2.0, 4.0, 4.0])
    m = regression_metrics(pred, ref)
    assert m["mse"] == pytest.approx((0 + 0 + 1 + 1) / 4)
    assert m["pearson"] == pytest.approx(np.corrcoef(pred.ravel(), ref)[0, 1])


def test_compute_from_logits_dispatch():
    logits = np.array([[2.0, -1.0], [-0.5, 0.5]])
    assert compute_from_logits(logits, np.array([0, 1]), "single_label_classification")["accuracy"] == 1.0
    ml = compute_from_logits(logits, np.array([[1, 0], [0, 1]]), "multi_label_classification")
    assert ml["f1_micro"] == 1.0


def test_a_one_class_collapse_is_warned_about(caplog):
    import logging

    import numpy as np

    from nlp_transfer.metrics import classification_metrics

    with caplog.at_level(logging.WARNING):
        classification_metrics(np.array([1, 1, 1, 1]), np.array([0, 1, 0, 1]))
    assert "predicts one class (id 1) for all 4 evaluated examples, which hold 2 classes" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        classification_metrics(np.array([1, 0, 1, 1]), np.array([0, 1, 0, 1]))
        classification_metrics(np.array([1, 1]), np.array([1, 1]))  # a one-class split: nothing to warn about
    assert "collapse" not in caplog.text


def test_squad_breakdown_by_question_type_and_answer_length():
    from nlp_transfer.metrics import question_type, squad_breakdown

    assert question_type("In which year did it open?") == "which"
    assert question_type("Whose house was it?") == "who"
    assert question_type("Name the river.") == "other"
    refs = {"a": ["Paris"], "b": ["the big red house"], "c": ["1990"], "d": [""]}
    questions = {"a": "What is the capital?", "b": "What did she see?", "c": "When was it?", "d": "Who won?"}
    preds = {"a": "Paris", "b": "red house", "c": "1991", "d": ""}
    out = squad_breakdown(preds, refs, questions)
    what = out["by_question_type"]["what"]
    assert what["count"] == 2 and what["exact_match"] == 50.0  # a right, b partly
    assert what["f1"] == pytest.approx((100 + 100 * 2 * (2 / 2) * (2 / 3) / (1 + 2 / 3)) / 2)
    lengths = out["by_answer_length"]
    assert lengths["1 word"]["count"] == 2 and lengths["1 word"]["exact_match"] == 50.0  # Paris right, 1990 wrong
    assert lengths["3 words"]["count"] == 1  # "the big red house" normalises to "big red house"
    assert lengths["no answer"] == {"exact_match": 100.0, "f1": 100.0, "count": 1}
