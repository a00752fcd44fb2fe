"""The distillation `Trainer`: a collator that stacks the teacher's outputs with each batch, the trainer whose loss
is `losses`' (plus the QA span version), and the learned hidden-state projections it saves in checkpoints."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import NLPTransferError
from .losses import MASK, attention_loss, distillation_loss, hidden_state_loss, kd_loss

PROJECTION_FILE = "distill_projections.pt"  # in checkpoints only: the hidden-state projections, for resuming


class DistillationCollator:
    """Pads the tokenised rows and stacks the teacher's outputs: ``teacher_logits`` (classification) or
    ``teacher_start``/``teacher_end`` (QA, padded with `MASK` like the inputs); drops ``length`` and other extras."""

    model_keys = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict]) -> dict:
        feats = [{k: r[k] for k in self.model_keys if k in r} for r in rows]
        batch = dict(self.tokenizer.pad(feats, padding=True, return_tensors="pt"))
        if "label" in rows[0] or "labels" in rows[0]:
            batch["labels"] = torch.tensor([r.get("labels", r.get("label")) for r in rows], dtype=torch.long)
        for key in ("start_positions", "end_positions"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows], dtype=torch.long)
        if "teacher_logits" in rows[0]:
            batch["teacher_logits"] = torch.tensor(
                np.asarray([r["teacher_logits"] for r in rows]), dtype=torch.float32
            )
        width = batch["input_ids"].shape[1]
        for key in ("teacher_start", "teacher_end"):
            if key in rows[0]:
                out = torch.full((len(rows), width), MASK, dtype=torch.float32)
                for i, r in enumerate(rows):
                    v = r[key][:width]
                    out[i, : len(v)] = torch.tensor(v, dtype=torch.float32)
                batch[key] = out
        return batch


class DistillationTrainer(Trainer):
    """`Trainer` whose loss is the distillation loss of `losses`.

    Teacher logits come with each batch (``teacher_logits``, from the cache) unless a live ``teacher`` is given,
    which the hidden-state and attention losses need. ``projections`` (hidden-state loss, different widths) are
    trained with the student, saved in each checkpoint (`PROJECTION_FILE`) but not in the exported student.
    ``--hpo_trials`` also searches ``temperature`` and ``alpha`` (`hpo_space`, set on the Trainer per trial), and each
    trial starts from the same projections (`reset_for_trial`).
    """

    hpo_space = {"temperature": ("float", 1.0, 8.0), "alpha": ("float", 0.1, 0.9)}

    def __init__(
        self,
        *args,
        temperature: float = 2.0,
        alpha: float = 0.5,
        teacher: nn.Module | None = None,
        hidden_weight: float = 0.0,
        attention_weight: float = 0.0,
        layer_map: list[tuple[int, int]] | None = None,
        projections: nn.ModuleList | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if temperature <= 0:
            raise NLPTransferError(f"--temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise NLPTransferError(f"--alpha must be between 0 and 1, got {alpha}")
        if (hidden_weight > 0 or attention_weight > 0) and teacher is None:
            raise ValueError("hidden-state/attention losses need the live teacher")
        self.temperature, self.alpha = temperature, alpha
        self.teacher = teacher.to(self.args.device) if teacher is not None else None
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        self.layer_map = layer_map or []
        self.projections = projections.to(self.args.device) if projections is not None else None
        # the loss is a batch mean: let Trainer scale it for gradient accumulation, not the model's loss kwargs
        self.model_accepts_loss_kwargs = False
        self._projections_start = copy.deepcopy(projections.state_dict()) if projections is not None else None

    def reset_for_trial(self, model) -> None:
        """``--hpo_trials``: every trial's projections start where the first trial's did."""
        if self.projections is not None:
            self.projections.load_state_dict(self._projections_start)
            self.projections.zero_grad(set_to_none=True)

    def _extra_outputs(self) -> dict:
        extra = {}
        if self.hidden_weight > 0:
            extra["output_hidden_states"] = True
        if self.attention_weight > 0:
            extra["output_attentions"] = True
        return extra

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        if "teacher_start" in inputs:
            return self._compute_qa_loss(model, inputs, return_outputs)
        labels = inputs.pop("labels", None)
        cached = inputs.pop("teacher_logits", None)
        extra = self._extra_outputs()
        outputs = model(**inputs, **extra)
        t_out = None
        if self.teacher is not None:
            with torch.no_grad():
                t_out = self.teacher(**inputs, **extra)
            t_logits = t_out.logits
        elif cached is not None:
            t_logits = cached
        else:
            raise ValueError("no teacher logits in the batch and no live teacher")
        loss = distillation_loss(outputs.logits, t_logits, labels, temperature=self.temperature, alpha=self.alpha)
        loss = loss + self._intermediate_losses(inputs, outputs, t_out)
        return (loss, outputs) if return_outputs else loss

    def _compute_qa_loss(self, model, inputs, return_outputs):
        """QA: KD on the start and end distributions over each window's positions (teacher scores mapped onto the
        student's tokens, `MASK` where no context token or [CLS] is), plus span cross-entropy on gold positions."""
        t_start, t_end = inputs.pop("teacher_start"), inputs.pop("teacher_end")
        starts, ends = inputs.pop("start_positions", None), inputs.pop("end_positions", None)
        extra = self._extra_outputs()
        outputs = model(**inputs, **extra)
        masked = t_start <= MASK / 2
        s_start = outputs.start_logits.float().masked_fill(masked, MASK)
        s_end = outputs.end_logits.float().masked_fill(t_end <= MASK / 2, MASK)
        soft = 0.5 * (kd_loss(s_start, t_start, self.temperature) + kd_loss(s_end, t_end, self.temperature))
        loss = soft
        if starts is not None and self.alpha < 1.0:
            hard = 0.5 * (
                F.cross_entropy(outputs.start_logits.float(), starts)
                + F.cross_entropy(outputs.end_logits.float(), ends)
            )
            loss = self.alpha * soft + (1.0 - self.alpha) * hard
        t_out = None
        if self.teacher is not None and extra:
            with torch.no_grad():
                t_out = self.teacher(**inputs, **extra)
        loss = loss + self._intermediate_losses(inputs, outputs, t_out)
        return (loss, outputs) if return_outputs else loss

    def _intermediate_losses(self, inputs, outputs, t_out) -> torch.Tensor | float:
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        loss = 0.0
        if self.hidden_weight > 0:
            pairs = [(0, 0)] + [(s + 1, t + 1) for s, t in self.layer_map]
            loss = loss + self.hidden_weight * hidden_state_loss(
                outputs.hidden_states, t_out.hidden_states, pairs, mask, self.projections
            )
        if self.attention_weight > 0:
            loss = loss + self.attention_weight * attention_loss(
                outputs.attentions, t_out.attentions, self.layer_map, mask
            )
        return loss

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.projections is not None and not any(
            p is q for g in optimizer.param_groups for p in g["params"] for q in self.projections.parameters()
        ):
            optimizer.add_param_group({"params": list(self.projections.parameters()), "weight_decay": 0.0})
            # the Trainer zeroes the model's gradients only: without this the projections' gradients summed over
            # every step of the run (found by a search whose identical trials drifted apart)
            optimizer.register_step_post_hook(lambda *_: self.projections.zero_grad(set_to_none=True))
        return optimizer

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.projections is not None and self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            if os.path.isdir(folder):
                torch.save(self.projections.state_dict(), os.path.join(folder, PROJECTION_FILE))

    def load_projections(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, PROJECTION_FILE)
        if self.projections is not None and os.path.isfile(path):
            self.projections.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))


def make_projections(student_width: int, teacher_width: int, n: int) -> nn.ModuleList | None:
    """One learned linear map per hidden-state pair when widths differ (identity otherwise: returns None)."""
    if student_width == teacher_width:
        return None
    return nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(n))
