"""Fine-tune a pretrained encoder or decoder for extractive question answering (SQuAD v1.1 / v2.0 format).

Launch commands::

    # SQuAD v1.1 low-resource split: 40 of the 48 dev-set articles train, 8 held-out articles evaluate (seeded).
    # Reads ../shared/datasets/squad_v1.1/dev-v1.1.json.gz (kept beside the repo); ~20 min on 2 CPU cores
    python -m nlp_transfer.recipes.qa --config recipes/qa/minilm_squad_v1_split_full.yaml

    # the same split with LoRA, or a 40-question smoke run (~1 min)
    python -m nlp_transfer.recipes.qa --config recipes/qa/minilm_squad_v1_split_lora.yaml
    python -m nlp_transfer.recipes.qa --config recipes/qa/minilm_squad_v1_split_smoke.yaml --output_dir /tmp/qa

    # your data and model (nested SQuAD json, or flat json/jsonl/csv/parquet rows)
    python -m nlp_transfer.recipes.qa --model_name_or_path <folder or hub id> \\
        --train_file train.json --validation_file dev.json --strategy lora --output_dir out/

    # SQuAD v2 from the Hub (needs a network): unanswerable questions, no-answer threshold
    python -m nlp_transfer.recipes.qa --dataset_name squad_v2 --version_2_with_negative true --output_dir out/

    # the same through the console script
    nlp-transfer qa --help

    # then, with plain transformers (5.x dropped its QA pipeline; the folder carries its own, qa_pipeline.py):
    #   pipeline("question-answering", model="out/", trust_remote_code=True)
    # or, with nlp_transfer installed and no code run from the folder:
    #   pipeline("question-answering", model="out/", pipeline_class=nlp_transfer.qa_pipeline.ExtractiveQAPipeline)

Data: a nested SQuAD json file (``data/paragraphs/qas``, optionally ``.json.gz``), flat rows (``id, title, context,
question, answers{text, answer_start}``; other column names with ``--*_column``), or a Hub id. Without a validation
split, ``--validation_split`` holds out that fraction of the *articles* (titles), seeded: no article has questions on
both sides. Such a split of one file is a low-resource split, and the model card says so.
``--max_train_samples``/``--max_eval_samples`` count questions (seeded random subset, taken after the split).

Long contexts become windows of ``--max_seq_length`` tokens overlapping by ``--doc_stride``; the answer is the best
span over all windows (``--n_best_size`` starts/ends per window, at most ``--max_answer_length`` tokens). With
``--version_2_with_negative`` the model may answer "" when the null score beats the best span by more than
``--null_score_diff_threshold``. Metrics: SQuAD exact match and F1 (official normalisation; HasAns/NoAns for v2).

Bad input (decisions in nlp_transfer/qa/data.py and features.py): no context, empty questions, duplicate ids,
malformed json and (v1) questions without an answer are errors; an answer_start that misses its text is repaired
when the text is within 100 characters, else left out of training (warning with counts); training questions whose
answer no window holds whole are skipped (warning with counts); over-long questions are clipped (warning).

Decoders: any architecture with a transformers QA head (GPT-2, GPT-Neo, Llama, Mistral, Qwen2/3, ...); windows are
right-padded and position 0 (BOS, or the first question token) plays the encoders' [CLS] as the no-answer position.

Strategies: full | frozen | partial | lora (the span head ``qa_outputs`` trains in full and is saved with the
adapter). Learning rate, when not set: 5e-5 for full and partial, 3e-2 for frozen, 1e-3 for lora.
Outputs (see docs/ARCHITECTURE.md): weights or adapter + head, tokenizer, config (with the pipeline registration
and its settings), qa_pipeline.py, predictions.json ({id: answer}), metrics.json, run_config.yaml,
training_curves.png, README.md model card, checkpoint-*/ for resuming.
"""

from __future__ import annotations

import logging
import sys

from transformers import DataCollatorWithPadding, Trainer

from nlp_transfer import modeling, qa, run, strategies, tasks
from nlp_transfer.artifacts.card import CardInfo
from nlp_transfer.cli import run_main
from nlp_transfer.config import TRAINING_DEFAULTS, ModelArguments, QADataArguments, TransferTrainingArguments
from nlp_transfer.errors import NLPTransferError

logger = logging.getLogger("nlp_transfer.recipes.qa")
TASK = tasks.QUESTION_ANSWERING


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "qa", argv, (ModelArguments, QADataArguments, TransferTrainingArguments),
        defaults=TRAINING_DEFAULTS, doc=__doc__, task=TASK,
    )  # fmt: skip
    model_args, data_args, training_args = job.args

    # ---- 2. data: load, check/repair, by-article held-out split, subsets
    dd, split_note = qa.load_from_args(data_args, seed=training_args.seed)

    # ---- 3. task model + tokenizer + transfer strategy
    tokenizer = modeling.tokenizer_for(model_args, job.model_path)
    if not tokenizer.is_fast:
        raise NLPTransferError(
            f"the tokenizer of {model_args.tokenizer_name or model_args.model_name_or_path} is not a fast (Rust) "
            "tokenizer: extractive QA needs its character offsets; pick a model with a tokenizer.json"
        )
    # position 0 must be a real token in every window (the no-answer position); init_kwargs makes the saved
    # tokenizer keep it (the attribute alone is not written to tokenizer_config.json)
    tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = "right"
    model = qa.load_qa_model(
        job.model_path,
        pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )
    max_len = modeling.fit_max_length(data_args.max_seq_length, model.config)
    qa.check_window_budget(tokenizer, max_seq_length=max_len, doc_stride=data_args.doc_stride)
    model = strategies.apply(model, model_args, task_type=TASK.peft_task_type)

    # ---- 4. windows (cached by `datasets`), Trainer, train and evaluate
    with training_args.main_process_first(desc="windowing"):
        feats = {
            split: qa.prepare_features(
                ds, tokenizer, max_seq_length=max_len, doc_stride=data_args.doc_stride, split=split,
                pad_to_max_length=data_args.pad_to_max_length,
            )
            for split, ds in dd.items()
        }  # fmt: skip
    inputs = qa.model_inputs(feats)
    post = qa.postprocess_settings(data_args, tokenizer)
    answers: dict[str, dict] = {s: {} for s in dd}  # the latest post-processed answers per split

    def point_metrics_at(split):
        trainer.compute_metrics = qa.make_compute_metrics(dd[split], feats[split], **post, store=answers[split])

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=inputs["train"],
        eval_dataset=job.eval_split(inputs),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    if "validation" in dd:
        point_metrics_at("validation")
    metrics = run.train(job, trainer, inputs, before_evaluate=point_metrics_at)

    # ---- 5. finish: the held-out questions the recipe answered (or a few training ones) must come back the same
    examples, expected = qa.round_trip_examples(
        trainer, dd, answers, tokenizer, max_seq_length=max_len, doc_stride=data_args.doc_stride, metric_args=post
    )
    return run.finish(
        job,
        trainer,
        metrics,
        export=tasks.Export(
            tokenizer,
            max_len,
            examples,
            expected,
            settings=qa.pipeline_settings(data_args, max_len),
            files=qa.prediction_files(answers),
        ),  # fmt: skip
        card=CardInfo(
            qa.dataset_label(data_args),
            {
                "training questions": len(dd["train"]),
                "training windows": len(feats["train"]),
                "SQuAD version": "2.0 (unanswerable questions allowed)"
                if data_args.version_2_with_negative
                else "1.1",
            },
            split_note=split_note,
        ),
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
