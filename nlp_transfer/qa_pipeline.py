"""Extractive question answering over long contexts: overlapping windows, n-best span selection, and a
``transformers.Pipeline`` that does both.

transformers 5.x removed its ``"question-answering"`` pipeline (``pipelines/__init__.py::REMOVED_TASKS``). The QA
recipe of nlp_transfer therefore writes a copy of this file into every output folder and names it in
``config.json`` under ``custom_pipelines``, the Hub's standard mechanism for pipelines that transformers does not
ship. With plain transformers::

    from transformers import pipeline

    qa = pipeline("question-answering", model="out/", trust_remote_code=True)  # runs out/qa_pipeline.py
    qa(question="Who wrote it?", context="It was written by Ada Lovelace in 1843.")
    # {'score': 13.2, 'start': 18, 'end': 31, 'answer': 'Ada Lovelace'}

or, with nlp_transfer installed and no code run from the folder::

    from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

    qa = pipeline("question-answering", model="out/", pipeline_class=ExtractiveQAPipeline)

The recipe's own evaluation (``nlp_transfer.qa``) calls `encode_windows`, `rank_spans` and `choose_answer` from
this module, so the pipeline and the reported metrics select answers with the same code. Window length, stride,
maximum answer length and the no-answer rule default to the values the model was trained and evaluated with
(``config.json``: ``nlp_transfer_qa``).

The algorithm:

- Windows: the question and the context are tokenised as a pair, the context cut into windows of at most
  ``max_seq_len`` tokens that overlap by ``doc_stride`` tokens (fast tokenizers' ``return_overflowing_tokens``).
  A question so long that no context would fit is clipped to leave room (rare; the recipe logs how many).
- Spans: in every window, the ``n_best_size`` best start and end tokens *inside the context*; a span is valid
  when ``start <= end`` and it is at most ``max_answer_len`` tokens long. Its score is
  ``start_logit + end_logit``; the same character span found in two windows keeps its better score.
  Spans are mapped back to characters through the offset mapping and trimmed of surrounding whitespace.
- No answer (SQuAD v2): the null score of a window is the start + end logit of position 0 (``[CLS]`` for BERT-style
  encoders; for decoders, which have no CLS token, the first token of the right-padded window: BOS or the first
  question token). An example's null score is the lowest over its windows (the window most sure that an answer
  exists), and "" is predicted when ``null_score - best_span_score > null_score_diff_threshold``.
- ``score`` in the pipeline's output is that logit sum (not a probability): scores are comparable across windows
  and examples of one model, and the highest-scoring span is the answer.

This module imports only numpy, torch and transformers: it is loaded from model folders where nlp_transfer may not
be installed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline

NULL_INDEX = 0  # the position whose start+end logits score "no answer" in every window
DEFAULTS = {
    "max_seq_len": 384,
    "doc_stride": 128,
    "max_answer_len": 30,
    "n_best_size": 20,
    "handle_impossible_answer": False,
    "null_score_diff_threshold": 0.0,
}
CONFIG_KEY = "nlp_transfer_qa"  # config.json entry that holds the settings the model was trained with


# ------------------------------------------------------------------------------------------------ windows
def question_budget(tokenizer, *, max_seq_len: int, doc_stride: int) -> int:
    """The most question tokens that still leave a window more context tokens than the stride (the fast
    tokenizers refuse to window otherwise)."""
    return max_seq_len - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1


def clip_questions(tokenizer, questions: Sequence[str], *, limit: int) -> tuple[list[str], int]:
    """Strip questions and cut those longer than ``limit`` tokens at a token boundary.

    Returns:
        `(questions, n_clipped)`.
    """
    questions = [q.strip() for q in questions]
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    out, clipped = [], 0
    for q, offsets in zip(questions, enc["offset_mapping"]):
        if len(offsets) > limit:
            q = q[: offsets[limit - 1][1]] if limit > 0 else ""
            clipped += 1
        out.append(q)
    return out, clipped


def encode_windows(
    tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_seq_len: int,
    doc_stride: int,
    padding: bool | str = False,
):
    """Tokenise (question, context) pairs into windows over the context.

    Args:
        tokenizer: a fast tokenizer (offset mappings are needed).
        questions, contexts (`Sequence[str]`): one pair per example.
        max_seq_len (`int`): tokens per window, question and special tokens included.
        doc_stride (`int`): tokens shared by consecutive windows of one context.
        padding (`bool` or `str`, defaults to `False`): passed to the tokenizer; padding is always on the right, so
            position 0 is never padding.

    Returns:
        `(encoding, n_clipped)`: the tokenizer's `BatchEncoding` with one row per window, where
        ``overflow_to_sample_mapping[i]`` is the example of window ``i`` and ``offset_mapping[i][t]`` is the
        ``(start, end)`` character span of token ``t`` in the context, or `None` for question, special and padding
        tokens; and the number of questions clipped to fit.
    """
    limit = question_budget(tokenizer, max_seq_len=max_seq_len, doc_stride=doc_stride)
    if limit < 1:
        raise ValueError(
            f"doc_stride {doc_stride} leaves no room for the question in windows of {max_seq_len} tokens: use a "
            f"doc_stride below {max_seq_len - tokenizer.num_special_tokens_to_add(pair=True) - 1}"
        )
    questions, n_clipped = clip_questions(tokenizer, questions, limit=limit)
    enc = tokenizer(
        list(questions),
        list(contexts),
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=padding,
        padding_side="right",
    )
    masked = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        seq_ids = enc.sequence_ids(i)
        masked.append([tuple(o) if s == 1 else None for o, s in zip(offsets, seq_ids)])
    enc["offset_mapping"] = masked
    return enc, n_clipped


# -------------------------------------------------------------------------------------------------- spans
def rank_spans(
    windows: Iterable[tuple[np.ndarray, np.ndarray, Sequence]],
    context: str,
    *,
    n_best_size: int = 20,
    max_answer_len: int = 30,
) -> tuple[list[dict], float | None]:
    """Score the candidate answer spans of one example over all its windows.

    Args:
        windows: ``(start_logits, end_logits, offsets)`` per window; ``offsets[t]`` is the character span of token
            ``t`` in ``context`` or `None` outside the context. Logits may be longer than ``offsets`` (padding).
        context (`str`): the example's context.
        n_best_size (`int`, defaults to 20): start and end positions tried per window (and candidates returned).
        max_answer_len (`int`, defaults to 30): longest answer, in tokens.

    Returns:
        `(candidates, null_score)`: up to ``n_best_size`` dicts ``{"text", "start", "end", "score"}`` (character
        span ``context[start:end]``) sorted by score, best first; and the lowest null score over the windows
        (`None` when there are no windows).
    """
    best: dict[tuple[int, int], float] = {}
    null_score = None
    for start_logits, end_logits, offsets in windows:
        n = len(offsets)
        start_logits = np.asarray(start_logits, dtype=np.float64)[:n]
        end_logits = np.asarray(end_logits, dtype=np.float64)[:n]
        window_null = float(start_logits[NULL_INDEX] + end_logits[NULL_INDEX])
        null_score = window_null if null_score is None else min(null_score, window_null)
        in_context = np.array([o is not None for o in offsets], dtype=bool)
        if not in_context.any():
            continue
        candidates = np.flatnonzero(in_context)
        starts = candidates[np.argsort(-start_logits[candidates], kind="stable")[:n_best_size]]
        ends = candidates[np.argsort(-end_logits[candidates], kind="stable")[:n_best_size]]
        for s in starts:
            for e in ends:
                if e < s or e - s + 1 > max_answer_len:
                    continue
                a, b = offsets[s][0], offsets[e][1]
                while a < b and context[a].isspace():
                    a += 1
                while b > a and context[b - 1].isspace():
                    b -= 1
                if b <= a:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if score > best.get((a, b), -np.inf):
                    best[(a, b)] = score
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:n_best_size]
    return [{"text": context[a:b], "start": a, "end": b, "score": s} for (a, b), s in ranked], null_score


def choose_answer(
    candidates: list[dict],
    null_score: float | None,
    *,
    handle_impossible_answer: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict:
    """The answer for one example: the best span, or no answer (``text == ""``, ``start == end == 0``) when
    ``handle_impossible_answer`` and ``null_score - best_span_score > null_score_diff_threshold``, or when no valid
    span exists at all."""
    null = {"text": "", "start": 0, "end": 0, "score": null_score if null_score is not None else 0.0}
    if not candidates:
        return null
    if handle_impossible_answer and null_score is not None:
        if null_score - candidates[0]["score"] > null_score_diff_threshold:
            return null
    return candidates[0]


# ------------------------------------------------------------------------------------------------ pipeline
class ExtractiveQAPipeline(ChunkPipeline):
    """Answer questions by extracting a span of the context, with windows over long contexts.

    Call with ``question=...`` and ``context=...`` (strings, or lists of equal length), or with a dict
    ``{"question": ..., "context": ...}`` or a list of such dicts. Options, per call or at construction:

    - ``max_seq_len``, ``doc_stride``: window length and overlap, in tokens;
    - ``max_answer_len``: longest answer in tokens; ``n_best_size``: start/end positions tried per window;
    - ``handle_impossible_answer``: allow "" (no answer), decided with ``null_score_diff_threshold``;
    - ``top_k``: how many answers to return (a list when > 1).

    Defaults come from ``config.nlp_transfer_qa`` (the settings the model was trained with), else `DEFAULTS`.
    Returns ``{"score", "start", "end", "answer"}`` per question (``score`` is the span's start + end logit).
    ``batch_size`` (per call or at construction, default 1) is the number of windows per forward pass: windows of
    different questions are padded (on the right) into one batch, as transformers' own question-answering pipeline
    did, and regrouped per question before the answer is chosen, so answers do not depend on it.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _setting(self, name, value):
        if value is not None:
            return value
        stored = getattr(self.model.config, CONFIG_KEY, None) or {}
        if name in stored:
            return stored[name]
        if name == "max_seq_len":
            return min(DEFAULTS["max_seq_len"], getattr(self.tokenizer, "model_max_length", 10**9))
        return DEFAULTS[name]

    def _sanitize_parameters(
        self,
        max_seq_len=None,
        doc_stride=None,
        max_answer_len=None,
        n_best_size=None,
        handle_impossible_answer=None,
        null_score_diff_threshold=None,
        top_k=None,
        **kwargs,
    ):
        pre = {k: v for k, v in (("max_seq_len", max_seq_len), ("doc_stride", doc_stride)) if v is not None}
        post = {
            k: v
            for k, v in (
                ("max_answer_len", max_answer_len),
                ("n_best_size", n_best_size),
                ("handle_impossible_answer", handle_impossible_answer),
                ("null_score_diff_threshold", null_score_diff_threshold),
                ("top_k", top_k),
            )
            if v is not None
        }
        return pre, {}, post

    def __call__(self, *args, question=None, context=None, **kwargs):
        if question is not None or context is not None:
            if args:
                raise ValueError("pass either question=/context= or a {'question', 'context'} dict, not both")
            if isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
                if len(question) != len(context):
                    raise ValueError(f"got {len(question)} questions but {len(context)} contexts")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, (list, tuple)) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            else:
                raise ValueError("question and context must both be strings (or lists of strings)")
        elif len(args) == 1:
            inputs = args[0]
        else:
            raise ValueError("call with question=... and context=..., or with a {'question', 'context'} dict")
        single = isinstance(inputs, dict)
        items = [inputs] if single else list(inputs)
        for x in items:
            if (
                not isinstance(x, dict)
                or not isinstance(x.get("question"), str)
                or not isinstance(x.get("context"), str)
            ):
                raise ValueError(f"each input needs a 'question' and a 'context' string, got {x!r}")
            if not x["context"].strip():
                raise ValueError("the context is empty: an extractive QA model needs a text to take the answer from")
        if self.tokenizer.padding_side != "right":  # position 0 scores "no answer": it must never be padding
            self.tokenizer.padding_side = "right"
        batch_size = kwargs.get("batch_size") or self._batch_size or 1
        if batch_size > 1 and len(items) > 1:
            # batches of windows are padded to their longest: questions in order of length keep that padding small
            # (on 2 CPU cores, unsorted SQuAD batches of 32 were slower than batch 1); answers come back in input order
            order = sorted(range(len(items)), key=lambda i: len(items[i]["question"]) + len(items[i]["context"]))
            ranked = super().__call__([items[i] for i in order], **kwargs)
            out = [None] * len(items)
            for i, o in zip(order, ranked):
                out[i] = o
        else:
            out = super().__call__(items, **kwargs)
        return out[0] if single else out

    def preprocess(self, example, max_seq_len=None, doc_stride=None):
        """One item per window (a ``ChunkPipeline`` chunk), unpadded: the batch collator pads them together."""
        max_seq_len = self._setting("max_seq_len", max_seq_len)
        doc_stride = self._setting("doc_stride", doc_stride)
        enc, _ = encode_windows(
            self.tokenizer, [example["question"]], [example["context"]], max_seq_len=max_seq_len, doc_stride=doc_stride
        )
        names = _forward_names(self.model)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc and k in names]
        n = len(enc["input_ids"])
        for i in range(n):
            yield {
                **{k: torch.tensor([enc[k][i]]) for k in keys},
                "offsets": enc["offset_mapping"][i],
                "context": example["context"],
                "is_last": i == n - 1,
            }

    def _forward(self, model_inputs):
        extra = {k: model_inputs.pop(k) for k in ("offsets", "context", "is_last")}
        out = self.model(**model_inputs)
        return {"start_logits": out.start_logits, "end_logits": out.end_logits, **extra}

    def postprocess(
        self,
        model_outputs,
        max_answer_len=None,
        n_best_size=None,
        handle_impossible_answer=None,
        null_score_diff_threshold=None,
        top_k=1,
    ):
        # one output per window of this question, each logits row [1, padded length]
        windows = [(o["start_logits"][0].float().numpy(), o["end_logits"][0].float().numpy(), o["offsets"])
                   for o in model_outputs]  # fmt: skip
        context = model_outputs[0]["context"]
        candidates, null_score = rank_spans(
            windows,
            context,
            n_best_size=self._setting("n_best_size", n_best_size),
            max_answer_len=self._setting("max_answer_len", max_answer_len),
        )
        handle = self._setting("handle_impossible_answer", handle_impossible_answer)
        best = choose_answer(
            candidates,
            null_score,
            handle_impossible_answer=handle,
            null_score_diff_threshold=self._setting("null_score_diff_threshold", null_score_diff_threshold),
        )
        ranked = [best] + [c for c in candidates if c is not best]
        if handle and best["text"] and null_score is not None:
            # the no-answer alternative, in score order, for top_k > 1
            ranked.append({"text": "", "start": 0, "end": 0, "score": null_score})
            ranked = [ranked[0]] + sorted(ranked[1:], key=lambda c: -c["score"])
        answers = [
            {"score": c["score"], "start": c["start"], "end": c["end"], "answer": c["text"]}
            for c in ranked[: max(1, top_k)]
        ]
        return answers[0] if top_k == 1 else answers


def _forward_names(model) -> set[str]:
    """Named arguments of the model's forward: the inputs `transformers.Trainer` keeps (it drops the rest), so the
    pipeline feeds the model exactly what training and evaluation fed it."""
    forward = getattr(model, "get_base_model", lambda: model)().forward
    return set(inspect.signature(forward).parameters)
