"""Fine-tune a pretrained encoder or decoder for text classification (single-label, multi-label, regression).

Launch commands::

    # embedded default, no arguments, no network: MiniLM-L6 on BBC News topics (5 classes), ~7 min on 2 CPU cores
    python -m nlp_transfer.recipes.classify

    # a shipped config, with command-line overrides (defaults < YAML < CLI)
    python -m nlp_transfer.recipes.classify --config recipes/classify/minilm_bbc_news_lora.yaml --learning_rate 3e-4

    # your data and model
    python -m nlp_transfer.recipes.classify --model_name_or_path <folder or hub id> \\
        --train_file train.csv --validation_file dev.csv --text_column text --label_column label \\
        --strategy lora --output_dir out/

    # the same through the console script
    nlp-transfer classify --strategy frozen --output_dir out/

    # domain adaptation: labelled source rows + unlabelled target-domain text (README.md, "Domain adaptation")
    nlp-transfer classify --train_file reviews.csv --target_file tweets.txt --domain_adaptation dann --output_dir out/

    # then, anywhere transformers (and peft, for LoRA) is installed:
    #   pipeline("text-classification", model="out/", truncation=True)

Strategies: full | frozen (feature extraction) | partial (embeddings + bottom N layers frozen) | lora.
Learning rate, when not set: 5e-5 for full and partial, 3e-2 for frozen, 1e-3 for lora.
Outputs (see docs/ARCHITECTURE.md): weights or adapter + head, tokenizer, config with label names, metrics.json,
run_config.yaml, training_curves.png, README.md model card, checkpoint-*/ for resuming.
"""

from __future__ import annotations

import logging
import sys

from transformers import DataCollatorWithPadding

from nlp_transfer import contrastive, data, domain, features, modeling, run, strategies, tasks
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
from nlp_transfer.metrics import make_compute_metrics
from nlp_transfer.tasks.classification import round_trip_inputs

logger = logging.getLogger("nlp_transfer.recipes.classify")
TASK = tasks.CLASSIFICATION
# what the command line and a --config file may set, in `job.args` order (tests parse shipped configs with it)
ARG_TYPES = (ModelArguments, HeadArguments, DataArguments, DomainArguments, TransferTrainingArguments)


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "classify", argv, ARG_TYPES, defaults=TRAINING_DEFAULTS, doc=__doc__, task=TASK,
    )  # fmt: skip
    model_args, head_args, data_args, _, training_args = job.args

    # ---- 2. data: load, check, label maps, held-out split
    if data_args.train_file is None and data_args.dataset_name is None:
        logger.info("no data given: using %s (see data_cards/bbc_news.md)", data.DEFAULT_DATASET)
    dd, labels = data.classification_from_args(data.load_from_args(data_args), data_args, seed=training_args.seed)

    # ---- 3. task model + tokenizer + transfer strategy
    tokenizer = modeling.tokenizer_for(model_args, job.model_path)
    model = modeling.classifier_for(model_args, job.model_path, labels, tokenizer, head_args)
    max_len = modeling.fit_max_length(data_args.max_seq_length, model.config)
    model = strategies.apply(model, model_args, task_type=TASK.peft_task_type)

    # ---- 4. tokenise (cached by `datasets`), Trainer, train and evaluate
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = data.tokenize_classification(
            dd, tokenizer, max_seq_length=max_len, pad_to_max_length=data_args.pad_to_max_length
        )
    adapt = domain.setup(job, dd["train"], tokenizer, max_len, labels.problem_type)  # plain Trainer unless asked
    trainer_cls, trainer_kwargs = features.trainer_for(model_args, head_args, model, adapt.trainer_cls, adapt.kwargs)
    trainer = trainer_cls(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=job.eval_split(tokenized),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(labels.problem_type),
        **trainer_kwargs,
    )
    body = contrastive.train_if_asked(head_args, model_args, model, tokenized["train"], trainer.data_collator,
                                      training_args)  # fmt: skip
    metrics = run.train(job, trainer, tokenized)
    metrics.update(**adapt.metrics, **body)

    # ---- 5. finish: save, round trip checked and recorded, card, metrics.json last, push
    return run.finish(
        job,
        trainer,
        metrics,
        export=tasks.Export(
            tokenizer,
            max_len,
            round_trip_inputs(dd),
            label2id=labels.label2id,
            trust_remote_code=modeling.needs_remote_code(model),
        ),  # fmt: skip
        card=CardInfo(
            data.dataset_label(data_args),
            {"training examples": len(dd["train"]), **adapt.card_facts},
            label_names=labels.names,
            problem_type=labels.problem_type,
        ),
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
