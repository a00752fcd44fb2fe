"""Argument dataclasses and the parser every recipe uses: defaults < ``--config`` YAML < CLI flags.

Training hyper-parameters (learning rate, epochs, batch size, precision, logging, saving, resuming, ...) are
`transformers.TrainingArguments`; this module only declares what TrainingArguments does not cover.
Unknown keys, in the YAML file or on the command line, are errors that name the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser, TrainingArguments

from . import strategies
from .errors import NLPTransferError, redact

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Training defaults of every recipe, on top of TrainingArguments' own (a --config YAML and CLI flags override them).
TRAINING_DEFAULTS = {
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
    # length-aware batching: rows (QA: windows) of similar length share a batch, so dynamic padding pads little
    "train_sampling_strategy": "group_by_length",
    "seed": 42,
}


def _at_least(name: str, value, low) -> None:
    if value is not None and value < low:
        raise NLPTransferError(f"--{name} must be at least {low}, got {value}")


def _fraction(name: str, value: float, *, closed: bool = False) -> None:
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise NLPTransferError(f"--{name} must be between 0 and 1, got {value}")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class StrategyArguments:
    """How to transfer a pretrained checkpoint: which weights train (shared by every recipe, distillation's student
    included)."""

    strategy: str = field(
        default="full",
        metadata={
            "help": ". ".join(f"{s.name}: {s.help}" for s in strategies.STRATEGIES.values()) + ".",
            "choices": list(strategies.STRATEGIES),
        },
    )
    num_frozen_layers: int | None = field(
        default=None, metadata={"help": "partial: how many bottom layers to freeze (default: half of them)."}
    )
    lora_r: int = field(default=8, metadata={"help": "lora: rank of the update matrices."})
    lora_alpha: int = field(default=16, metadata={"help": "lora: scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "lora: dropout on the adapter input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "lora: module names to adapt. Default: PEFT's per-architecture choice (query/value for BERT, "
            "c_attn for GPT-2, q_proj/v_proj for Llama, ...), else all linear layers.",
            "nargs": "+",
        },
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "lora: also write a merged standalone model to <output_dir>/merged."}
    )
    save_base_model: bool = field(
        default=True,
        metadata={
            "help": "lora: also write the (unchanged) base weights next to the adapter, so plain "
            "pipeline(model=output_dir) works with no access to the base checkpoint. false writes only adapter + "
            "head + config; load it with PeftModel.from_pretrained(base, output_dir)."
        },
    )

    def __post_init__(self):
        _at_least("num_frozen_layers", self.num_frozen_layers, 0)
        _at_least("lora_r", self.lora_r, 1)
        _at_least("lora_alpha", self.lora_alpha, 1)
        _fraction("lora_dropout", self.lora_dropout)


@dataclass
class ModelArguments(StrategyArguments):
    """Which pretrained checkpoint to start from and how to transfer it."""

    model_name_or_path: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "Local folder or Hub id of the pretrained checkpoint. Hub ids that nlp_transfer ships an offline "
            f"copy of (e.g. {DEFAULT_MODEL}) load from that copy without a network."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run custom modelling code from the checkpoint. Off unless you ask."}
    )


@dataclass
class HeadArguments:
    """What the classification head reads, and how a frozen backbone's features are reused (classify, sentiment)."""

    pooling: str = field(
        default="model",
        metadata={
            "help": "model: the architecture's own head (BERT's [CLS] pooler, a decoder's last token); the folder is "
            "plain transformers. mean / cls / last: the head reads the attention-masked mean of the token states, "
            "the first token's state (no pooler) or the last non-pad token's; mean is what sentence-embedding "
            "checkpoints were trained for. Those folders carry pooled_model.py and load with "
            "pipeline(..., trust_remote_code=True).",
            "choices": ["model", "mean", "cls", "last"],
        },
    )
    pool_layers: int = field(
        default=1,
        metadata={"help": "mean / cls / last: pool each of the last N layers and concatenate them (feature fusion)."},
    )
    cache_features: bool = field(
        default=True,
        metadata={
            "help": "frozen: compute the backbone's features of the training rows once (cached on disk, keyed by "
            "backbone weights and tokenised rows) and train the head on them; false runs the frozen backbone on "
            "every step, as before."
        },
    )
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "frozen: where features are cached. Default: $NLP_TRANSFER_CACHE/features."}
    )

    contrastive_iterations: int = field(
        default=0,
        metadata={
            "help": "Few-shot (SetFit's first step): before the head trains, fine-tune the body on pairs of training "
            "texts, each round giving every row one same-label and one other-label partner; this many rounds (0: "
            "off; SetFit uses 20). Needs --pooling mean/cls/last; with --strategy frozen it is SetFit."
        },
    )
    contrastive_learning_rate: float = field(default=2e-5, metadata={"help": "Contrastive body learning rate."})
    contrastive_epochs: int = field(default=1, metadata={"help": "Passes over the contrastive pairs."})
    head_solver: str = field(
        default="adamw",
        metadata={
            "help": "frozen, with cached features: adamw trains the head with the run's optimizer settings "
            "(learning rate, epochs, batch size); lbfgs fits it to convergence on all rows at once (logistic "
            "regression with an L2 penalty of 1/(2N), as scikit-learn's default C=1, which SetFit uses).",
            "choices": ["adamw", "lbfgs"],
        },
    )

    def __post_init__(self):
        _at_least("pool_layers", self.pool_layers, 1)
        _at_least("contrastive_iterations", self.contrastive_iterations, 0)
        _at_least("contrastive_epochs", self.contrastive_epochs, 1)
        if self.contrastive_learning_rate <= 0:
            raise NLPTransferError(f"--contrastive_learning_rate must be > 0, got {self.contrastive_learning_rate}")
        if self.contrastive_iterations and self.pooling == "model":
            raise NLPTransferError(
                "--contrastive_iterations trains the pooled sentence embedding: add --pooling mean (or cls / last)"
            )
        if self.pool_layers > 1 and self.pooling == "model":
            raise NLPTransferError(
                "--pool_layers fuses layers of --pooling mean, cls or last; the model's own head reads one layer: "
                "add --pooling mean (or drop --pool_layers)"
            )

    @property
    def recorded(self) -> bool:
        """Whether run_config.yaml lists these options: only when one differs from its default, so a plain run's
        file stays as it was (and reruns where these options do not exist)."""
        return any(getattr(self, f.name) != f.default for f in dataclasses.fields(self))


@dataclass
class DistillArguments(StrategyArguments):
    """Teacher, student and the distillation losses (``nlp_transfer.recipes.distill``). The strategy options
    (--strategy, --lora_*) apply to the student."""

    teacher_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "The fine-tuned teacher: an output folder of this toolkit (full model, or base + LoRA adapter) or "
            "any sequence-classification checkpoint (folder or Hub id). Required."
        },
    )
    teacher_base_model: str | None = field(
        default=None,
        metadata={
            "help": "For an adapter-only teacher: the base checkpoint to apply it to (default: the one named in its "
            "adapter_config.json)."
        },
    )
    student_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A smaller pretrained checkpoint to train as the student (it may use another tokenizer). Default: "
            "a student cut from the teacher by keeping --student_layers."
        },
    )
    student_layers: str | None = field(
        default=None,
        metadata={
            "help": "Teacher layers the cut student keeps, comma-separated indices from 0 in increasing order (e.g. "
            "0,2,4). Default: every other layer, starting with the first."
        },
    )
    temperature: float = field(
        default=2.0, metadata={"help": "Softmax temperature T of the soft-target loss (KL scaled by T^2); > 0."}
    )
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "Weight of the soft-target (KD) loss; the hard-label loss gets 1 - alpha. 0 = no KD (plain "
            "fine-tuning of the student), 1 = teacher only. Unlabelled rows always use the KD loss alone."
        },
    )
    hidden_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the hidden-state loss (MSE between mapped student/teacher layers, through a learned "
            "projection when widths differ). Needs teacher and student to tokenise alike; runs the teacher live."
        },
    )
    attention_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the attention-map loss (KL between mapped layers' attention distributions). Needs the "
            "same tokeniser and head count; runs the teacher live with eager attention."
        },
    )
    unlabeled_file: str | None = field(
        default=None,
        metadata={
            "help": "Extra text (csv/tsv/json/jsonl/parquet/txt, one text per row in --text_column, or per line for "
            ".txt) distilled with the teacher's soft labels only."
        },
    )
    teacher_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where teacher outputs are cached (keyed by teacher, data and preprocessing). Default: "
            "$NLP_TRANSFER_CACHE/teacher_logits."
        },
    )
    teacher_batch_size: int = field(default=64, metadata={"help": "Batch size when computing the teacher's outputs."})
    measure_speed: bool = field(
        default=True,
        metadata={
            "help": "Measure teacher and student CPU latency (batch 1) and throughput (batch 32) for "
            "compression_report.json."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run custom modelling code from the checkpoints. Off unless you ask."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.teacher_name_or_path:
            raise NLPTransferError(
                "no teacher: pass --teacher_name_or_path <folder>, e.g. the output of "
                "`python -m nlp_transfer.recipes.classify --output_dir teacher/`"
            )
        if self.temperature <= 0:
            raise NLPTransferError(f"--temperature must be > 0, got {self.temperature}")
        _fraction("alpha", self.alpha, closed=True)
        if self.hidden_weight < 0 or self.attention_weight < 0:
            raise NLPTransferError("--hidden_weight and --attention_weight must be >= 0")
        _at_least("teacher_batch_size", self.teacher_batch_size, 1)


@dataclass
class DataArguments:
    """Where the data comes from and which columns mean what."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id, or builtin:<name> for a dataset nlp_transfer can build offline "
            "(builtin:bbc_news). Default when no --train_file is given either: builtin:bbc_news."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_file: str | None = field(
        default=None, metadata={"help": "csv, tsv, json, jsonl or parquet (optionally .gz) with the training rows."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation rows, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test rows, same formats."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text column for sentence-pair tasks (NLI, paraphrase)."}
    )
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    class_names: list[str] | None = field(
        default=None,
        metadata={"help": "Names for integer labels 0..K-1, in order (e.g. negative positive).", "nargs": "+"},
    )
    problem_type: Literal["auto", "single_label_classification", "multi_label_classification", "regression"] = field(
        default="auto",
        metadata={"help": "auto: list labels -> multi-label, non-integer numbers -> regression, else single-label."},
    )
    label_separator: str | None = field(
        default=None,
        metadata={"help": "multi-label in csv/tsv: the separator inside the label cell (e.g. '|')."},
    )
    validation_split: float = field(
        default=0.1,
        metadata={"help": "Fraction of train held out (seeded, stratified) when there is no validation split."},
    )
    test_split: float = field(
        default=0.0,
        metadata={"help": "Fraction of train held out as a test split when there is none (0 = no test split)."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated to this many tokens."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to max_seq_length (slower); default pads each batch to its longest."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use at most this many validation rows."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use at most this many test rows."})

    def __post_init__(self):
        _at_least("max_seq_length", self.max_seq_length, 2)
        if self.text_pair_column and self.text_pair_column == self.text_column:
            raise NLPTransferError(
                f"--text_pair_column and --text_column are both '{self.text_column}': the pair column is the second "
                "text (e.g. the hypothesis of an NLI pair); name another column, or drop --text_pair_column"
            )
        _fraction("validation_split", self.validation_split)
        _fraction("test_split", self.test_split)
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            _at_least(name, getattr(self, name), 1)


DOMAIN_METHODS = ("none", "dann", "consistency")


@dataclass
class DomainArguments:
    """Domain adaptation while fine-tuning (classify, sentiment): the labelled rows are the source domain, unlabelled
    ``--target_file`` text the target domain (``nlp_transfer.domain``)."""

    domain_adaptation: str = field(
        default="none",
        metadata={
            "help": "none: plain fine-tuning. dann: a domain discriminator on the features the head reads, trained "
            "through a gradient-reversal layer so source and target features become indistinguishable (Ganin & "
            "Lempitsky 2015). consistency: on target text, the prediction of a second stochastic view (dropout, "
            "optional token masking) is pulled towards the first (KL).",
            "choices": list(DOMAIN_METHODS),
        },
    )
    target_file: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled target-domain text: a .txt file (one text per line, optionally .gz), a csv/tsv/"
            "json/jsonl/parquet file (its --text_column, as named in the training file), or a <split>/<label>/*.txt "
            "folder or archive (labels ignored)."
        },
    )
    adversarial_weight: float = field(
        default=0.1,
        metadata={
            "help": "dann: weight of the domain loss (>= 0). 0.1 by default, not the paper's 1: at 1 the features "
            "collapsed on every model we measured (benchmarks/README.md, 'Domain shift')."
        },
    )
    consistency_weight: float = field(default=1.0, metadata={"help": "consistency: weight of the KL term (>= 0)."})
    consistency_mask_probability: float = field(
        default=0.0, metadata={"help": "consistency: share of view 2's tokens set to the mask (or unk) token, [0, 1)."}
    )
    target_batch_size: int | None = field(
        default=None, metadata={"help": "Target texts per step and device (default: --per_device_train_batch_size)."}
    )
    discriminator_hidden: int = field(default=256, metadata={"help": "dann: hidden width of the discriminator MLP."})
    discriminator_learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "dann: the discriminator's peak learning rate (the run's schedule scales it like the model's). "
            "It must out-learn the encoder: at the model's fine-tuning rate it lags, the encoder learns to make it "
            "wrong instead of uninformed, and target predictions collapse."
        },
    )

    def __post_init__(self):
        if self.domain_adaptation not in DOMAIN_METHODS:
            raise NLPTransferError(
                f"unknown --domain_adaptation '{self.domain_adaptation}': choose one of {', '.join(DOMAIN_METHODS)}"
            )
        if self.discriminator_learning_rate <= 0:
            raise NLPTransferError(
                f"--discriminator_learning_rate must be > 0, got {self.discriminator_learning_rate}"
            )
        for name in ("adversarial_weight", "consistency_weight"):
            if getattr(self, name) < 0:
                raise NLPTransferError(f"--{name} must be >= 0, got {getattr(self, name)}")
        _fraction("consistency_mask_probability", self.consistency_mask_probability)
        _at_least("target_batch_size", self.target_batch_size, 1)
        _at_least("discriminator_hidden", self.discriminator_hidden, 1)
        if self.domain_adaptation != "none" and not self.target_file:
            raise NLPTransferError(
                f"--domain_adaptation {self.domain_adaptation} needs unlabelled target-domain text: pass --target_file"
            )
        if self.target_file and self.domain_adaptation == "none":
            # refused, not ignored: a user who names target text expects the run to use it
            raise NLPTransferError(
                "--target_file is read only by domain adaptation: add --domain_adaptation dann or consistency, or "
                "drop --target_file"
            )
        if self.target_file:
            if not self.target_file.startswith("builtin:") and not os.path.exists(self.target_file):
                raise NLPTransferError(f"--target_file not found: {self.target_file} (check the path)")
            if os.path.isfile(self.target_file) and os.path.getsize(self.target_file) == 0:
                raise NLPTransferError(f"--target_file {self.target_file} is empty: it must hold target-domain text")

    @property
    def recorded(self) -> bool:
        """Whether run_config.yaml lists these options: only when a method is on, so a plain run's file stays as it
        was (and reruns where these options do not exist)."""
        return self.domain_adaptation != "none"


@dataclass
class QADataArguments:
    """Data options of the extractive QA recipe: SQuAD-format data, windows over long contexts and answer
    selection. (A separate dataclass rather than more `DataArguments` fields: the two recipes share only the file
    options, and each ``--help`` should list only what its recipe reads.)"""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id in SQuAD form (squad, squad_v2); needs a network. Or use --train_file."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training questions: nested SQuAD json ({'data': [{'title', 'paragraphs': [{'context', "
            "'qas'}]}]}, optionally .json.gz), or flat json/jsonl/csv/parquet rows with id, title, context, "
            "question, answers {text: [...], answer_start: [...]}."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation questions, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test questions, same formats."})
    id_column: str = field(default="id", metadata={"help": "Flat rows: the question id column (made up if absent)."})
    title_column: str = field(
        default="title", metadata={"help": "Flat rows: the article title column, which --validation_split groups by."}
    )
    context_column: str = field(default="context", metadata={"help": "Flat rows: the context column."})
    question_column: str = field(default="question", metadata={"help": "Flat rows: the question column."})
    answer_column: str = field(
        default="answers",
        metadata={"help": "Flat rows: the answers column, {text: [...], answer_start: [...]} or a list of those."},
    )
    version_2_with_negative: bool = field(
        default=False,
        metadata={
            "help": "SQuAD v2: some questions have no answer in the context (empty answers); the model may answer "
            '"" (see --null_score_diff_threshold).'
        },
    )
    null_score_diff_threshold: float = field(
        default=0.0,
        metadata={"help": 'v2: answer "" when the null score beats the best span\'s score by more than this.'},
    )
    max_seq_length: int = field(
        default=384, metadata={"help": "Tokens per window (question + context part + special tokens)."}
    )
    doc_stride: int = field(
        default=128,
        metadata={"help": "Tokens shared by consecutive windows when a context is longer than one window."},
    )
    max_answer_length: int = field(
        default=30, metadata={"help": "Longest answer the post-processing picks, in tokens."}
    )
    n_best_size: int = field(
        default=20, metadata={"help": "Start and end positions tried per window when picking the answer span."}
    )
    validation_split: float = field(
        default=0.1,
        metadata={
            "help": "When there is no validation split: the fraction of ARTICLES (titles) of train held out, "
            "seeded, so no article has questions on both sides."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every window to max_seq_length (slower); default pads each batch to its longest."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training questions (seeded random subset)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many validation questions (seeded random subset)."}
    )
    max_test_samples: int | None = field(default=None, metadata={"help": "Use at most this many test questions."})

    def __post_init__(self):
        _at_least("max_seq_length", self.max_seq_length, 8)
        _at_least("doc_stride", self.doc_stride, 0)
        _at_least("max_answer_length", self.max_answer_length, 1)
        _at_least("n_best_size", self.n_best_size, 1)
        _fraction("validation_split", self.validation_split)
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            _at_least(name, getattr(self, name), 1)


@dataclass
class TransferTrainingArguments(TrainingArguments):
    """`transformers.TrainingArguments` plus the output-folder policy of nlp_transfer."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace what an existing --output_dir holds. Without it a non-empty folder is refused."},
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "License of the trained model, for the model card (a Hub license id such as apache-2.0). "
            "Default: the license the base model's card declares, when that card is on disk."
        },
    )

    precision: str | None = field(
        default=None,
        metadata={
            "help": "Training precision: auto (bf16 on GPUs that support it, else fp16; bf16 autocast on CPUs with "
            "native bf16 (AVX-512-BF16/AMX); fp32 elsewhere — chosen from what the machine reports, logged with the "
            "reason), fp32, bf16 or fp16. Default: fp32, or what --bf16/--fp16 say. The saved model and its round "
            "trip are fp32 either way.",
            "choices": list(PRECISIONS),
        },
    )
    export: str | None = field(
        default=None,
        metadata={
            "help": "After the run, also write an ONNX Runtime copy to <output_dir>/onnx/ (checked against the saved "
            "model like the round trip; needs `pip install nlp-transfer[onnx]`). Same as `nlp-transfer export "
            "OUTPUT_DIR` afterwards.",
            "choices": ["onnx"],
        },
    )
    quantize: str | None = field(
        default=None,
        metadata={
            "help": "--export onnx: also write a dynamically quantised int8 model (onnx/model_quantized.onnx, the one "
            "the folder loads by default), refused unless it predicts the same labels (QA: answers) on >= 99%% of "
            "the held-out rows.",
            "choices": ["int8"],
        },
    )

    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop when the main metric on the validation split (accuracy, f1_micro, mse, SQuAD f1; loss for "
            "pretraining; --metric_for_best_model to choose) has not improved for this many evaluations, and keep "
            "the best checkpoint (load_best_model_at_end; a checkpoint is saved at every evaluation). Needs "
            "--eval_strategy epoch or steps and a validation split."
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={"help": "--early_stopping_patience: how much the metric must improve to count as an improvement."},
    )
    class_weights: str | None = field(
        default=None,
        metadata={
            "help": "Single-label classification: weighted cross-entropy. auto = inverse class frequency of the "
            "training split (n / (classes * n_class), scikit-learn's 'balanced'); a comma-separated list = one weight "
            "per label in label order; none (default) = unweighted, with a warning when the training split is "
            "badly imbalanced (largest class >= 5x the smallest)."
        },
    )
    calibrate: bool = field(
        default=False,
        metadata={
            "help": "Single-label classification: after training, fit temperature scaling on the validation split "
            "and fold 1/T into the classification head's last linear layer, so plain pipeline(...) scores are the "
            "calibrated ones (labels are unchanged). ECE before/after goes in metrics.json, the card and "
            "reliability_diagram.png."
        },
    )

    hpo_trials: int | None = field(
        default=None,
        metadata={
            "help": "Search hyperparameters first: this many trials of Trainer.hyperparameter_search (optuna, TPE "
            "seeded by --seed; needs `pip install nlp-transfer[hpo]`), each scored on the validation split by the "
            "task's main metric; the best setting is then retrained as the run. The space per strategy is in the "
            "README; trials table in hpo_trials.csv/png and the card."
        },
    )
    hpo_timeout: float | None = field(
        default=None,
        metadata={"help": "--hpo_trials: stop starting new trials after this many seconds."},
    )

    def __post_init__(self):
        # checked here, at parse time, so a bad value fails before --overwrite_output_dir clears anything
        self._check_evaluation_options()
        _at_least("hpo_trials", self.hpo_trials, 1)
        if self.hpo_timeout is not None and self.hpo_timeout <= 0:
            raise NLPTransferError(f"--hpo_timeout must be > 0 seconds, got {self.hpo_timeout}")
        if self.quantize and not self.export:
            raise NLPTransferError("--quantize int8 applies to the ONNX export: add --export onnx")
        self.precision_reason = None
        if self.precision is not None:
            want, self.precision_reason = resolve_precision(self.precision)
            given = "bf16" if self.bf16 else "fp16" if self.fp16 else None
            if given and given != want:
                raise NLPTransferError(
                    f"--precision {self.precision} ({want}) contradicts --{given}: give one of them"
                )
            self.bf16, self.fp16 = want == "bf16", want == "fp16"
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            _at_least(name, getattr(self, name), 1)
        if self.learning_rate <= 0:
            raise NLPTransferError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise NLPTransferError(
                f"--num_train_epochs must be > 0 (got {self.num_train_epochs}): a run that trains no step would "
                "publish the untrained model; set --num_train_epochs or --max_steps"
            )
        for name in ("weight_decay", "max_grad_norm", "warmup_steps", "dataloader_num_workers"):
            value = getattr(self, name, 0) or 0
            if value < 0:
                raise NLPTransferError(f"--{name} must be >= 0, got {value}")
        if not 0 <= self.label_smoothing_factor < 1:
            raise NLPTransferError(f"--label_smoothing_factor must be in [0, 1), got {self.label_smoothing_factor}")
        if self.output_dir is not None and not str(self.output_dir).strip():
            raise NLPTransferError("--output_dir is empty: give the folder the run should write")
        super().__post_init__()

    def _check_evaluation_options(self) -> None:
        """--class_weights' form, and what --early_stopping_patience needs from the evaluation/saving schedule (set
        here, before TrainingArguments checks load_best_model_at_end's requirements)."""
        if self.class_weights is not None:
            self.class_weights = parse_class_weights(self.class_weights)
        if self.early_stopping_threshold < 0:
            raise NLPTransferError(f"--early_stopping_threshold must be >= 0, got {self.early_stopping_threshold}")
        if self.early_stopping_patience is None:
            return
        _at_least("early_stopping_patience", self.early_stopping_patience, 1)
        if str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no":
            raise NLPTransferError(
                "--early_stopping_patience needs evaluations during training: add --eval_strategy epoch (or steps) "
                "and give a validation split"
            )
        self.load_best_model_at_end = True
        self.save_strategy = self.eval_strategy  # the best checkpoint must exist to be loaded at the end
        if str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "steps":
            self.save_steps = self.eval_steps or self.logging_steps


def parse_class_weights(value: str):
    """``auto`` / ``none`` / a comma-separated list of positive floats (returned as a list)."""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    text = str(value).strip().lower()
    if text in ("auto", "none"):
        return text
    try:
        weights = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        weights = []
    if not weights or any(not w > 0 for w in weights):
        raise NLPTransferError(
            f"--class_weights {value!r}: give auto, none, or one positive weight per label, comma-separated "
            "(e.g. 1,4.5)"
        )
    return weights


def _dataclass_keys(types) -> set[str]:
    return {f.name for t in types for f in dataclasses.fields(t) if f.init}


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors become NLPTransferError (one line, no usage dump)."""

    def error(self, message):  # argparse calls this for bad values and unknown choices
        raise NLPTransferError(f"{redact(message)} (see --help)")


def read_yaml(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise NLPTransferError(f"config file not found: {path} (check the path passed to --config)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NLPTransferError(f"config file {path} is not valid YAML ({first}): fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NLPTransferError(f"config file {path} must be a mapping of option: value, got {type(data).__name__}")
    return data


def peek_option(argv: list[str], name: str):
    """The value of ``--<name>`` as the user gave it (command line, else the ``--config`` YAML), read before the
    full parse: for choices that decide *which* arguments a recipe parses (distill's QA branch)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    pre.add_argument(f"--{name}", default=None)
    ns, _ = pre.parse_known_args(argv)
    value = getattr(ns, name)
    if value is None and ns.config:
        value = read_yaml(ns.config).get(name)
    return value


def _explicit_flags(argv: list[str], known: set[str]) -> set[str]:
    keys = set()
    for a in argv:
        if a.startswith("--"):
            k = a[2:].split("=", 1)[0].replace("-", "_")
            if k.startswith("no_") and k[3:] in known:
                k = k[3:]
            keys.add(k)
    return keys


def _cpu_has_fast_bf16(unknown: bool = True) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX-512-BF16 / AMX, as oneDNN reports it). Without
    them torch falls back to a slow path: bf16 training measured 18x slower than fp32 on an AVX2-only CPU
    (benchmarks/README.md, "Speed"). ``unknown``: the answer when this torch build cannot tell (True: no warning
    for an explicit --bf16; --precision auto passes False and keeps fp32)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an op this torch build does not have
        return unknown


def resolve_precision(choice: str) -> tuple[str, str]:
    """``--precision`` -> ``("fp32" | "bf16" | "fp16", reason)``: ``auto`` decides from what the machine reports.

    - a CUDA GPU: bf16 where ``torch.cuda.is_bf16_supported()`` (Ampere and newer), else fp16;
    - another accelerator (MPS, XPU): fp32 (not measured here);
    - a CPU: bf16 autocast when oneDNN reports native bf16 (AVX-512-BF16 / AMX; the classify recipe trained 1.35x
      faster than fp32 at the same accuracy), else fp32 (bf16 autocast without them measured 18x slower).
    """
    import torch

    if choice != "auto":
        return choice, f"--precision {choice}"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return "bf16", f"--precision auto: the GPU ({name}) supports bf16"
        return "fp16", f"--precision auto: the GPU ({name}) has no bf16, fp16 with loss scaling instead"
    if _has_accelerator():
        return "fp32", "--precision auto: fp32 on this accelerator (bf16/fp16 not measured on it)"
    if _cpu_has_fast_bf16(unknown=False):
        return "bf16", (
            "--precision auto: the CPU reports native bf16 (oneDNN: AVX-512-BF16/AMX), bf16 autocast "
            "(measured 1.35x faster than fp32 on such a CPU)"
        )
    return "fp32", (
        "--precision auto: the CPU has no native bf16 (AVX-512-BF16/AMX), fp32 (bf16 autocast measured 18x slower)"
    )


def _has_accelerator() -> bool:
    import torch

    xpu = getattr(torch, "xpu", None)
    mps = getattr(torch.backends, "mps", None)
    return (
        torch.cuda.is_available()
        or (xpu is not None and xpu.is_available())
        or (mps is not None and mps.is_available())
    )


def _multi_process_cpu() -> None:
    """Under ``torchrun``/``accelerate launch`` on a machine without an accelerator, ask for a multi-CPU (gloo) run.

    transformers 5 only sets up a CPU process group when ``use_cpu`` / ``ACCELERATE_USE_CPU`` is set; otherwise each
    rank trains alone on the full data and both write the output folder (seen with torchrun on 2 CPU processes).
    Must run before `TrainingArguments` is built (it sets up the device on creation)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def parse_args(
    dataclass_types: tuple,
    argv: list[str] | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
    prog: str | None = None,
) -> tuple[tuple, set[str]]:
    """Parse recipe arguments with the precedence recipe defaults < ``--config`` YAML < command-line flags.

    Args:
        dataclass_types (`tuple`):
            The argument dataclasses (e.g. ``(ModelArguments, DataArguments, TransferTrainingArguments)``).
        argv (`list[str]`, *optional*, defaults to `sys.argv[1:]`):
            Command-line arguments.
        defaults (`dict`, *optional*):
            Recipe-specific defaults that replace the dataclass defaults (lowest precedence).
        description (`str`, *optional*):
            Shown by ``--help``.
        prog (`str`, *optional*):
            Program name shown by ``--help``.

    Returns:
        `(instances, explicit)`: the dataclass instances in order, and the set of option names the user set
        explicitly (in the YAML file or on the command line), so recipes can pick strategy-aware defaults.

    Raises:
        `NLPTransferError`: unknown keys (named), invalid values, unreadable config files.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    known = _dataclass_keys(dataclass_types)

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    pre_ns, _ = pre.parse_known_args(argv)
    file_values = read_yaml(pre_ns.config) if pre_ns.config else {}
    unknown = sorted(set(file_values) - known)
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise NLPTransferError(
            f"unknown key(s) in {pre_ns.config}: {', '.join(hints)}; remove or rename them (see --help)"
        )

    parser = _Parser(
        dataclass_types,
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --max_answer_len must not silently mean --max_answer_length
    )
    parser.add_argument("--config", default=None, help="YAML file of option: value pairs; CLI flags override it.")
    merged = {**(defaults or {}), **file_values}
    # argparse converts string defaults with the option's type, so YAML strings like "3e-5" become floats.
    parser.set_defaults(**{k: v for k, v in merged.items()})
    _multi_process_cpu()
    auto = set()
    try:
        try:
            parsed = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        except ValueError as e:
            if "support bf16" not in str(e) or _has_accelerator():
                raise
            # --bf16 with no GPU: train on CPU with bf16 autocast. Set here, not as a default, so a run_config.yaml
            # written on a CPU machine does not pin later runs of it to the CPU.
            parser.set_defaults(use_cpu=True)
            parsed = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
            auto.add("use_cpu")
            if not _cpu_has_fast_bf16():
                logging.getLogger("nlp_transfer.config").warning(
                    "--bf16 on a CPU without bf16 matrix instructions (AVX-512-BF16/AMX): torch falls back to a slow "
                    "path (measured 18x slower than fp32); drop --bf16 to train in fp32"
                )
    except ValueError as e:  # TrainingArguments.__post_init__ validation
        raise NLPTransferError(f"invalid arguments: {str(e).splitlines()[0]}") from None
    *instances, remaining = parsed
    for inst in instances:
        if isinstance(inst, TrainingArguments):
            if getattr(inst, "precision", None) is not None:
                auto |= {"bf16", "fp16"}  # derived from --precision: a rerun of run_config.yaml decides again
            inst._nlp_transfer_auto = auto
    instances = [x for x in instances if not isinstance(x, argparse.Namespace)]
    if remaining:
        flags = [r for r in remaining if r.startswith("-")] or remaining
        close = difflib.get_close_matches(flags[0].lstrip("-").replace("-", "_"), known, n=1)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        raise NLPTransferError(f"unknown argument(s): {redact(' '.join(remaining))}{hint}; see --help")
    explicit = set(file_values) | _explicit_flags(argv, known)
    return tuple(instances), explicit


def to_serialisable(*instances) -> dict[str, Any]:
    """The resolved configuration as plain data (for ``run_config.yaml``); tokens are never included."""
    out: dict[str, Any] = {}
    keys = _dataclass_keys(type(i) for i in instances)
    for inst in instances:
        if not getattr(inst, "recorded", True):
            continue
        if isinstance(inst, TrainingArguments):
            d = inst.to_dict()  # masks *_token fields
            for k in getattr(inst, "_nlp_transfer_auto", ()):
                d.pop(k, None)
        else:
            d = dataclasses.asdict(inst)
        for k, v in d.items():
            if k not in keys or k.endswith("_token") or k == "resume_from_checkpoint":
                continue
            if isinstance(v, (str, int, float, bool, type(None))):
                out[k] = v
            elif isinstance(v, (list, tuple)):
                out[k] = [x if isinstance(x, (str, int, float, bool)) else str(x) for x in v]
            elif isinstance(v, dict):
                continue
            else:
                out[k] = str(v.value) if hasattr(v, "value") else str(v)
    return out
