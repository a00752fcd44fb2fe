"""Domain adaptation while fine-tuning a classifier: labelled source rows + unlabelled target-domain text
(``--target_file``), with ``--domain_adaptation dann | consistency`` (`trainer` says what each does).

A recipe makes one call, after tokenising, and builds its Trainer from the answer::

    adapt = domain.setup(job, dd["train"], tokenizer, max_len, labels.problem_type)
    trainer = adapt.trainer_cls(model=model, ..., **adapt.kwargs)
    metrics.update(..., **adapt.metrics)             # domain_adaptation, target_texts
    CardInfo(..., {..., **adapt.card_facts})         # the card's line on the method and the target text

With ``--domain_adaptation none`` (the default) that is `transformers.Trainer`, no kwargs, nothing recorded: the run
is today's. Self-training needs no code here: the distill recipe with the source model as teacher and as student
(``--unlabeled_file`` = target text), see README.md, "Domain adaptation".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from transformers import Trainer

from .. import data, sentiment
from ..config import DataArguments, DomainArguments
from ..errors import NLPTransferError
from ..heads import find_head, pool_head_input
from .trainer import (
    DOMAIN_FILE,
    DomainAdaptationTrainer,
    consistency_loss,
    dann_lambda,
    domain_loss,
    make_discriminator,
    mask_tokens,
    reverse_gradient,
)

__all__ = [
    "DOMAIN_FILE",
    "Adaptation",
    "check_resume",
    "DomainAdaptationTrainer",
    "consistency_loss",
    "dann_lambda",
    "domain_loss",
    "find_head",
    "make_discriminator",
    "mask_tokens",
    "pool_head_input",
    "reverse_gradient",
    "setup",
]

logger = logging.getLogger(__name__)

DESCRIPTION = {
    "dann": "domain-adversarial training with a gradient-reversal layer, Ganin & Lempitsky 2015",
    "consistency": "KL consistency between two stochastic views of target text",
}


@dataclass
class Adaptation:
    """What a recipe needs from `setup`: the Trainer class and its extra kwargs, and what metrics.json and the card
    record (both empty without domain adaptation)."""

    trainer_cls: type = Trainer
    kwargs: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    card_facts: dict = field(default_factory=dict)


def setup(
    job, train, tokenizer, max_length: int, problem_type: str, *, long_text: str = "head", head_fraction: float = 0.25
) -> Adaptation:
    """Check the request against the data, read and tokenise the target text as the recipe tokenises its training
    text, and choose the Trainer.

    Args:
        job (`run.Run`): the started run (its `DomainArguments` and `DataArguments`, training arguments, resume).
        train (`datasets.Dataset`): the labelled training split (``text`` column), to compare the target text with.
        tokenizer, max_length (`int`): as the recipe tokenises (sentiment's ``tail`` tokenizer truncates on the left).
        problem_type (`str`): the labels' problem type; only single-label classification is adapted.
        long_text (`str`), head_fraction (`float`): sentiment's long-text mode. ``windows`` reads a target text's
            first window (its head): each training window is one such model input, and a discriminator or
            consistency term needs one feature per text.
    """
    args = next(a for a in job.args if isinstance(a, DomainArguments))
    method = args.domain_adaptation
    check_resume(job.resume, method)
    if method == "none":
        return Adaptation()
    if problem_type != "single_label_classification":
        raise NLPTransferError(
            f"--domain_adaptation {method} adapts single-label classifiers; this data is "
            f"{problem_type.replace('_', ' ')}: drop --domain_adaptation"
        )
    if "text_pair" in train.column_names:
        raise NLPTransferError(
            f"--domain_adaptation {method} reads one text per target row; sentence pairs (--text_pair_column) are "
            "not supported: drop one of the two"
        )
    text_column = next(a for a in job.args if isinstance(a, DataArguments)).text_column
    texts = data.read_texts(args.target_file, text_column, flag="--target_file")
    if set(texts) <= set(train["text"]):
        logger.warning(
            "every --target_file text is a training text: fine for task-adaptive use of the text, but %s then has "
            "no domain shift to learn; pass text from the domain the model will be used on",
            method,
        )
    mask_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    if method == "consistency" and args.consistency_mask_probability > 0 and mask_id is None:
        raise NLPTransferError(
            "--consistency_mask_probability needs a mask or unk token, and this tokenizer has neither: set it to 0"
        )
    rows = _tokenize(texts, tokenizer, max_length, "head" if long_text == "windows" else long_text, head_fraction)
    name = os.path.basename(os.path.normpath(args.target_file))  # the card never names a private path
    return Adaptation(
        DomainAdaptationTrainer,
        {
            "method": method,
            "target_rows": rows,
            "target_batch_size": args.target_batch_size or job.training_args.per_device_train_batch_size,
            "adversarial_weight": args.adversarial_weight,
            "consistency_weight": args.consistency_weight,
            "mask_probability": args.consistency_mask_probability,
            "mask_token_id": mask_id,
            "discriminator_hidden": args.discriminator_hidden,
            "discriminator_learning_rate": args.discriminator_learning_rate,
        },
        {"domain_adaptation": method, "target_texts": len(texts)},
        {"domain adaptation": f"{method} ({DESCRIPTION[method]}), target domain: {len(texts):,} texts of {name}"},
    )


def _tokenize(texts, tokenizer, max_length, long_text, head_fraction) -> list[dict]:
    cut = sentiment.shorten(
        texts, tokenizer, max_seq_length=max_length, long_text=long_text, head_fraction=head_fraction
    )
    enc = tokenizer(cut, truncation=True, max_length=max_length)
    keys = [k for k in tokenizer.model_input_names if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(cut))]


def check_resume(checkpoint: str | None, method: str) -> None:
    """A checkpoint resumes only under the method that wrote it (its optimizer holds the discriminator's group)."""
    if checkpoint is None:
        return
    path = os.path.join(checkpoint, DOMAIN_FILE)
    if os.path.isfile(path):
        import torch

        written = torch.load(path, map_location="cpu", weights_only=True).get("method", "dann")
    else:
        written = "none"
    if written != method:
        raise NLPTransferError(
            f"{checkpoint} was written with --domain_adaptation {written}: resume it with the same option"
        )
