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
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time

import torch
from transformers import set_seed

from nlp_transfer import assets, distillation, export, hub, interrupt, modeling, qa, report
from nlp_transfer.cli import setup_logging
from nlp_transfer.config import (
    DistillArguments,
    QADataArguments,
    TransferTrainingArguments,
    parse_args,
    to_serialisable,
)
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import squad_metrics
from nlp_transfer.recipes.qa import DEFAULTS as QA_DEFAULTS
from nlp_transfer.recipes.qa import LABELS, LEARNING_RATE, N_ROUND_TRIP

logger = logging.getLogger("nlp_transfer.recipes.distill")

DEFAULTS = {**QA_DEFAULTS, "remove_unused_columns": False}


def main(argv: list[str] | None) -> dict:
    # ---- 1. configuration: defaults < --config YAML < CLI
    (dist_args, data_args, training_args), explicit = parse_args(
        (DistillArguments, QADataArguments, TransferTrainingArguments),
        argv,
        defaults=DEFAULTS,
        description=__doc__,
        prog="python -m nlp_transfer.recipes.distill",
    )
    setup_logging(training_args.should_log)
    distillation.check_options(dist_args)
    if dist_args.unlabeled_file:
        raise NLPTransferError("--unlabeled_file is for classification; for QA give unlabelled questions as data")
    if "learning_rate" not in explicit:
        training_args.learning_rate = LEARNING_RATE[dist_args.strategy]
    if "dataloader_pin_memory" not in explicit and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
    if "label_names" not in explicit:
        training_args.label_names = LABELS
    training_args.include_for_metrics = sorted(set(training_args.include_for_metrics or []) | {"inputs"})
    if "output_dir" not in explicit:
        training_args.output_dir = os.path.join("outputs", "distill-qa-" + time.strftime("%Y%m%d-%H%M%S"))
    output_dir = training_args.output_dir
    push = hub.plan_push(training_args)  # repo id and token checked before any training
    resume = export.check_output_dir(
        output_dir,
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    live_teacher = dist_args.hidden_weight > 0 or dist_args.attention_weight > 0
    attn_impl = "eager" if dist_args.attention_weight > 0 else None
    student_path = (
        modeling.resolve_model_path(dist_args.student_name_or_path) if dist_args.student_name_or_path else None
    )
    set_seed(training_args.seed)

    # ---- 2. teacher, student
    teacher, teacher_info = distillation.load_teacher(
        dist_args.teacher_name_or_path,
        base_model=dist_args.teacher_base_model,
        trust_remote_code=dist_args.trust_remote_code,
        attn_implementation=attn_impl,
        task="qa",
    )
    teacher_dir = modeling.resolve_model_path(dist_args.teacher_name_or_path)
    teacher_tok = modeling.load_tokenizer(teacher_dir, trust_remote_code=dist_args.trust_remote_code)
    n_teacher_layers = distillation.num_hidden_layers(teacher.config)
    kept = None
    if student_path is None:
        kept = distillation.parse_layers(dist_args.student_layers, n_teacher_layers)
        student = distillation.student_from_teacher(teacher, kept)
        student_tok = teacher_tok
        student_label = f"{dist_args.teacher_name_or_path} (layers {','.join(map(str, kept))})"
    else:
        if dist_args.student_layers:
            raise NLPTransferError(
                "--student_layers cuts a student from the teacher; drop it or --student_name_or_path"
            )
        student_tok = modeling.load_tokenizer(student_path, trust_remote_code=dist_args.trust_remote_code)
        student = qa.load_qa_model(
            student_path, pad_token_id=student_tok.pad_token_id, trust_remote_code=dist_args.trust_remote_code
        )
        if attn_impl:
            student.set_attn_implementation(attn_impl)
        student_label = dist_args.student_name_or_path
    for tok, who in ((teacher_tok, "teacher"), (student_tok, "student")):
        if not tok.is_fast:
            raise NLPTransferError(f"the {who}'s tokenizer is not a fast tokenizer: QA distillation needs its offsets")
    # position 0 must be a real token of every window (the no-answer position): pad on the right
    student_tok.padding_side = student_tok.init_kwargs["padding_side"] = "right"
    teacher_tok.padding_side = "right"
    same_tokenizer = distillation.check_pairing(dist_args, teacher, student, teacher_tok, student_tok, kept)
    layer_map = distillation.layer_pairs(distillation.num_hidden_layers(student.config), n_teacher_layers, kept)

    # ---- 3. data and windows (the QA recipe's loading, checks and by-article split)
    v2 = data_args.version_2_with_negative
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
    if "validation" not in dd and data_args.validation_split > 0:
        dd["train"], dd["validation"], held = qa.split_by_article(
            dd["train"], fraction=data_args.validation_split, seed=training_args.seed
        )
        logger.info("held-out articles: %s", qa.articles_summary(held))
    for split, n, flag in (
        ("train", data_args.max_train_samples, "--max_train_samples"),
        ("validation", data_args.max_eval_samples, "--max_eval_samples"),
        ("test", data_args.max_test_samples, "--max_test_samples"),
    ):
        if split in dd:
            dd[split] = qa.subsample(dd[split], n, seed=training_args.seed, flag=flag)
    if "validation" not in dd and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"
    max_len = min(data_args.max_seq_length, getattr(student.config, "max_position_embeddings", None) or 10**9)
    teacher_len = min(data_args.max_seq_length, getattr(teacher.config, "max_position_embeddings", None) or 10**9)
    with training_args.main_process_first(desc="windowing"):
        feats = {
            split: qa.prepare_features(
                ds, student_tok, max_seq_length=max_len, doc_stride=data_args.doc_stride, split=split
            )
            for split, ds in dd.items()
        }

    # ---- 4. teacher span scores: once per (teacher, data, windows), cached; mapped onto the student's windows
    cache_dir = dist_args.teacher_cache_dir or os.path.join(str(assets.cache_dir()), "teacher_logits")
    fingerprint = distillation.teacher_fingerprint(teacher, teacher_dir)
    teacher.to(training_args.device)
    teacher_windows = {}
    with training_args.main_process_first(desc="teacher spans"):
        for split, ds in dd.items():
            questions, contexts = list(ds["question"]), list(ds["context"])
            key = {
                "task": "qa",
                "teacher": fingerprint,
                "teacher_base": teacher_info["base"],
                "data": distillation.data_fingerprint(questions, contexts),
                "rows": len(questions),
                "max_seq_length": teacher_len,
                "doc_stride": data_args.doc_stride,
                "tokenizer": type(teacher_tok).__name__,
                "split": split,
            }
            teacher_windows[split], _ = distillation.cached_teacher_logits(
                cache_dir,
                key,
                functools.partial(
                    distillation.qa_teacher_windows,
                    teacher,
                    teacher_tok,
                    questions,
                    contexts,
                    max_seq_length=teacher_len,
                    doc_stride=data_args.doc_stride,
                    batch_size=dist_args.teacher_batch_size,
                    desc=f"teacher spans ({split})",
                ),
            )
    settings = {
        "n_best_size": data_args.n_best_size,
        "max_answer_length": data_args.max_answer_length,
        "version_2_with_negative": v2,
        "null_score_diff_threshold": data_args.null_score_diff_threshold,
    }
    if not live_teacher:
        teacher.to("cpu")  # its outputs are cached: free the accelerator's memory for the student
    teacher_metrics = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in dd:
            answers = distillation.qa_teacher_answers(dd[split], teacher_windows[split], **settings)
            m = squad_metrics(
                {k: v["text"] for k, v in answers.items()}, qa.references(dd[split]), version_2_with_negative=v2
            )
            teacher_metrics.update({f"{prefix}_{k}": v for k, v in m.items()})
    if teacher_metrics:
        logger.info("teacher: %s", ", ".join(f"{k}={v:.2f}" for k, v in teacher_metrics.items()))
    inputs = {}
    for split, f in feats.items():
        t_start, t_end = distillation.map_qa_targets(
            teacher_windows[split], list(f["example_idx"]), list(f["offsets"])
        )
        f = f.add_column("teacher_start", t_start).add_column("teacher_end", t_end)
        inputs[split] = f.remove_columns(["example_idx", "offsets"] + (["length"] if split != "train" else []))

    # ---- 5. train the student
    student = modeling.apply_strategy(
        student,
        strategy=dist_args.strategy,
        num_frozen_layers=dist_args.num_frozen_layers,
        lora_r=dist_args.lora_r,
        lora_alpha=dist_args.lora_alpha,
        lora_dropout=dist_args.lora_dropout,
        lora_target_modules=dist_args.lora_target_modules,
        task_type="QUESTION_ANS",
    )
    trainable, total = modeling.count_parameters(student)
    metric_args = {**settings, "pad_token_id": student_tok.pad_token_id}
    answers: dict[str, dict] = {s: {} for s in dd}
    if training_args.overwrite_output_dir and resume is None and training_args.should_save:
        export.clear_output_dir(output_dir)
    projections = None
    if dist_args.hidden_weight > 0:
        projections = distillation.make_projections(
            student.config.hidden_size, teacher.config.hidden_size, len(layer_map) + 1
        )
    trainer = distillation.DistillationTrainer(
        model=student,
        args=training_args,
        train_dataset=inputs["train"],
        eval_dataset=inputs.get("validation"),
        data_collator=distillation.DistillationCollator(student_tok),
        processing_class=student_tok,
        compute_metrics=qa.make_compute_metrics(
            dd["validation"], feats["validation"], **metric_args, store=answers["validation"]
        )
        if "validation" in dd
        else None,
        temperature=dist_args.temperature,
        alpha=dist_args.alpha,
        teacher=teacher if live_teacher else None,
        hidden_weight=dist_args.hidden_weight,
        attention_weight=dist_args.attention_weight,
        layer_map=layer_map,
        projections=projections,
    )
    if resume:
        trainer.load_projections(resume)
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

    # ---- 6. export: the QA folder (own pipeline), round trip, compression report, card
    export.prepare_export(trainer)  # every rank: ZeRO-3 shards gathered, autocast wrapper removed on rank 0
    if not trainer.is_world_process_zero():
        return metrics
    stage = export.staging_dir(output_dir)
    if answers.get("validation"):
        with open(os.path.join(stage, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump({k: v["text"] for k, v in answers["validation"].items()}, f, indent=1, ensure_ascii=False)
            f.write("\n")
    qa_settings = {
        "max_seq_len": max_len,
        "doc_stride": data_args.doc_stride,
        "max_answer_len": data_args.max_answer_length,
        "n_best_size": data_args.n_best_size,
        "handle_impossible_answer": v2,
        "null_score_diff_threshold": data_args.null_score_diff_threshold,
    }

    def load_base(config):
        if kept is not None:
            return distillation.student_from_teacher(teacher, kept)
        return qa.load_qa_model(student_path, config=config, trust_remote_code=dist_args.trust_remote_code)

    export.save_qa_model(
        trainer.model,
        student_tok,
        stage,
        base_model_path=student_path or teacher_dir,
        base_model_name=dist_args.student_name_or_path or student_label,
        max_seq_length=max_len,
        qa_settings=qa_settings,
        save_base_model=True,
        merge_lora=dist_args.merge_lora and dist_args.strategy == "lora",
        trust_remote_code=dist_args.trust_remote_code,
        load_base=load_base,
    )
    check_split = next((s for s in ("validation", "test") if answers.get(s)), None)
    if check_split is not None:
        rows = dd[check_split].select(range(min(N_ROUND_TRIP, len(dd[check_split]))))
        examples = [{"id": r["id"], "question": r["question"], "context": r["context"]} for r in rows]
        atol = 2e-2 if training_args.bf16 or training_args.fp16 else 1e-4  # expected answers: autocast eval pass
        check = export.verify_qa_pipeline(stage, examples, answers[check_split], atol=atol)
        logger.info("round trip: %d held-out questions answered as the recipe did", check["examples"])
        metrics["roundtrip_max_abs_score_diff"] = check["max_abs_score_diff"]
    speed_rows = dd[check_split or "train"].select(range(min(256, len(dd[check_split or "train"]))))
    plain_student = trainer.model.merge_and_unload() if dist_args.strategy == "lora" else trainer.model
    main_key = "f1"
    split_prefix = "eval" if "validation" in dd else ("test" if "test" in dd else None)

    def held_out(source: dict) -> dict:
        return {k: v for k, v in source.items() if k in (f"{split_prefix}_exact_match", f"{split_prefix}_f1")}

    questions = list(speed_rows["question"]) if dist_args.measure_speed else None
    contexts = list(speed_rows["context"])
    sides = {
        "teacher": distillation.describe_model(
            teacher,
            teacher_tok,
            name=dist_args.teacher_name_or_path,
            metrics=held_out(teacher_metrics),
            max_seq_length=teacher_len,
            speed_texts=questions,
            speed_pairs=contexts,
        ),
        "student": distillation.describe_model(
            plain_student,
            student_tok,
            name=student_label,
            metrics=held_out(metrics),
            max_seq_length=max_len,
            speed_texts=questions,
            speed_pairs=contexts,
        ),
    }
    comp = distillation.compression_report(
        sides,
        {
            "task": "extractive QA",
            "temperature": dist_args.temperature,
            "alpha": dist_args.alpha,
            "hidden_weight": dist_args.hidden_weight,
            "attention_weight": dist_args.attention_weight,
            "student_layers": kept,
            "layer_map": layer_map if live_teacher else None,
            "same_tokenizer": same_tokenizer,
            "labelled_train_rows": len(dd["train"]),
            "unlabelled_train_rows": 0,
            "teacher_kind": teacher_info["kind"],
        },
        main_metric=f"{split_prefix}_{main_key}" if split_prefix else None,
    )
    if split_prefix:
        metrics.update({f"teacher_{k}": v for k, v in teacher_metrics.items()})
        metrics["teacher_metric_kept"] = comp["ratios"]["metric_kept"]
    report.write_metrics(os.path.join(stage, "compression_report.json"), comp)
    export.write_run_config(
        os.path.join(stage, "run_config.yaml"), to_serialisable(dist_args, data_args, training_args)
    )
    has_curves = report.plot_training_curves(
        trainer.state.log_history, os.path.join(stage, "training_curves.png"), main_metric="f1"
    )
    export.write_qa_model_card(
        os.path.join(stage, "README.md"),
        base_model=dist_args.student_name_or_path or dist_args.teacher_name_or_path,
        license=training_args.license,
        strategy=dist_args.strategy,
        library_name="peft" if dist_args.strategy == "lora" else "transformers",
        dataset_name=dataset_label,
        metrics=metrics,
        hyperparameters={
            "learning_rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "training questions": len(dd["train"]),
        },
        qa_settings=qa_settings,
        lora={
            "r": dist_args.lora_r,
            "alpha": dist_args.lora_alpha,
            "dropout": dist_args.lora_dropout,
            "targets": dist_args.lora_target_modules or "PEFT default",
        }
        if dist_args.strategy == "lora"
        else None,
        trainable_params=trainable,
        total_params=total,
        has_curves=has_curves,
        merged=dist_args.merge_lora and dist_args.strategy == "lora",
        title=f"{os.path.basename(student_label.rstrip('/'))} distilled from "
        f"{os.path.basename(dist_args.teacher_name_or_path.rstrip('/'))}",
        extra_tags=["distillation"],
        extra_section=distillation.compression_markdown(comp),
    )
    export.verify_recorded(stage)  # the check every push repeats, from the folder alone
    report.write_metrics(os.path.join(stage, export.FINISHED_MARKER), metrics)
    export.publish(stage, output_dir)
    if push:
        metrics["hub_commit_url"] = hub.push_folder(
            output_dir, push.repo_id, private=push.private, revision=push.revision
        )
    distillation.log_summary(comp, output_dir)
    metrics["output_dir"] = output_dir
    return metrics
