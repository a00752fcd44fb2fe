"""Distillation losses, per batch (``alpha``, ``T``, ``hidden_weight`` and ``attention_weight`` come from the command
line)::

    loss = alpha * KD + (1 - alpha) * CE + hidden_weight * HID + attention_weight * ATT

    KD  = T^2 * mean_rows KL( softmax(teacher / T) || softmax(student / T) )       (Hinton et al. 2015)
    CE  = cross-entropy with the gold label, over labelled rows only (unlabelled rows: label -100)
    HID = mean over mapped layer pairs of the MSE between student hidden states (through a learned linear
          projection when the widths differ) and teacher hidden states, over real (non-padding) tokens
    ATT = mean over mapped layer pairs of KL(teacher attention || student attention), per head and real query
          token (MiniLM-style), when both have the same number of heads

T^2 keeps the gradient scale of the soft term independent of T, so ``alpha`` means the same at every temperature.
A batch with no labelled row uses KD alone (its CE term would be empty).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK = -1e4  # QA: score of positions outside the distribution (question, special and padding tokens)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target loss: ``T^2 * mean over rows of KL(softmax(teacher/T) || softmax(student/T))``."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl.mean() * (t * t)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * KD + (1 - alpha) * CE``; CE over rows whose label is not -100. With no labelled row: KD alone."""
    soft = kd_loss(student_logits, teacher_logits, temperature)
    if labels is None or alpha >= 1.0:
        return soft
    labelled = labels != -100
    if not bool(labelled.any()):
        return soft
    hard = F.cross_entropy(student_logits[labelled].float(), labels[labelled])
    return alpha * soft + (1.0 - alpha) * hard


def hidden_state_loss(
    student_hidden: tuple[torch.Tensor, ...],
    teacher_hidden: tuple[torch.Tensor, ...],
    pairs: list[tuple[int, int]],
    attention_mask: torch.Tensor,
    projections: nn.ModuleList | None = None,
) -> torch.Tensor:
    """Mean over ``pairs`` (student index, teacher index into the ``hidden_states`` tuples; 0 = embeddings) of the
    per-token MSE over real tokens, after ``projections[k]`` maps student width to teacher width."""
    mask = attention_mask.unsqueeze(-1).float()
    n_tokens = mask.sum().clamp(min=1)
    total = student_hidden[0].new_zeros((), dtype=torch.float32)
    for k, (s, t) in enumerate(pairs):
        hs = student_hidden[s].float()
        if projections is not None:
            hs = projections[k](hs)
        ht = teacher_hidden[t].float()
        total = total + (((hs - ht) ** 2) * mask).sum() / (n_tokens * ht.shape[-1])
    return total / max(len(pairs), 1)


def attention_loss(
    student_attn: tuple[torch.Tensor, ...],
    teacher_attn: tuple[torch.Tensor, ...],
    pairs: list[tuple[int, int]],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean over layer ``pairs`` of KL(teacher || student) between attention distributions (batch, heads, query,
    key), averaged over heads and real query tokens."""
    q_mask = attention_mask.float()[:, None, :]  # (B, 1, Q)
    total = student_attn[0].new_zeros((), dtype=torch.float32)
    for s, t in pairs:
        a_s = student_attn[s].float().clamp(min=1e-12)
        a_t = teacher_attn[t].float().clamp(min=1e-12)
        kl = (a_t * (a_t.log() - a_s.log())).sum(-1)  # (B, H, Q)
        total = total + (kl * q_mask).sum() / (q_mask.sum() * kl.shape[1]).clamp(min=1)
    return total / max(len(pairs), 1)
