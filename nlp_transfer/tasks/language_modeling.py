"""Language models from continued pretraining (``nlp_transfer.recipes.pretrain``).

- ``fill-mask`` (`FillMaskTask`): the folder loads in ``pipeline("fill-mask", model=folder)`` and
  ``AutoModelForMaskedLM``; the round trip masks one token in a few held-out texts and compares the pipeline's top
  tokens and scores with the trained model's.
- ``text-generation`` (`TextGenerationTask`): the folder loads in ``AutoModelForCausalLM`` (and
  ``pipeline("text-generation")``); the round trip compares next-token log-probabilities on a few held-out texts.

Both folders are plain checkpoints that every recipe takes as ``--model_name_or_path`` (the LM head is dropped
when a task model is built from them).
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import torch

from ..artifacts import roundtrip
from ..errors import NLPTransferError
from .base import Export, Task

N_ROUND_TRIP = 8  # held-out texts the saved folder must reproduce
MAX_TOKENS = 24  # each cut to its first tokens: short inputs keep the check fast
TOP_K = 5


def _pieces(text: str, tokenizer, max_tokens: int) -> tuple[str, list[tuple[int, int]]]:
    """``text`` cut after its first ``max_tokens`` tokens, and those tokens' character spans."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    spans = [tuple(o) for o in enc["offset_mapping"][:max_tokens] if o[1] > o[0]]
    return (text[: spans[-1][1]], spans) if spans else ("", [])


def fill_mask_inputs(texts: list[str], tokenizer, max_seq_length: int, n: int = N_ROUND_TRIP) -> list[str]:
    """Up to ``n`` held-out texts, each cut short (well inside ``max_seq_length``) with its middle token replaced by
    the mask token (texts where that does not give exactly one mask token are skipped)."""
    max_tokens, out = min(MAX_TOKENS, max_seq_length - 4), []
    for text in texts:
        cut, spans = _pieces(text, tokenizer, max_tokens)
        if len(spans) < 2:
            continue
        s, e = spans[len(spans) // 2]
        masked = cut[:s] + tokenizer.mask_token + cut[e:]
        if tokenizer(masked)["input_ids"].count(tokenizer.mask_token_id) == 1:
            out.append(masked)
        if len(out) == n:
            break
    return out


def causal_inputs(texts: list[str], tokenizer, max_seq_length: int, n: int = N_ROUND_TRIP) -> list[str]:
    """Up to ``n`` held-out texts of at least two tokens, each cut short (well inside ``max_seq_length``)."""
    max_tokens = min(MAX_TOKENS, max_seq_length - 4)
    out = [cut for cut, spans in (_pieces(t, tokenizer, max_tokens) for t in texts) if len(spans) >= 2]
    return out[:n]


def _max_diff(expected, got) -> float:
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if expected.shape != got.shape:
        return float("inf")
    return float(np.max(np.abs(expected - got))) if expected.size else 0.0


def _fail(source: str, what: str) -> NLPTransferError:
    return NLPTransferError(
        f"round-trip check failed: {source} {what}; the checkpoints in the output folder are kept (please report this)"
    )


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, 116, break_long_words=False, break_on_hyphens=False)


def _short(name: str) -> str:
    return os.path.basename(name.rstrip("/"))


def _lm_card(card, export, metrics, base_model, strategy, *, what: str, masked: bool, usage: str) -> dict:
    """The card sections both LM tasks share: perplexity before and after, what the run did, the usage."""
    held_out = {k: v for k, v in metrics.items() if k.startswith("eval_") and isinstance(v, float)}
    order = ("eval_perplexity_before", "eval_perplexity", "eval_loss_before", "eval_loss")
    before, after = held_out.get("eval_perplexity_before"), held_out.get("eval_perplexity")
    change = f" (held-out perplexity {before:.2f} -> {after:.2f})" if before is not None and after is not None else ""
    summary = (
        f"`{base_model}` with continued pretraining ({what}, nlp_transfer, {strategy} strategy) on the unlabelled "
        f"text of `{card.dataset_name}`{change}: domain- or task-adaptive pretraining (DAPT / TAPT, Gururangan et "
        "al. 2020), a starting point for fine-tuning on that kind of text."
    )
    note = (
        "Perplexity = exp(mean held-out loss" + (" over the masked tokens" if masked else "") + "), on held-out "
        "documents the model did not train on, measured before the first training step and after the last on the "
        "same rows" + (" with the same masked positions" if masked else "") + "."
    )
    paragraphs = [summary, *export.settings.get("notes", [])]
    return {
        "model_name": card.title or f"{_short(base_model)} further pretrained on {card.dataset_name}",
        "summary": "\n\n".join(_wrap(p) for p in paragraphs),
        "results": [(k, f"{held_out[k]:.4f}") for k in order if k in held_out],
        "results_note": _wrap(note),
        "eval_rows": [("eval", "perplexity", after)] if after is not None else [],
        "training_lines": [f"- {line}" for line in export.settings.get("training_lines", [])],
        "usage": usage,
    }


_FINE_TUNE = """Fine-tune from it (DAPT / TAPT, step two); every nlp_transfer recipe takes the folder:
```bash
python -m nlp_transfer.recipes.classify --model_name_or_path PATH_OR_REPO --train_file train.csv --output_dir clf/
```
The task model drops the language-model head ({dropped}) and gets its own new head."""


class _LanguageModelTask(Task):
    """What the two LM tasks share: full-weight folders (no adapters), the round trip as "run the trained model,
    reload the folder, compare" (`_outputs`, `_compare`), perplexity as the headline."""

    peft_task_type = ""  # pretrain refuses adapter strategies: the folder is a plain checkpoint

    def load_base(self, path, config, trust_remote_code=False):
        import transformers

        auto = getattr(transformers, self.auto_class)
        return auto.from_pretrained(path, config=config, trust_remote_code=trust_remote_code)

    def _outputs(self, model, tokenizer, inputs: list[str]) -> list:
        """The trained model's outputs for ``inputs``, as recorded."""
        raise NotImplementedError

    def _compare(self, folder: str, inputs: list[str], expected: list, atol: float, device="cpu") -> dict:
        """Reload ``folder`` as a user would and compare with ``expected``; `NLPTransferError` on a mismatch."""
        raise NotImplementedError

    def check(self, folder, model, export: Export, *, peft, record, atol=1e-4):
        if peft:
            raise NLPTransferError(f"{self.name} folders hold full weights; there is no adapter to check")
        expected = self._outputs(model, export.tokenizer, export.examples)
        result = self._compare(folder, export.examples, expected, atol, next(model.parameters()).device)
        if record:
            roundtrip.record(folder, self.name, inputs=export.examples, expected=expected, atol=atol)
        return result

    def replay(self, folder, rec):
        return {"pipeline": self._compare(folder, rec["inputs"], rec["expected"], rec["atol"])}

    def main_metric(self, card):
        return "perplexity"

    def headline(self, metrics):
        return {k: metrics[k] for k in ("eval_perplexity_before", "eval_perplexity") if k in metrics}


class FillMaskTask(_LanguageModelTask):
    name = "fill-mask"
    auto_class = "AutoModelForMaskedLM"
    head = "the masked-LM head"
    diff_metric = "max_abs_score_diff"
    tags = ("fill-mask", "continued-pretraining")

    @torch.no_grad()
    def _outputs(self, model, tokenizer, inputs: list[str]) -> list[list[dict]]:
        """Per text: the top tokens at the mask and their probabilities."""
        model.eval()
        device = next(model.parameters()).device
        rows = []
        for text in inputs:
            enc = tokenizer(text, return_tensors="pt")
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits[0]
            at = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
            probs, ids = logits[at].float().softmax(-1).topk(TOP_K)
            rows.append([{"token": int(i), "score": float(p)} for p, i in zip(probs.tolist(), ids.tolist())])
        return rows

    def _compare(self, folder, inputs, expected, atol, device="cpu") -> dict:
        from transformers import pipeline

        source = f'pipeline("fill-mask", model={folder})'
        pipe = pipeline("fill-mask", model=folder, device=device)
        got = pipe(inputs, top_k=TOP_K)
        got = [got] if inputs and len(inputs) == 1 and isinstance(got[0], dict) else got
        max_diff = 0.0
        for text, want, rows in zip(inputs, expected, got):
            scores = {r["token"]: r["score"] for r in rows}
            floor = min(scores.values())
            for w in want:
                if w["token"] in scores:
                    diff = abs(scores[w["token"]] - w["score"])
                elif w["score"] <= floor + atol:  # a tie at the edge of the top k: either token is the model's
                    diff = 0.0
                else:
                    raise _fail(source, f"does not rank token {w['token']} (score {w['score']:.4f}) for {text!r}")
                if diff > atol:
                    raise _fail(
                        source, f"scores token {w['token']} {diff:.2e} away from the trained model for {text!r}"
                    )
                max_diff = max(max_diff, diff)
            top = max(rows, key=lambda r: r["score"])
            if top["token"] != want[0]["token"] and abs(top["score"] - want[0]["score"]) > atol:
                raise _fail(source, f"fills {text!r} with token {top['token']}, the trained model {want[0]['token']}")
        return {"examples": len(inputs), self.diff_metric: max_diff}

    def card_sections(self, card, export, metrics, *, base_model, strategy, adapter, merged):
        dropped = "`cls.predictions.*` for BERT-style models"
        usage = f"""```python
from transformers import pipeline

fill = pipeline("fill-mask", model="PATH_OR_REPO")
fill(f"The flight was {{fill.tokenizer.mask_token}} again.")
# [{{'score': ..., 'token': ..., 'token_str': ..., 'sequence': ...}}, ...] (top 5)
```
`AutoModelForMaskedLM.from_pretrained("PATH_OR_REPO")` loads the model itself.

{_FINE_TUNE.format(dropped=dropped)}"""
        return _lm_card(card, export, metrics, base_model, strategy, what="masked LM", masked=True, usage=usage)


class TextGenerationTask(_LanguageModelTask):
    name = "text-generation"
    auto_class = "AutoModelForCausalLM"
    head = "the language-model head"
    diff_metric = "max_abs_logit_diff"
    tags = ("text-generation", "continued-pretraining")

    @torch.no_grad()
    def _outputs(self, model, tokenizer, inputs: list[str]) -> list[dict]:
        """Per text: the log-probability of each next token, and the top tokens' logits after the last one."""
        model.eval()
        device = next(model.parameters()).device
        rows = []
        for text in inputs:
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
            logits = model(input_ids=ids).logits[0].float()
            logp = logits[:-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
            top = logits[-1].topk(TOP_K)
            rows.append(
                {"logprobs": logp.tolist(), "top_tokens": top.indices.tolist(), "top_logits": top.values.tolist()}
            )
        return rows

    def _compare(self, folder, inputs, expected, atol, device="cpu") -> dict:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = f"AutoModelForCausalLM.from_pretrained({folder})"
        model = AutoModelForCausalLM.from_pretrained(folder).to(device)
        got = self._outputs(model, AutoTokenizer.from_pretrained(folder), inputs)
        max_diff = 0.0
        for text, want, g in zip(inputs, expected, got):
            for key in ("logprobs", "top_logits"):
                diff = _max_diff(want[key], g[key])
                if diff > atol * max(1.0, *(abs(v) for v in want[key])):  # relative above 1, as classification
                    raise _fail(source, f"{key} differ from the trained model's by {diff:.2e} on {text!r}")
                max_diff = max(max_diff, diff)
            if g["top_tokens"][0] != want["top_tokens"][0] and abs(g["top_logits"][0] - want["top_logits"][0]) > atol:
                raise _fail(source, f"predicts token {g['top_tokens'][0]} after {text!r}, the trained model "
                            f"{want['top_tokens'][0]}")  # fmt: skip
        return {"examples": len(inputs), self.diff_metric: max_diff}

    def card_sections(self, card, export, metrics, *, base_model, strategy, adapter, merged):
        usage = f"""```python
from transformers import pipeline

generate = pipeline("text-generation", model="PATH_OR_REPO")
generate("The flight was", max_new_tokens=20)
```
`AutoModelForCausalLM.from_pretrained("PATH_OR_REPO")` loads the model itself.

{_FINE_TUNE.format(dropped="`lm_head`, tied to the input embeddings in most decoders")}"""
        return _lm_card(card, export, metrics, base_model, strategy, what="causal LM", masked=False, usage=usage)
