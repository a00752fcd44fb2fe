"""Continued pretraining on unlabelled text (DAPT / TAPT, Gururangan et al. 2020, "Don't Stop Pretraining"): the
library side of ``nlp_transfer.recipes.pretrain``.

- `PretrainArguments` (objective, masking) and `LMDataArguments` (text, held-out documents, blocks), checked in
  ``__post_init__``.
- `load_texts`: documents from a file, folder or archive (`nlp_transfer.data.read_texts`) or ``builtin:<name>``, a
  seeded hold-out of documents, seeded budgets.
- `choose_objective` (masked LM for encoders, causal LM for decoders) and `load_lm_model` (an encoder saved without
  an MLM head gets one from ``AutoModelForMaskedLM``, and the log says so).
- `tokenize`: documents -> training rows, either one document per row or concatenated and cut into
  ``max_seq_length`` blocks (run_mlm.py's ``group_texts``); the held-out rows are masked once, with a fixed seed, so
  every evaluation (before training, each epoch, after) scores the same masked positions.
- `LMCollator` (dynamic masking of training rows; held-out rows only padded), `PerplexityCallback` (exp of the
  held-out loss, logged and plotted), `evaluate_before`.

Why ``--line_by_line false`` is the default: concatenating documents and cutting blocks never throws text away and
pads nothing. One document per row truncates every document at ``max_seq_length`` (a 421-token news article keeps
its first 128 tokens); for short texts such as tweets it loses nothing but buys only one thing, inputs that are
single documents as the fine-tuned model will see them. Packing is what RoBERTa's pretraining (FULL-SENTENCES) and
HF's run_mlm.py do by default; ask for ``--line_by_line true`` when single-document inputs matter to you.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass, field
from typing import Literal

from transformers import DataCollatorForLanguageModeling, TrainerCallback
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

from . import assets, data
from .errors import NLPTransferError
from .modeling import LOAD_ERRORS, load_error, weight_groups

logger = logging.getLogger(__name__)

DEFAULT_TEXT = "builtin:crowdflower_tweets"
OBJECTIVES = {"mlm": "masked language modelling", "clm": "causal language modelling"}
MIN_SEQ_LENGTH = 8


@dataclass
class PretrainArguments:
    """What the model learns from the text."""

    objective: Literal["auto", "mlm", "clm"] = field(
        default="auto",
        metadata={
            "help": "mlm: masked LM (BERT-style encoders); clm: causal LM, next-token prediction (GPT-style "
            "decoders). auto: read it off the checkpoint (its architecture, else whether its model type has a "
            "masked-LM class and its tokenizer a mask token)."
        },
    )
    mlm_probability: float = field(
        default=0.15,
        metadata={
            "help": "mlm: share of tokens chosen for prediction in each batch, re-drawn every time a row is seen "
            "(dynamic masking, as RoBERTa); of those, 80%% become the mask token, 10%% a random token, 10%% stay."
        },
    )
    whole_word_mask: bool = field(
        default=False,
        metadata={
            "help": "mlm: choose whole words rather than single tokens (every piece of a chosen word is masked; "
            "words read from the fast tokenizer's offsets, transformers 5's collator). Chosen tokens all become "
            "the mask token (no random replacement, as that collator does)."
        },
    )

    def __post_init__(self):
        if not 0 < self.mlm_probability < 1:
            raise NLPTransferError(
                f"--mlm_probability must be between 0 and 1 (exclusive), got {self.mlm_probability}"
            )


@dataclass
class LMDataArguments:
    """Unlabelled text: where it comes from, what is held out, how it is cut into training rows."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "The text: .txt (one document per line, optionally .gz), csv/tsv/json/jsonl/parquet (the "
            "--text_column), a <split>/<label>/*.txt folder or .tar.gz (every file a document, labels ignored), or "
            f"builtin:<name>. Default: {DEFAULT_TEXT}'s texts."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Held-out text for perplexity, same formats. Default: --validation_split."}
    )
    text_column: str = field(default="text", metadata={"help": "csv/jsonl/parquet: the column with the text."})
    validation_split: float = field(
        default=0.1,
        metadata={"help": "Without --validation_file: the share of documents held out (seeded), never trained on."},
    )
    line_by_line: bool = field(
        default=False,
        metadata={
            "help": "true: one document per row, cut at --max_seq_length. false: documents concatenated and cut "
            "into --max_seq_length blocks, so no text is lost and nothing is padded (see nlp_transfer/pretraining.py "
            "for why this is the default)."
        },
    )
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per row (block length); at least 8."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on at most this many documents (seeded random subset)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many held-out documents (seeded random subset)."}
    )

    def __post_init__(self):
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise NLPTransferError(
                f"--max_seq_length must be at least {MIN_SEQ_LENGTH} tokens, got {self.max_seq_length}"
            )
        if not 0 < self.validation_split < 1:
            raise NLPTransferError(
                f"--validation_split must be between 0 and 1 (exclusive), got {self.validation_split}: perplexity "
                "is measured on held-out documents"
            )
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise NLPTransferError(f"--{name} must be at least 1, got {value}")
        for name in ("train_file", "validation_file"):
            value = getattr(self, name)
            if value is not None and not value.startswith("builtin:") and not os.path.exists(value):
                raise NLPTransferError(f"--{name} not found: {value} (check the path)")


# ------------------------------------------------------------------------------------------------ text
def _read(source: str, text_column: str, flag: str) -> list[str]:
    if source.startswith("builtin:"):  # a built-in labelled dataset: its texts
        return data.read_texts(assets.builtin_dataset_file(source.split(":", 1)[1]), "text", flag=flag)
    return data.read_texts(source, text_column, flag=flag)


def _subset(texts: list[str], n: int | None, seed: int) -> list[str]:
    if n is None or n >= len(texts):
        return texts
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]


def load_texts(args: LMDataArguments, seed: int) -> dict[str, list[str]]:
    """``{"train": [...], "validation": [...]}`` documents: the validation file, else a seeded hold-out of
    ``validation_split`` of the documents; then the seeded ``max_*_samples`` budgets."""
    train = _read(args.train_file or DEFAULT_TEXT, args.text_column, "--train_file")
    if args.validation_file:
        held_out = _read(args.validation_file, args.text_column, "--validation_file")
    else:
        n_eval = max(1, round(args.validation_split * len(train)))
        if len(train) - n_eval < 1:
            raise NLPTransferError(
                f"--train_file holds {len(train)} document(s): too few to hold {args.validation_split:.0%} out; add "
                "text or pass --validation_file"
            )
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        eval_ids = set(order[:n_eval])
        held_out = [t for i, t in enumerate(train) if i in eval_ids]
        train = [t for i, t in enumerate(train) if i not in eval_ids]
    return {
        "train": _subset(train, args.max_train_samples, seed),
        "validation": _subset(held_out, args.max_eval_samples, seed),
    }


# ------------------------------------------------------------------------------------------------ the model
def choose_objective(objective: str, path: str, tokenizer, model_args) -> str:
    """``mlm`` or ``clm``: the one asked for (checked against the checkpoint at ``path``), or the one the checkpoint
    is for (``auto``)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    name = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(
            path, trust_remote_code=model_args.trust_remote_code, revision=model_args.model_revision
        )
    except LOAD_ERRORS as e:
        raise load_error(path, e) from None
    model_type = getattr(config, "model_type", None)
    archs = [str(a) for a in getattr(config, "architectures", None) or []]
    if objective == "auto":
        if any(a.endswith("ForMaskedLM") for a in archs):
            objective = "mlm"
        elif any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            objective = "clm"
        elif model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and tokenizer.mask_token is not None:
            objective = "mlm"
        elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            objective = "clm"
        else:
            raise NLPTransferError(
                f"{name} (model type {model_type!r}) has neither a masked-LM nor a causal-LM class in transformers: "
                "continued pretraining needs one"
            )
        logger.info("objective: %s (%s), read off %s", objective, OBJECTIVES[objective], name)
    if objective == "mlm":
        if tokenizer.mask_token is None:
            raise NLPTransferError(
                f"--objective mlm needs a mask token, and the tokenizer of {name} has none (a GPT-style decoder): use "
                "--objective clm (or auto)"
            )
        if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
            raise NLPTransferError(
                f"--objective mlm: transformers has no masked-LM class for model type {model_type!r}: use --objective "
                "clm (or auto)"
            )
    elif model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise NLPTransferError(
            f"--objective clm: transformers has no causal-LM class for model type {model_type!r}: use --objective mlm "
            "(or auto)"
        )
    return objective


def load_lm_model(
    path: str, objective: str, *, name: str | None = None, trust_remote_code: bool = False, revision: str = "main"
):
    """``AutoModelForMaskedLM`` (mlm) or ``AutoModelForCausalLM`` (clm) from ``path`` (``name``: as the user named it,
    for the log). A checkpoint without that head (a plain encoder such as MiniLM-L6's ``BertModel``) gets one:
    transformers ties its decoder to the input embeddings and initialises the rest (transform, bias) anew. That is
    logged here (transformers' own load report is silenced), with the checkpoint weights the LM model has no place
    for (a ``BertModel``'s pooler).

    Returns:
        `(model, head)`: the model, and ``{"new": [...], "dropped": [...], "tied": bool}`` (weight groups newly
        initialised / left out, and whether the output embeddings are the input embeddings).
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers import logging as hf_logging

    auto = AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a new head is expected for a plain encoder; reported below instead
    try:
        model, info = auto.from_pretrained(
            path, trust_remote_code=trust_remote_code, revision=revision, output_loading_info=True
        )
    except LOAD_ERRORS as e:
        raise load_error(path, e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    out, emb = model.get_output_embeddings(), model.get_input_embeddings()
    head = {
        "new": weight_groups(info.get("missing_keys")),
        "dropped": weight_groups(info.get("unexpected_keys")),
        "tied": out is not None and emb is not None and out.weight is emb.weight,
    }
    name = name or path
    if head["new"]:
        logger.info(
            "%s has no %s head: %s built one, %snewly initialised: %s", name,
            "masked-LM" if objective == "mlm" else "language-model", type(model).__name__,
            "its decoder tied to the input embeddings, " if head["tied"] else "", ", ".join(head["new"]),
        )  # fmt: skip
    if head["dropped"]:
        logger.info(
            "%s weights %s have no place in %s and are not in the output", name, ", ".join(head["dropped"]),
            type(model).__name__,
        )  # fmt: skip
    return model, head


def check_strategy(strategy) -> None:
    """Before anything loads: the output must be a plain checkpoint the other recipes fine-tune from."""
    if strategy.writes_adapter:
        raise NLPTransferError(
            f"--strategy {strategy.name} is not offered by pretrain: its folder must be a plain checkpoint that the "
            "other recipes fine-tune from; use --strategy full or partial (and adapters in the downstream recipe)"
        )


def check_trains_backbone(model) -> None:
    """After the strategy: some backbone weight must train (a frozen backbone would change nothing a downstream
    recipe keeps: it drops the LM head)."""
    if not any(p.requires_grad for p in model.base_model.parameters()):
        raise NLPTransferError(
            "this --strategy trains no backbone weight (only the LM head, which fine-tuning from the folder drops): "
            "continued pretraining must update the backbone; use --strategy full or partial"
        )


# ------------------------------------------------------------------------------------------------ rows
def _encode(texts: list[str], tokenizer, objective: str, whole_word_mask: bool) -> dict[str, list]:
    enc = tokenizer(
        texts,
        return_special_tokens_mask=objective == "mlm",
        return_offsets_mapping=whole_word_mask,
        verbose=False,  # documents longer than the model are cut below, not by the tokenizer
    )
    enc = {k: list(v) for k, v in enc.items()}
    eos = tokenizer.eos_token_id
    if objective == "clm" and eos is not None:  # documents end with eos, so the model learns where text ends
        for i, ids in enumerate(enc["input_ids"]):
            if not ids or ids[-1] != eos:
                for k in enc:
                    enc[k][i] = list(enc[k][i]) + [eos if k == "input_ids" else 1 if k == "attention_mask" else 0]
    return enc


def _rows(enc: dict[str, list], max_seq_length: int, line_by_line: bool) -> dict[str, list]:
    """One row per document (cut at ``max_seq_length``), or all documents concatenated and cut into blocks (the
    last, shorter block kept: no text is dropped)."""
    if line_by_line:
        return {k: [list(v[:max_seq_length]) for v in col] for k, col in enc.items()}
    out = {}
    for k, col in enc.items():
        flat = [x for v in col for x in v]
        out[k] = [flat[i : i + max_seq_length] for i in range(0, len(flat), max_seq_length)]
    return out


def tokenize(
    texts: dict[str, list[str]],
    tokenizer,
    *,
    objective: str,
    max_seq_length: int,
    line_by_line: bool,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = False,
    seed: int = 42,
):
    """Documents -> a `datasets.DatasetDict` of training rows (``input_ids``, ``attention_mask``, ...; mlm:
    ``special_tokens_mask``, whole words: ``offset_mapping``). Causal rows carry ``labels`` (the inputs); held-out
    masked-LM rows carry the masked inputs and their ``labels``, drawn once with ``seed``."""
    from datasets import Dataset, DatasetDict

    out = {}
    for split, docs in texts.items():
        rows = _rows(_encode(docs, tokenizer, objective, whole_word_mask), max_seq_length, line_by_line)
        if objective == "clm":
            rows["labels"] = [list(r) for r in rows["input_ids"]]
        elif split != "train":
            rows = _mask_once(rows, tokenizer, mlm_probability, whole_word_mask, seed)
        out[split] = Dataset.from_dict(rows)
    return DatasetDict(out)


def _mask_once(rows: dict[str, list], tokenizer, mlm_probability: float, whole_word_mask: bool, seed: int) -> dict:
    masker = make_collator(tokenizer, "mlm", mlm_probability, whole_word_mask, seed=seed)
    keys = list(rows)
    masked: dict[str, list] = {}
    for values in zip(*(rows[k] for k in keys)):
        batch = masker([dict(zip(keys, values))])
        for k, v in batch.items():
            masked.setdefault(k, []).append(v[0].tolist())
    return masked


@dataclass
class LMCollator(DataCollatorForLanguageModeling):
    """`DataCollatorForLanguageModeling` for rows that may already carry ``labels`` (causal rows, and held-out
    masked rows masked once): those are only padded (labels with -100); the rest are masked dynamically. Also pads
    ``offset_mapping`` for whole-word masking of rows of different lengths, which the transformers 5 collator
    leaves unpadded (it fails on them with "Unable to create tensor")."""

    def torch_call(self, examples):
        import torch

        examples = [dict(e) for e in examples]
        width = max(len(e["input_ids"]) for e in examples)
        left = self.tokenizer.padding_side == "left"

        def pad(seq, value):
            fill = [value] * (width - len(seq))
            return fill + list(seq) if left else list(seq) + fill

        if "labels" in examples[0]:
            labels = torch.tensor([pad(e.pop("labels"), -100) for e in examples])
            batch = pad_without_fast_tokenizer_warning(self.tokenizer, examples, return_tensors="pt")
            batch.pop("special_tokens_mask", None)
            return {**batch, "labels": labels}
        if "offset_mapping" in examples[0]:
            for e in examples:
                e["offset_mapping"] = pad([tuple(o) for o in e["offset_mapping"]], (0, 0))
        return super().torch_call(examples)


def make_collator(tokenizer, objective: str, mlm_probability: float, whole_word_mask: bool, seed: int | None = None):
    """The collator of ``objective``: masked LM with dynamic masking (whole words when asked), or causal LM."""
    if objective == "clm":
        return LMCollator(tokenizer, mlm=False)
    extra = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if whole_word_mask else {}
    return LMCollator(
        tokenizer, mlm=True, mlm_probability=mlm_probability, whole_word_mask=whole_word_mask, seed=seed, **extra
    )


# ------------------------------------------------------------------------------------------------ perplexity
def perplexity(loss: float) -> float:
    """exp(mean held-out loss), as run_mlm.py / run_clm.py report it (mlm: over the masked tokens)."""
    return math.exp(loss) if loss < 700 else math.inf


class PerplexityCallback(TrainerCallback):
    """Adds ``<prefix>_perplexity`` next to every ``<prefix>_loss`` an evaluation reports: in the returned metrics
    and in the log history (so the training curves plot it). An evaluation before training (`evaluate_before`) is
    put back at the head of the history when ``Trainer.train`` starts a new one, so the curves begin at step 0."""

    def __init__(self):
        self.before: list[dict] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        for key in [k for k in metrics or {} if k.endswith("_loss")]:
            name = key[: -len("_loss")] + "_perplexity"
            metrics[name] = perplexity(metrics[key])
            if state.log_history and state.log_history[-1].get(key) == metrics[key]:
                state.log_history[-1][name] = metrics[name]
        if state.global_step == 0 and state.log_history:
            self.before = [dict(state.log_history[-1])]

    def on_train_begin(self, args, state, control, **kwargs):
        if self.before and not any(h.get("step") == 0 and "eval_loss" in h for h in state.log_history):
            state.log_history[:0] = self.before


def evaluate_before(trainer, dataset, *, new_head: bool = False) -> dict:
    """The held-out loss and perplexity of the model as loaded, before any training step (``eval_*_before``)."""
    m = trainer.evaluate(dataset, metric_key_prefix="eval")
    logger.info(
        "held-out perplexity before training: %.2f (loss %.4f)%s", m["eval_perplexity"], m["eval_loss"],
        "; the LM head is new and untrained, so this is chance level (about the vocabulary size)" if new_head else "",
    )  # fmt: skip
    return {"eval_loss_before": m["eval_loss"], "eval_perplexity_before": m["eval_perplexity"]}


# ------------------------------------------------------------------------------------------------ the card
def text_label(args: LMDataArguments) -> str:
    """How the card names the text: a built-in dataset as given, a file or folder by its name."""
    source = args.train_file or DEFAULT_TEXT
    return source if source.startswith("builtin:") else os.path.basename(source.rstrip("/"))


def card_settings(objective: str, pt_args: PretrainArguments, data_args: LMDataArguments, head: dict, model) -> dict:
    """What the card says about the run (`nlp_transfer.tasks.Export.settings` of the LM tasks)."""
    notes = []
    if head["new"]:
        kind = "masked-LM" if objective == "mlm" else "language-model"
        tied = " (its decoder tied to the input embeddings)" if head["tied"] else ""
        new = ", ".join(f"`{g}`" for g in head["new"])
        notes.append(
            f"The base checkpoint had no {kind} head: `{type(model).__name__}` built one{tied}, with {new} newly "
            "initialised, and trained it together with the backbone; the perplexity before training is that of the "
            "untrained head (chance level)."
        )
    if head["dropped"]:
        dropped = ", ".join(f"`{g}`" for g in head["dropped"])
        notes.append(
            f"The base's {dropped} weights have no place in `{type(model).__name__}` and are not in this folder: a "
            "classifier that uses them (BERT's pooler) starts with new ones when fine-tuned from here."
        )
    if objective == "mlm":
        words = "whole words" if pt_args.whole_word_mask else "tokens"
        what = f"masked LM, {pt_args.mlm_probability:.0%} of the {words} masked, re-drawn every batch (dynamic)"
    else:
        what = "causal LM (next-token prediction), documents ended with the eos token"
    rows = (
        f"one document per row, cut at {data_args.max_seq_length} tokens"
        if data_args.line_by_line
        else f"documents concatenated and cut into {data_args.max_seq_length}-token blocks"
    )
    return {"notes": notes, "training_lines": [f"Objective: {what}", f"Rows: {rows}"]}
