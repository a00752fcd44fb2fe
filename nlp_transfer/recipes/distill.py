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
nlp_transfer/distillation.py). Defaults: T=2, alpha=0.5, student = every other teacher layer, no intermediate
losses. Teacher logits are computed once and cached ($NLP_TRANSFER_CACHE/teacher_logits), so a second student or
a resumed run reuses them. Data options are classify's; with no data the recipe uses classify's default
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
import time

import numpy as np
import torch
from datasets import Dataset, Value, concatenate_datasets
from transformers import AutoConfig, AutoModelForSequenceClassification, set_seed

from nlp_transfer import assets, data, distillation, export, hub, interrupt, modeling, report
from nlp_transfer.cli import run, setup_logging
from nlp_transfer.config import DataArguments, DistillArguments, TransferTrainingArguments, parse_args, to_serialisable
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import MAIN_METRIC, compute_from_logits, make_compute_metrics
from nlp_transfer.recipes.classify import DEFAULTS as CLASSIFY_DEFAULTS
from nlp_transfer.recipes.classify import LEARNING_RATE, N_ROUND_TRIP

logger = logging.getLogger("nlp_transfer.recipes.distill")

DEFAULTS = {**CLASSIFY_DEFAULTS, "remove_unused_columns": False}  # the collator picks the columns it needs
PROBLEM = "single_label_classification"


def _align(names_from: list[str], names_to: list[str], what: str) -> list[int]:
    """For each label of ``names_from`` the index of the same label in ``names_to`` (by name, case-insensitive;
    integer names 0..K-1 fall back to ids when no name matches). Refuses labels ``names_to`` lacks."""
    exact = {n: i for i, n in enumerate(names_to)}
    folded = {str(n).lower(): i for i, n in enumerate(names_to)}
    if all(str(n) in exact or str(n).lower() in folded for n in names_from):
        return [exact.get(str(n), folded.get(str(n).lower())) for n in names_from]
    if all(str(n).isdigit() and int(n) < len(names_to) for n in names_from):
        logger.warning(
            "%s: labels %s do not name the teacher's labels; reading them as label ids (%s)",
            what,
            names_from,
            ", ".join(f"{i}={n}" for i, n in enumerate(names_to)),
        )
        return [int(n) for n in names_from]
    missing = [str(n) for n in names_from if str(n) not in exact and str(n).lower() not in folded]
    raise NLPTransferError(
        f"{what} has label(s) the teacher does not know: {', '.join(missing[:10])} (teacher labels: "
        f"{', '.join(map(str, names_to))}); distil on data with the teacher's label set"
    )


def _read_unlabeled(path: str, text_column: str) -> list[str]:
    if not os.path.isfile(path):
        raise NLPTransferError(f"--unlabeled_file not found: {path} (check the path)")
    if path.endswith((".txt", ".txt.gz")):
        import gzip

        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
    else:
        raw = data.load_raw_datasets(train_file=path)["train"]
        if text_column not in raw.column_names:
            raise NLPTransferError(
                f"--unlabeled_file {path} has no column '{text_column}' (columns: {', '.join(raw.column_names)}): "
                "name the text column with --text_column"
            )
        texts = [t.strip() for t in raw[text_column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise NLPTransferError(f"--unlabeled_file {path} holds no text")
    return texts


def _teacher_task(argv: list[str]) -> str:
    """ "qa" when --teacher_name_or_path (on the command line or in the --config file) is a question-answering model:
    the QA variant of this recipe (`distill_qa`) then takes over with the QA data options."""
    import argparse
    import json

    from nlp_transfer.config import _read_yaml

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--teacher_name_or_path", default=None)
    ns, _ = pre.parse_known_args(argv)
    teacher = ns.teacher_name_or_path or (_read_yaml(ns.config).get("teacher_name_or_path") if ns.config else None)
    if not teacher:
        return "classification"
    try:
        path = modeling.resolve_model_path(str(teacher))
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            with open(os.path.join(path, "adapter_config.json"), encoding="utf-8") as f:
                return "qa" if json.load(f).get("task_type") == "QUESTION_ANS" else "classification"
        if os.path.isdir(path):
            with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
                archs = json.load(f).get("architectures") or []
        else:
            archs = AutoConfig.from_pretrained(path).architectures or []
    except (NLPTransferError, OSError, ValueError):
        return "classification"  # the classification path reports the problem with its usual message
    return "qa" if any(str(a).endswith("ForQuestionAnswering") for a in archs) else "classification"


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" not in argv and "--help" not in argv and _teacher_task(argv) == "qa":
        from nlp_transfer.recipes import distill_qa

        return distill_qa.main(argv)
    # ---- 1. configuration: defaults < --config YAML < CLI
    (dist_args, data_args, training_args), explicit = parse_args(
        (DistillArguments, DataArguments, TransferTrainingArguments),
        argv,
        defaults=DEFAULTS,
        description=__doc__,
        prog="python -m nlp_transfer.recipes.distill",
    )
    setup_logging(training_args.should_log)
    distillation.check_options(dist_args)
    if data_args.problem_type not in ("auto", PROBLEM):
        raise NLPTransferError("distillation supports single-label classification only (--problem_type)")
    if "learning_rate" not in explicit:
        training_args.learning_rate = LEARNING_RATE[dist_args.strategy]
    if "dataloader_pin_memory" not in explicit and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
    if "output_dir" not in explicit:
        training_args.output_dir = os.path.join("outputs", "distill-" + time.strftime("%Y%m%d-%H%M%S"))
    output_dir = training_args.output_dir
    push = hub.plan_push(training_args)  # repo id and token checked before any training
    resume = export.check_output_dir(
        output_dir,
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    live_teacher = dist_args.hidden_weight > 0 or dist_args.attention_weight > 0
    attn_impl = "eager" if dist_args.attention_weight > 0 else None  # fused attention kernels return no maps
    modeling.resolve_model_path(dist_args.teacher_name_or_path)  # fail fast on a mistyped path
    student_path = (
        modeling.resolve_model_path(dist_args.student_name_or_path) if dist_args.student_name_or_path else None
    )
    if dist_args.unlabeled_file and not os.path.isfile(dist_args.unlabeled_file):
        raise NLPTransferError(f"--unlabeled_file not found: {dist_args.unlabeled_file} (check the path)")
    set_seed(training_args.seed)

    # ---- 2. teacher (LoRA adapters merged in) and its tokenizer
    teacher, teacher_info = distillation.load_teacher(
        dist_args.teacher_name_or_path,
        base_model=dist_args.teacher_base_model,
        trust_remote_code=dist_args.trust_remote_code,
        attn_implementation=attn_impl,
    )
    teacher_dir = modeling.resolve_model_path(dist_args.teacher_name_or_path)
    teacher_tok = modeling.load_tokenizer(teacher_dir, trust_remote_code=dist_args.trust_remote_code)
    teacher_names = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    n_teacher_layers = distillation.num_hidden_layers(teacher.config)
    logger.info(
        "teacher: %s (%s, %d layers, %s parameters), labels %s",
        dist_args.teacher_name_or_path,
        teacher_info["kind"],
        n_teacher_layers,
        f"{modeling.count_parameters(teacher)[1]:,}",
        teacher_names,
    )

    # ---- 3. student: cut from the teacher, or a pretrained checkpoint (label order: its own if it has names)
    kept = None
    if student_path is None:
        kept = distillation.parse_layers(dist_args.student_layers, n_teacher_layers)
        student = distillation.student_from_teacher(teacher, kept)
        student_tok = teacher_tok
        student_names = teacher_names
        student_label = f"{dist_args.teacher_name_or_path} (layers {','.join(map(str, kept))})"
    else:
        if dist_args.student_layers:
            raise NLPTransferError(
                "--student_layers cuts a student from the teacher; drop it or --student_name_or_path"
            )
        student_tok = modeling.load_tokenizer(student_path, trust_remote_code=dist_args.trust_remote_code)
        try:
            s_config = AutoConfig.from_pretrained(student_path, trust_remote_code=dist_args.trust_remote_code)
        except (OSError, ValueError) as e:
            raise modeling.load_error(dist_args.student_name_or_path, e) from None
        if distillation.has_trained_labels(s_config) and s_config.num_labels > 1:
            student_names = [s_config.id2label[i] for i in range(s_config.num_labels)]
            if sorted(map(str.lower, student_names)) != sorted(map(str.lower, teacher_names)):
                raise NLPTransferError(
                    f"the student's labels ({', '.join(student_names)}) differ from the teacher's "
                    f"({', '.join(teacher_names)}): use a student without a trained head, or one with the same labels"
                )
        else:
            student_names = teacher_names
        student = modeling.load_sequence_classifier(
            student_path,
            num_labels=len(student_names),
            id2label=dict(enumerate(student_names)),
            label2id={n: i for i, n in enumerate(student_names)},
            problem_type=PROBLEM,
            pad_token_id=student_tok.pad_token_id,
            trust_remote_code=dist_args.trust_remote_code,
        )
        if attn_impl:
            student.set_attn_implementation(attn_impl)
        student_label = dist_args.student_name_or_path
    # teacher logits columns, reordered to the student's label order
    perm = _align(student_names, teacher_names, "the student")
    same_tokenizer = distillation.check_pairing(dist_args, teacher, student, teacher_tok, student_tok, kept)
    layer_map = distillation.layer_pairs(distillation.num_hidden_layers(student.config), n_teacher_layers, kept)

    # ---- 4. data: classify's loading and checks, labels mapped onto the student's label order by name
    raw = data.load_raw_datasets(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        test_file=data_args.test_file,
    )
    dataset_label = (
        os.path.basename(data_args.train_file)
        if data_args.train_file
        else (data_args.dataset_name or data.DEFAULT_DATASET)
    )
    dd, labels = data.prepare_classification(
        raw,
        text_column=data_args.text_column,
        text_pair_column=data_args.text_pair_column,
        label_column=data_args.label_column,
        class_names=data_args.class_names,
        problem_type=data_args.problem_type,
        label_separator=data_args.label_separator,
        validation_split=data_args.validation_split,
        test_split=data_args.test_split,
        seed=training_args.seed,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        max_test_samples=data_args.max_test_samples,
    )
    if labels.problem_type != PROBLEM:
        raise NLPTransferError(
            f"the data is {labels.problem_type.replace('_', ' ')}; distillation supports single-label "
            "classification only"
        )
    to_student = _align(labels.names, student_names, "the data")
    for split in list(dd):
        ds = dd[split].cast_column("label", Value("int64"))
        dd[split] = ds.map(
            lambda b: {"label": [to_student[v] for v in b["label"]]}, batched=True, desc=f"labels {split}"
        )
    n_labelled = len(dd["train"])
    if dist_args.unlabeled_file:
        if "text_pair" in dd["train"].column_names:
            raise NLPTransferError("--unlabeled_file is for single-text tasks; sentence pairs need labelled pairs")
        extra = _read_unlabeled(dist_args.unlabeled_file, data_args.text_column)
        dd["train"] = concatenate_datasets(
            [
                dd["train"],
                Dataset.from_dict({"text": extra, "label": [-100] * len(extra)}, features=dd["train"].features),
            ]
        )
        logger.info("unlabelled: %d texts from %s (teacher soft labels only)", len(extra), dist_args.unlabeled_file)
    logger.info("data: %s", ", ".join(f"{s} {len(d)}" for s, d in dd.items()))
    if "validation" not in dd and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"

    # ---- 5. teacher logits, once per (teacher, data, preprocessing), cached on disk
    max_len = data_args.max_seq_length
    if max_len < 2:
        raise NLPTransferError(f"--max_seq_length must be at least 2 tokens, got {max_len}")
    teacher_len = min(max_len, getattr(teacher.config, "max_position_embeddings", max_len) or max_len)
    cache_dir = dist_args.teacher_cache_dir or os.path.join(str(assets.cache_dir()), "teacher_logits")
    fingerprint = distillation.teacher_fingerprint(teacher, teacher_dir)
    teacher.to(training_args.device)
    logits_by_split = {}
    with training_args.main_process_first(desc="teacher logits"):
        for split, ds in dd.items():
            if split == "train" and live_teacher:
                continue  # computed live, with hidden states, at every step
            texts = list(ds["text"])
            pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
            key = {
                "teacher": fingerprint,
                "teacher_base": teacher_info["base"],
                "data": distillation.data_fingerprint(texts, pairs),
                "rows": len(texts),
                "max_seq_length": teacher_len,
                "tokenizer": type(teacher_tok).__name__,
                "truncation_side": teacher_tok.truncation_side,
                "split": split,
            }
            arr, _ = distillation.cached_teacher_logits(
                cache_dir,
                key,
                functools.partial(
                    distillation.teacher_logits,
                    teacher,
                    teacher_tok,
                    texts,
                    pairs,
                    max_seq_length=teacher_len,
                    batch_size=dist_args.teacher_batch_size,
                    desc=f"teacher logits ({split})",
                ),
            )
            logits_by_split[split] = arr[:, perm]
    if not live_teacher:
        teacher.to("cpu")  # its outputs are cached: free the accelerator's memory for the student
    teacher_metrics = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in logits_by_split:
            m = compute_from_logits(logits_by_split[split], np.asarray(dd[split]["label"]), PROBLEM)
            teacher_metrics.update({f"{prefix}_{k}": v for k, v in m.items()})
    if teacher_metrics:
        logger.info("teacher: %s", ", ".join(f"{k}={v:.4f}" for k, v in teacher_metrics.items()))

    # ---- 6. student strategy, tokenise, train
    student = modeling.apply_strategy(
        student,
        strategy=dist_args.strategy,
        num_frozen_layers=dist_args.num_frozen_layers,
        lora_r=dist_args.lora_r,
        lora_alpha=dist_args.lora_alpha,
        lora_dropout=dist_args.lora_dropout,
        lora_target_modules=dist_args.lora_target_modules,
    )
    trainable, total = modeling.count_parameters(student)
    limit = getattr(student.config, "max_position_embeddings", None)
    student_len = min(max_len, limit) if limit else max_len
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = data.tokenize_classification(dd, student_tok, max_seq_length=student_len)
    for split, arr in logits_by_split.items():
        tokenized[split] = tokenized[split].add_column("teacher_logits", arr.tolist())
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
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        data_collator=distillation.DistillationCollator(student_tok),
        processing_class=student_tok,
        compute_metrics=make_compute_metrics(PROBLEM),
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
        if split in tokenized:
            metrics.update(trainer.evaluate(tokenized[split], metric_key_prefix=prefix))

    # ---- 7. export: student folder, round trip, compression report, card
    export.prepare_export(trainer)  # every rank: ZeRO-3 shards gathered, autocast wrapper removed on rank 0
    if not trainer.is_world_process_zero():
        return metrics
    stage = export.staging_dir(output_dir)
    student_model = trainer.model

    def load_base(config):  # LoRA: the untrained student base (cut again, or reloaded)
        if kept is not None:
            return distillation.student_from_teacher(teacher, kept)
        return AutoModelForSequenceClassification.from_pretrained(student_path, config=config)

    if dist_args.strategy == "lora" and kept is not None and not dist_args.save_base_model:
        logger.warning("a student cut from the teacher has no checkpoint of its own: writing its base weights anyway")
    export.save_classifier(
        student_model,
        student_tok,
        stage,
        base_model_path=student_path or teacher_dir,
        base_model_name=dist_args.student_name_or_path or student_label,
        max_seq_length=student_len,
        save_base_model=dist_args.save_base_model or kept is not None,
        merge_lora=dist_args.merge_lora and dist_args.strategy == "lora",
        trust_remote_code=dist_args.trust_remote_code,
        load_base=load_base,
    )
    check_split = next(dd[s] for s in ("validation", "test", "train") if s in dd)
    rows = check_split.select(range(min(N_ROUND_TRIP, len(check_split))))
    inputs = (
        [{"text": t, "text_pair": p} for t, p in zip(rows["text"], rows["text_pair"])]
        if "text_pair" in rows.column_names
        else list(rows["text"])
    )
    label2id = {n: i for i, n in enumerate(student_names)}
    if dist_args.strategy != "lora" or dist_args.save_base_model or kept is not None:
        check = export.verify_pipeline(
            stage, student_model, student_tok, inputs, label2id=label2id, max_seq_length=student_len
        )
    else:
        check = export.verify_adapter(
            stage, student_model, student_tok, inputs, base_model_path=student_path, max_seq_length=student_len
        )
    logger.info(
        "round trip: %d held-out examples reproduced, max |logit diff| %.1e",
        check["examples"],
        check["max_abs_logit_diff"],
    )
    metrics["roundtrip_max_abs_logit_diff"] = check["max_abs_logit_diff"]

    # compression report: teacher and student measured the same way, in this process, on the same texts
    main_key = "accuracy"
    split_prefix = "eval" if "validation" in dd else ("test" if "test" in dd else None)
    plain_student = student_model.merge_and_unload() if dist_args.strategy == "lora" else student_model
    speed_texts = list(check_split.select(range(min(256, len(check_split))))["text"])

    def held_out(source: dict) -> dict:
        keys = {f"{split_prefix}_{n}" for n in ("accuracy", "f1", "f1_macro", "mcc")}
        return {k: v for k, v in source.items() if k in keys}

    texts = speed_texts if dist_args.measure_speed else None
    sides = {
        "teacher": distillation.describe_model(
            teacher,
            teacher_tok,
            name=dist_args.teacher_name_or_path,
            metrics=held_out(teacher_metrics),
            max_seq_length=teacher_len,
            speed_texts=texts,
        ),
        "student": distillation.describe_model(
            plain_student,
            student_tok,
            name=student_label,
            metrics=held_out(metrics),
            max_seq_length=student_len,
            speed_texts=texts,
        ),
    }
    comp = distillation.compression_report(
        sides,
        {
            "task": "classification",
            "temperature": dist_args.temperature,
            "alpha": dist_args.alpha,
            "hidden_weight": dist_args.hidden_weight,
            "attention_weight": dist_args.attention_weight,
            "student_layers": kept,
            "layer_map": layer_map if live_teacher else None,
            "same_tokenizer": same_tokenizer,
            "labelled_train_rows": n_labelled,
            "unlabelled_train_rows": len(dd["train"]) - n_labelled,
            "teacher_kind": teacher_info["kind"],
        },
        main_metric=f"{split_prefix}_{main_key}" if split_prefix else None,
    )
    if split_prefix:
        metrics.update({f"teacher_{k}": v for k, v in teacher_metrics.items()})
        metrics["teacher_metric_kept"] = comp["ratios"]["metric_kept"]
    if "throughput_speedup_batch32" in comp["ratios"]:
        metrics["throughput_speedup_batch32"] = comp["ratios"]["throughput_speedup_batch32"]
    report.write_metrics(os.path.join(stage, "compression_report.json"), comp)
    run_config = to_serialisable(dist_args, data_args, training_args)
    export.write_run_config(os.path.join(stage, "run_config.yaml"), run_config)
    has_curves = report.plot_training_curves(
        trainer.state.log_history, os.path.join(stage, "training_curves.png"), main_metric=MAIN_METRIC[PROBLEM]
    )
    export.write_model_card(
        os.path.join(stage, "README.md"),
        base_model=dist_args.student_name_or_path or dist_args.teacher_name_or_path,
        license=training_args.license,
        strategy=dist_args.strategy,
        library_name="peft" if dist_args.strategy == "lora" else "transformers",
        dataset_name=dataset_label,
        problem_type=PROBLEM,
        label_names=student_names,
        metrics=metrics,
        main_metric=MAIN_METRIC[PROBLEM],
        hyperparameters={
            "learning_rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "labelled training examples": n_labelled,
            "unlabelled training examples": len(dd["train"]) - n_labelled,
        },
        lora={
            "r": dist_args.lora_r,
            "alpha": dist_args.lora_alpha,
            "dropout": dist_args.lora_dropout,
            "targets": dist_args.lora_target_modules or modeling.default_lora_targets(student_model.get_base_model()),
        }
        if dist_args.strategy == "lora"
        else None,
        trainable_params=trainable,
        total_params=total,
        max_seq_length=student_len,
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


if __name__ == "__main__":
    sys.exit(run(main))
