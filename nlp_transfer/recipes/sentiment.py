"""Fine-tune a pretrained encoder or decoder for sentiment: label forms understood, readable names, long reviews.

Launch commands::

    # embedded default, no arguments, no network: MiniLM-L6 on CrowdFlower tweets (negative/neutral/positive),
    # a 6,000-tweet training budget, ~6 min on 2 CPU cores (76.7% accuracy on 2,000 held-out tweets)
    python -m nlp_transfer.recipes.sentiment

    # SST-2 / IMDB from the benchmark copies beside the repo (see recipes/README.md)
    python -m nlp_transfer.recipes.sentiment --config recipes/sentiment/minilm_sst2_full.yaml
    python -m nlp_transfer.recipes.sentiment --config recipes/sentiment/minilm_sst2_lora.yaml

    # your data: words (pos/neg/neutral, any case), 0/1, -1/0/1, 0/1/2, 0..4 or 1-5 star ratings
    python -m nlp_transfer.recipes.sentiment --train_file reviews.csv --text_column review --label_column stars \\
        --star_classes 3 --long_text head_tail --max_seq_length 256 --strategy lora --output_dir out/

    # the same through the console script
    nlp-transfer sentiment --help

    # domain adaptation towards unlabelled target text (README.md, "Domain adaptation"); windows: first window
    nlp-transfer sentiment --train_file reviews.csv --target_file tweets.txt --domain_adaptation consistency

    # then: pipeline("sentiment-analysis", model="out/", truncation=True)   (head / tail models), or
    #       nlp_transfer.sentiment.predict("out/", texts)                   (any --long_text, incl. windows)

Labels become `negative`/`positive`, `negative`/`neutral`/`positive` or the five SST-5 names
(nlp_transfer/sentiment.py has the table). Long texts (--long_text): head | tail | head_tail (default; measured on
IMDB, recipes/README.md) | windows (overlapping windows, logits pooled per document).
Strategies, learning-rate defaults and the output folder are the classify recipe's.
"""

from __future__ import annotations

import logging
import sys

from transformers import DataCollatorWithPadding

from nlp_transfer import contrastive, data, domain, features, modeling, run, sentiment, strategies, tasks
from nlp_transfer.artifacts.card import CardInfo
from nlp_transfer.cli import run_main
from nlp_transfer.config import (
    TRAINING_DEFAULTS,
    DataArguments,
    DomainArguments,
    HeadArguments,
    ModelArguments,
    TransferTrainingArguments,
)
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.sentiment import SentimentArguments
from nlp_transfer.tasks.classification import round_trip_inputs

__all__ = ["SentimentArguments", "main"]

logger = logging.getLogger("nlp_transfer.recipes.sentiment")
TASK = tasks.CLASSIFICATION
# what the command line and a --config file may set, in `job.args` order (tests parse shipped configs with it)
ARG_TYPES = (
    ModelArguments,
    HeadArguments,
    DataArguments,
    SentimentArguments,
    DomainArguments,
    TransferTrainingArguments,
)
DEFAULT_DATASET = "builtin:crowdflower_tweets"
# The embedded default's budget (applied only when no data is given): 6,000 training tweets, 2,000 held out.
DEFAULT_DATA_BUDGET = {"max_train_samples": 6000, "max_eval_samples": 2000}


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "sentiment", argv,
        ARG_TYPES,
        defaults=TRAINING_DEFAULTS, doc=__doc__, task=TASK,
    )  # fmt: skip
    model_args, head_args, data_args, sent_args, _, training_args = job.args
    if data_args.text_pair_column:
        raise NLPTransferError("sentiment reads one text column; for sentence pairs use the classify recipe")
    if data_args.max_seq_length < 8:
        raise NLPTransferError(f"--max_seq_length must be at least 8 tokens, got {data_args.max_seq_length}")

    # ---- 2. data: load, understand the labels, held-out split
    if data_args.train_file is None and data_args.dataset_name is None:
        data_args.dataset_name = DEFAULT_DATASET
        for k, v in DEFAULT_DATA_BUDGET.items():
            if k not in job.explicit:
                setattr(data_args, k, v)
        logger.info("no data given: using %s (see data_cards/crowdflower_tweets.md)", DEFAULT_DATASET)
    raw = data.load_from_args(data_args)
    if "train" not in raw:
        raise NLPTransferError(
            f"no train split in the dataset (splits: {', '.join(raw) or 'none'}): pass --train_file"
        )
    raw, names, scheme = sentiment.map_labels(
        raw, label_column=data_args.label_column, label_scheme=sent_args.label_scheme,
        star_classes=sent_args.star_classes,
    )  # fmt: skip
    dd, labels = data.classification_from_args(
        raw, data_args, seed=training_args.seed, class_names=names, problem_type="single_label_classification"
    )
    untrained = [n for i, n in enumerate(labels.names) if i not in set(dd["train"]["label"])]
    if untrained:  # e.g. neutral only in the dev file: the class exists but the model never sees an example of it
        logger.warning("no training rows for class(es) %s: the model can't learn them; add examples", untrained)

    # ---- 3. task model + tokenizer + transfer strategy
    tokenizer = modeling.tokenizer_for(model_args, job.model_path)
    if sent_args.long_text == "tail":
        # init_kwargs is what save_pretrained writes to tokenizer_config.json: pipeline(truncation=True) keeps the tail
        tokenizer.truncation_side = tokenizer.init_kwargs["truncation_side"] = "left"
    model = modeling.classifier_for(model_args, job.model_path, labels, tokenizer, head_args)
    max_len = modeling.fit_max_length(data_args.max_seq_length, model.config)
    model.config.update(sent_args.config_entries())  # how it reads long texts travels in config.json
    model = strategies.apply(model, model_args, task_type=TASK.peft_task_type)

    # ---- 4. tokenise for the long-text strategy (cached by `datasets`), Trainer, train and evaluate
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = sentiment.tokenize(
            dd, tokenizer, max_seq_length=max_len, long_text=sent_args.long_text,
            head_fraction=sent_args.head_fraction, window_stride=sent_args.window_stride,
            max_windows=sent_args.max_windows,
        )  # fmt: skip
    long_docs = sum(1 for n in tokenized["train"]["length"] if n >= max_len)
    logger.info("%d of %d training features fill the %d-token budget", long_docs, len(tokenized["train"]), max_len)
    adapt = domain.setup(
        job, dd["train"], tokenizer, max_len, labels.problem_type, long_text=sent_args.long_text,
        head_fraction=sent_args.head_fraction,
    )  # fmt: skip
    compute_metrics, point_metrics_at = sentiment.evaluation_setup(
        sent_args, training_args, job.explicit, tokenized, labels.problem_type
    )
    trainer_cls, trainer_kwargs = features.trainer_for(model_args, head_args, model, adapt.trainer_cls, adapt.kwargs)
    trainer = trainer_cls(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=job.eval_split(tokenized),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        **trainer_kwargs,
    )
    body = contrastive.train_if_asked(head_args, model_args, model, tokenized["train"], trainer.data_collator,
                                      training_args)  # fmt: skip
    metrics = run.train(job, trainer, tokenized, before_evaluate=point_metrics_at)
    metrics.update(label_scheme=scheme, **adapt.metrics, **body)

    # ---- 5. finish: the pipeline sees each text the way the model was trained to read it (head_tail: cut first)
    texts = round_trip_inputs(dd)
    cut = sentiment.shorten(
        texts, tokenizer, max_seq_length=max_len, long_text=sent_args.long_text, head_fraction=sent_args.head_fraction
    )

    def check_predict(folder):  # sentiment.predict (which applies --long_text itself) agrees with the trained model
        return sentiment.check_predict(folder, trainer.model, tokenizer, texts, labels.names, max_len, sent_args)

    return run.finish(
        job,
        trainer,
        metrics,
        export=tasks.Export(
            tokenizer,
            max_len,
            cut,
            label2id=labels.label2id,
            extra_checks={"predict": check_predict},
            trust_remote_code=modeling.needs_remote_code(model),
        ),
        card=CardInfo(
            data.dataset_label(data_args, DEFAULT_DATASET),
            {
                "training examples": len(dd["train"]),
                "labels": f"{scheme} -> {', '.join(labels.names)}",
                "long texts": sent_args.describe(),
                **adapt.card_facts,
            },
            label_names=labels.names,
            problem_type=labels.problem_type,
        ),
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
