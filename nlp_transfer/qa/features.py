"""Window features for extractive QA: overlapping windows over each context, with start/end labels and what
post-processing needs.

What long input does (decided per case; the recipe's docstring repeats it):

- contexts longer than one window are cut into overlapping windows (info log with counts). A training question whose
  answer no single window holds entirely (the answer is longer than a window's context part, or cut by every window)
  is dropped from training with a warning and a count; in evaluation it stays and is scored as usual.
- a question too long to leave room for context is clipped to fit (warning with the count).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from datasets import Dataset

from ..errors import NLPTransferError
from ..qa_pipeline import NULL_INDEX, encode_windows, question_budget

logger = logging.getLogger(__name__)


def check_window_budget(tokenizer, max_seq_length: int, doc_stride: int) -> None:
    """Refuse (one line naming a stride that fits) a ``doc_stride`` that leaves questions fewer than 8 tokens of a
    ``max_seq_length``-token window: the overlap must be smaller than the window's context part."""
    if question_budget(tokenizer, max_seq_len=max_seq_length, doc_stride=doc_stride) < 8:
        room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - 9
        raise NLPTransferError(
            f"--doc_stride {doc_stride} leaves too little room in {max_seq_length}-token windows: the overlap must "
            f"be smaller than the window's context part; use --doc_stride {max(0, room)} or less (a quarter to a "
            "third of --max_seq_length is usual)"
        )


def _label(offsets: list, text: str | None, start: int | None) -> tuple[int, int]:
    """(start, end) token positions of the answer in one window, or (NULL_INDEX, NULL_INDEX) when the window does
    not hold the whole answer (or there is none)."""
    if text is None or start is None or start < 0:
        return NULL_INDEX, NULL_INDEX
    end = start + len(text)
    tokens = [t for t, o in enumerate(offsets) if o is not None]
    if not tokens or offsets[tokens[0]][0] > start or offsets[tokens[-1]][1] < end:
        return NULL_INDEX, NULL_INDEX
    s = next(t for t in tokens if offsets[t][1] > start)
    e = next(t for t in reversed(tokens) if offsets[t][0] < end)
    return (s, e) if s <= e else (NULL_INDEX, NULL_INDEX)


def _warn_long_questions(ds: Dataset, tokenizer, *, max_seq_length: int, doc_stride: int, split: str) -> None:
    """Warn (with the count) about questions too long to leave a window room for context: they get clipped."""
    limit = question_budget(tokenizer, max_seq_len=max_seq_length, doc_stride=doc_stride)
    q_lengths = [len(x) for x in tokenizer(list(ds["question"]), add_special_tokens=False, verbose=False)["input_ids"]]
    n_long = sum(n > limit for n in q_lengths)
    if n_long:
        logger.warning(
            "%s split: %d question(s) are longer than the %d tokens a %d-token window with doc_stride %d leaves them; "
            "they are clipped",
            split,
            n_long,
            limit,
            max_seq_length,
            doc_stride,
        )


def _window_columns(enc, answers: list[dict], indices: list[int]) -> dict:
    """The feature columns of one batch's windows (``enc`` from `encode_windows` over the batch's questions, whose
    ``answers`` and dataset rows ``indices`` are given): model inputs, labels, ``example_idx``, ``offsets``,
    ``length``."""
    starts, ends, example_idx = [], [], []
    for w, offsets in enumerate(enc["offset_mapping"]):
        j = enc["overflow_to_sample_mapping"][w]
        ans = answers[j]
        first = next((k for k, s in enumerate(ans["answer_start"]) if s >= 0), None)
        s, e = _label(
            offsets,
            ans["text"][first] if first is not None else None,
            ans["answer_start"][first] if first is not None else None,
        )
        starts.append(s)
        ends.append(e)
        example_idx.append(indices[j])
    out = {k: enc[k] for k in enc if k not in ("offset_mapping", "overflow_to_sample_mapping")}
    out.update(
        start_positions=starts,
        end_positions=ends,
        example_idx=example_idx,
        offsets=[[list(o) if o is not None else None for o in offs] for offs in enc["offset_mapping"]],
        length=[sum(m) for m in enc["attention_mask"]],
    )
    return out


def _check_windows(ds: Dataset, feats: Dataset, *, max_seq_length: int, doc_stride: int, split: str) -> Dataset:
    """Log how the windows fell (contexts longer than a window, answers no window holds) and, in ``train``, drop
    the windows of questions whose answer no single window holds."""
    example_idx = list(feats["example_idx"])
    per_example = defaultdict(int)
    labelled = set()
    for idx, s in zip(example_idx, feats["start_positions"]):
        per_example[idx] += 1
        if s != NULL_INDEX:
            labelled.add(idx)
    multi = sum(1 for n in per_example.values() if n > 1)
    if multi:
        logger.info(
            "%s split: %d of %d contexts are longer than one %d-token window: %d windows in all (doc_stride %d)",
            split,
            multi,
            len(ds),
            max_seq_length,
            len(feats),
            doc_stride,
        )
    answerable = {i for i, a in enumerate(ds["answers"]) if any(s >= 0 for s in a["answer_start"])}
    cut = sorted(answerable - labelled)
    if cut:
        first = ds[cut[0]]["id"]
        if split == "train":
            logger.warning(
                "train split: the answer of %d question(s) is not inside any single window (first: id %r); they are "
                "left out of training (a larger --max_seq_length or --doc_stride keeps them)",
                len(cut),
                first,
            )
            cut_set = set(cut)
            feats = feats.select([f for f, idx in enumerate(example_idx) if idx not in cut_set])
        else:
            logger.info(
                "%s split: the answer of %d question(s) is not inside any single window (first: id %r); they are "
                "still evaluated",
                split,
                len(cut),
                first,
            )
    return feats


def prepare_features(
    ds: Dataset,
    tokenizer,
    *,
    max_seq_length: int,
    doc_stride: int,
    split: str,
    pad_to_max_length: bool = False,
) -> Dataset:
    """Windows over every example, with start/end labels and what post-processing needs.

    Columns: the tokenizer's model inputs, ``start_positions``/``end_positions`` (token positions of the first
    usable answer in this window, or `NULL_INDEX` when the window does not hold all of it or the question has no
    answer), ``example_idx`` (row of ``ds``), ``offsets`` (character span per token, `None` outside the context)
    and ``length``. In ``train``, questions whose answer no window holds entirely are dropped (warning with count).
    """
    _warn_long_questions(ds, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride, split=split)

    def fn(batch, indices):
        enc, _ = encode_windows(
            tokenizer,
            batch["question"],
            batch["context"],
            max_seq_len=max_seq_length,
            doc_stride=doc_stride,
            padding="max_length" if pad_to_max_length else False,
        )
        return _window_columns(enc, batch["answers"], indices)

    feats = ds.map(
        fn, batched=True, with_indices=True, remove_columns=ds.column_names, desc=f"Windowing {split} contexts"
    )
    feats = _check_windows(ds, feats, max_seq_length=max_seq_length, doc_stride=doc_stride, split=split)
    if len(feats) == 0:
        raise NLPTransferError(f"no {split} windows left: raise --max_seq_length or check the answers")
    return feats
