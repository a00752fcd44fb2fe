"""Extractive QA pieces on hand-made data: loading, the by-article split, windows and their labels, post-processing,
the no-answer rule, SQuAD EM/F1 and every bad-input case."""

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from helpers import make_tiny_qa_bert, qa_rows, squad_nested, write_rows

from nlp_transfer import qa
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import normalize_answer, squad_exact_match, squad_f1, squad_metrics
from nlp_transfer.qa_pipeline import NULL_INDEX, choose_answer, encode_windows, rank_spans

REPO = Path(__file__).resolve().parents[2]
QUESTION = "who was there ?"  # 4 tokens with the tiny word-level tokenizer; + [CLS] [SEP] [SEP] = 7


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_tiny_qa_bert(str(tmp_path_factory.mktemp("qa-bert"))))


def rows_ds(rows):
    return Dataset.from_list(rows, features=qa.FEATURES)


def one(context, answer, start=None, qid="q", title="t"):
    start = context.index(answer) if start is None else start
    return {
        "id": qid,
        "title": title,
        "context": context,
        "question": QUESTION,
        "answers": {"text": [answer], "answer_start": [start]},
    }


# ---------------------------------------------------------------------------------------------------- loading
def test_nested_json_gz_and_flat_jsonl_load_to_the_same_rows(tmp_path):
    rows = qa_rows(12, seed=3, n_articles=3)
    rows[0]["answers"] = {
        "text": [rows[0]["answers"]["text"][0]] * 2,
        "answer_start": rows[0]["answers"]["answer_start"] * 2,
    }
    nested = squad_nested(rows)
    (tmp_path / "s.json").write_text(json.dumps(nested))
    with gzip.open(tmp_path / "s.json.gz", "wt", encoding="utf-8") as f:
        json.dump(nested, f)
    write_rows(str(tmp_path / "flat.jsonl"), rows)
    # the SQuAD list-of-answers form, in a csv cell as a JSON string, with other column names
    csv_rows = [
        {
            "qid": r["id"],
            "title": r["title"],
            "passage": r["context"],
            "question": r["question"],
            "answers": json.dumps(
                [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
            ),
        }
        for r in rows
    ]
    write_rows(str(tmp_path / "flat.csv"), csv_rows)

    def load(path, **kw):
        return qa.load_qa_datasets(train_file=str(tmp_path / path), **kw)["train"]

    want = sorted(rows, key=lambda r: r["id"])
    for ds in (
        load("s.json"),
        load("s.json.gz"),
        load("flat.jsonl"),
        load("flat.csv", id_column="qid", context_column="passage"),
    ):
        assert ds.features == qa.FEATURES
        assert sorted(ds.to_list(), key=lambda r: r["id"]) == want


def test_validation_file_and_v2_impossible_questions(tmp_path):
    rows = qa_rows(6, seed=1)
    rows[2]["answers"] = {"text": [], "answer_start": []}
    (tmp_path / "v2.json").write_text(json.dumps(squad_nested(rows, version="2.0")))
    write_rows(str(tmp_path / "dev.jsonl"), qa_rows(3, seed=2))
    dd = qa.load_qa_datasets(train_file=str(tmp_path / "v2.json"), validation_file=str(tmp_path / "dev.jsonl"))
    assert set(dd) == {"train", "validation"} and len(dd["validation"]) == 3
    by_id = {r["id"]: r for r in dd["train"]}
    assert by_id[rows[2]["id"]]["answers"] == {"text": [], "answer_start": []}
    checked = qa.check_examples(dd["train"], split="train", version_2_with_negative=True)
    assert len(checked) == 6  # unanswerable questions are data in v2


def test_by_article_split_never_splits_an_article():
    rows = qa_rows(120, seed=0, n_articles=12)
    ds = rows_ds(rows)
    train, held, titles = qa.split_by_article(ds, fraction=0.25, seed=42)
    assert len(titles) == 3  # round(0.25 * 12)
    train_titles, held_titles = set(train["title"]), set(held["title"])
    assert not train_titles & held_titles and held_titles == set(titles)
    assert len(train) + len(held) == 120
    # seeded: the same seed picks the same articles, another seed (usually) others
    assert qa.split_by_article(ds, fraction=0.25, seed=42)[2] == titles
    assert any(qa.split_by_article(ds, fraction=0.25, seed=s)[2] != titles for s in (1, 2, 3))
    # no titles: paragraphs (contexts) are the groups, so one paragraph's questions stay together
    for r in rows:
        r["title"] = ""
    rows += [dict(r, id=r["id"] + "-bis") for r in rows[:10]]  # second questions on the same paragraphs
    train, held, _ = qa.split_by_article(rows_ds(rows), fraction=0.2, seed=0)
    assert not set(train["context"]) & set(held["context"])
    with pytest.raises(NLPTransferError, match="single article"):
        qa.split_by_article(rows_ds(qa_rows(5, n_articles=1)), fraction=0.5)


def test_subsample_is_seeded():
    ds = rows_ds(qa_rows(30))
    a, b = qa.subsample(ds, 10, seed=1, flag="--x"), qa.subsample(ds, 10, seed=1, flag="--x")
    assert a["id"] == b["id"] and len(a) == 10
    assert qa.subsample(ds, 100, seed=1, flag="--x") is ds
    with pytest.raises(NLPTransferError, match="--max_train_samples must be positive"):
        qa.subsample(ds, 0, seed=1, flag="--max_train_samples")


# ---------------------------------------------------------------------------------------------------- windows
WORDS20 = "the red house of the old city was big and the small park was new by the blue river at night".split()[:20]


def test_windows_overlap_by_doc_stride_and_offsets_map_back(tok):
    context = " ".join(WORDS20)
    # 17 tokens per window: 7 for the question and special tokens, 10 for context; overlap 4 -> starts 0, 6, 12
    enc, clipped = encode_windows(tok, [QUESTION], [context], max_seq_len=17, doc_stride=4)
    assert clipped == 0 and enc["overflow_to_sample_mapping"] == [0, 0, 0]
    words_per_window = []
    for offsets in enc["offset_mapping"]:
        assert offsets[NULL_INDEX] is None  # position 0 ([CLS]) is never context
        spans = [o for o in offsets if o is not None]
        words_per_window.append([context[a:b] for a, b in spans])
    assert words_per_window[0] == WORDS20[0:10]
    assert words_per_window[1] == WORDS20[6:16]
    assert words_per_window[2] == WORDS20[12:20]


def test_answer_straddling_two_windows_is_labelled_only_where_it_is_whole(tok):
    context = " ".join(WORDS20)
    answer = " ".join(WORDS20[8:11])  # context words 8..10: window 0 ends at word 9, window 1 holds 6..15
    feats = qa.prepare_features(rows_ds([one(context, answer)]), tok, max_seq_length=17, doc_stride=4, split="train")
    assert len(feats) == 3
    labels = list(zip(feats["start_positions"], feats["end_positions"]))
    # window 1: [CLS] + 4 question tokens + [SEP] = 6 positions, then context word 6 -> word 8 is position 8
    assert labels == [(NULL_INDEX, NULL_INDEX), (8, 10), (NULL_INDEX, NULL_INDEX)]
    offsets = feats["offsets"][1]
    assert context[offsets[8][0] : offsets[10][1]] == answer


def test_answer_at_the_very_end_of_the_context(tok):
    context = " ".join(WORDS20) + " bob"
    feats = qa.prepare_features(
        rows_ds([one(context, "bob")]), tok, max_seq_length=17, doc_stride=4, split="validation"
    )
    last = len(feats) - 1
    assert feats["start_positions"][last] == feats["end_positions"][last] != NULL_INDEX
    pos, offsets = feats["end_positions"][last], feats["offsets"][last]
    assert offsets[pos][1] == len(context) and context[offsets[pos][0] :] == "bob"
    assert all(s == NULL_INDEX for s in feats["start_positions"][:last])
    assert feats["example_idx"] == [0] * len(feats)


def test_answers_no_window_holds_are_dropped_from_train_only(tok, caplog):
    context = " ".join(WORDS20)
    long_answer = " ".join(WORDS20[2:15])  # 13 words: longer than a window's 10 context tokens
    ds = rows_ds([one(context, long_answer, qid="long"), one(context, WORDS20[3], qid="ok")])
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.qa"):
        train = qa.prepare_features(ds, tok, max_seq_length=17, doc_stride=4, split="train")
    assert set(train["example_idx"]) == {1}
    assert "answer of 1 question(s) is not inside any single window (first: id 'long')" in caplog.text
    dev = qa.prepare_features(ds, tok, max_seq_length=17, doc_stride=4, split="validation")
    assert set(dev["example_idx"]) == {0, 1}  # still evaluated


def test_over_long_questions_are_clipped(tok, caplog):
    row = one("bob was there", "bob")
    row["question"] = "who was there ? " * 10
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.qa"):
        feats = qa.prepare_features(rows_ds([row]), tok, max_seq_length=17, doc_stride=4, split="train")
    assert "1 question(s) are longer than" in caplog.text
    assert feats["start_positions"] != [NULL_INDEX]  # the context still fits and the answer is labelled


def test_feature_order_matches_permuted_rows_back(tok):
    rows = [one(" ".join(WORDS20[i:]) + " bob", "bob", qid=str(i)) for i in range(5)]
    feats = qa.prepare_features(rows_ds(rows), tok, max_seq_length=17, doc_stride=4, split="validation")
    ids = feats["input_ids"]
    width = max(len(x) for x in ids)
    padded = np.array([x + [tok.pad_token_id] * (width - len(x)) for x in ids])
    perm = np.random.default_rng(0).permutation(len(ids))
    order = qa.feature_order(padded[perm], feats, tok.pad_token_id)
    assert [int(perm[r]) for r in order] == list(range(len(ids)))


# -------------------------------------------------------------------------------------------- post-processing
CTX = "alice saw bob in the park"
#      0     6   10  14 17  21  (character starts)
OFFS = [None, None, (0, 5), (6, 9), (10, 13), (14, 16), (17, 20), (21, 25), None]  # [CLS] q [SEP] ... [SEP]


def logits(n, peaks):
    x = np.zeros(n)
    for i, v in peaks.items():
        x[i] = v
    return x


def test_rank_spans_picks_the_best_valid_span():
    start, end = logits(9, {4: 5.0}), logits(9, {7: 4.0})
    cands, null = rank_spans([(start, end, OFFS)], CTX, n_best_size=5, max_answer_len=10)
    assert cands[0] == {"text": "bob in the park", "start": 10, "end": 25, "score": 9.0}
    assert null == 0.0
    assert [c["score"] for c in cands] == sorted((c["score"] for c in cands), reverse=True)


def test_rank_spans_respects_max_answer_length_order_and_context_mask():
    # best start 2 and best end 7 would make a 6-token answer: too long for max_answer_len 3
    start, end = logits(9, {2: 5.0, 6: 3.0}), logits(9, {7: 4.0, 3: 1.0})
    cands, _ = rank_spans([(start, end, OFFS)], CTX, n_best_size=5, max_answer_len=3)
    assert cands[0]["text"] == "the park"  # start 6 + end 7 = 7.0 beats "alice saw" (start 2 + end 3 = 6.0)
    assert all(len(c["text"].split()) <= 3 for c in cands)
    # the largest logits sit on question/special tokens (offset None): never an answer
    start, end = logits(9, {0: 50.0, 1: 40.0, 5: 1.0}), logits(9, {1: 50.0, 8: 40.0, 5: 1.0})
    cands, null = rank_spans([(start, end, OFFS)], CTX, n_best_size=3, max_answer_len=30)
    assert cands[0]["text"] == "in" and null == 50.0
    # an end before the start is no span
    start, end = logits(9, {6: 9.0}), logits(9, {3: 9.0})
    assert rank_spans([(start, end, OFFS)], CTX, n_best_size=1, max_answer_len=30)[0] == []


def test_rank_spans_aggregates_windows():
    # two windows over the same context: the second holds the better span; "bob" is in both (keeps the best score)
    w1 = [None, (0, 5), (6, 9), (10, 13), None]
    w2 = [None, (10, 13), (14, 16), (17, 20), (21, 25), None]
    first = (logits(5, {3: 2.0, 0: 1.0}), logits(5, {3: 2.0, 0: 1.0}), w1)
    second = (logits(6, {4: 3.0, 1: 2.5, 0: -1.0}), logits(6, {4: 3.0, 1: 2.5, 0: -1.0}), w2)
    cands, null = rank_spans([first, second], CTX, n_best_size=20, max_answer_len=30)
    assert cands[0]["text"] == "park" and cands[0]["score"] == 6.0
    assert [c["score"] for c in cands if c["text"] == "bob"] == [5.0]  # the better of 4.0 and 5.0, once
    assert null == -2.0  # the lowest null score over the windows
    # whitespace around a token's offsets is trimmed
    spaced = [None, (5, 9), None]  # " saw" with its leading space
    assert rank_spans([(logits(3, {1: 1.0}), logits(3, {1: 1.0}), spaced)], CTX)[0][0]["text"] == "saw"


def test_postprocess_groups_windows_by_example():
    examples = rows_ds([one(CTX, "bob", qid="a"), one(CTX, "park", qid="b")])
    # windows of example b come first and last, example a in the middle
    example_idx = [1, 0, 1]
    offsets = [OFFS, OFFS, OFFS]
    start = np.stack([logits(9, {7: 1.0}), logits(9, {4: 3.0}), logits(9, {7: 5.0})])
    end = np.stack([logits(9, {7: 1.0}), logits(9, {4: 3.0}), logits(9, {7: 5.0})])
    out = qa.postprocess(examples, example_idx, offsets, start, end)
    assert out["a"]["text"] == "bob" and out["b"]["text"] == "park" and out["b"]["score"] == 10.0


def test_v2_null_score_threshold():
    cands = [{"text": "bob", "start": 10, "end": 13, "score": 4.0}]
    # null 5.0 beats the best span 4.0 by 1.0
    assert choose_answer(cands, 5.0, handle_impossible_answer=True)["text"] == ""
    assert choose_answer(cands, 5.0, handle_impossible_answer=True, null_score_diff_threshold=1.5)["text"] == "bob"
    assert choose_answer(cands, 5.0, handle_impossible_answer=True, null_score_diff_threshold=0.5)["text"] == ""
    assert choose_answer(cands, 3.0, handle_impossible_answer=True)["text"] == "bob"
    assert choose_answer(cands, 5.0, handle_impossible_answer=False)["text"] == "bob"  # v1: always a span
    assert choose_answer([], 1.0) == {"text": "", "start": 0, "end": 0, "score": 1.0}
    # through postprocess: the example's null score is the lowest over its windows
    examples = rows_ds([one(CTX, "bob", qid="a")])
    start = np.stack([logits(9, {0: 6.0, 4: 2.0}), logits(9, {0: 1.0, 4: 2.0})])
    end = start.copy()
    v1 = qa.postprocess(examples, [0, 0], [OFFS, OFFS], start, end)
    v2 = qa.postprocess(examples, [0, 0], [OFFS, OFFS], start, end, version_2_with_negative=True)
    assert v1["a"]["text"] == "bob" and v2["a"]["text"] == "bob"  # null min(12, 2) = 2 < span 4
    start[1, 0] = end[1, 0] = 3.0  # now the null score is min(12, 6) = 6 > 4
    v2 = qa.postprocess(examples, [0, 0], [OFFS, OFFS], start, end, version_2_with_negative=True)
    assert v2["a"]["text"] == "" and v2["a"]["score"] == 6.0


# ---------------------------------------------------------------------------------------------------- metrics
def test_normalisation_by_hand():
    assert normalize_answer("The Cat") == "cat"
    assert normalize_answer("  a  dog,   an apple; THE end!  ") == "dog apple end"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("U.S.-based") == "usbased"  # punctuation removed, not replaced by spaces
    assert normalize_answer("\tDenver\nBroncos ") == "denver broncos"
    assert normalize_answer("The") == ""


def test_exact_match_and_f1_by_hand():
    assert squad_exact_match("the Denver Broncos!", "Denver Broncos") == 1.0
    assert squad_exact_match("Denver", "Denver Broncos") == 0.0
    # "cat sat on mat" vs "cat sat on hat": 3 common of 4 and 4 -> P = R = 3/4 -> F1 = 0.75
    assert squad_f1("the cat sat on the mat", "a cat sat on a hat") == pytest.approx(0.75)
    # "denver" vs "denver broncos": common 1, P = 1/1, R = 1/2 -> F1 = 2/3
    assert squad_f1("Denver", "Denver Broncos") == pytest.approx(2 / 3)
    # repeated tokens count as a bag: "a a b"->["b"]... use non-articles: "x x y" vs "x y y": common x1 y1 = 2
    assert squad_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert squad_f1("Paris", "London") == 0.0
    assert squad_f1("", "London") == 0.0 and squad_exact_match("", "London") == 0.0
    assert squad_f1("", "") == 1.0 and squad_f1("the", "") == 1.0  # both normalise to nothing


def test_squad_metrics_max_over_golds_and_v2_splits():
    preds = {"1": "Denver", "2": "the Eiffel Tower", "3": "", "4": "Paris", "5": ""}
    refs = {
        "1": ["Denver Broncos", "Broncos", "denver"],  # EM 1 via the third gold answer
        "2": ["Eiffel Tower in Paris"],  # F1: 2 common, P 2/2, R 2/4 -> 2/3
        "3": ["Rome"],  # empty prediction: 0 / 0
        "4": [],  # unanswerable, but answered: 0 / 0
        "5": ["", "   "],  # unanswerable (golds normalise to nothing), no answer: 1 / 1
    }
    m = squad_metrics(preds, refs, version_2_with_negative=True)
    assert m["exact_match"] == pytest.approx(100 * (1 + 0 + 0 + 0 + 1) / 5)
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 0 + 1) / 5)
    assert (m["HasAns_total"], m["NoAns_total"], m["total"]) == (3, 2, 5)
    assert m["HasAns_exact_match"] == pytest.approx(100 / 3)
    assert m["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert m["NoAns_exact_match"] == m["NoAns_f1"] == pytest.approx(50.0)
    v1 = squad_metrics({"1": "Denver"}, {"1": ["Denver Broncos", "Broncos", "denver"]})
    assert v1 == {"exact_match": 100.0, "f1": 100.0, "total": 1}
    with pytest.raises(ValueError, match="no prediction"):
        squad_metrics({}, {"1": ["x"]})


# ------------------------------------------------------------------------------------------------- bad input
def test_answer_start_mismatch_repaired_nearby_else_skipped_with_counts(caplog):
    context = "alice saw bob in the park and bob saw alice"
    rows = [
        one(context, "bob", start=11, qid="off-by-one"),  # "bob" is at 10
        one(context, "park", start=0, qid="far-but-near-enough"),  # at 21: within REPAIR_DISTANCE
        one(context, "river", start=3, qid="absent"),  # not in the context at all
        one(context, "  saw", start=4, qid="padded"),  # leading spaces: stripped, start moved with them
    ]
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.qa"):
        train = qa.check_examples(rows_ds(rows), split="train")
    by_id = {r["id"]: r["answers"] for r in train}
    assert by_id["off-by-one"] == {"text": ["bob"], "answer_start": [10]}
    assert by_id["far-but-near-enough"] == {"text": ["park"], "answer_start": [21]}
    assert by_id["padded"] == {"text": ["saw"], "answer_start": [6]}
    assert "absent" not in by_id  # its only answer is unusable: dropped from training
    assert "train split: 3 answer_start value(s) did not point at the answer text: 2 repaired" in caplog.text
    assert "1 question(s) left without an answer dropped" in caplog.text and "'absent'" in caplog.text
    # held-out splits keep the text as gold (EM/F1 read only the text) with no position
    dev = {r["id"]: r["answers"] for r in qa.check_examples(rows_ds(rows), split="validation")}
    assert dev["absent"] == {"text": ["river"], "answer_start": [-1]}
    # an occurrence further away than REPAIR_DISTANCE is not trusted
    far = "x " * 80 + "bob"
    out = qa.check_examples(rows_ds([one(far, "bob", start=0, qid="far"), one(far, "x", qid="ok")]), split="train")
    assert out["id"] == ["ok"]


def test_empty_answers_in_v1_are_an_error_pointing_at_v2():
    rows = [one(CTX, "bob"), dict(one(CTX, "bob", qid="empty"), answers={"text": [], "answer_start": []})]
    with pytest.raises(
        NLPTransferError, match=r"1 question\(s\) of the train split have no answer.*'empty'.*--version_2"
    ):
        qa.check_examples(rows_ds(rows), split="train")
    blank = [dict(one(CTX, "bob", qid="blank"), answers={"text": [""], "answer_start": [0]})]
    with pytest.raises(NLPTransferError, match="no answer"):
        qa.check_examples(rows_ds(blank), split="validation")
    assert len(qa.check_examples(rows_ds(rows), split="train", version_2_with_negative=True)) == 2


def test_missing_context_question_and_duplicate_ids_are_errors():
    with pytest.raises(NLPTransferError, match=r"have no context \(first: id 'nc'\)"):
        qa.check_examples(rows_ds([one(CTX, "bob"), dict(one(CTX, "bob", qid="nc"), context="  ")]), split="train")
    with pytest.raises(NLPTransferError, match="have no question"):
        qa.check_examples(rows_ds([dict(one(CTX, "bob"), question="")]), split="test")
    with pytest.raises(NLPTransferError, match="'q' appears more than once"):
        qa.check_examples(rows_ds([one(CTX, "bob"), one(CTX, "park")]), split="validation")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"version": "1.1", "data": [', "is not valid JSON"),
        ('{"version": "1.1", "paragraphs": []}', "without a 'data' list"),
        ('{"data": [{"title": "t"}]}', "article 0 has no 'paragraphs' list"),
        ('{"data": [{"title": "t", "paragraphs": [{"context": "c"}]}]}', "paragraph 0 has no 'qas' list"),
        (
            '{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": ["c"]}]}]}]}',
            "'answers' must be a list of {text, answer_start}",
        ),
        (
            '{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": '
            '[{"text": "c", "answer_start": "zero"}]}]}]}]}',
            "answer_start must be an integer",
        ),
        ('{"data": []}', "holds no questions"),
    ],
)
def test_malformed_squad_json_is_an_error(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(NLPTransferError, match="--train_file") as e:
        qa.load_qa_datasets(train_file=str(path))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_flat_rows_errors(tmp_path):
    write_rows(str(tmp_path / "a.jsonl"), [{"context": "c", "question": "q", "answer": 5}])
    with pytest.raises(NLPTransferError, match="column 'answers' not found.*--answer_column"):
        qa.load_qa_datasets(train_file=str(tmp_path / "a.jsonl"))
    with pytest.raises(NLPTransferError, match="is not answers"):
        qa.load_qa_datasets(train_file=str(tmp_path / "a.jsonl"), answer_column="answer")
    write_rows(str(tmp_path / "b.csv"), [{"context": "c", "question": "q", "answers": "{not json"}])
    with pytest.raises(NLPTransferError, match="text but not JSON"):
        qa.load_qa_datasets(train_file=str(tmp_path / "b.csv"))
    with pytest.raises(NLPTransferError, match="no data: pass --train_file"):
        qa.load_qa_datasets()
    with pytest.raises(NLPTransferError, match="could not load dataset 'squad'.*offline"):
        qa.load_qa_datasets(dataset_name="squad")  # HF_HUB_OFFLINE=1 in the tests


def test_a_model_type_without_a_qa_head_is_named(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        tmp_path
    )
    with pytest.raises(NLPTransferError, match="'vit' model, for which transformers has no extractive"):
        qa.load_qa_model(str(tmp_path))


def test_llama_causal_lm_backbone_is_loaded_not_reinitialised(stories260k):
    import torch
    from safetensors.torch import load_file

    model = qa.load_qa_model(stories260k, pad_token_id=0)
    saved = load_file(str(Path(stories260k) / "model.safetensors"))
    key = next(k for k in saved if k.endswith("layers.0.self_attn.q_proj.weight"))
    # LlamaForQuestionAnswering names its backbone `transformer`, the checkpoint `model`: the weights must arrive
    torch.testing.assert_close(model.transformer.layers[0].self_attn.q_proj.weight, saved[key])


def test_shipped_qa_configs_parse():
    from nlp_transfer.config import ModelArguments, QADataArguments, TransferTrainingArguments, parse_args

    paths = sorted((REPO / "recipes" / "qa").glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        (m, d, t), explicit = parse_args(
            (ModelArguments, QADataArguments, TransferTrainingArguments), ["--config", str(path)]
        )
        assert d.train_file and "train_file" in explicit, path.name
