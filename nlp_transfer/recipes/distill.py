"""Distil a fine-tuned teacher classifier into a smaller, faster student.

Launch commands::

    # 1. a teacher (any classify/sentiment output folder, full or LoRA), 2. a 3-layer student cut from it
    python -m nlp_transfer.recipes.classify --output_dir teacher/
    python -m nlp_transfer.recipes.distill --teacher_name_or_path teacher/ --output_dir student/

    # choose the kept layers, add unlabelled text (soft labels only), train the student with LoRA
    python -m nlp_transfer.recipes.distill --teacher_name_or_path teacher/ --student_layers 0,3,5 \\
        --train_file train.csv --validation_file dev.csv --unlabeled_file more_text.txt --output_dir student/

    # a different pretrained student (its own tokenizer is fine: logits are distilled per example)
    nlp-transfer distill --teacher_name_or_path teacher/ --student_name_or_path <folder or hub id> ...

    # then: pipeline("text-classification", model="student/", truncation=True)

Loss: alpha * KD(T) + (1 - alpha) * CE, plus optional --hidden_weight / --attention_weight terms (see
nlp_transfer/distillation/losses.py). Defaults: T=2, alpha=0.5, student = every other teacher layer, no
intermediate losses. Teacher logits are computed once and cached ($NLP_TRANSFER_CACHE/teacher_logits), so a second
student or a resumed run reuses them. Data options are classify's; with no data the recipe uses classify's default
(builtin:bbc_news with the same seeded split), so the two default commands above pair up.
A QA teacher (an `nlp-transfer qa` folder or any *ForQuestionAnswering checkpoint) switches to the QA branch,
`nlp_transfer/recipes/distill_qa.py`, with the QA recipe's data options.
Outputs: classify's pipeline-ready folder plus compression_report.json (size, CPU speed and metrics of teacher and
student, measured in the same run) and a compression table in the model card.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

import numpy as np
from datasets import Dataset, Value, concatenate_datasets

from nlp_transfer import data, distillation, modeling, run, strategies, tasks
from nlp_transfer.cli import run_main
from nlp_transfer.config import (
    TRAINING_DEFAULTS,
    DataArguments,
    DistillArguments,
    TransferTrainingArguments,
    peek_option,
)
from nlp_transfer.distillation.setup import PROBLEM
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import compute_from_logits, make_compute_metrics
from nlp_transfer.tasks.classification import round_trip_inputs

logger = logging.getLogger("nlp_transfer.recipes.distill")

DEFAULTS = {**TRAINING_DEFAULTS, "remove_unused_columns": False}  # the collator picks the columns it needs
TASK = tasks.CLASSIFICATION


def _qa_teacher(argv: list[str]) -> bool:
    """Whether --teacher_name_or_path (command line or --config file) is a question-answering checkpoint: the QA
    branch (`distill_qa`) then takes over with the QA data options."""
    teacher = peek_option(argv, "teacher_name_or_path")
    try:
        task = tasks.task_of_checkpoint(modeling.resolve_model_path(str(teacher))) if teacher else None
    except NLPTransferError:
        return False  # the classification path reports the problem with its usual message
    return task == tasks.QUESTION_ANSWERING.name


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" not in argv and "--help" not in argv and _qa_teacher(argv):
        from nlp_transfer.recipes import distill_qa

        return distill_qa.main(argv)
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "distill", argv, (DistillArguments, DataArguments, TransferTrainingArguments),
        defaults=DEFAULTS, doc=__doc__, task=TASK,
    )  # fmt: skip
    dist_args, data_args, training_args = job.args
    if data_args.problem_type not in ("auto", PROBLEM):
        raise NLPTransferError("distillation supports single-label classification only (--problem_type)")
    if dist_args.unlabeled_file and not os.path.isfile(dist_args.unlabeled_file):
        raise NLPTransferError(f"--unlabeled_file not found: {dist_args.unlabeled_file} (check the path)")

    # ---- 2. teacher (LoRA adapters merged in), student cut from it or pretrained (its own label order if named)
    pair = distillation.load_pair(dist_args)
    teacher_names = distillation.label_names(pair.teacher.config)
    student_names = distillation.label_names(pair.student.config)
    perm = distillation.align_labels(student_names, teacher_names, "the student")  # teacher logits -> student order

    # ---- 3. data: classify's loading and checks, labels mapped onto the student's label order by name
    dd, labels = data.classification_from_args(data.load_from_args(data_args), data_args, seed=training_args.seed)
    if labels.problem_type != PROBLEM:
        raise NLPTransferError(
            f"the data is {labels.problem_type.replace('_', ' ')}; distillation supports single-label "
            "classification only"
        )
    to_student = distillation.align_labels(labels.names, student_names, "the data")
    for split in list(dd):
        dd[split] = (
            dd[split]
            .cast_column("label", Value("int64"))
            .map(lambda b: {"label": [to_student[v] for v in b["label"]]}, batched=True, desc=f"labels {split}")
        )
    n_labelled = len(dd["train"])
    if dist_args.unlabeled_file:
        if "text_pair" in dd["train"].column_names:
            raise NLPTransferError("--unlabeled_file is for single-text tasks; sentence pairs need labelled pairs")
        extra = data.read_texts(dist_args.unlabeled_file, data_args.text_column, flag="--unlabeled_file")
        unlabelled = Dataset.from_dict({"text": extra, "label": [-100] * len(extra)}, features=dd["train"].features)
        dd["train"] = concatenate_datasets([dd["train"], unlabelled])
        logger.info("unlabelled: %d texts from %s (teacher soft labels only)", len(extra), dist_args.unlabeled_file)

    # ---- 4. teacher logits, once per (teacher, data, preprocessing), cached on disk
    max_len = data_args.max_seq_length
    teacher_len = min(max_len, getattr(pair.teacher.config, "max_position_embeddings", None) or max_len)
    student_len = min(max_len, getattr(pair.student.config, "max_position_embeddings", None) or max_len)
    tok, logits = pair.teacher_tok, {}
    with distillation.teacher_pass(pair, training_args, desc="teacher logits"):
        for split, ds in dd.items():
            if split == "train" and pair.live:
                continue  # computed live, with hidden states, at every step
            texts = list(ds["text"])
            pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
            key = {
                "data": distillation.data_fingerprint(texts, pairs), "rows": len(texts), "max_seq_length": teacher_len,
                "tokenizer": type(tok).__name__, "truncation_side": tok.truncation_side,
            }  # fmt: skip
            compute = functools.partial(
                distillation.teacher_logits, pair.teacher, tok, texts, pairs, max_seq_length=teacher_len,
                batch_size=dist_args.teacher_batch_size, desc=f"teacher logits ({split})",
            )  # fmt: skip
            logits[split] = distillation.teacher_outputs(pair, dist_args, split, key, compute)[:, perm]
    teacher_metrics = distillation.teacher_metrics(
        logits, lambda split: compute_from_logits(logits[split], np.asarray(dd[split]["label"]), PROBLEM)
    )

    # ---- 5. student strategy, tokenise, Trainer, train and evaluate
    student = strategies.apply(pair.student, dist_args, task_type=TASK.peft_task_type)
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = data.tokenize_classification(dd, pair.student_tok, max_seq_length=student_len)
    for split, arr in logits.items():
        tokenized[split] = tokenized[split].add_column("teacher_logits", arr.tolist())
    trainer = distillation.make_trainer(
        pair, dist_args, job, student, train_dataset=tokenized["train"], eval_dataset=job.eval_split(tokenized),
        compute_metrics=make_compute_metrics(PROBLEM),
    )  # fmt: skip
    metrics = run.train(job, trainer, tokenized)

    # ---- 6. finish: student folder, round trip checked and recorded, compression report, card, metrics.json last
    n_unlabelled = len(dd["train"]) - n_labelled
    compression = distillation.Compression(
        pair, dist_args, dd, metrics, teacher_metrics, task="classification",
        keys=("accuracy", "f1", "f1_macro", "mcc"), main_key="accuracy", lengths=(teacher_len, student_len),
        columns=("text", None), rows=(n_labelled, n_unlabelled),
    )  # fmt: skip
    export = tasks.Export(
        pair.student_tok, student_len, round_trip_inputs(dd), label2id={n: i for i, n in enumerate(student_names)},
        **distillation.export_options(pair, dist_args),
    )  # fmt: skip
    card = distillation.card_info(
        pair, dist_args, data.dataset_label(data_args),
        {"labelled training examples": n_labelled, "unlabelled training examples": n_unlabelled},
        label_names=student_names,
    )  # fmt: skip
    metrics = run.finish(job, trainer, metrics, export=export, card=card, extras=compression)
    if compression.report is not None:  # rank 0
        distillation.log_summary(compression.report, job.output_dir)
    return metrics


if __name__ == "__main__":
    sys.exit(run_main(main))
