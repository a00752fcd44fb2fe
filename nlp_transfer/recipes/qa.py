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

Bad input (decisions in nlp_transfer/qa.py): no context, empty questions, duplicate ids, malformed json and (v1)
questions without an answer are errors; an answer_start that misses its text is repaired when the text is within 100
characters, else left out of training (warning with counts); training questions whose answer no window holds whole
are skipped (warning with counts); over-long questions are clipped (warning).

Decoders: any architecture with a transformers QA head (GPT-2, GPT-Neo, Llama, Mistral, Qwen2/3, ...); windows are
right-padded and position 0 (BOS, or the first question token) plays the encoders' [CLS] as the no-answer position.

Strategies: full | frozen | partial | lora (the span head ``qa_outputs`` trains in full and is saved with the
adapter). Learning rate, when not set: 5e-5 for full and partial, 3e-2 for frozen, 1e-3 for lora.
Outputs (see nlp_transfer/export.py): weights or adapter + head, tokenizer, config (with the pipeline registration
and its settings), qa_pipeline.py, predictions.json ({id: answer}), metrics.json, run_config.yaml,
training_curves.png, README.md model card, checkpoint-*/ for resuming.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import torch
from transformers import DataCollatorWithPadding, Trainer, set_seed

from nlp_transfer import export, hub, interrupt, modeling, qa, report
from nlp_transfer.cli import run, setup_logging
from nlp_transfer.config import ModelArguments, QADataArguments, TransferTrainingArguments, parse_args, to_serialisable
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.qa_pipeline import question_budget

logger = logging.getLogger("nlp_transfer.recipes.qa")

# Recipe defaults on top of the dataclass defaults (a --config YAML and CLI flags override them).
DEFAULTS = {
    "num_train_epochs": 2,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "weight_decay": 0.01,
    "warmup_steps": 0.1,  # a float < 1 is a fraction of the total steps
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "logging_steps": 10,
    "logging_first_step": True,
    "report_to": "none",
    # windows of similar length share a batch, so dynamic padding pads little (short paragraphs, last windows)
    "train_sampling_strategy": "group_by_length",
    "seed": 42,
}
# Same reasoning as the classify recipe (docs/DESIGN_NOTES.md): frozen trains a linear head on the backbone's token
# features, which wants a large step; LoRA on short CPU budgets wants more than the LoRA paper's long-run 4e-4.
LEARNING_RATE = {"full": 5e-5, "partial": 5e-5, "frozen": 3e-2, "lora": 1e-3}
N_ROUND_TRIP = 8  # held-out questions the saved folder must answer exactly as the recipe did
LABELS = ["start_positions", "end_positions"]


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration: defaults < --config YAML < CLI
    (model_args, data_args, training_args), explicit = parse_args(
        (ModelArguments, QADataArguments, TransferTrainingArguments),
        argv,
        defaults=DEFAULTS,
        description=__doc__,
        prog="python -m nlp_transfer.recipes.qa",
    )
    setup_logging(training_args.should_log)
    if "learning_rate" not in explicit:
        training_args.learning_rate = LEARNING_RATE[model_args.strategy]
    if "dataloader_pin_memory" not in explicit and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning is for host-to-GPU copies; on CPU it only warns
    if "label_names" not in explicit:
        training_args.label_names = LABELS
    # evaluation hands compute_metrics the input ids, to match logits back to windows (qa.feature_order)
    training_args.include_for_metrics = sorted(set(training_args.include_for_metrics or []) | {"inputs"})
    if "output_dir" not in explicit:
        training_args.output_dir = os.path.join("outputs", "qa-" + time.strftime("%Y%m%d-%H%M%S"))
    output_dir = training_args.output_dir
    for name, value, low in (
        ("max_seq_length", data_args.max_seq_length, 8),
        ("doc_stride", data_args.doc_stride, 0),
        ("max_answer_length", data_args.max_answer_length, 1),
        ("n_best_size", data_args.n_best_size, 1),
    ):
        if value < low:
            raise NLPTransferError(f"--{name} must be at least {low}, got {value}")
    push = hub.plan_push(training_args)  # repo id and token checked before any training
    resume = export.check_output_dir(
        output_dir,
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    model_path = modeling.resolve_model_path(model_args.model_name_or_path)  # fail fast on a mistyped path
    set_seed(training_args.seed)
    v2 = data_args.version_2_with_negative

    # ---- 2. data: load, check/repair, by-article held-out split, subsets
    raw = qa.load_qa_datasets(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        test_file=data_args.test_file,
        id_column=data_args.id_column,
        title_column=data_args.title_column,
        context_column=data_args.context_column,
        question_column=data_args.question_column,
        answer_column=data_args.answer_column,
    )
    if "train" not in raw:
        raise NLPTransferError(
            f"no train split in the dataset (splits: {', '.join(raw) or 'none'}): pass --train_file"
        )
    dd = {split: qa.check_examples(ds, split=split, version_2_with_negative=v2) for split, ds in raw.items()}
    dataset_label = os.path.basename(data_args.train_file) if data_args.train_file else data_args.dataset_name
    split_note = None
    if "validation" not in dd and data_args.validation_split > 0:
        dd["train"], dd["validation"], held = qa.split_by_article(
            dd["train"], fraction=data_args.validation_split, seed=training_args.seed
        )
        n_articles = len(held) + len(set(qa.article_keys(dd["train"])))
        logger.info("held-out articles: %s", qa.articles_summary(held))
        split_note = (
            f"**Evaluation split:** {len(held)} of the {n_articles} articles of `{dataset_label}` held out whole "
            f"(seeded by-article split, seed {training_args.seed}; {len(dd['validation'])} questions): "
            f"{qa.articles_summary(held)}. This is a low-resource split of one file, not an official benchmark "
            "split: do not compare these figures with published results on the official evaluation set."
        )
    for split, n, flag in (
        ("train", data_args.max_train_samples, "--max_train_samples"),
        ("validation", data_args.max_eval_samples, "--max_eval_samples"),
        ("test", data_args.max_test_samples, "--max_test_samples"),
    ):
        if split in dd:
            dd[split] = qa.subsample(dd[split], n, seed=training_args.seed, flag=flag)
    logger.info("questions: %s", ", ".join(f"{s} {len(d)}" for s, d in dd.items()))
    if "validation" not in dd and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"

    # ---- 3. model + tokenizer + transfer strategy
    tokenizer = modeling.load_tokenizer(
        modeling.resolve_model_path(model_args.tokenizer_name) if model_args.tokenizer_name else model_path,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )
    if not tokenizer.is_fast:
        raise NLPTransferError(
            f"the tokenizer of {model_args.tokenizer_name or model_args.model_name_or_path} is not a fast (Rust) "
            "tokenizer: extractive QA needs its character offsets; pick a model with a tokenizer.json"
        )
    # position 0 must be a real token in every window (the no-answer position); init_kwargs makes the saved
    # tokenizer keep it (the attribute alone is not written to tokenizer_config.json)
    tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = "right"
    model = qa.load_qa_model(
        model_path,
        pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )
    max_len = data_args.max_seq_length
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and max_len > limit:
        logger.warning("max_seq_length %d exceeds the model's %d positions; using %d", max_len, limit, limit)
        max_len = limit
    if question_budget(tokenizer, max_seq_len=max_len, doc_stride=data_args.doc_stride) < 8:
        room = max_len - tokenizer.num_special_tokens_to_add(pair=True) - 9
        raise NLPTransferError(
            f"--doc_stride {data_args.doc_stride} leaves too little room in {max_len}-token windows: the overlap must "
            f"be smaller than the window's context part; use --doc_stride {max(0, room)} or less (a quarter to a "
            "third of --max_seq_length is usual)"
        )
    model = modeling.apply_strategy(
        model,
        strategy=model_args.strategy,
        num_frozen_layers=model_args.num_frozen_layers,
        lora_r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        lora_target_modules=model_args.lora_target_modules,
        task_type="QUESTION_ANS",
    )
    trainable, total = modeling.count_parameters(model)

    # ---- 4. windows (cached by `datasets`), then train
    with training_args.main_process_first(desc="windowing"):
        feats = {
            split: qa.prepare_features(
                ds,
                tokenizer,
                max_seq_length=max_len,
                doc_stride=data_args.doc_stride,
                split=split,
                pad_to_max_length=data_args.pad_to_max_length,
            )
            for split, ds in dd.items()
        }
    inputs = {
        s: f.remove_columns(["example_idx", "offsets"] + (["length"] if s != "train" else []))
        for s, f in feats.items()
    }
    settings = {
        "n_best_size": data_args.n_best_size,
        "max_answer_length": data_args.max_answer_length,
        "version_2_with_negative": v2,
        "null_score_diff_threshold": data_args.null_score_diff_threshold,
    }
    metric_args = {**settings, "pad_token_id": tokenizer.pad_token_id}
    answers: dict[str, dict] = {s: {} for s in dd}  # the latest post-processed answers per split
    if training_args.overwrite_output_dir and resume is None and training_args.should_save:
        export.clear_output_dir(output_dir)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=inputs["train"],
        eval_dataset=inputs.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None),
        processing_class=tokenizer,
        compute_metrics=qa.make_compute_metrics(
            dd["validation"], feats["validation"], **metric_args, store=answers["validation"]
        )
        if "validation" in dd
        else None,
    )
    # these heads' losses are per-batch means that ignore num_items_in_batch; left True, Trainer multiplies the
    # loss by the number of processes under DDP (2x gradients and logged loss on 2 ranks, measured)
    trainer.model_accepts_loss_kwargs = False
    stop = interrupt.guard(trainer)  # SIGTERM: checkpoint, stop, exit 143 with how to resume
    train_result = trainer.train(resume_from_checkpoint=resume)
    interrupt.raise_if_stopped(stop, output_dir)
    metrics = {f"train_{k}" if not k.startswith("train_") else k: v for k, v in train_result.metrics.items()}
    metrics.update(trainable_params=trainable, total_params=total)
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in dd:
            trainer.compute_metrics = qa.make_compute_metrics(
                dd[split], feats[split], **metric_args, store=answers[split]
            )
            metrics.update(trainer.evaluate(inputs[split], metric_key_prefix=prefix))

    # ---- 5. export: stage, verify the pipeline round trip, then move into place
    export.prepare_export(trainer)  # every rank: ZeRO-3 shards gathered, autocast wrapper removed on rank 0
    if not trainer.is_world_process_zero():
        return metrics
    stage = export.staging_dir(output_dir)
    for split, name in (("validation", "predictions.json"), ("test", "test_predictions.json")):
        if answers.get(split):
            with open(os.path.join(stage, name), "w", encoding="utf-8") as f:
                json.dump({k: v["text"] for k, v in answers[split].items()}, f, indent=1, ensure_ascii=False)
                f.write("\n")
    qa_settings = {
        "max_seq_len": max_len,
        "doc_stride": data_args.doc_stride,
        "max_answer_len": data_args.max_answer_length,
        "n_best_size": data_args.n_best_size,
        "handle_impossible_answer": v2,
        "null_score_diff_threshold": data_args.null_score_diff_threshold,
    }
    merged = model_args.merge_lora and model_args.strategy == "lora"
    export.save_qa_model(
        trainer.model,
        tokenizer,
        stage,
        base_model_path=model_path,
        base_model_name=model_args.model_name_or_path,
        max_seq_length=max_len,
        qa_settings=qa_settings,
        save_base_model=model_args.save_base_model,
        merge_lora=merged,
        trust_remote_code=model_args.trust_remote_code,
    )
    # the held-out questions the recipe answered (or, with no held-out split, a few training questions)
    check_split = next((s for s in ("validation", "test") if answers.get(s)), "train")
    rows = dd[check_split].select(range(min(N_ROUND_TRIP, len(dd[check_split]))))
    expected = answers.get(check_split) or {}
    if check_split == "train":
        few = qa.prepare_features(
            rows, tokenizer, max_seq_length=max_len, doc_stride=data_args.doc_stride, split="check"
        )
        trainer.compute_metrics = qa.make_compute_metrics(rows, few, **metric_args, store=expected)
        trainer.evaluate(few.remove_columns(["example_idx", "offsets", "length"]), metric_key_prefix="check")
    examples = [{"id": r["id"], "question": r["question"], "context": r["context"]} for r in rows]
    # the expected answers come from the evaluation pass, which ran under bf16/fp16 autocast when asked; the reloaded
    # folder runs in fp32, so scores may differ by the half-precision rounding (2e-4 on a tiny model), not more
    atol = 2e-2 if training_args.bf16 or training_args.fp16 else 1e-4
    checks = {}
    if model_args.strategy != "lora" or model_args.save_base_model:
        checks["pipeline"] = export.verify_qa_pipeline(stage, examples, expected, atol=atol)
    else:  # adapter-only folder: plain pipeline() can't load it by design; check the PEFT way
        checks["peft"] = export.verify_qa_adapter(
            stage,
            examples,
            expected,
            base_model_path=model_path,
            trust_remote_code=model_args.trust_remote_code,
            atol=atol,
        )
    if merged:
        checks["pipeline_merged"] = export.verify_qa_pipeline(
            os.path.join(stage, "merged"), examples, expected, atol=atol
        )
    for name, c in checks.items():
        logger.info(
            "round trip (%s): %d held-out questions answered as the recipe did, max |score diff| %.1e",
            name,
            c["examples"],
            c["max_abs_score_diff"],
        )
        metrics[f"roundtrip_{name}_max_abs_score_diff"] = c["max_abs_score_diff"]
    run_config = to_serialisable(model_args, data_args, training_args)
    export.write_run_config(os.path.join(stage, "run_config.yaml"), run_config)
    has_curves = report.plot_training_curves(
        trainer.state.log_history, os.path.join(stage, "training_curves.png"), main_metric="f1"
    )
    export.write_qa_model_card(
        os.path.join(stage, "README.md"),
        base_model=model_args.model_name_or_path,
        license=training_args.license,
        strategy=model_args.strategy,
        library_name="peft" if model_args.strategy == "lora" else "transformers",
        dataset_name=dataset_label,
        metrics=metrics,
        hyperparameters={
            "learning_rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "training questions": len(dd["train"]),
            "training windows": len(feats["train"]),
            "SQuAD version": "2.0 (unanswerable questions allowed)" if v2 else "1.1",
        },
        qa_settings=qa_settings,
        lora={
            "r": model_args.lora_r,
            "alpha": model_args.lora_alpha,
            "dropout": model_args.lora_dropout,
            "targets": model_args.lora_target_modules or modeling.default_lora_targets(trainer.model.get_base_model()),
        }
        if model_args.strategy == "lora"
        else None,
        trainable_params=trainable,
        total_params=total,
        has_curves=has_curves,
        merged=merged,
        split_note=split_note,
    )
    export.verify_recorded(stage)  # the check every push repeats, from the folder alone
    report.write_metrics(os.path.join(stage, export.FINISHED_MARKER), metrics)
    export.publish(stage, output_dir)
    if push:
        metrics["hub_commit_url"] = hub.push_folder(
            output_dir, push.repo_id, private=push.private, revision=push.revision
        )

    headline = {
        k: v
        for k, v in metrics.items()
        if k.startswith(("eval_", "test_")) and k.split("_", 1)[1] in ("exact_match", "f1", "HasAns_f1", "NoAns_f1")
    }
    logger.info("held-out metrics: %s", ", ".join(f"{k}={v:.2f}" for k, v in headline.items()))
    logger.info(
        "trained in %.0f s; output written to %s", metrics.get("train_runtime", 0), os.path.abspath(output_dir)
    )
    metrics["output_dir"] = output_dir
    return metrics


if __name__ == "__main__":
    sys.exit(run(main))
