"""Steps the QA recipes share (``qa`` and distillation's QA branch), from their `QADataArguments`: the model
inputs, post-processing and pipeline settings, the round-trip examples and the prediction files."""

from __future__ import annotations

from collections.abc import Callable

from .features import prepare_features
from .postprocess import make_compute_metrics

N_ROUND_TRIP = 8  # held-out questions the saved folder must answer exactly as the recipe did
WINDOW_BOOKKEEPING = ["example_idx", "offsets"]  # feature columns post-processing reads and the model must not


def model_inputs(feats: dict) -> dict:
    """The Trainer's datasets: the windows without post-processing columns (train keeps ``length`` for
    length-grouped batches)."""
    return {s: f.remove_columns(WINDOW_BOOKKEEPING + (["length"] if s != "train" else [])) for s, f in feats.items()}


def postprocess_settings(args, tokenizer=None) -> dict:
    """The answer-selection settings of a `QADataArguments` (`postprocess`'s keywords); with ``tokenizer``, also
    its ``pad_token_id`` (`make_compute_metrics`' keywords)."""
    settings = {
        "n_best_size": args.n_best_size,
        "max_answer_length": args.max_answer_length,
        "version_2_with_negative": args.version_2_with_negative,
        "null_score_diff_threshold": args.null_score_diff_threshold,
    }
    return settings if tokenizer is None else {**settings, "pad_token_id": tokenizer.pad_token_id}


def pipeline_settings(args, max_seq_length: int) -> dict:
    """What the folder's question-answering pipeline uses by default (``config.json["nlp_transfer_qa"]``)."""
    return {
        "max_seq_len": max_seq_length,
        "doc_stride": args.doc_stride,
        "max_answer_len": args.max_answer_length,
        "n_best_size": args.n_best_size,
        "handle_impossible_answer": args.version_2_with_negative,
        "null_score_diff_threshold": args.null_score_diff_threshold,
    }


def round_trip_examples(
    trainer,
    dd: dict,
    answers: dict[str, dict],
    tokenizer,
    *,
    max_seq_length: int,
    doc_stride: int,
    metric_args: dict,
    to_inputs: Callable | None = None,
    n: int = N_ROUND_TRIP,
) -> tuple[list[dict], dict]:
    """The questions the saved folder must answer as the recipe did (`Export.examples`), and those answers by
    question id (`Export.expected`): the first ``n`` of the first held-out split the recipe evaluated (validation,
    then test), else, with no held-out split, ``n`` training questions answered by an evaluation pass over them
    (``metric_key_prefix="check"``). Every rank calls it, before `nlp_transfer.run.finish`.

    Args:
        trainer: the trained Trainer (``include_for_metrics=["inputs"]``, as the task configures it).
        dd (`dict`): the recipe's splits of canonical QA rows.
        answers (`dict`): split -> the post-processed answers of its latest evaluation (the ``store`` of
            `nlp_transfer.qa.make_compute_metrics`).
        tokenizer, max_seq_length (`int`), doc_stride (`int`): the windows the model trained on.
        metric_args (`dict`): `make_compute_metrics`' keyword arguments (``pad_token_id``, ``n_best_size``,
            ``max_answer_length``, ``version_2_with_negative``, ``null_score_diff_threshold``).
        to_inputs (`Callable[[Dataset], Dataset]`, *optional*): the training questions' windows into what the
            trainer evaluates (distillation adds the teacher's scores); default: the windows less ``example_idx``,
            ``offsets`` and ``length``.
        n (`int`): how many questions.
    """
    split = next((s for s in ("validation", "test") if answers.get(s)), "train")
    rows = dd[split].select(range(min(n, len(dd[split]))))
    examples = [{"id": r["id"], "question": r["question"], "context": r["context"]} for r in rows]
    if split != "train":
        return examples, {ex["id"]: answers[split][ex["id"]] for ex in examples}
    expected: dict[str, dict] = {}
    feats = prepare_features(rows, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride, split="check")
    inputs = to_inputs(feats) if to_inputs else feats.remove_columns(["example_idx", "offsets", "length"])
    compute_metrics = trainer.compute_metrics
    trainer.compute_metrics = make_compute_metrics(rows, feats, **metric_args, store=expected)
    try:
        trainer.evaluate(inputs, metric_key_prefix="check")
    finally:
        trainer.compute_metrics = compute_metrics
    return examples, expected


def prediction_files(answers: dict) -> dict:
    """``predictions.json`` / ``test_predictions.json``: every held-out answer, by question id."""
    names = {"validation": "predictions.json", "test": "test_predictions.json"}
    return {names[s]: {k: v["text"] for k, v in answers[s].items()} for s in names if answers.get(s)}
