"""The classification head of a transformers sequence classifier, found by name, and the one vector per example it
classifies: what domain adaptation's discriminator reads and what cached feature extraction stores."""

from __future__ import annotations

import torch
from torch import nn

from .errors import NLPTransferError

# how transformers' sequence-classification models name their head (PEFT's SEQ_CLS modules_to_save, plus BART's)
HEAD_NAMES = ("classifier", "score", "classification_head")

# how a head is called, seen from its input and output (`layout`):
#   vector       [B, H] in (BERT's classifier on the pooled vector)
#   first_token  [B, T, H] in, [B, C] out: the head pools the first token itself (RoBERTa's, ELECTRA's classifier)
#   per_token    [B, T, H] in, [B, T, C] out: the model pools the head's output at the last non-pad token (GPT-2)
LAYOUTS = ("vector", "first_token", "per_token")


def find_head(model: nn.Module, *, flag: str = "this option") -> tuple[str, nn.Module]:
    """The classification head (outermost module named like one; inside a PeftModel, its modules_to_save wrapper).
    ``flag`` names the option that needs it, for the error."""
    found = [(n, m) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in HEAD_NAMES]
    if not found:
        raise NLPTransferError(
            f"{flag}: no classification head ({' / '.join(HEAD_NAMES)}) found in {type(model).__name__}: this "
            f"architecture is not supported; drop {flag}"
        )
    return min(found, key=lambda nm: nm[0].count("."))


def head_width(head: nn.Module) -> int:
    """The width of the vector the head reads (its first linear layer's input)."""
    linear = next((m for m in head.modules() if isinstance(m, nn.Linear)), None)
    if linear is None:
        raise NLPTransferError(
            f"the head {type(head).__name__} has no linear layer: this architecture is not supported"
        )
    return linear.in_features


def layout(x: torch.Tensor, output) -> str:
    """`LAYOUTS` entry of a head called with ``x`` that returned ``output``."""
    if x.dim() == 2:
        return "vector"
    return "first_token" if isinstance(output, torch.Tensor) and output.dim() == 2 else "per_token"


def pool_head_input(x: torch.Tensor, head_output_dim: int, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The one vector per example the head classifies, from what the head was called with.

    - ``[B, H]`` (BERT-style ``classifier`` on the pooled vector): as is.
    - ``[B, T, H]`` and a ``[B, C]`` output: the head pools inside, from the first token (RoBERTa's, ELECTRA's
      ``classifier``): the first token.
    - ``[B, T, H]`` and a ``[B, T, C]`` output: the model pools the head's per-token output afterwards (GPT-2's
      ``score``, decoders), at the last non-pad token: the last position the attention mask keeps (as
      transformers' last-non-pad rule; with left padding too).
    """
    if x.dim() == 2:
        return x
    if head_output_dim == 2:
        return x[:, 0]
    if attention_mask is None:
        return x[:, -1]
    positions = torch.arange(x.shape[1], device=x.device)
    last = (positions * attention_mask.to(x.device).long()).argmax(-1)
    return x[torch.arange(x.shape[0], device=x.device), last]


def apply_head(head: nn.Module, vectors: torch.Tensor, kind: str) -> torch.Tensor:
    """The head's logits ``[B, C]`` for pooled vectors ``[B, H]`` (`pool_head_input`'s output), called the way the
    model calls it (``kind`` from `layout`): the same logits the whole model gives for those examples."""
    if kind == "vector":
        return head(vectors)
    out = head(vectors[:, None, :])  # a one-token sequence: its first token and its last non-pad token
    return out if kind == "first_token" else out[:, 0]
