"""Early stopping, class weights, calibration and the per-class reports, through the classify recipe on a tiny BERT
(and the pieces by hand): what each option changes is asserted, not only that it ran."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import one_error_line, sentiment_rows, write_rows

from nlp_transfer import class_weights, metrics
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes.classify import main

FAST = ["--per_device_train_batch_size", "8", "--max_seq_length", "16", "--logging_steps", "2"]


def files(tmp_path, train_rows, dev_rows):
    return (
        write_rows(str(tmp_path / "train.csv"), train_rows),
        write_rows(str(tmp_path / "dev.csv"), dev_rows),
    )


def classify(model, data, out, *extra):
    train, dev = data
    argv = ["--model_name_or_path", model, "--train_file", train, "--validation_file", dev, "--output_dir", str(out)]
    return main([*argv, *FAST, *extra])


# ------------------------------------------------------------------------------------------ metrics by hand
def test_ece_and_reliability_bins_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    refs = np.array([0, 1, 1, 1])
    # bins of width 1/15: 0.9 alone, 0.8 alone, 0.6 alone, 0.7 alone -> |acc - conf| = 0.1, 0.8, 0.4, 0.3
    assert metrics.expected_calibration_error(probs, refs) == pytest.approx((0.1 + 0.8 + 0.4 + 0.3) / 4)
    bins = metrics.calibration_bins(probs, refs, bins=2)  # (0, .5], (.5, 1]: every top score is > .5
    assert [(b["count"], b["accuracy"]) for b in bins] == [(4, 0.75)]
    assert bins[0]["confidence"] == pytest.approx(0.75)


def test_temperature_lowers_ece_on_an_overconfident_toy():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 3, 600)
    clean = np.eye(3)[refs] * 2 + rng.normal(0, 1.5, (600, 3))  # ~70 % accurate
    logits = clean * 6  # the same ranking, far too confident
    before = metrics.expected_calibration_error(metrics.softmax(logits), refs)
    t = metrics.fit_temperature(logits, refs)
    after = metrics.expected_calibration_error(metrics.softmax(logits / t), refs)
    assert t > 3 and after < before / 3
    assert metrics.negative_log_likelihood(logits, refs, t) < metrics.negative_log_likelihood(logits, refs)


def test_weighted_loss_matches_a_hand_computation():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    w = class_weights.resolve("auto", labels.numpy(), ["a", "b"])
    assert w == pytest.approx([3 / (2 * 1), 3 / (2 * 2)])  # n / (classes * n_class)
    got = class_weights.weighted_cross_entropy(w)({"logits": logits}, labels, num_items_in_batch=3)
    ce = -torch.log_softmax(logits, -1)[torch.arange(3), labels]
    want = (w[0] * ce[0] + w[1] * ce[1] + w[1] * ce[2]) / 3
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert got.item() != pytest.approx(ce.mean().item(), rel=1e-3)  # the weights changed the loss
    assert class_weights.resolve([1.0, 2.0], labels.numpy(), ["a", "b"]) == [1.0, 2.0]
    with pytest.raises(NLPTransferError, match="3 weight"):
        class_weights.resolve([1.0, 2.0, 3.0], labels.numpy(), ["a", "b"])
    with pytest.raises(NLPTransferError, match="no training example"):
        class_weights.resolve("auto", np.array([0, 0]), ["a", "b"])


def test_imbalance_warning(caplog):
    caplog.set_level("WARNING")
    assert class_weights.resolve(None, np.array([0] * 10 + [1]), ["a", "b"]) is None
    assert "imbalanced" in caplog.text and "--class_weights auto" in caplog.text
    caplog.clear()
    class_weights.resolve("none", np.array([0] * 10 + [1]), ["a", "b"])  # asked for: no warning
    assert "imbalanced" not in caplog.text


# ------------------------------------------------------------------------------------------ through the recipe
def test_class_weights_change_training(tiny_bert, tmp_path):
    rows = sentiment_rows(48)
    rows = [r for i, r in enumerate(rows) if r["label"] == "negative" or i % 8 == 1]  # 24 negative, 6 positive
    data = files(tmp_path, rows, sentiment_rows(16, seed=1))
    common = ["--num_train_epochs", "2", "--save_strategy", "no", "--learning_rate", "5e-3"]
    plain = classify(tiny_bert, data, tmp_path / "plain", *common, "--class_weights", "none")
    weighted = classify(tiny_bert, data, tmp_path / "weighted", *common, "--class_weights", "auto")
    assert weighted["class_weights"] == pytest.approx({"negative": 30 / 48, "positive": 30 / 12})
    assert plain["train_loss"] != pytest.approx(weighted["train_loss"], rel=1e-3)
    card = (tmp_path / "weighted" / "README.md").read_text()
    assert "- class_weights: negative 0.625, positive 2.500 (inverse frequency" in card
    run_config = (tmp_path / "weighted" / "run_config.yaml").read_text()
    assert "class_weights: auto" in run_config


def test_early_stopping_stops_on_a_plateau(tiny_bert, tmp_path):
    data = files(tmp_path, sentiment_rows(32), sentiment_rows(16, seed=1))
    out = tmp_path / "es"
    # lr 0: the metric cannot improve after the first evaluation, so patience 1 stops at the second
    m = classify(tiny_bert, data, out, "--num_train_epochs", "6", "--learning_rate", "1e-12",
                 "--early_stopping_patience", "1", "--eval_strategy", "epoch")  # fmt: skip
    assert m["train_early_stopped"] is True
    assert m["train_stopped_at_step"] == 2 * 4 and m["train_planned_steps"] == 6 * 4  # 32 rows / 8 per batch
    assert m["train_best_step"] == 4
    card = (out / "README.md").read_text()
    assert "- early_stopping: stopped at step 8 of 24: no improvement of eval_accuracy" in card
    assert "best step 4" in card
    assert m["eval_accuracy"] == pytest.approx(m["train_best_metric"])  # the best checkpoint is the model kept


def test_early_stopping_and_calibration_need_what_they_use(tiny_bert, tmp_path):
    data = files(tmp_path, sentiment_rows(16), sentiment_rows(8, seed=1))
    with pytest.raises(NLPTransferError, match="needs evaluations during training"):
        classify(tiny_bert, data, tmp_path / "a", "--early_stopping_patience", "1", "--eval_strategy", "no")
    with pytest.raises(NLPTransferError, match="cached features"):
        classify(tiny_bert, data, tmp_path / "b", "--early_stopping_patience", "1", "--strategy", "frozen")
    with pytest.raises(NLPTransferError, match="--class_weights"):
        classify(tiny_bert, data, tmp_path / "c", "--class_weights", "1,x")
    train = data[0]
    with pytest.raises(NLPTransferError, match="validation split"):
        main(["--model_name_or_path", tiny_bert, "--train_file", train, "--validation_split", "0",
              "--output_dir", str(tmp_path / "d"), "--calibrate", *FAST])  # fmt: skip
    assert not (tmp_path / "d" / "metrics.json").exists()


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_calibration_folds_into_the_head_and_reports(tiny_bert, tmp_path, strategy):
    from transformers import pipeline

    data = files(tmp_path, sentiment_rows(64), sentiment_rows(32, seed=1))
    # a high learning rate and many epochs: a confident (over-confident) model; the same run twice, with and without
    common = ["--num_train_epochs", "10", "--learning_rate", "2e-2", "--save_strategy", "no", "--strategy", strategy]
    plain = classify(tiny_bert, data, tmp_path / "plain", *common)
    out = tmp_path / "cal"
    m = classify(tiny_bert, data, out, *common, "--calibrate")
    t = m["calibration_temperature"]
    assert t > 0 and t != pytest.approx(1.0)
    # the final evaluation scores the folded model: its loss is the calibrated NLL, lower than the uncalibrated one
    assert m["eval_loss"] == pytest.approx(m["eval_nll_calibrated"], rel=1e-4)
    assert m["eval_nll_calibrated"] < m["eval_nll_uncalibrated"]
    assert plain["eval_loss"] == pytest.approx(m["eval_nll_uncalibrated"], rel=1e-4)
    assert m["eval_ece"] <= m["eval_ece_uncalibrated"] + 1e-9
    assert m["eval_accuracy"] == plain["eval_accuracy"]  # the argmax does not change
    # the saved folders: the calibrated one's logits are the plain run's divided by T, through plain pipeline(...)
    texts = ["good great movie", "awful bad plot", "the plot was dull"]

    def raw(folder):
        p = pipeline("text-classification", model=str(folder), device="cpu")
        rows = p(texts, top_k=None, function_to_apply="none")
        return np.array([[{r["label"]: r["score"] for r in row}[k] for k in ("negative", "positive")] for row in rows])

    np.testing.assert_allclose(raw(out), raw(tmp_path / "plain") / t, rtol=1e-4, atol=1e-5)
    report = json.loads((out / "eval_report.json").read_text())["validation"]
    assert report["ece"] == pytest.approx(m["eval_ece"], abs=1e-6)
    assert report["ece_uncalibrated"] == pytest.approx(m["eval_ece_uncalibrated"], abs=1e-6)
    assert (out / "reliability_diagram.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert "- calibration: temperature" in card and "after temperature scaling" in card


def test_per_class_report_and_confusion_matrix_match_predictions(tiny_bert, tmp_path):
    from transformers import pipeline

    dev = sentiment_rows(20, seed=1)
    data = files(tmp_path, sentiment_rows(32), dev)
    out = tmp_path / "rep"
    m = classify(tiny_bert, data, out, "--num_train_epochs", "2", "--learning_rate", "5e-3", "--save_strategy", "no")
    report = json.loads((out / "eval_report.json").read_text())["validation"]
    p = pipeline("text-classification", model=str(out), device="cpu")
    predicted = [r["label"] for r in p([r["text"] for r in dev], truncation=True)]
    names = report["labels"]
    want = np.zeros((2, 2), dtype=int)
    for row, pred in zip(dev, predicted):
        want[names.index(row["label"]), names.index(pred)] += 1
    assert report["confusion_matrix"] == want.tolist()
    assert sum(v["support"] for v in report["per_class"].values()) == 20
    correct = np.trace(want) / 20
    assert m["eval_accuracy"] == pytest.approx(correct)
    assert 0 <= m["eval_ece"] <= 1
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert "## Evaluation by class" in card and "![confusion matrix](confusion_matrix.png)" in card


def test_report_to_tensorboard_offline(tiny_bert, tmp_path):
    pytest.importorskip("tensorboardX")  # in the [test] extra; transformers' TensorBoardCallback falls back to it
    data = files(tmp_path, sentiment_rows(16), sentiment_rows(8, seed=1))
    out = tmp_path / "tb"
    m = classify(tiny_bert, data, out, "--num_train_epochs", "2", "--save_strategy", "no", "--report_to",
                 "tensorboard")  # fmt: skip
    # transformers' default log dir: <output_dir>/runs/<time>_<host>; it survives the folder's publish
    events = [os.path.join(d, f) for d, _, fs in os.walk(out / "runs") for f in fs if f.startswith("events.out")]
    # one file: the final evaluation goes into the training's (nlp_transfer keeps transformers' writer open)
    assert len(events) == 1
    scalars = read_scalars(events[0])
    assert "train/loss" in scalars and len(scalars["eval/accuracy"]) == 3  # 2 epochs + the final evaluation
    assert scalars["eval/accuracy"][-1] == pytest.approx(m["eval_accuracy"])


def read_scalars(path: str) -> dict[str, list[float]]:
    """Scalars of a TensorBoard event file (TFRecord framing: length, crc, Event proto, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out = {}
    with open(path, "rb") as f:
        while header := f.read(12):
            (n,) = struct.unpack("<Q", header[:8])
            event = Event.FromString(f.read(n))
            f.read(4)
            for v in event.summary.value:
                out.setdefault(v.tag, []).append(v.simple_value)
    return out


def test_options_refused_where_they_cannot_apply(tiny_bert, tmp_path):
    rows = [{"text": r["text"], "label": i % 3 + 0.5} for i, r in enumerate(sentiment_rows(16))]
    data = (write_rows(str(tmp_path / "r.jsonl"), rows), write_rows(str(tmp_path / "rd.jsonl"), rows[:8]))
    r = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.classify", "--model_name_or_path", tiny_bert, "--train_file",
         data[0], "--validation_file", data[1], "--output_dir", str(tmp_path / "reg"), "--calibrate", *FAST],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    one_error_line(r, "--calibrate applies to single-label classification")
    assert not (tmp_path / "reg" / "metrics.json").exists()


def test_search_picks_the_best_trial_by_validation_and_retrains_it(tiny_bert, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from nlp_transfer import search

    # a space where one setting clearly wins: lr 1e-12 learns nothing, 5e-3 learns the words
    monkeypatch.setitem(search.SPACES, "full", {"learning_rate": ("choice", [1e-12, 5e-3]),
                                                "num_train_epochs": ("choice", [3]),
                                                "per_device_train_batch_size": ("choice", [4, 16])})  # fmt: skip
    data = files(tmp_path, sentiment_rows(32), sentiment_rows(16, seed=1))
    out = tmp_path / "hpo"
    m = classify(tiny_bert, data, out, "--hpo_trials", "3", "--save_strategy", "no", "--eval_strategy", "epoch")
    rows = (out / "hpo_trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,eval_accuracy") and len(rows) == 4
    trials = [dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:]]
    done = [t for t in trials if t["state"] == "complete"]
    for t in done:  # each trial trained at its own batch size: 32 rows / batch per epoch, 3 epochs
        assert int(t["steps"]) == 3 * 32 // int(t["per_device_train_batch_size"])
    best = max(done, key=lambda t: float(t["eval_accuracy"]))
    assert m["hpo_best_trial"] == int(best["trial"]) and float(best["learning_rate"]) == pytest.approx(5e-3)
    assert m["hpo_best_objective"] == pytest.approx(float(best["eval_accuracy"]))
    # the folder is the best setting retrained: its batch size and steps, its validation accuracy, and the card says so
    assert m["eval_accuracy"] == pytest.approx(float(best["eval_accuracy"]))
    assert f"- batch_size: {best['per_device_train_batch_size']}" in (out / "README.md").read_text()
    cfg = (out / "run_config.yaml").read_text()
    assert "learning_rate: 0.005" in cfg
    card = (out / "README.md").read_text()
    assert "## Hyperparameter search" in card and "![trials](hpo_trials.png)" in card
    assert "- learning_rate: 0.005" in card
    assert (out / "hpo_trials.png").stat().st_size > 1000
    assert not [d for d in os.listdir(out) if d.startswith("run-")]  # trials leave nothing behind


def _trials(folder):
    import csv

    with open(folder / "hpo_trials.csv", newline="") as f:
        return [t for t in csv.DictReader(f) if t["state"] == "complete"]


def test_search_rebuilds_the_lora_adapter_per_trial(tiny_bert, tmp_path, monkeypatch):
    """LoRA r/alpha are searched: each trial trains an adapter of its own r (trainable parameters), and the folder's
    adapter is the best trial's shape, retrained to the same validation accuracy."""
    pytest.importorskip("optuna")
    from nlp_transfer import search

    space = {"learning_rate": ("choice", [5e-2]), "num_train_epochs": ("choice", [6]),
             "lora_r": ("choice", [2, 16]), "lora_alpha": ("choice", [4, 32])}  # fmt: skip
    monkeypatch.setitem(search.SPACES, "lora", space)
    data = files(tmp_path, sentiment_rows(32), sentiment_rows(16, seed=1))
    out = tmp_path / "hpo"
    m = classify(tiny_bert, data, out, "--strategy", "lora", "--hpo_trials", "4", "--save_strategy", "no",
                 "--eval_strategy", "epoch", "--seed", "3")  # fmt: skip
    trials = _trials(out)
    by_r = {int(t["lora_r"]): int(t["trainable_params"]) for t in trials}
    assert len(by_r) == 2, "both adapter sizes were tried"
    # every trial starts from the same weights: the same setting scores the same
    scores = {(t["lora_r"], t["lora_alpha"]): set() for t in trials}
    for t in trials:
        scores[t["lora_r"], t["lora_alpha"]].add(t["eval_accuracy"])
    assert all(len(v) == 1 for v in scores.values()) and len({min(v) for v in scores.values()}) > 1
    # tiny BERT: 2 layers x (query, value) LoRA pairs of hidden 32 -> r * (32 + 32) per pair, plus the same head
    assert by_r[16] - by_r[2] == 2 * 2 * (16 - 2) * (32 + 32)
    best = next(t for t in trials if int(t["trial"]) == m["hpo_best_trial"])
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (int(best["lora_r"]), int(best["lora_alpha"]))
    assert m["trainable_params"] == int(best["trainable_params"])
    assert m["eval_accuracy"] == pytest.approx(float(best["eval_accuracy"]))
    cfg = (out / "run_config.yaml").read_text()
    assert f"lora_r: {best['lora_r']}" in cfg and f"lora_alpha: {best['lora_alpha']}" in cfg
    card = (out / "README.md").read_text()
    assert f"LoRA: r={best['lora_r']}, alpha={best['lora_alpha']}" in card and "lora_r in [2, 16]" in card


def test_search_refusals(tiny_bert, tmp_path):
    data = files(tmp_path, sentiment_rows(16), sentiment_rows(8, seed=1))
    with pytest.raises(NLPTransferError, match="--hpo_trials must be at least 1"):
        classify(tiny_bert, data, tmp_path / "a", "--hpo_trials", "0")
    with pytest.raises(NLPTransferError, match="cached features"):
        classify(tiny_bert, data, tmp_path / "b", "--hpo_trials", "2", "--strategy", "frozen")
