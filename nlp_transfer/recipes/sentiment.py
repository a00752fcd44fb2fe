"""Fine-tune a pretrained encoder or decoder for sentiment: label forms understood, readable names, long reviews.

Launch commands::

    # embedded default, no arguments, no network: MiniLM-L6 on CrowdFlower tweets (negative/neutral/positive),
    # a 6,000-tweet training budget, ~6 min on 2 CPU cores (76.7% accuracy on 2,000 held-out tweets)
    python -m nlp_transfer.recipes.sentiment

    # SST-2 / IMDB from the benchmark copies beside the repo (see recipes/README.md)
    python -m nlp_transfer.recipes.sentiment --config recipes/sentiment/minilm_sst2_full.yaml
    python -m nlp_transfer.recipes.sentiment --config recipes/sentiment/minilm_imdb_lora.yaml

    # your data: words (pos/neg/neutral, any case), 0/1, -1/0/1, 0/1/2, 0..4 or 1-5 star ratings
    python -m nlp_transfer.recipes.sentiment --train_file reviews.csv --text_column review --label_column stars \\
        --star_classes 3 --long_text head_tail --max_seq_length 256 --strategy lora --output_dir out/

    # the same through the console script
    nlp-transfer sentiment --help

    # then: pipeline("sentiment-analysis", model="out/", truncation=True)   (head / tail models), or
    #       nlp_transfer.sentiment.predict("out/", texts)                   (any --long_text, incl. windows)

Labels become `negative`/`positive`, `negative`/`neutral`/`positive` or the five SST-5 names
(nlp_transfer/sentiment.py has the table). Long texts (--long_text): head | tail | head_tail (default; measured on
IMDB, recipes/README.md) | windows (overlapping windows, logits pooled per document).
Strategies, learning-rate defaults and the output folder are the classify recipe's.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import DataCollatorWithPadding, Trainer, set_seed

from nlp_transfer import data, export, hub, interrupt, modeling, report, sentiment
from nlp_transfer.cli import run, setup_logging
from nlp_transfer.config import DataArguments, ModelArguments, TransferTrainingArguments, parse_args, to_serialisable
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import make_compute_metrics
from nlp_transfer.recipes.classify import DEFAULTS as CLASSIFY_DEFAULTS
from nlp_transfer.recipes.classify import LEARNING_RATE, N_ROUND_TRIP

logger = logging.getLogger("nlp_transfer.recipes.sentiment")

DEFAULT_DATASET = "builtin:crowdflower_tweets"
# The embedded default's budget (applied only when no data is given): 6,000 training tweets, 2,000 held out.
DEFAULT_DATA_BUDGET = {"max_train_samples": 6000, "max_eval_samples": 2000}
# Training defaults are the classify recipe's (2 epochs, batch 16, warmup 10%, length-grouped batches, ...).
DEFAULTS = dict(CLASSIFY_DEFAULTS)


@dataclass
class SentimentArguments:
    """What sentiment labels mean and how long texts are read."""

    label_scheme: Literal["auto", "words", "binary", "three_way", "five_way", "stars"] = field(
        default="auto",
        metadata={
            "help": "auto detects: words (negative/neutral/positive, any case), binary 0/1, three_way -1/0/1 or "
            "0/1/2, five_way 0..4, stars 1..5. Set it when auto guesses wrong."
        },
    )
    star_classes: int = field(
        default=3,
        metadata={
            "help": "Star ratings 1-5 become 2 classes (1-2 negative, 4-5 positive, 3-star rows dropped), 3 (1-2 "
            "negative, 3 neutral, 4-5 positive) or 5 (one class per star)."
        },
    )
    long_text: Literal["head", "tail", "head_tail", "windows"] = field(
        default="head_tail",
        metadata={
            "help": "Texts over --max_seq_length tokens: keep the head, the tail, head+tail (--head_fraction of "
            "the budget from the start, the rest from the end), or read every window and pool their logits."
        },
    )
    head_fraction: float = field(
        default=0.25, metadata={"help": "head_tail: share of the token budget from the start."}
    )
    window_stride: int = field(
        default=32, metadata={"help": "windows: tokens each window overlaps the previous one by."}
    )
    window_pooling: Literal["mean", "max"] = field(
        default="mean", metadata={"help": "windows: how a document's window logits are combined."}
    )
    max_windows: int | None = field(
        default=8, metadata={"help": "windows: at most this many (first) windows per training document."}
    )


def _map_labels(raw, *, label_column: str, label_scheme: str, star_classes: int):
    """Replace the raw label column by sentiment class ids in every split; drop rows the mapping drops."""
    from datasets import ClassLabel

    train = raw["train"]
    if label_column not in train.column_names:
        raise NLPTransferError(
            f"column '{label_column}' not found in the train split; its columns are: {', '.join(train.column_names)} "
            "(choose one with --label_column)"
        )
    values: set = set()  # the scheme is read off every split's labels, so dev/test spellings map too
    for ds in raw.values():
        if label_column in ds.column_names:
            feat = ds.features[label_column]
            vals = {v for v in ds[label_column] if v is not None}
            if vals <= {-1} and ds is not train:  # an unlabelled test split (GLUE marks it -1)
                continue
            values |= {feat.names[v] for v in vals if v >= 0} if isinstance(feat, ClassLabel) else vals
    values = sorted(values, key=str)
    mapping, names, scheme = sentiment.label_mapping(values, label_scheme=label_scheme, star_classes=star_classes)
    out = {}
    for split, ds in raw.items():
        if label_column not in ds.column_names:
            out[split] = ds
            continue
        split_feat = ds.features[label_column]

        def code(v):  # class id; -1 dropped by the mapping (3-star rows for 2 classes); -2 unknown; None missing
            if v is None:
                return None
            if v not in mapping:
                return -2
            return -1 if mapping[v] is None else mapping[v]

        def encode(batch, split_feat=split_feat):
            vals = batch[label_column]
            if isinstance(split_feat, ClassLabel):
                vals = [split_feat.names[v] if v is not None and v >= 0 else None for v in vals]
            return {"_sentiment": [code(v) for v in vals]}

        ds = ds.map(encode, batched=True, desc=f"Mapping {split} labels")
        ids = ds["_sentiment"]
        unknown = sum(1 for i in ids if i == -2)
        if unknown:
            first = next(v for v, i in zip(ds[label_column], ids) if i == -2)
            raise NLPTransferError(
                f"the {split} split has {unknown} row(s) with a label the train split lacks (first: {first!r}): "
                "drop them, or train on data that has them"
            )
        dropped = sum(1 for i in ids if i == -1)
        if dropped:
            logger.warning("%s: dropped %d row(s) the %s mapping leaves out (3-star ratings)", split, dropped, scheme)
            ds = ds.filter(lambda b: [i != -1 for i in b["_sentiment"]], batched=True)
        ds = ds.remove_columns(label_column).rename_column("_sentiment", label_column)
        out[split] = ds
    logger.info("labels: %s scheme -> %s", scheme, names)
    return type(raw)(out), names, scheme


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration: defaults < --config YAML < CLI
    (model_args, data_args, sent_args, training_args), explicit = parse_args(
        (ModelArguments, DataArguments, SentimentArguments, TransferTrainingArguments),
        argv,
        defaults=DEFAULTS,
        description=__doc__,
        prog="python -m nlp_transfer.recipes.sentiment",
    )
    setup_logging(training_args.should_log)
    if "learning_rate" not in explicit:
        training_args.learning_rate = LEARNING_RATE[model_args.strategy]
    if "dataloader_pin_memory" not in explicit and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
    if "output_dir" not in explicit:
        training_args.output_dir = os.path.join("outputs", "sentiment-" + time.strftime("%Y%m%d-%H%M%S"))
    if data_args.text_pair_column:
        raise NLPTransferError("sentiment reads one text column; for sentence pairs use the classify recipe")
    if data_args.max_seq_length < 8:  # checked before any data or model loads
        raise NLPTransferError(f"--max_seq_length must be at least 8 tokens, got {data_args.max_seq_length}")
    if not 0 < sent_args.head_fraction < 1:
        raise NLPTransferError(f"--head_fraction must be between 0 and 1, got {sent_args.head_fraction}")
    output_dir = training_args.output_dir
    push = hub.plan_push(training_args)  # repo id and token checked before any training
    resume = export.check_output_dir(
        output_dir,
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    model_path = modeling.resolve_model_path(model_args.model_name_or_path)
    set_seed(training_args.seed)

    # ---- 2. data: load, understand the labels, held-out split
    using_default_data = data_args.train_file is None and data_args.dataset_name is None
    if using_default_data:
        data_args.dataset_name = DEFAULT_DATASET
        for k, v in DEFAULT_DATA_BUDGET.items():
            if k not in explicit:
                setattr(data_args, k, v)
        logger.info("no data given: using %s (see data_cards/crowdflower_tweets.md)", DEFAULT_DATASET)
    raw = data.load_raw_datasets(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        test_file=data_args.test_file,
    )
    dataset_label = os.path.basename(data_args.train_file) if data_args.train_file else data_args.dataset_name
    if "train" not in raw:
        raise NLPTransferError(
            f"no train split in the dataset (splits: {', '.join(raw) or 'none'}): pass --train_file"
        )
    raw, names, scheme = _map_labels(
        raw,
        label_column=data_args.label_column,
        label_scheme=sent_args.label_scheme,
        star_classes=sent_args.star_classes,
    )
    dd, labels = data.prepare_classification(
        raw,
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        class_names=names,
        problem_type="single_label_classification",
        validation_split=data_args.validation_split,
        test_split=data_args.test_split,
        seed=training_args.seed,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        max_test_samples=data_args.max_test_samples,
    )
    logger.info("sentiment: %s; classes %s", ", ".join(f"{s} {len(d)}" for s, d in dd.items()), labels.names)
    untrained = [n for i, n in enumerate(labels.names) if i not in set(dd["train"]["label"])]
    if untrained:  # e.g. neutral only in the dev file: the class exists but the model never sees an example of it
        logger.warning("no training rows for class(es) %s: the model can't learn them; add examples", untrained)
    if "validation" not in dd and training_args.eval_strategy != "no":
        training_args.eval_strategy = "no"

    # ---- 3. model + tokenizer + transfer strategy
    tokenizer = modeling.load_tokenizer(
        modeling.resolve_model_path(model_args.tokenizer_name) if model_args.tokenizer_name else model_path,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )
    if sent_args.long_text == "tail":
        # init_kwargs is what save_pretrained writes to tokenizer_config.json: pipeline(truncation=True) keeps the tail
        tokenizer.truncation_side = tokenizer.init_kwargs["truncation_side"] = "left"
    model = modeling.load_sequence_classifier(
        model_path,
        num_labels=labels.num_labels,
        id2label=labels.id2label,
        label2id=labels.label2id,
        problem_type=labels.problem_type,
        pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )
    max_len = data_args.max_seq_length
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and max_len > limit:
        logger.warning("max_seq_length %d exceeds the model's %d positions; using %d", max_len, limit, limit)
        max_len = limit
    # how this model reads long texts travels in config.json (sentiment.predict reads it back)
    model.config.update(
        {
            "long_text": sent_args.long_text,
            "head_fraction": sent_args.head_fraction,
            "window_stride": sent_args.window_stride,
            "window_pooling": sent_args.window_pooling,
        }
    )
    model = modeling.apply_strategy(
        model,
        strategy=model_args.strategy,
        num_frozen_layers=model_args.num_frozen_layers,
        lora_r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        lora_target_modules=model_args.lora_target_modules,
    )
    trainable, total = modeling.count_parameters(model)

    # ---- 4. tokenise for the long-text strategy (cached by `datasets`), then train
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = sentiment.tokenize(
            dd,
            tokenizer,
            max_seq_length=max_len,
            long_text=sent_args.long_text,
            head_fraction=sent_args.head_fraction,
            window_stride=sent_args.window_stride,
            max_windows=sent_args.max_windows,
        )
    long_docs = sum(1 for n in tokenized["train"]["length"] if n >= max_len)
    logger.info("%d of %d training features fill the %d-token budget", long_docs, len(tokenized["train"]), max_len)
    windowed = sent_args.long_text == "windows"
    if windowed and training_args.train_sampling_strategy == "group_by_length":
        # transformers 5 also length-groups (reorders) *evaluation* batches under group_by_length, and pooling needs
        # windows in dataset order. Windows are nearly all full-length anyway, so grouping would save little.
        if "train_sampling_strategy" in explicit:
            logger.warning("--long_text windows evaluates in dataset order: using train_sampling_strategy random")
        training_args.train_sampling_strategy = "random"
    if windowed:
        compute_metrics = sentiment.WindowedMetrics(sent_args.window_pooling)
        if "validation" in tokenized:
            compute_metrics.doc_ids = list(tokenized["validation"]["doc_id"])
    else:
        compute_metrics = make_compute_metrics(labels.problem_type)
    if training_args.overwrite_output_dir and resume is None and training_args.should_save:
        export.clear_output_dir(output_dir)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    # these heads' losses are per-batch means that ignore num_items_in_batch; left True, Trainer multiplies the
    # loss by the number of processes under DDP (2x gradients and logged loss on 2 ranks, measured)
    trainer.model_accepts_loss_kwargs = False
    stop = interrupt.guard(trainer)  # SIGTERM: checkpoint, stop, exit 143 with how to resume
    train_result = trainer.train(resume_from_checkpoint=resume)
    interrupt.raise_if_stopped(stop, output_dir)
    metrics = {f"train_{k}" if not k.startswith("train_") else k: v for k, v in train_result.metrics.items()}
    metrics.update(trainable_params=trainable, total_params=total, label_scheme=scheme)
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in tokenized:
            if windowed:
                compute_metrics.doc_ids = list(tokenized[split]["doc_id"])
            metrics.update(trainer.evaluate(tokenized[split], metric_key_prefix=prefix))

    # ---- 5. export: stage, verify the round trips, then move into place
    export.prepare_export(trainer)  # every rank: ZeRO-3 shards gathered, autocast wrapper removed on rank 0
    if not trainer.is_world_process_zero():
        return metrics
    stage = export.staging_dir(output_dir)
    export.save_classifier(
        trainer.model,
        tokenizer,
        stage,
        base_model_path=model_path,
        base_model_name=model_args.model_name_or_path,
        max_seq_length=max_len,
        save_base_model=model_args.save_base_model,
        merge_lora=model_args.merge_lora and model_args.strategy == "lora",
        trust_remote_code=model_args.trust_remote_code,
    )
    check_split = next(dd[s] for s in ("validation", "test", "train") if s in dd)
    texts = list(check_split.select(range(min(N_ROUND_TRIP, len(check_split))))["text"])
    # the pipeline sees the text the way the model was trained to read it (head_tail: cut on the text first)
    shortened = sentiment.shorten(
        texts, tokenizer, max_seq_length=max_len, long_text=sent_args.long_text, head_fraction=sent_args.head_fraction
    )
    checks = {}
    if model_args.strategy != "lora" or model_args.save_base_model:
        checks["pipeline"] = export.verify_pipeline(
            stage, trainer.model, tokenizer, shortened, label2id=labels.label2id, max_seq_length=max_len
        )
        # and sentiment.predict (which applies --long_text itself) agrees with the recipe's own predictions
        got = [p["label"] for p in sentiment.predict(stage, texts, device=str(trainer.model.device))]
        want = _recipe_labels(trainer, tokenizer, texts, labels.names, max_len, sent_args)
        if got != want:
            raise NLPTransferError(
                f"round-trip check failed: sentiment.predict on {stage} gave {got}, the trained model {want}"
            )
        checks["predict"] = {"examples": len(texts), "max_abs_logit_diff": 0.0}
    else:
        checks["peft"] = export.verify_adapter(
            stage,
            trainer.model,
            tokenizer,
            shortened,
            base_model_path=model_path,
            max_seq_length=max_len,
            trust_remote_code=model_args.trust_remote_code,
        )
    for name, c in checks.items():
        logger.info("round trip (%s): %d held-out examples reproduced", name, c["examples"])
        if name != "predict":
            metrics[f"roundtrip_{name}_max_abs_logit_diff"] = c["max_abs_logit_diff"]
    run_config = to_serialisable(model_args, data_args, sent_args, training_args)
    export.write_run_config(os.path.join(stage, "run_config.yaml"), run_config)
    has_curves = report.plot_training_curves(
        trainer.state.log_history, os.path.join(stage, "training_curves.png"), main_metric="accuracy"
    )
    export.write_model_card(
        os.path.join(stage, "README.md"),
        base_model=model_args.model_name_or_path,
        license=training_args.license,
        strategy=model_args.strategy,
        library_name="peft" if model_args.strategy == "lora" else "transformers",
        dataset_name=dataset_label,
        problem_type=labels.problem_type,
        label_names=labels.names,
        metrics=metrics,
        main_metric="accuracy",
        hyperparameters={
            "learning_rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "training examples": len(dd["train"]),
            "labels": f"{scheme} -> {', '.join(labels.names)}",
            "long texts": sent_args.long_text
            + (f" (head {sent_args.head_fraction:.0%} of the budget)" if sent_args.long_text == "head_tail" else "")
            + (
                f" (stride {sent_args.window_stride}, {sent_args.window_pooling} pooling); predict with "
                "nlp_transfer.sentiment.predict"
                if windowed
                else ""
            ),
        },
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
        max_seq_length=max_len,
        has_curves=has_curves,
        merged=model_args.merge_lora and model_args.strategy == "lora",
    )
    export.verify_recorded(stage)  # the check every push repeats, from the folder alone
    report.write_metrics(os.path.join(stage, export.FINISHED_MARKER), metrics)
    export.publish(stage, output_dir)
    if push:
        metrics["hub_commit_url"] = hub.push_folder(
            output_dir, push.repo_id, private=push.private, revision=push.revision
        )

    headline = {k: v for k, v in metrics.items() if k.split("_", 1)[-1] in ("accuracy", "f1", "mcc")}
    logger.info("held-out metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in headline.items()))
    logger.info(
        "trained in %.0f s; output written to %s", metrics.get("train_runtime", 0), os.path.abspath(output_dir)
    )
    metrics["output_dir"] = output_dir
    return metrics


def _recipe_labels(trainer, tokenizer, texts, names, max_len, sent_args) -> list[str]:
    """The trained (in-memory) model's labels for ``texts``, prepared exactly as for evaluation."""
    from datasets import Dataset, DatasetDict

    one = DatasetDict({"validation": Dataset.from_dict({"text": texts, "label": [0] * len(texts)})})
    feats = sentiment.tokenize(
        one,
        tokenizer,
        max_seq_length=max_len,
        long_text=sent_args.long_text,
        head_fraction=sent_args.head_fraction,
        window_stride=sent_args.window_stride,
    )["validation"]
    model = trainer.model.eval()
    batch = DataCollatorWithPadding(tokenizer)(
        [{k: f[k] for k in tokenizer.model_input_names if k in f} for f in feats]
    )
    with torch.no_grad():
        logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu().numpy()
    if sent_args.long_text == "windows":
        logits, _ = sentiment.pool_windows(logits, feats["doc_id"], sent_args.window_pooling)
    return [names[int(i)] for i in logits.argmax(-1)]


if __name__ == "__main__":
    sys.exit(run(main))
