"""Feature extraction done once: with a frozen backbone (``--strategy frozen``), the vector each training example's
head reads is computed once (eval mode, no gradients, batches sorted by length), cached on disk, and the head trains
on the cached vectors, so an epoch costs milliseconds instead of a backbone pass.

What the cache holds and how it is keyed: `head_inputs` stores, per training row, the vector the model's own head
classifies (`nlp_transfer.heads.pool_head_input`: BERT's pooled vector, RoBERTa's first token, a decoder's last
non-pad token), under a key naming the backbone's weights (every parameter outside the head, hashed), the model
class, the head and the tokenised rows (input ids, masks). Another backbone, tokenizer, ``--max_seq_length`` or text
is a miss, never a wrong hit; a second run on the same data (another seed, learning rate or epoch count) is a hit.

The trained head is written back into the model, so everything after training is the plain run's: evaluation runs
the whole model, the folder is a plain transformers classifier and the pipeline round trip is checked as always.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, get_scheduler
from transformers.trainer_utils import TrainOutput

from . import assets
from .cache import cached_arrays
from .heads import apply_head, find_head, layout, pool_head_input

logger = logging.getLogger(__name__)

FLAG = "--strategy frozen"


def backbone_fingerprint(model: nn.Module, head_name: str) -> str:
    """A hash of every weight outside the head (the head is new and seed-dependent; the features do not use it)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name == head_name or name.startswith(head_name + "."):
            continue
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def rows_fingerprint(dataset, columns: list[str]) -> str:
    """A hash of the tokenised rows (what the backbone reads), in order."""
    h = hashlib.sha256()
    for col in columns:
        h.update(col.encode())
        for row in dataset[col]:
            h.update(np.asarray(row, dtype=np.int64).tobytes())
            h.update(b"\x1e")
    return h.hexdigest()[:16]


@torch.inference_mode()
def head_inputs(model: nn.Module, dataset, collator, *, batch_size: int, columns: list[str]) -> dict:
    """The pooled vector the head reads for every row of ``dataset`` (rows in order), with a progress bar.
    Returns ``{"features": [N, H] float32, "layout": <one of heads.LAYOUTS>}``."""
    from tqdm.auto import tqdm

    head_name, head = find_head(model, flag=FLAG)
    seen = {}

    def capture(module, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()))
        seen["x"], seen["out"] = x, output

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in dataset["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out, kind = None, None
    handle = head.register_forward_hook(capture, with_kwargs=True)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="backbone features", unit="batch", mininterval=2.0):
            idx = order[start : start + batch_size]
            batch = collator([{c: dataset[i][c] for c in columns} for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            model(**batch)
            kind = layout(seen["x"], seen["out"])
            vec = pool_head_input(seen["x"], 2 if kind == "first_token" else 3, batch.get("attention_mask"))
            if out is None:
                out = np.zeros((len(order), vec.shape[-1]), dtype=np.float32)
            out[idx] = vec.float().cpu().numpy()
    finally:
        handle.remove()
        model.train(was_training)
    return {"features": out, "layout": np.array(kind)}


def eligible(model: nn.Module) -> bool:
    """Whether only the head trains (so its input is a fixed function of the example)."""
    try:
        head_name, head = find_head(model, flag=FLAG)
    except Exception:  # noqa: BLE001 - no head by name: not this path
        return False
    mine = {id(p) for p in head.parameters()}
    return not any(p.requires_grad and id(p) not in mine for p in model.parameters())


class CachedFeaturesTrainer(Trainer):
    """`Trainer` whose `train` fits the head on cached backbone features (`head_inputs`) instead of running the
    backbone every step. Same options: learning rate, its schedule and warm-up, weight decay, epochs or
    ``max_steps``, batch size, seed, logging steps. Evaluation, saving and everything after are `Trainer`'s.

    What differs from a step-by-step frozen run: the head reads features computed in eval mode, so the backbone's
    dropout is off (it is frozen; its dropout only noised the features); the dropout the model applies before a
    BERT-style head is applied to the cached vectors instead. No checkpoints are written (the fit takes seconds;
    ``--resume_from_checkpoint`` trains again) and no mid-training evaluation runs (the recipe evaluates after).

    Args (beyond `Trainer`'s):
        feature_cache_dir (`str`, *optional*): where features are cached (default ``$NLP_TRANSFER_CACHE/features``).
        head_solver (`str`): ``adamw`` (above) or ``lbfgs``: full-batch L-BFGS to convergence (at most 1,000
            iterations) on the loss plus ``||W||^2 / (2N)`` (scikit-learn's ``LogisticRegression(C=1)``, SetFit's
            head); learning rate, epochs and batch size are then unused.
    """

    def __init__(self, *args, feature_cache_dir: str | None = None, head_solver: str = "adamw", **kwargs):
        super().__init__(*args, **kwargs)
        self.head_solver = head_solver
        self.feature_cache_dir = feature_cache_dir or os.path.join(str(assets.cache_dir()), "features")
        self.cache_hit = None

    def _columns(self) -> list[str]:
        names = getattr(self.processing_class, "model_input_names", None) or ["input_ids", "attention_mask"]
        return [c for c in self.train_dataset.column_names if c in names]

    def cached_features(self) -> tuple[np.ndarray, str]:
        model, data = self.model, self.train_dataset
        head_name, _ = find_head(model, flag=FLAG)
        columns = self._columns()
        key = {
            "kind": "head_inputs",
            "backbone": backbone_fingerprint(model, head_name),
            "model_class": type(model).__name__,
            "head": head_name,
            "rows": len(data),
            "data": rows_fingerprint(data, columns),
            "split": "train",
        }
        batch = max(self.args.per_device_eval_batch_size, 32)
        out, self.cache_hit = cached_arrays(
            self.feature_cache_dir,
            key,
            lambda: head_inputs(model, data, self.data_collator, batch_size=batch, columns=columns),
            what="backbone features",
        )
        return out["features"], str(out["layout"])

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.compute_loss_func is not None:  # --class_weights: the weighted cross-entropy, as the plain Trainer's
            return self.compute_loss_func({"logits": logits}, labels)
        problem = self.model.config.problem_type
        if problem == "regression":
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        if problem == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return F.cross_entropy(logits.float(), labels.long())

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        if resume_from_checkpoint:
            logger.info("cached features: the head refits in seconds, so there is nothing to resume; training again")
        start = time.time()
        feats, kind = self.cached_features()
        data = self.train_dataset
        labels = torch.tensor(np.asarray(data["labels" if "labels" in data.column_names else "label"]))
        args, device = self.args, self.args.device
        x = torch.from_numpy(feats).to(device)
        y = labels.to(device)
        _, head = find_head(self.model, flag=FLAG)
        head.to(device)
        # the dropout the model applies to a BERT-style head's input (RoBERTa-style heads carry their own)
        config = self.model.config
        p_drop = getattr(config, "classifier_dropout", None)
        p_drop = (getattr(config, "hidden_dropout_prob", 0.0) if p_drop is None else p_drop) if kind == "vector" else 0
        if self.head_solver == "lbfgs":
            return self._fit_lbfgs(head, x, y, kind, start)
        batch = args.per_device_train_batch_size
        per_epoch = math.ceil(len(x) / batch)
        total = args.max_steps if args.max_steps > 0 else max(1, math.ceil(args.num_train_epochs * per_epoch))
        params = [p for p in head.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
        scheduler = get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(total), num_training_steps=total
        )
        g = torch.Generator().manual_seed(args.seed)
        head.train()
        self.state.max_steps, self.state.global_step = total, 0
        running, n_run, loss_sum = 0.0, 0, 0.0
        order = torch.randperm(len(x), generator=g)
        pos = 0
        for step in range(1, total + 1):
            if pos >= len(x):
                order, pos = torch.randperm(len(x), generator=g), 0
            idx = order[pos : pos + batch].to(device)
            pos += batch
            vec = F.dropout(x[idx], p_drop, training=True) if p_drop else x[idx]
            loss = self._loss(apply_head(head, vec, kind), y[idx])
            loss.backward()
            if args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            running, n_run, loss_sum = running + value, n_run + 1, loss_sum + value
            self.state.global_step, self.state.epoch = step, step / per_epoch
            if args.logging_steps and (step % int(args.logging_steps) == 0 or step == total):
                self.state.log_history.append(
                    {"loss": round(running / n_run, 4), "learning_rate": lr, "epoch": self.state.epoch, "step": step}
                )
                running, n_run = 0.0, 0
        head.eval()
        runtime = time.time() - start
        metrics = {
            "train_runtime": round(runtime, 3),
            "train_samples_per_second": round(len(x) * self.state.epoch / max(runtime, 1e-9), 3),
            "train_steps_per_second": round(total / max(runtime, 1e-9), 3),
            "total_flos": 0.0,
            "train_loss": loss_sum / total,
            "epoch": self.state.epoch,
            "train_feature_cache_hit": bool(self.cache_hit),
        }
        self.state.log_history.append({**metrics, "step": total})
        logger.info(
            "head trained on cached features: %d steps in %.1f s (features %s)",
            total, runtime, "from the cache" if self.cache_hit else "computed and cached",
        )  # fmt: skip
        return TrainOutput(total, metrics["train_loss"], metrics)

    def _fit_lbfgs(self, head, x, y, kind, start) -> TrainOutput:
        params = [p for p in head.parameters() if p.requires_grad]
        weights = [p for n, p in head.named_parameters() if p.requires_grad and n.endswith("weight")]
        optimizer = torch.optim.LBFGS(
            params, lr=1.0, max_iter=1000, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
        )
        penalty = 1.0 / (2 * len(x))
        head.eval()  # no dropout: a deterministic convex fit (for a linear head)
        calls = []

        def closure():
            optimizer.zero_grad(set_to_none=True)
            loss = self._loss(apply_head(head, x, kind), y)
            calls.append(loss.item())
            loss = loss + penalty * sum((w.float() ** 2).sum() for w in weights)
            loss.backward()
            return loss

        optimizer.step(closure)
        runtime = time.time() - start
        self.state.max_steps = self.state.global_step = len(calls)
        self.state.epoch = float(self.args.num_train_epochs)
        for i in range(0, len(calls), max(1, len(calls) // 20)):
            self.state.log_history.append({"loss": round(calls[i], 4), "learning_rate": 1.0, "step": i + 1})
        metrics = {
            "train_runtime": round(runtime, 3),
            "train_loss": calls[-1],
            "train_lbfgs_evaluations": len(calls),
            "total_flos": 0.0,
            "epoch": self.state.epoch,
            "train_feature_cache_hit": bool(self.cache_hit),
        }
        self.state.log_history.append({**metrics, "step": len(calls)})
        logger.info("head fitted by L-BFGS on cached features: %d loss evaluations, loss %.4f -> %.4f in %.1f s",
                    len(calls), calls[0], calls[-1], runtime)  # fmt: skip
        return TrainOutput(len(calls), calls[-1], metrics)


def trainer_for(
    model_args, head_args, model, trainer_cls: type = Trainer, kwargs: dict | None = None
) -> tuple[type, dict]:
    """The Trainer class and extra kwargs a recipe builds: `CachedFeaturesTrainer` when only the head trains
    (a strategy whose entry says ``head_only``, i.e. ``frozen``), ``--cache_features`` is on and the recipe would use
    the plain `Trainer` (domain adaptation needs the live backbone); else ``trainer_cls`` and ``kwargs`` unchanged."""
    from . import strategies

    kwargs = dict(kwargs or {})
    if trainer_cls is not Trainer or not strategies.get(model_args.strategy).head_only:
        return trainer_cls, kwargs
    if not head_args.cache_features:
        logger.info("--cache_features false: the frozen backbone runs on every training step")
        return trainer_cls, kwargs
    if not eligible(model):
        logger.info("%s: no head-only model to cache features for; training step by step", FLAG)
        return trainer_cls, kwargs
    return CachedFeaturesTrainer, {
        **kwargs,
        "feature_cache_dir": head_args.feature_cache_dir,
        "head_solver": head_args.head_solver,
    }
