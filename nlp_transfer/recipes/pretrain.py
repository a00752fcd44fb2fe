"""Continued pretraining on unlabelled domain or task text (DAPT / TAPT, Gururangan et al. 2020): masked LM for
encoders, causal LM for decoders; then fine-tune from the output folder with any recipe.

Launch commands::

    # embedded default, no arguments, no network: MiniLM-L6 (a new MLM head), masked LM on the CrowdFlower tweets'
    # text (TAPT for the sentiment default), 64 steps: 7.5-9.5 min measured on 2 shared CPU cores, ~3.5 min
    # estimated unshared; held-out perplexity 49,770 (untrained head) -> 409 (recipes/README.md, "pretrain")
    python -m nlp_transfer.recipes.pretrain

    # a shipped config, with command-line overrides (defaults < YAML < CLI)
    python -m nlp_transfer.recipes.pretrain --config recipes/pretrain/minilm_crowdflower_tweets_tapt.yaml

    # your text (.txt one document per line, csv/jsonl --text_column, <split>/<label>/*.txt folder or .tar.gz)
    python -m nlp_transfer.recipes.pretrain --model_name_or_path <ckpt> --train_file domain_text.txt \\
        --output_dir dapt/

    # a decoder: causal LM, read off the checkpoint (--objective auto|mlm|clm)
    nlp-transfer pretrain --model_name_or_path <gpt-style ckpt> --train_file domain_text.txt --output_dir dapt/

    # then fine-tune from it (step two), and/or:  pipeline("fill-mask", model="dapt/")
    python -m nlp_transfer.recipes.classify --model_name_or_path dapt/ --train_file train.csv --output_dir clf/

Masked LM: --mlm_probability (0.15) of the tokens re-drawn every batch (dynamic masking), --whole_word_mask.
Rows: documents concatenated and cut into --max_seq_length blocks (default), or --line_by_line true.
Held-out perplexity is measured before the first step and after the last (metrics.json: eval_perplexity_before,
eval_perplexity). A checkpoint without an MLM head (MiniLM-L6 is a BertModel) gets one from AutoModelForMaskedLM.
Strategies: full | partial (lora is refused: the folder must be a plain checkpoint; frozen would train only the
head, which fine-tuning drops). Outputs: a plain AutoModelForMaskedLM / AutoModelForCausalLM folder, tokenizer,
metrics.json, run_config.yaml, training_curves.png, README.md model card, checkpoint-*/ for resuming.
"""

from __future__ import annotations

import logging
import sys

from transformers import Trainer

from nlp_transfer import modeling, pretraining, run, strategies, tasks
from nlp_transfer.artifacts.card import CardInfo
from nlp_transfer.cli import run_main
from nlp_transfer.config import TRAINING_DEFAULTS, ModelArguments, TransferTrainingArguments
from nlp_transfer.pretraining import LMDataArguments, PretrainArguments
from nlp_transfer.tasks.language_modeling import causal_inputs, fill_mask_inputs

logger = logging.getLogger("nlp_transfer.recipes.pretrain")
# the collator reads special_tokens_mask / offset_mapping, which Trainer would otherwise drop
DEFAULTS = {**TRAINING_DEFAULTS, "remove_unused_columns": False}
# The embedded default's budget (applied only when no text is given, to options the user did not set): one epoch
# over 4,000 tweets, 500 held out. Learning rate: 30-step probes of 5e-5 / 2e-4 / 5e-4 reached held-out perplexity
# 1,681 / 1,044 / 699 with the new head (recipes/README.md, "pretrain"); 2e-4 fits the head faster than fine-tuning's
# 5e-5 without going to 10x that rate on the encoder.
DEFAULT_BUDGET = {"max_train_samples": 4000, "max_eval_samples": 500, "num_train_epochs": 1, "learning_rate": 2e-4}


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration (defaults < --config YAML < CLI), output folder, seed: checked before anything loads
    job = run.start(
        "pretrain", argv, (ModelArguments, PretrainArguments, LMDataArguments, TransferTrainingArguments),
        defaults=DEFAULTS, doc=__doc__,
    )  # fmt: skip
    model_args, pt_args, data_args, training_args = job.args
    pretraining.check_strategy(job.strategy)

    # ---- 2. text: documents, a seeded hold-out of documents, budgets
    if data_args.train_file is None:
        for k, v in DEFAULT_BUDGET.items():
            if k not in job.explicit:
                setattr(next(a for a in job.args if hasattr(a, k)), k, v)
        logger.info("no text given: using %s's texts (see data_cards/crowdflower_tweets.md)", pretraining.DEFAULT_TEXT)
    texts = pretraining.load_texts(data_args, seed=training_args.seed)

    # ---- 3. LM model (a new MLM head for a plain encoder) + tokenizer + transfer strategy
    tokenizer = modeling.tokenizer_for(model_args, job.model_path)
    objective = pretraining.choose_objective(pt_args.objective, job.model_path, tokenizer, model_args)
    job.task = tasks.FILL_MASK if objective == "mlm" else tasks.TEXT_GENERATION  # known once the checkpoint is read
    model, head = pretraining.load_lm_model(
        job.model_path, objective, name=model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )  # fmt: skip
    max_len = modeling.fit_max_length(data_args.max_seq_length, model.config)
    model = strategies.apply(model, model_args, task_type=job.task.peft_task_type)
    pretraining.check_trains_backbone(model)

    # ---- 4. rows (blocks or documents; held-out masked once), Trainer, perplexity before, train, perplexity after
    rows = pretraining.tokenize(
        texts, tokenizer, objective=objective, max_seq_length=max_len, line_by_line=data_args.line_by_line,
        mlm_probability=pt_args.mlm_probability, whole_word_mask=pt_args.whole_word_mask, seed=training_args.seed,
    )  # fmt: skip
    logger.info(
        "%s: %d training rows from %d documents, %d held-out rows from %d", objective, len(rows["train"]),
        len(texts["train"]), len(rows["validation"]), len(texts["validation"]),
    )  # fmt: skip
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=rows["train"],
        eval_dataset=job.eval_split(rows),
        data_collator=pretraining.make_collator(
            tokenizer, objective, pt_args.mlm_probability, pt_args.whole_word_mask
        ),
        processing_class=tokenizer,
        callbacks=[pretraining.PerplexityCallback()],
    )
    before = pretraining.evaluate_before(trainer, rows["validation"], new_head=bool(head["new"]))
    metrics = run.train(job, trainer, rows)
    metrics.update(before, objective=objective)

    # ---- 5. finish: save, round trip (fill-mask pipeline | AutoModelForCausalLM) recorded, card, metrics.json last
    make_inputs = fill_mask_inputs if objective == "mlm" else causal_inputs  # held-out texts first
    inputs = make_inputs(texts["validation"] + texts["train"], tokenizer, max_len)
    return run.finish(
        job,
        trainer,
        metrics,
        export=tasks.Export(
            tokenizer, max_len, inputs, settings=pretraining.card_settings(objective, pt_args, data_args, head, model)
        ),
        card=CardInfo(
            pretraining.text_label(data_args),
            {"training documents": len(texts["train"]), "training rows": len(rows["train"])},
        ),
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
