"""Few-shot contrastive body training (SetFit's first step, Tunstall et al. 2022): before the classifier trains,
the backbone is fine-tuned so that the pooled embeddings of two training texts are similar when they share a label
and dissimilar when they do not. With a handful of labels per class this turns K examples into K x K pairs, which
is why it beats plain fine-tuning at 8-64 examples per class.

- Pairs: for each of ``--contrastive_iterations`` rounds, every training row gets one partner of its own label
  (target similarity 1) and one of another label (target 0), drawn with the run's seed (SetFit's sampling).
- Loss: SetFit's default, ``CosineSimilarityLoss``: the squared error between the cosine of the two pooled
  embeddings and the target.
- Then the recipe goes on as usual: ``--strategy frozen`` fits the head on the (cached) embeddings of the trained
  body, which is SetFit; ``--strategy full`` fine-tunes body and head from there.

Written here rather than through sentence-transformers: the body is the pooled classifier's own backbone
(`nlp_transfer.pooled_model`), so the trained weights are already where the export expects them, and the loss and
the pair sampling are a few lines; the `setfit` library is the benchmark's peer row (benchmarks/few_shot.py).
Single-label classification only (pairs need labels that are equal or not).
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict

import torch
import torch.nn.functional as F
from transformers import get_scheduler

from .errors import NLPTransferError

logger = logging.getLogger(__name__)


def make_pairs(labels: list, iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """``(i, j, target)`` row-index pairs: per round, each row with one same-label partner (1.0) and one
    other-label partner (0.0). A class with one example has no same-label partner; that row gets a negative only."""
    by_label = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    if len(by_label) < 2:
        raise NLPTransferError(
            "contrastive training needs at least two labels in the training data (pairs of different labels): "
            "add examples of another class or drop --contrastive_iterations"
        )
    if all(len(rows) < 2 for rows in by_label.values()):
        raise NLPTransferError(
            "contrastive training needs two examples of at least one label (a same-label pair); every label has "
            "one: add examples or drop --contrastive_iterations"
        )
    single = sorted(str(y) for y, rows in by_label.items() if len(rows) < 2)
    if single:
        logger.warning("contrastive pairs: label(s) %s have one example each, so they get no same-label pair", single)
    rng = random.Random(seed)
    others = {y: [c for c in by_label if c != y] for y in by_label}
    pairs = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = by_label[y]
            if len(same) > 1:
                j = rng.choice(same)
                while j == i:
                    j = rng.choice(same)
                pairs.append((i, j, 1.0))
            pairs.append((i, rng.choice(by_label[rng.choice(others[y])]), 0.0))
    rng.shuffle(pairs)
    return pairs


def cosine_loss(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SetFit's ``CosineSimilarityLoss``: mean squared error between cos(a, b) and the target similarity."""
    return F.mse_loss(F.cosine_similarity(a.float(), b.float(), dim=-1), target.float())


def train_body(model, dataset, collator, args, *, iterations: int, learning_rate: float, epochs: int = 1) -> dict:
    """Fine-tune ``model.backbone`` (a pooled classifier's) on contrastive pairs of ``dataset``'s rows.

    Args:
        model: `PooledModelForSequenceClassification` (its ``embed`` gives the pooled vector).
        dataset: the tokenised training split (model inputs and ``label``).
        collator: pads a list of rows (the recipe's `DataCollatorWithPadding`).
        args (`TrainingArguments`): batch size, seed, warm-up ratio, max_grad_norm, device.
        iterations (`int`), learning_rate (`float`), epochs (`int`): the contrastive options.
    Returns the step count, pair count, first and last logged loss (for metrics.json)."""
    label_col = "labels" if "labels" in dataset.column_names else "label"
    labels = list(dataset[label_col])
    if any(isinstance(y, (list, float)) for y in labels):
        raise NLPTransferError(
            "--contrastive_iterations pairs single-label examples; this data is multi-label or regression: drop it"
        )
    pairs = make_pairs(labels, iterations, args.seed)
    columns = [c for c in dataset.column_names if c in ("input_ids", "attention_mask", "token_type_ids")]
    rows = [{c: dataset[i][c] for c in columns} for i in range(len(dataset))]
    batch = args.per_device_train_batch_size
    steps = math.ceil(len(pairs) / batch) * epochs
    body = [p for p in model.backbone.parameters()]
    was = [p.requires_grad for p in body]
    for p in body:
        p.requires_grad = True
    optimizer = torch.optim.AdamW(body, lr=learning_rate, weight_decay=0.0)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=math.ceil(0.1 * steps), num_training_steps=steps)
    device = args.device
    model.to(device).train()
    losses, step = [], 0
    logger.info("contrastive body training: %d pairs of %d rows, %d steps", len(pairs), len(rows), steps)
    for _ in range(epochs):
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            left = collator([rows[i] for i, _, _ in chunk])
            right = collator([rows[j] for _, j, _ in chunk])
            a = model.embed(**{k: v.to(device) for k, v in left.items()})
            b = model.embed(**{k: v.to(device) for k, v in right.items()})
            loss = cosine_loss(a, b, torch.tensor([t for _, _, t in chunk], device=device))
            loss.backward()
            if args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(body, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
    for p, w in zip(body, was):
        p.requires_grad = w
    first, last = sum(losses[:5]) / min(5, len(losses)), sum(losses[-5:]) / min(5, len(losses))
    logger.info("contrastive body training: loss %.4f -> %.4f over %d steps", first, last, step)
    return {"contrastive_pairs": len(pairs), "contrastive_steps": step, "contrastive_loss_first": round(first, 4),
            "contrastive_loss_last": round(last, 4)}  # fmt: skip


def train_if_asked(head_args, model_args, model, train, collator, training_args) -> dict:
    """`train_body` when ``--contrastive_iterations`` > 0 (checked against the strategy and the head), else
    nothing. Returns what metrics.json records."""
    if head_args.contrastive_iterations <= 0:
        return {}
    if model_args.strategy == "lora":
        raise NLPTransferError(
            "--contrastive_iterations trains the whole body, LoRA only adapters: use --strategy frozen (SetFit: "
            "the head is then fitted on the trained body) or full"
        )
    if not hasattr(model, "embed"):
        raise NLPTransferError(
            "--contrastive_iterations trains the pooled sentence embedding: add --pooling mean (or cls / last)"
        )
    return train_body(
        model,
        train,
        collator,
        training_args,
        iterations=head_args.contrastive_iterations,
        learning_rate=head_args.contrastive_learning_rate,
        epochs=head_args.contrastive_epochs,
    )
