"""End-to-end runs of the sentiment recipe on a tiny BERT: label forms, long-text strategies, round trips, errors."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from helpers import NEG, NEUTRAL, POS, sentiment_rows, write_rows
from safetensors.torch import load_file

from nlp_transfer import sentiment
from nlp_transfer.recipes.sentiment import main

FAST = [
    "--num_train_epochs",
    "8",
    "--per_device_train_batch_size",
    "8",
    "--learning_rate",
    "5e-3",
    "--logging_steps",
    "2",
    "--save_strategy",
    "no",
]


def star_rows(n, seed):
    """1-5 star reviews whose words give the rating away: 1-2 negative words, 4-5 positive, 3 neutral only."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        stars = i % 5 + 1
        pool = NEG if stars <= 2 else POS if stars >= 4 else NEUTRAL
        words = [rng.choice(pool) for _ in range(2)] + rng.sample(NEUTRAL, 2)
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "stars": stars})
    return rows


def long_rows(n, seed, where="end"):
    """Reviews of 39 tokens whose sentiment words are at the very end (beyond a 16-token head), at the start, or
    spread out (one in every 6 tokens, so every window of a few tokens sees one)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        filler = [rng.choice(NEUTRAL) for _ in range(36)]
        clue = [rng.choice(POS if y else NEG) for _ in range(3)]
        if where == "spread":
            words = [w for k in range(6) for w in filler[6 * k : 6 * k + 5] + [rng.choice(POS if y else NEG)]]
            words += clue
        else:
            words = filler + clue if where == "end" else clue + filler
        rows.append({"text": " ".join(words), "label": y})
    return rows


def run(model, train, dev, out, *extra):
    args = ["--model_name_or_path", model, "--train_file", train, "--output_dir", str(out), *FAST, *extra]
    if dev:
        args += ["--validation_file", dev]
    return main(args)


def test_star_ratings_to_two_classes(tiny_bert, tmp_path, caplog):
    from transformers import pipeline

    train = write_rows(str(tmp_path / "train.csv"), star_rows(60, 1))
    dev = write_rows(str(tmp_path / "dev.csv"), star_rows(20, 2))
    out = tmp_path / "stars"
    with caplog.at_level("WARNING", logger="nlp_transfer"):
        metrics = run(
            tiny_bert,
            train,
            dev,
            out,
            "--text_column",
            "review",
            "--label_column",
            "stars",
            "--star_classes",
            "2",
            "--max_seq_length",
            "16",
        )
    assert metrics["label_scheme"] == "stars->2"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    assert cfg["long_text"] == "head_tail"
    assert metrics["eval_accuracy"] >= 0.75
    # 3-star rows were dropped from both splits (every fifth row), and counted in a warning
    assert "train: dropped 12 row(s)" in caplog.text and "validation: dropped 4 row(s)" in caplog.text
    clf = pipeline("sentiment-analysis", model=str(out), device="cpu")
    assert clf("awful bad the plot", truncation=True)[0]["label"] == "negative"
    assert clf("good great the film", truncation=True)[0]["label"] == "positive"
    for name in ("metrics.json", "README.md", "run_config.yaml", "model.safetensors"):
        assert (out / name).is_file()
    assert "stars->2 -> negative, positive" in (out / "README.md").read_text()


def test_three_way_words_any_case(tiny_bert, tmp_path):
    rows = sentiment_rows(45, labels=("NEG", "Pos"))
    for r in rows[::3]:
        r["text"], r["label"] = "the movie was the film", "Neutral"
    train = write_rows(str(tmp_path / "train.jsonl"), rows)
    out = tmp_path / "three"
    metrics = run(tiny_bert, train, None, out, "--max_seq_length", "16")
    assert json.loads((out / "config.json").read_text())["id2label"] == {
        "0": "negative",
        "1": "neutral",
        "2": "positive",
    }
    assert metrics["label_scheme"] == "words"


@pytest.mark.parametrize("long_text", ["tail", "head_tail"])
def test_tail_strategies_read_the_end_of_long_reviews(long_text, tiny_bert, tmp_path):
    """The clue words sit after the first 16 tokens: only strategies that keep the end can learn them, and the
    saved folder must read new texts the same way (pipeline for tail, sentiment.predict for both)."""
    train = write_rows(str(tmp_path / "train.jsonl"), long_rows(48, 1))
    dev = write_rows(str(tmp_path / "dev.jsonl"), long_rows(16, 2))
    out = tmp_path / long_text
    metrics = run(tiny_bert, train, dev, out, "--long_text", long_text, "--max_seq_length", "16")
    assert metrics["eval_accuracy"] >= 0.75
    texts = [r["text"] for r in long_rows(6, 3)]
    truth = ["positive" if r["label"] else "negative" for r in long_rows(6, 3)]
    assert [p["label"] for p in sentiment.predict(str(out), texts)] == truth
    if long_text == "tail":
        from transformers import pipeline

        assert json.loads((out / "tokenizer_config.json").read_text())["truncation_side"] == "left"
        clf = pipeline("sentiment-analysis", model=str(out), device="cpu")
        assert [r["label"] for r in clf(texts, truncation=True)] == truth


def test_windows_pool_document_logits(tiny_bert, tmp_path):
    train = write_rows(str(tmp_path / "train.jsonl"), long_rows(48, 1, "spread"))
    dev = write_rows(str(tmp_path / "dev.jsonl"), long_rows(16, 2, "spread"))
    out = tmp_path / "windows"
    metrics = run(
        tiny_bert,
        train,
        dev,
        out,
        "--long_text",
        "windows",
        "--window_stride",
        "4",
        "--max_seq_length",
        "16",
        "--max_windows",
        "4",
    )
    # 39 tokens in windows of 14 overlapping by 4: 4 windows per document, pooled into one prediction each
    assert metrics["eval_windows_per_doc"] == pytest.approx(4.0)
    assert metrics["eval_accuracy"] >= 0.75
    assert json.loads((out / "config.json").read_text())["window_stride"] == 4
    # pooling needs evaluation in dataset order, which length-grouping would break in transformers 5
    assert "train_sampling_strategy: random" in (out / "run_config.yaml").read_text()
    # predict() applies the saved window settings and agrees with the recipe's own round-trip check
    rows = long_rows(8, 5, "spread")
    got = sentiment.predict(str(out), [r["text"] for r in rows])
    assert [p["label"] for p in got] == ["positive" if r["label"] else "negative" for r in rows]
    assert all(0.5 <= p["score"] <= 1 for p in got)


def test_lora_sentiment_round_trip(tiny_bert, tmp_path):
    train = write_rows(str(tmp_path / "train.csv"), sentiment_rows(48, seed=1))
    out = tmp_path / "lora"
    metrics = run(
        tiny_bert, train, None, out, "--strategy", "lora", "--learning_rate", "2e-2", "--max_seq_length", "16"
    )
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(out))
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in adapter) and any("classifier" in k for k in adapter)
    assert metrics["roundtrip_pipeline_max_abs_logit_diff"] < 1e-4


def test_windows_with_max_pooling_and_head_differ(tiny_bert, tmp_path):
    """Same data, the head strategy: the clue is never seen, so it can't beat chance by much; checks the strategies
    really change what the model reads (a guard against a silent fallback to head truncation)."""
    train = write_rows(str(tmp_path / "train.jsonl"), long_rows(48, 1))
    dev = write_rows(str(tmp_path / "dev.jsonl"), long_rows(16, 2))
    metrics = run(tiny_bert, train, dev, tmp_path / "head", "--long_text", "head", "--max_seq_length", "16")
    assert metrics["eval_accuracy"] <= 0.75


# ------------------------------------------------------------------------------ the command line, for real
def cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.recipes.sentiment", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_in_a_subprocess():
    r = cli("--help")
    assert r.returncode == 0 and "--long_text" in r.stdout and "--star_classes" in r.stdout


@pytest.mark.parametrize(
    "case, expected",
    [
        ("topic_labels", "not a sentiment label"),
        ("scores", "regression"),
        ("pairs", "for sentence pairs use the classify recipe"),
        ("bad_head_fraction", "--head_fraction must be between 0 and 1"),
        ("bad_stride", "--window_stride"),
        ("missing_label_column", "column 'stars' not found"),
    ],
)
def test_user_errors_are_one_line(case, expected, tiny_bert, tmp_path):
    rows = sentiment_rows(20)
    if case == "topic_labels":
        rows = [{"text": r["text"], "label": "sport" if r["label"] == "positive" else "tech"} for r in rows]
    if case == "scores":
        rows = [{"text": r["text"], "label": 0.3 if r["label"] == "positive" else 0.6} for r in rows]
    train = write_rows(str(tmp_path / "train.jsonl"), rows)
    args = {
        "topic_labels": [],
        "scores": [],
        "pairs": ["--text_pair_column", "hypothesis"],
        "bad_head_fraction": ["--head_fraction", "1.5"],
        "bad_stride": ["--long_text", "windows", "--window_stride", "100", "--max_seq_length", "16"],
        "missing_label_column": ["--label_column", "stars"],
    }[case]
    r = cli("--model_name_or_path", tiny_bert, "--train_file", train, "--output_dir", str(tmp_path / "o"), *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], r.stderr[-2000:]
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_pooling_matches_numpy_reference():
    logits = np.random.default_rng(0).normal(size=(7, 3))
    doc = [0, 0, 1, 2, 2, 2, 1]
    pooled, _ = sentiment.pool_windows(logits, doc, "mean")
    np.testing.assert_allclose(pooled[1], logits[[2, 6]].mean(0))


def test_class_only_in_dev_is_named_in_a_warning(tiny_bert, tmp_path, caplog):
    train = write_rows(str(tmp_path / "train.csv"), sentiment_rows(24))
    dev_rows = sentiment_rows(8, seed=3) + [{"text": "the movie was", "label": "neutral"}]
    dev = write_rows(str(tmp_path / "dev.csv"), dev_rows)
    with caplog.at_level("WARNING", logger="nlp_transfer"):
        run(tiny_bert, train, dev, tmp_path / "o", "--num_train_epochs", "1", "--max_seq_length", "16")
    assert "no training rows for class(es) ['neutral']" in caplog.text
    assert json.loads((tmp_path / "o" / "config.json").read_text())["id2label"]["1"] == "neutral"
