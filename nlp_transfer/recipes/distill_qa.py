"""Distil a fine-tuned extractive QA teacher into a smaller student. Reached through
``python -m nlp_transfer.recipes.distill`` when the teacher is a question-answering model (data options are the QA
recipe's: ``--train_file``/``--validation_file`` in SQuAD format, ``--max_seq_length``, ``--doc_stride``, ...).

Launch commands::

    python -m nlp_transfer.recipes.qa --train_file train.json --validation_file dev.json --output_dir qa-teacher/
    python -m nlp_transfer.recipes.distill --teacher_name_or_path qa-teacher/ \\
        --train_file train.json --validation_file dev.json --output_dir qa-student/

The teacher's start/end scores are computed once on its own windows (cached like classification logits), then
mapped onto the student's windows through character offsets (`distillation.map_qa_targets`): the identity when
both share a tokenizer and window settings, an alignment when they don't. Loss: alpha * KD over the start and end
distributions + (1 - alpha) * span cross-entropy (+ the optional hidden-state/attention terms, same tokenizer only).
Outputs: the QA recipe's folder (its own ``qa_pipeline.py``, predictions.json) plus compression_report.json and a
compression table in the model card.
"""

from __future__ import annotations

import functools
import logging

from nlp_transfer import distillation, qa, run, strategies, tasks
from nlp_transfer.config import TRAINING_DEFAULTS, DistillArguments, QADataArguments, TransferTrainingArguments
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import squad_metrics

logger = logging.getLogger("nlp_transfer.recipes.distill")

DEFAULTS = {**TRAINING_DEFAULTS, "remove_unused_columns": False}  # the collator picks the columns it needs
TASK = tasks.QUESTION_ANSWERING


def main(argv: list[str] | None) -> dict:
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "distill-qa", argv, (DistillArguments, QADataArguments, TransferTrainingArguments),
        defaults=DEFAULTS, doc=__doc__, task=TASK, prog="python -m nlp_transfer.recipes.distill",
    )  # fmt: skip
    dist_args, data_args, training_args = job.args
    if dist_args.unlabeled_file:
        raise NLPTransferError("--unlabeled_file is for classification; for QA give unlabelled questions as data")
    v2, stride = data_args.version_2_with_negative, data_args.doc_stride

    # ---- 2. teacher (LoRA adapters merged in), student cut from it or pretrained; windows that fit both
    pair = distillation.load_pair(dist_args, task="qa")
    for tok, who in ((pair.teacher_tok, "teacher"), (pair.student_tok, "student")):
        if not tok.is_fast:
            raise NLPTransferError(f"the {who}'s tokenizer is not a fast tokenizer: QA distillation needs its offsets")
    # position 0 must be a real token of every window (the no-answer position): pad on the right
    pair.student_tok.padding_side = pair.student_tok.init_kwargs["padding_side"] = "right"
    pair.teacher_tok.padding_side = "right"
    max_len = min(data_args.max_seq_length, getattr(pair.student.config, "max_position_embeddings", None) or 10**9)
    teacher_len = min(data_args.max_seq_length, getattr(pair.teacher.config, "max_position_embeddings", None) or 10**9)
    qa.check_window_budget(pair.student_tok, max_len, stride)
    qa.check_window_budget(pair.teacher_tok, teacher_len, stride)

    # ---- 3. data and windows (the QA recipe's loading, checks and by-article split)
    try:
        dd, split_note = qa.load_from_args(data_args, seed=training_args.seed)
    except NLPTransferError as e:  # e.g. a classification csv given to a QA teacher: say why QA data is expected
        if "column" not in str(e) and "answers" not in str(e):
            raise
        raise NLPTransferError(
            f"the teacher {dist_args.teacher_name_or_path} is a question-answering model, so distill reads "
            f"SQuAD-format data (context, question, answers): {e}"
        ) from None
    with training_args.main_process_first(desc="windowing"):
        feats = {
            split: qa.prepare_features(ds, pair.student_tok, max_seq_length=max_len, doc_stride=stride, split=split)
            for split, ds in dd.items()
        }

    # ---- 4. teacher span scores: once per (teacher, data, windows), cached; mapped onto the student's windows
    windows = {}
    with distillation.teacher_pass(pair, training_args, desc="teacher spans"):
        for split, ds in dd.items():
            questions, contexts = list(ds["question"]), list(ds["context"])
            key = {
                "task": "qa", "data": distillation.data_fingerprint(questions, contexts), "rows": len(questions),
                "max_seq_length": teacher_len, "doc_stride": stride, "tokenizer": type(pair.teacher_tok).__name__,
            }  # fmt: skip
            compute = functools.partial(
                distillation.qa_teacher_windows, pair.teacher, pair.teacher_tok, questions, contexts,
                max_seq_length=teacher_len, doc_stride=stride, batch_size=dist_args.teacher_batch_size,
                desc=f"teacher spans ({split})",
            )  # fmt: skip
            windows[split] = distillation.teacher_outputs(pair, dist_args, split, key, compute)
    settings = qa.postprocess_settings(data_args)

    def teacher_score(split):
        answers = distillation.qa_teacher_answers(dd[split], windows[split], **settings)
        return squad_metrics(
            {k: v["text"] for k, v in answers.items()}, qa.references(dd[split]), version_2_with_negative=v2
        )

    teacher_metrics = distillation.teacher_metrics(dd, teacher_score, fmt="{:.2f}")

    def to_inputs(f, split):  # the student's windows with the teacher's scores mapped onto them
        t_start, t_end = distillation.map_qa_targets(windows[split], list(f["example_idx"]), list(f["offsets"]))
        f = f.add_column("teacher_start", t_start).add_column("teacher_end", t_end)
        return f.remove_columns(["example_idx", "offsets"] + (["length"] if split != "train" else []))

    inputs = {split: to_inputs(f, split) for split, f in feats.items()}

    # ---- 5. student strategy, Trainer, train and evaluate each held-out split (its answers kept)
    student = strategies.apply(pair.student, dist_args, task_type=TASK.peft_task_type)
    metric_args = qa.postprocess_settings(data_args, pair.student_tok)
    answers: dict[str, dict] = {s: {} for s in dd}

    def compute_metrics(split):
        return qa.make_compute_metrics(dd[split], feats[split], **metric_args, store=answers[split])

    trainer = distillation.make_trainer(
        pair, dist_args, job, student, train_dataset=inputs["train"], eval_dataset=job.eval_split(inputs),
        compute_metrics=compute_metrics("validation") if "validation" in dd else None,
    )  # fmt: skip
    metrics = run.train(
        job, trainer, inputs, before_evaluate=lambda split: setattr(trainer, "compute_metrics", compute_metrics(split))
    )

    # ---- 6. finish: the QA folder (own pipeline), round trip checked and recorded, compression report, card
    examples, expected = qa.round_trip_examples(
        trainer, dd, answers, pair.student_tok, max_seq_length=max_len, doc_stride=stride, metric_args=metric_args,
        to_inputs=lambda f: to_inputs(f, "train"),
    )  # fmt: skip
    compression = distillation.Compression(
        pair, dist_args, dd, metrics, teacher_metrics, task="extractive QA", keys=("exact_match", "f1"),
        main_key="f1", lengths=(teacher_len, max_len), columns=("question", "context"), rows=(len(dd["train"]), 0),
    )  # fmt: skip
    export = tasks.Export(
        pair.student_tok, max_len, examples, expected=expected, settings=qa.pipeline_settings(data_args, max_len),
        files=qa.prediction_files(answers), **distillation.export_options(pair, dist_args),
    )  # fmt: skip
    card = distillation.card_info(
        pair, dist_args, qa.dataset_label(data_args), {"training questions": len(dd["train"])}
    )
    card.split_note = split_note
    metrics = run.finish(job, trainer, metrics, export=export, card=card, extras=compression)
    if compression.report is not None:  # rank 0
        distillation.log_summary(compression.report, job.output_dir)
    return metrics
