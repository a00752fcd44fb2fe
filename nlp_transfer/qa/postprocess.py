"""Post-processing for extractive QA: n-best spans over each example's windows into answers, gold references, and
the ``compute_metrics`` that scores them with SQuAD EM/F1.
"""

from __future__ import annotations

from collections import defaultdict

from datasets import Dataset

from ..metrics import squad_metrics
from ..qa_pipeline import choose_answer, rank_spans


def postprocess(
    examples: Dataset,
    example_idx: list[int],
    offsets: list,
    start_logits,
    end_logits,
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, dict]:
    """Gather every example's windows and pick its answer (`nlp_transfer.qa_pipeline.rank_spans` and
    `choose_answer`, the code the saved pipeline runs).

    Args:
        examples (`Dataset`): the canonical rows the features were made from.
        example_idx (`list[int]`), offsets (`list`): the features' ``example_idx`` and ``offsets`` columns.
        start_logits, end_logits (`np.ndarray`): model outputs, one row per feature (padding past a feature's own
            length is ignored).
        n_best_size, max_answer_length: see `rank_spans`.
        version_2_with_negative (`bool`), null_score_diff_threshold (`float`): see `choose_answer`.

    Returns:
        `dict`: question id -> ``{"text", "start", "end", "score"}`` (``text == ""`` for no answer).
    """
    by_example = defaultdict(list)
    for f, idx in enumerate(example_idx):
        by_example[idx].append(f)
    out = {}
    for idx, (qid, context) in enumerate(zip(list(examples["id"]), list(examples["context"]))):
        candidates, null_score = rank_spans(
            ((start_logits[f], end_logits[f], offsets[f]) for f in by_example.get(idx, [])),
            context,
            n_best_size=n_best_size,
            max_answer_len=max_answer_length,
        )
        out[qid] = choose_answer(
            candidates,
            null_score,
            handle_impossible_answer=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold,
        )
    return out


def references(examples: Dataset) -> dict[str, list[str]]:
    """Question id -> gold answer texts."""
    return {qid: list(a["text"]) for qid, a in zip(examples["id"], examples["answers"])}


def _row_key(ids, pad_token_id: int | None) -> tuple:
    ids = [int(i) for i in ids if int(i) != -100]  # -100: the Trainer's padding between batches
    while ids and pad_token_id is not None and ids[-1] == pad_token_id:
        ids.pop()
    return tuple(ids)


def feature_order(inputs, features: Dataset, pad_token_id: int | None) -> list[int]:
    """For each feature (row of ``features``), the row of ``inputs`` (the ``input_ids`` the Trainer evaluated, in
    the order it evaluated them) that holds it.

    transformers' Trainer evaluates in length-grouped order when ``train_sampling_strategy`` is
    ``group_by_length`` (5.x applies it to evaluation too), so predictions do not come back in feature order.
    Rows are matched by their token ids (padding stripped); identical windows get identical logits, so which of
    several identical rows a feature takes does not matter.
    """
    pools = defaultdict(list)
    for row in range(len(inputs) - 1, -1, -1):
        pools[_row_key(inputs[row], pad_token_id)].append(row)
    order = []
    for f, ids in enumerate(features["input_ids"]):
        bucket = pools.get(_row_key(ids, pad_token_id))
        if not bucket:
            raise RuntimeError(f"evaluation returned no row for window {f}: predictions and windows do not match")
        order.append(bucket.pop())
    return order


def make_compute_metrics(
    examples: Dataset,
    features: Dataset,
    *,
    pad_token_id: int | None,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
    store: dict | None = None,
):
    """A ``compute_metrics`` for `transformers.Trainer` over ``features`` (made from ``examples``): put the logits
    back in feature order (`feature_order`; the Trainer must run with ``include_for_metrics=["inputs"]``),
    post-process them into answers and score those with SQuAD EM/F1. The answers of the latest call go into
    ``store``; ``compute_metrics.last`` holds (answers, references, questions) of the latest call."""
    example_idx, offsets = list(features["example_idx"]), list(features["offsets"])
    refs = references(examples)
    questions = dict(zip(examples["id"], examples["question"]))

    def compute_metrics(eval_pred) -> dict[str, float]:
        start_logits, end_logits = eval_pred.predictions[:2]
        if eval_pred.inputs is None:
            raise RuntimeError("QA evaluation needs include_for_metrics=['inputs'] to match logits to windows")
        order = feature_order(eval_pred.inputs, features, pad_token_id)
        answers = postprocess(
            examples,
            example_idx,
            offsets,
            start_logits[order],
            end_logits[order],
            n_best_size=n_best_size,
            max_answer_length=max_answer_length,
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold,
        )
        if store is not None:
            store.clear()
            store.update(answers)
        # what was scored, for the folder's per-group report (`Task.evaluation_report`)
        compute_metrics.last = ({k: v["text"] for k, v in answers.items()}, refs, questions)
        return squad_metrics(
            {k: v["text"] for k, v in answers.items()}, refs, version_2_with_negative=version_2_with_negative
        )

    compute_metrics.last = None
    return compute_metrics
