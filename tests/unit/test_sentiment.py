"""Sentiment label forms, long-text cutting/windowing and window pooling, on hand-made inputs."""

import json
import os
import tarfile

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, EvalPrediction

from nlp_transfer import assets, data, sentiment
from nlp_transfer.errors import NLPTransferError


def ids(mapping, values):
    return [mapping[v] for v in values]


@pytest.mark.parametrize(
    "values, names, expected",
    [
        (["NEG", "Positive"], ["negative", "positive"], {"NEG": 0, "Positive": 1}),
        (
            ["negative", " neutral ", "pos"],
            ["negative", "neutral", "positive"],
            {"negative": 0, " neutral ": 1, "pos": 2},
        ),
        ([0, 1], ["negative", "positive"], {0: 0, 1: 1}),
        (["0", "1"], ["negative", "positive"], {"0": 0, "1": 1}),
        ([-1, 0, 1], ["negative", "neutral", "positive"], {-1: 0, 0: 1, 1: 2}),
        ([0, 1, 2], ["negative", "neutral", "positive"], {0: 0, 1: 1, 2: 2}),
        ([0, 2, 4], sentiment.NAMES[5], {0: 0, 2: 2, 4: 4}),
        (
            ["very_negative", "Very Positive", "neutral"],
            sentiment.NAMES[5],
            {"very_negative": 0, "Very Positive": 4, "neutral": 2},
        ),
    ],
)
def test_label_forms_are_detected(values, names, expected):
    mapping, got_names, _ = sentiment.label_mapping(values)
    assert got_names == names
    assert mapping == expected


def test_star_ratings_map_to_2_3_or_5_classes():
    stars = [1, 2, 3, 4, 5]
    m3, n3, scheme = sentiment.label_mapping(stars)
    assert scheme == "stars->3" and n3 == ["negative", "neutral", "positive"]
    assert ids(m3, stars) == [0, 0, 1, 2, 2]
    m2, n2, _ = sentiment.label_mapping(stars, star_classes=2)
    assert n2 == ["negative", "positive"] and ids(m2, stars) == [0, 0, None, 1, 1]  # 3 stars dropped
    m5, n5, _ = sentiment.label_mapping(["1 star", "2 stars", "3 stars", "4 stars", "5 stars"], star_classes=5)
    assert n5 == sentiment.NAMES[5] and list(m5.values()) == [0, 1, 2, 3, 4]


def test_forced_scheme_and_bad_labels():
    # 1/2 alone would read as stars (both negative); a user can force binary... which then refuses the 2
    with pytest.raises(NLPTransferError, match="allows labels"):
        sentiment.label_mapping([1, 2], label_scheme="binary")
    with pytest.raises(NLPTransferError, match="not a sentiment label.*classify"):
        sentiment.label_mapping(["sports", "politics"])
    with pytest.raises(NLPTransferError, match="regression"):
        sentiment.label_mapping([0.25, 0.75])
    with pytest.raises(NLPTransferError, match="not a sentiment scale"):
        sentiment.label_mapping([0, 7])
    with pytest.raises(NLPTransferError, match="star_classes"):
        sentiment.label_mapping([1, 5], star_classes=4)


@pytest.fixture
def tok(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def test_head_tail_cut_keeps_the_first_and_last_tokens(tok):
    words = [f"{w}" for w in ("good " * 10 + "the " * 20 + "bad " * 10).split()]
    text = " ".join(words)
    # budget 12 tokens - 2 special = 10: head 25% -> 2 or 3 tokens, tail the rest
    (cut,) = sentiment.shorten([text], tok, max_seq_length=12, long_text="head_tail", head_fraction=0.25)
    head = max(1, round(10 * 0.25))
    assert cut.split() == ["good"] * head + ["bad"] * (10 - head)
    assert sentiment.shorten(["good movie"], tok, max_seq_length=12, long_text="head_tail") == ["good movie"]
    assert sentiment.shorten([text], tok, max_seq_length=12, long_text="head") == [text]  # the tokenizer cuts


def test_tail_truncation_is_the_tokenizers_own(tok, tmp_path):
    # the recipe sets both: init_kwargs is what save_pretrained writes to tokenizer_config.json
    tok.truncation_side = tok.init_kwargs["truncation_side"] = "left"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    enc = again("good great bad awful", truncation=True, max_length=4)
    assert again.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "bad", "awful", "[SEP]"]


def test_windows_cover_the_text_and_keep_document_ids(tok):
    long = " ".join(["good"] * 9 + ["bad"] * 9)  # 18 tokens
    dd = DatasetDict(
        {
            "train": Dataset.from_dict({"text": [long, "good"], "label": [1, 1]}),
            "validation": Dataset.from_dict({"text": ["bad", long], "label": [0, 1]}),
        }
    )
    out = sentiment.tokenize(dd, tok, max_seq_length=8, long_text="windows", window_stride=2, max_windows=2)
    val = out["validation"]
    # 6 body tokens per window, 2 of them repeated: 18 tokens -> windows starting at 0, 4, 8, 12 -> 4 windows
    assert val["doc_id"] == [0, 1, 1, 1, 1]
    assert val["label"] == [0, 1, 1, 1, 1]
    assert all(n <= 8 for n in val["length"])
    body = [t for w in val["input_ids"][1:] for t in w[1:-1]]
    assert tok.convert_ids_to_tokens(body).count("bad") >= 9  # every token of the text is in some window
    assert out["train"]["doc_id"] == [0, 0, 1]  # train capped at 2 windows per document


def test_pool_windows_mean_and_max():
    logits = np.array([[1.0, 0.0], [0.0, 4.0], [2.0, 2.0], [5.0, 1.0]])
    pooled, first = sentiment.pool_windows(logits, [7, 7, 3, 7], "mean")
    np.testing.assert_allclose(pooled, [[2.0, 5 / 3], [2.0, 2.0]])
    assert list(first) == [0, 2]
    pooled, _ = sentiment.pool_windows(logits, [7, 7, 3, 7], "max")
    np.testing.assert_allclose(pooled, [[5.0, 4.0], [2.0, 2.0]])


def test_windowed_metrics_score_documents_not_windows():
    m = sentiment.WindowedMetrics("mean")
    m.doc_ids = [0, 0, 0, 1]
    # doc 0: windows say 1, 1, 0 -> mean says 1 (right); doc 1: one window says 0 (right)
    logits = np.array([[0.0, 2.0], [0.0, 2.0], [3.0, 0.0], [1.0, 0.0]])
    out = m(EvalPrediction(predictions=logits, label_ids=np.array([1, 1, 1, 0])))
    assert out["accuracy"] == 1.0 and out["windows_per_doc"] == 2.0


def test_text_folder_from_folder_and_tar(tmp_path):
    root = tmp_path / "corpus"
    for split, label, name, text in [
        ("train", "pos", "0_9.txt", "great film"),
        ("train", "neg", "1_2.txt", "awful film"),
        ("train", "unsup", "2_0.txt", "unlabelled"),
        ("test", "pos", "0_8.txt", "lovely"),
    ]:
        os.makedirs(root / split / label, exist_ok=True)
        (root / split / label / name).write_text(text)
    (root / "README").write_text("not data")
    archive = tmp_path / "corpus.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="corpus")
    for source in (str(root), str(archive)):
        dd = data.load_raw_datasets(dataset_name=source)
        assert sorted(dd) == ["test", "train"]
        assert sorted(zip(dd["train"]["label"], dd["train"]["text"])) == [("neg", "awful film"), ("pos", "great film")]
        assert dd["test"]["text"] == ["lovely"]


def test_text_folder_without_train_is_refused(tmp_path):
    archive = tmp_path / "empty.tar.gz"
    (tmp_path / "x.txt").write_text("hi")
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "x.txt", arcname="x.txt")
    with pytest.raises(NLPTransferError, match="no train/<label>"):
        data.load_raw_datasets(dataset_name=str(archive))


def test_builtin_crowdflower_tweets():
    path = assets.builtin_dataset_file("crowdflower_tweets")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) > 35000
    assert {r["label"] for r in rows} == {"negative", "neutral", "positive"}
    assert not any("\ufffd" in r["text"] for r in rows)
    assert len({r["text"] for r in rows}) == len(rows)  # duplicates removed
