"""Steps the QA recipes share (``qa`` and distillation's QA branch), from their `QADataArguments`: the window
budget check, the model inputs, post-processing settings, the round-trip examples and the prediction files."""

from __future__ import annotations

from ..errors import NLPTransferError
from ..qa_pipeline import question_budget
from .features import prepare_features
from .postprocess import make_compute_metrics

N_ROUND_TRIP = 8  # held-out questions the saved folder must answer exactly as the recipe did
WINDOW_BOOKKEEPING = ["example_idx", "offsets"]  # feature columns post-processing reads and the model must not


def check_window_budget(tokenizer, *, max_seq_length: int, doc_stride: int) -> None:
    """Refuse a ``--doc_stride`` that leaves fewer than 8 tokens of each window for the question."""
    if question_budget(tokenizer, max_seq_len=max_seq_length, doc_stride=doc_stride) < 8:
        room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - 9
        raise NLPTransferError(
            f"--doc_stride {doc_stride} leaves too little room in {max_seq_length}-token windows: the overlap must "
            f"be smaller than the window's context part; use --doc_stride {max(0, room)} or less (a quarter to a "
            "third of --max_seq_length is usual)"
        )


def model_inputs(feats: dict) -> dict:
    """The Trainer's datasets: the windows without post-processing columns (train keeps ``length`` for
    length-grouped batches)."""
    return {s: f.remove_columns(WINDOW_BOOKKEEPING + (["length"] if s != "train" else [])) for s, f in feats.items()}


def postprocess_settings(args, tokenizer) -> dict:
    """`make_compute_metrics`' answer-selection settings from a `QADataArguments`."""
    return {
        "n_best_size": args.n_best_size,
        "max_answer_length": args.max_answer_length,
        "version_2_with_negative": args.version_2_with_negative,
        "null_score_diff_threshold": args.null_score_diff_threshold,
        "pad_token_id": tokenizer.pad_token_id,
    }


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


def round_trip_examples(trainer, dd: dict, answers: dict, tokenizer, max_seq_length: int, args, post: dict):
    """The questions the saved folder must answer as the recipe did, and the recipe's answers: the first held-out
    ones it answered in evaluation, or, with no held-out split, a few training questions answered by one more
    evaluation pass (every rank takes part, so it runs before `nlp_transfer.run.finish`).

    Returns:
        `(examples, expected)`: ``{"id", "question", "context"}`` rows, and question id -> answer.
    """
    split = next((s for s in ("validation", "test") if answers.get(s)), "train")
    rows = dd[split].select(range(min(N_ROUND_TRIP, len(dd[split]))))
    expected = answers.get(split) or {}
    if split == "train":
        few = prepare_features(
            rows, tokenizer, max_seq_length=max_seq_length, doc_stride=args.doc_stride, split="check"
        )
        trainer.compute_metrics = make_compute_metrics(rows, few, **post, store=expected)
        trainer.evaluate(few.remove_columns(WINDOW_BOOKKEEPING + ["length"]), metric_key_prefix="check")
    examples = [{"id": r["id"], "question": r["question"], "context": r["context"]} for r in rows]
    return examples, {ex["id"]: expected[ex["id"]] for ex in examples}


def prediction_files(answers: dict) -> dict:
    """``predictions.json`` / ``test_predictions.json``: every held-out answer, by question id."""
    names = {"validation": "predictions.json", "test": "test_predictions.json"}
    return {names[s]: {k: v["text"] for k, v in answers[s].items()} for s in names if answers.get(s)}
