"""Few-shot contrastive body training (``--contrastive_iterations``, SetFit's method inside classify/sentiment):
the pairs, the loss, a run that changes the body and fits the head on it, and the refusals."""

import logging

import pytest
import torch
from helpers import sentiment_rows, write_rows
from safetensors.torch import load_file

from nlp_transfer import contrastive
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.recipes import classify, sentiment

FAST = ["--max_seq_length", "16", "--per_device_train_batch_size", "8", "--save_strategy", "no",
        "--eval_strategy", "no", "--logging_steps", "1"]  # fmt: skip


def test_pairs_give_every_row_one_same_and_one_other_label_partner_per_round():
    labels = [0, 0, 0, 1, 1, 2]
    pairs = contrastive.make_pairs(labels, iterations=3, seed=0)
    # per round: 6 negatives, and positives for the 5 rows whose label has a second example
    assert len(pairs) == 3 * (6 + 5)
    for i, j, target in pairs:
        assert i != j and (labels[i] == labels[j]) == (target == 1.0)
    assert contrastive.make_pairs(labels, 3, seed=0) == pairs  # seeded
    assert contrastive.make_pairs(labels, 3, seed=1) != pairs


def test_pair_refusals_and_warning(caplog):
    with pytest.raises(NLPTransferError, match="at least two labels"):
        contrastive.make_pairs([1, 1, 1], 2, 0)
    with pytest.raises(NLPTransferError, match="every label has one"):
        contrastive.make_pairs([0, 1, 2], 2, 0)
    with caplog.at_level(logging.WARNING):
        contrastive.make_pairs([0, 0, 1], 2, 0)
    assert "have one example each" in caplog.text


def test_cosine_loss():
    a = torch.randn(4, 8)
    assert contrastive.cosine_loss(a, a, torch.ones(4)).item() == pytest.approx(0.0, abs=1e-6)
    assert contrastive.cosine_loss(a, -a, torch.zeros(4)).item() == pytest.approx(1.0, abs=1e-6)


def test_contrastive_run_changes_the_body_and_fits_the_head(tiny_bert, sentiment_files, tmp_path):
    train, dev = sentiment_files
    out = tmp_path / "out"
    metrics = classify.main(
        ["--model_name_or_path", tiny_bert, "--train_file", train, "--validation_file", dev, "--output_dir", str(out),
         "--pooling", "mean", "--strategy", "frozen", "--head_solver", "lbfgs", "--contrastive_iterations", "2",
         "--contrastive_learning_rate", "1e-3", *FAST]
    )  # fmt: skip
    assert metrics["contrastive_pairs"] == 2 * 2 * 48 and metrics["contrastive_steps"] == 24
    assert metrics["contrastive_loss_last"] < metrics["contrastive_loss_first"]
    saved, base = load_file(out / "model.safetensors"), load_file(tiny_bert + "/model.safetensors")
    moved = [k for k, v in base.items() if f"backbone.{k}" in saved and not torch.equal(saved[f"backbone.{k}"], v)]
    assert moved, "the contrastive step left the body as it was"
    assert metrics["train_lbfgs_evaluations"] > 1 and metrics["train_loss"] < 0.69  # the head fitted the embeddings
    assert metrics["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4


def test_contrastive_in_sentiment(tiny_bert, sentiment_files, tmp_path):
    train, dev = sentiment_files
    metrics = sentiment.main(
        ["--model_name_or_path", tiny_bert, "--train_file", train, "--validation_file", dev, "--output_dir",
         str(tmp_path / "out"), "--pooling", "mean", "--contrastive_iterations", "1", "--max_steps", "3", *FAST]
    )  # fmt: skip
    assert metrics["contrastive_steps"] == 12 and metrics["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4


def test_contrastive_refusals(tiny_bert, tmp_path):
    one_each = write_rows(str(tmp_path / "one.csv"), sentiment_rows(2, seed=3))
    base = ["--model_name_or_path", tiny_bert, "--train_file", one_each, "--validation_file", one_each, *FAST]
    with pytest.raises(NLPTransferError, match="add --pooling mean"):
        classify.main([*base, "--output_dir", str(tmp_path / "a"), "--contrastive_iterations", "2"])
    with pytest.raises(NLPTransferError, match="LoRA only adapters"):
        classify.main([*base, "--output_dir", str(tmp_path / "b"), "--contrastive_iterations", "2", "--pooling",
                       "mean", "--strategy", "lora"])  # fmt: skip
    with pytest.raises(NLPTransferError, match="every label has one"):
        classify.main([*base, "--output_dir", str(tmp_path / "c"), "--contrastive_iterations", "2", "--pooling",
                       "mean"])  # fmt: skip
