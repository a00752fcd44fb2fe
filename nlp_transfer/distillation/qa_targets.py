"""The QA teacher: its start/end scores on its own windows, its answers, and its scores mapped onto the student's
windows through character offsets (works across tokenizers)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .losses import MASK


@torch.inference_mode()
def qa_teacher_windows(
    model: nn.Module,
    tokenizer,
    questions: list[str],
    contexts: list[str],
    *,
    max_seq_length: int,
    doc_stride: int,
    batch_size: int = 32,
    desc: str = "teacher spans",
) -> dict[str, np.ndarray]:
    """The QA teacher's start/end logits on its own windows of every (question, context), flattened:
    ``start``/``end`` (all window tokens), ``offsets`` (token character spans in the context, -1 outside it),
    ``lengths`` (tokens per window) and ``example`` (example index of each window)."""
    from tqdm.auto import tqdm

    from ..qa_pipeline import encode_windows

    device = next(model.parameters()).device
    enc, _ = encode_windows(tokenizer, questions, contexts, max_seq_len=max_seq_length, doc_stride=doc_stride)
    n = len(enc["input_ids"])
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    starts, ends = [None] * n, [None] * n
    order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
    for b in tqdm(range(0, n, batch_size), desc=desc, unit="batch", mininterval=2.0):
        idx = order[b : b + batch_size]
        feats = [{k: enc[k][i] for k in keys} for i in idx]
        batch = tokenizer.pad(feats, padding=True, return_tensors="pt")
        out = model(**{k: v.to(device) for k, v in batch.items()})
        for row, i in enumerate(idx):
            length = len(enc["input_ids"][i])
            starts[i] = out.start_logits[row, :length].float().cpu().numpy()
            ends[i] = out.end_logits[row, :length].float().cpu().numpy()
    offsets = [
        np.asarray([o if o is not None else (-1, -1) for o in offs], dtype=np.int64).reshape(-1, 2)
        for offs in enc["offset_mapping"]
    ]
    return {
        "start": np.concatenate(starts).astype(np.float32),
        "end": np.concatenate(ends).astype(np.float32),
        "offsets": np.concatenate(offsets),
        "lengths": np.asarray([len(x) for x in starts], dtype=np.int64),
        "example": np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64),
    }


def qa_teacher_answers(examples, windows: dict[str, np.ndarray], **settings) -> dict[str, dict]:
    """The teacher's answers from its cached windows (`qa_teacher_windows`), post-processed like the student's."""
    from ..qa import postprocess

    lengths = windows["lengths"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    width = int(lengths.max())

    def padded(flat: np.ndarray) -> np.ndarray:
        return np.stack([np.pad(flat[bounds[i] : bounds[i + 1]], (0, width - n)) for i, n in enumerate(lengths)])

    offsets = [
        [tuple(o) if o[0] >= 0 else None for o in windows["offsets"][bounds[i] : bounds[i + 1]].tolist()]
        for i in range(len(lengths))
    ]
    return postprocess(
        examples, windows["example"].tolist(), offsets, padded(windows["start"]), padded(windows["end"]), **settings
    )


def map_qa_targets(teacher: dict[str, np.ndarray], example_idx: list[int], offsets: list) -> tuple[list, list]:
    """Teacher span scores on the student's windows, through character offsets (works across tokenizers).

    For each student window: the teacher window of the same example whose context overlaps it most; then a student
    context token gets the start score of the teacher token that starts at the same character, and the end score of
    the teacher token that ends at the same character; position 0 (the no-answer position) gets the teacher window's
    position 0. Every other position is `MASK` (left out of the KD distribution): question, special and padding
    tokens, and boundaries the teacher's tokenizer has no token for (e.g. the middle of a word it keeps whole). With
    the same tokenizer and window settings this is the identity on context tokens and position 0.
    """
    bounds = np.concatenate([[0], np.cumsum(teacher["lengths"])])
    by_example: dict[int, list[int]] = {}
    for w, e in enumerate(teacher["example"].tolist()):
        by_example.setdefault(e, []).append(w)

    def span(offs: np.ndarray) -> tuple[int, int]:
        real = offs[offs[:, 0] >= 0]
        return (int(real[:, 0].min()), int(real[:, 1].max())) if len(real) else (0, 0)

    starts_out, ends_out = [], []
    for e, s_offs in zip(example_idx, offsets):
        s_arr = np.asarray([o if o is not None else (-1, -1) for o in s_offs], dtype=np.int64).reshape(-1, 2)
        lo, hi = span(s_arr)
        best, best_overlap = None, -1
        for w in by_example.get(int(e), []):
            t_lo, t_hi = span(teacher["offsets"][bounds[w] : bounds[w + 1]])
            overlap = min(hi, t_hi) - max(lo, t_lo)
            if overlap > best_overlap:
                best, best_overlap = w, overlap
        st = np.full(len(s_arr), MASK, dtype=np.float32)
        en = np.full(len(s_arr), MASK, dtype=np.float32)
        if best is not None:
            a, b = bounds[best], bounds[best + 1]
            t_offs, t_st, t_en = teacher["offsets"][a:b], teacher["start"][a:b], teacher["end"][a:b]
            ctx = np.nonzero(t_offs[:, 0] >= 0)[0]
            c_starts, c_ends = t_offs[ctx, 0], t_offs[ctx, 1]
            st[0], en[0] = t_st[0], t_en[0]
            start_at = {int(c): int(ctx[j]) for j, c in enumerate(c_starts)}
            end_at = {int(c): int(ctx[j]) for j, c in enumerate(c_ends)}
            for k, (cs, ce) in enumerate(s_arr.tolist()):
                if cs < 0 or ce <= cs:
                    continue
                if cs in start_at:
                    st[k] = t_st[start_at[cs]]
                if ce in end_at:
                    en[k] = t_en[end_at[ce]]
        starts_out.append(st.tolist())
        ends_out.append(en.tolist())
    return starts_out, ends_out
