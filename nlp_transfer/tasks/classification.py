"""Text classification (single-label, multi-label, regression; single texts or pairs): the folder loads in
``pipeline("text-classification", model=folder, truncation=True)`` with the trained label names."""

from __future__ import annotations

import numpy as np
import torch

from ..artifacts import roundtrip
from ..errors import NLPTransferError
from ..metrics import MAIN_METRIC
from .base import Export, Task

N_ROUND_TRIP = 8  # held-out examples the saved folder must reproduce
HEADLINE = ("accuracy", "f1", "mcc", "f1_micro", "f1_macro", "mse", "pearson")


def round_trip_inputs(dd, n: int = N_ROUND_TRIP) -> list:
    """The first ``n`` rows of the first held-out split (validation, test, else train) as pipeline inputs."""
    split = next(dd[s] for s in ("validation", "test", "train") if s in dd)
    rows = split.select(range(min(n, len(split))))
    if "text_pair" in rows.column_names:
        return [{"text": t, "text_pair": p} for t, p in zip(rows["text"], rows["text_pair"])]
    return list(rows["text"])


@torch.no_grad()
def model_logits(model, tokenizer, inputs: list, max_seq_length: int) -> np.ndarray:
    """Raw logits of ``model`` for ``inputs``, one at a time, tokenised as the pipeline does."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for x in inputs:
        kwargs = x if isinstance(x, dict) else {"text": x}
        enc = tokenizer(**kwargs, truncation=True, max_length=max_seq_length, return_tensors="pt")
        out = model(**{k: v.to(device) for k, v in enc.items()})
        rows.append(out.logits[0].float().cpu().numpy())
    return np.stack(rows)


def pipeline_logits(
    folder: str, inputs: list, label2id: dict[str, int], device, trust_remote_code: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Raw scores and top labels of ``pipeline("text-classification", model=folder)`` for ``inputs``."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=folder, device=device, trust_remote_code=trust_remote_code)
    results = pipe(inputs, top_k=None, function_to_apply="none", truncation=True)
    logits = np.zeros((len(inputs), len(label2id)), dtype=np.float32)
    top = []
    for i, scores in enumerate(results):
        for s in scores:
            if s["label"] not in label2id:
                raise NLPTransferError(
                    f"pipeline({folder}) returned label '{s['label']}', which the run did not train: the saved config "
                    "lost the label names (this is a bug, please report it)"
                )
            logits[i, label2id[s["label"]]] = s["score"]
        top.append(max(scores, key=lambda s: s["score"])["label"])
    return logits, top


def compare(expected: np.ndarray, got: np.ndarray, top: list[str], source: str, id2label: dict, atol: float) -> dict:
    """Same top labels and logits within ``atol`` (relative above 1), else `NLPTransferError`."""
    diff = float(np.max(np.abs(expected - got))) if len(expected) else 0.0
    if expected.shape[1] > 1:
        want = [id2label[int(i)] for i in expected.argmax(-1)]
        if want != top:
            raise NLPTransferError(
                f"round-trip check failed: {source} predicts {top} but the trained model predicts {want}; "
                "the checkpoints in the output folder are kept (please report this)"
            )
    if diff > atol * max(1.0, float(np.max(np.abs(expected)))):
        raise NLPTransferError(
            f"round-trip check failed: {source} logits differ from the trained model's by {diff:.2e}; "
            "the checkpoints in the output folder are kept (please report this)"
        )
    return {"examples": len(expected), "max_abs_logit_diff": diff, "predicted_labels": top}


class ClassificationTask(Task):
    name = "text-classification"
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    head = "the classification head"
    diff_metric = "max_abs_logit_diff"
    tags = ("text-classification",)

    def load_base(self, path, config, trust_remote_code=False):
        from transformers import AutoModelForSequenceClassification

        if getattr(config, "model_type", None) == "pooled_classifier":  # --pooling mean|cls|last: not an auto class
            from ..modeling import pooled_base

            return pooled_base(path, config, trust_remote_code)
        # ignore_mismatched_sizes: the base may itself be a classifier for other labels (intermediate-task transfer
        # under LoRA); the adapter brings this task's head either way
        return AutoModelForSequenceClassification.from_pretrained(
            path, config=config, trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True
        )

    def check(self, folder, model, export: Export, *, peft, record, atol=1e-4):
        tok, inputs, max_len = export.tokenizer, export.examples, export.max_seq_length
        expected = model_logits(model, tok, inputs, max_len)
        device = next(model.parameters()).device
        if peft:
            result = self._check_adapter(
                folder, expected, inputs, export.base_model_path, max_len, export.trust_remote_code, atol, device
            )
        else:
            got, top = pipeline_logits(folder, inputs, export.label2id, device, export.trust_remote_code)
            id2label = {i: n for n, i in export.label2id.items()}
            result = compare(expected, got, top, f"pipeline({folder})", id2label, atol)
        if record:
            roundtrip.record(
                folder,
                self.name,
                inputs=inputs,
                expected_logits=expected.tolist(),
                label2id=None if peft else export.label2id,
                max_seq_length=max_len,
                atol=atol,
                trust_remote_code=export.trust_remote_code,
                **({"base_model_path": export.base_model_path} if peft else {}),
            )
        return result

    def _check_adapter(self, folder, expected, inputs, base_model_path, max_len, trust_remote_code, atol, device):
        from transformers import AutoTokenizer

        reloaded, config = roundtrip.adapter_model(
            folder, base_model_path, lambda p, c: self.load_base(p, c, trust_remote_code), trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        got = model_logits(reloaded.to(device), tokenizer, inputs, max_len)
        id2label = {int(i): n for i, n in config.id2label.items()}
        top = [id2label[int(i)] for i in got.argmax(-1)] if got.shape[1] > 1 else []
        return compare(expected, got, top, f"PeftModel.from_pretrained(base, {folder})", id2label, atol)

    def replay(self, folder, rec):
        from transformers import AutoConfig

        from ..artifacts.saving import has_weights, is_adapter

        expected = np.asarray(rec["expected_logits"], dtype=np.float32)
        inputs, max_len, atol = rec["inputs"], rec["max_seq_length"], rec["atol"]
        trust = rec.get("trust_remote_code", False)
        checks = {}
        if has_weights(folder):
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trust)
            label2id = rec.get("label2id") or {n: int(i) for i, n in config.id2label.items()}
            got, top = pipeline_logits(folder, inputs, label2id, "cpu", trust)
            id2label = {i: n for n, i in label2id.items()}
            checks["pipeline"] = compare(expected, got, top, f"pipeline({folder})", id2label, atol)
        base = roundtrip.adapter_base(folder, rec.get("base_model_path")) if is_adapter(folder) else None
        if base:
            checks["peft"] = self._check_adapter(folder, expected, inputs, base, max_len, trust, atol, "cpu")
        for c in checks.values():
            c.pop("predicted_labels", None)
        return checks

    def main_metric(self, card):
        return MAIN_METRIC[card.problem_type]

    def selection_metric(self, model):
        return MAIN_METRIC[getattr(model.config, "problem_type", None) or "single_label_classification"]

    def evaluation_report(self, folder, predictions, card, metrics):
        return evaluation_report(folder, predictions, card, metrics)

    def headline(self, metrics):
        return {
            k: v for k, v in metrics.items() if k.startswith(("eval_", "test_")) and k.split("_", 1)[1] in HEADLINE
        }

    def card_sections(self, card, export, metrics, *, base_model, strategy, adapter, merged):
        held_out = {
            k: v
            for k, v in metrics.items()
            if k.startswith(("eval_", "test_")) and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        eval_rows = [
            (*k.split("_", 1), v)
            for k, v in held_out.items()
            if not k.endswith(("_runtime", "_per_second", "_loss", "_epoch"))
        ]
        results = [
            (k, f"{v:.4f}")
            for k, v in sorted(held_out.items())
            if isinstance(v, float) and not k.endswith(("_runtime", "_per_second"))
        ]
        names = card.label_names
        labels = ", ".join(f"`{n}`" for n in names) if names else "a single regression score"
        return {
            "model_name": card.title or f"{_short(base_model)} fine-tuned on {card.dataset_name}",
            "summary": f"Fine-tuned from `{base_model}` with nlp_transfer ({strategy} strategy) on "
            f"`{card.dataset_name}` for\n{card.problem_type.replace('_', ' ')} over {labels}.",
            "results": results,
            "results_note": f"Main metric: `{self.main_metric(card)}`. All figures are on held-out data the model did "
            "not train on.",
            "eval_rows": eval_rows,
            "training_lines": [f"- Max sequence length: {export.max_seq_length}"],
            "usage": _usage(card, export, base_model, adapter, merged),
        }


def _short(name: str) -> str:
    import os

    return os.path.basename(name.rstrip("/"))


def _usage(card, export, base_model: str, adapter: bool, merged: bool) -> str:
    remote = ", trust_remote_code=True" if export.trust_remote_code else ""
    usage = f"""```python
from transformers import pipeline

clf = pipeline("text-classification", model="PATH_OR_REPO", truncation=True{remote})
clf("your text here")
```
`truncation=True` cuts inputs at {export.max_seq_length} tokens, as in training."""
    if export.trust_remote_code:
        usage += (
            " The head pools the token states itself (`--pooling`), which no transformers architecture's own head "
            "does: the folder carries that code (`pooled_model.py`, torch and transformers only; read it before "
            "you opt in) and loads with `trust_remote_code=True`."
        )
    if card.problem_type == "regression":
        usage += ' For this regression model call `clf(text, function_to_apply="none")` to get the raw score.'
    if card.problem_type == "multi_label_classification":
        usage += " For all labels with their probabilities call `clf(text, top_k=None)` (sigmoid per label)."
    if adapter:
        usage += f"""

With PEFT, on top of the base model:
```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

base = AutoModelForSequenceClassification.from_pretrained("{base_model}", num_labels={len(card.label_names or [0])})
model = PeftModel.from_pretrained(base, "PATH_OR_REPO")
```"""
        if merged:
            usage += "\n\n`merged/` holds a standalone copy with the adapter folded in (no PEFT needed)."
    return usage


REPORT_FILE = "eval_report.json"
SPLIT_NAMES = {"eval": "validation", "test": "test"}


def evaluation_report(folder: str, predictions: dict, card, metrics: dict) -> str:
    """Single-label runs: per split, per-class precision/recall/F1/support, the confusion matrix, ECE and the
    reliability bins in ``eval_report.json``; ``confusion_matrix[_test].png`` and ``reliability_diagram[_test].png``;
    the card's markdown for them. Multi-label runs: the per-label table only (threshold 0.5). Regression: nothing."""
    import os

    from .. import metrics as m
    from ..artifacts import report

    names = card.label_names
    if not predictions or not names or card.problem_type == "regression":
        return ""
    temperature = metrics.get("calibration_temperature")
    content, lines = {}, []
    for prefix, (logits, refs) in predictions.items():
        split, suffix = SPLIT_NAMES.get(prefix, prefix), "" if prefix == "eval" else f"_{prefix}"
        if card.problem_type == "multi_label_classification":
            pred = (1 / (1 + np.exp(-logits)) >= 0.5).astype(int)
            from sklearn.metrics import precision_recall_fscore_support

            p, r, f1, support = precision_recall_fscore_support(refs.astype(int), pred, average=None, zero_division=0)
            entry = {"per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                                       "support": int(support[i])} for i, n in enumerate(names)}}  # fmt: skip
        else:
            refs = refs.astype(int)
            probs = m.softmax(logits)
            entry = m.per_class_report(probs.argmax(-1), refs, names)
            entry["ece"] = m.expected_calibration_error(probs, refs)
            entry["reliability"] = m.calibration_bins(probs, refs)
            cm_file, rel_file = f"confusion_matrix{suffix}.png", f"reliability_diagram{suffix}.png"
            report.plot_confusion_matrix(entry["confusion_matrix"], names, os.path.join(folder, cm_file),
                                         title=f"Confusion matrix ({split}, {len(refs)} examples)")  # fmt: skip
            curves = {"model": entry["reliability"]}
            if temperature:
                before = m.softmax(logits * temperature)  # the head was divided by T: logits * T are the raw ones
                entry["ece_uncalibrated"] = m.expected_calibration_error(before, refs)
                curves = {"before calibration": m.calibration_bins(before, refs), "calibrated": entry["reliability"]}
            report.plot_reliability(curves, os.path.join(folder, rel_file), title=f"Reliability ({split})")
        content[split] = entry
        lines += [f"### Per class ({split}, {sum(v['support'] for v in entry['per_class'].values())} examples)", "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {n} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |"
                  for n, v in entry["per_class"].items()]  # fmt: skip
        if "ece" in entry:
            ece = f"Expected calibration error (ECE, {m.ECE_BINS} bins): {entry['ece']:.4f}"
            if temperature:
                ece += (f" after temperature scaling (T = {temperature:.3f}, fitted on the validation split and "
                        f"folded into the head), {entry['ece_uncalibrated']:.4f} before"
                        + (" — on the split T was fitted on, so optimistic" if prefix == "eval" else ""))  # fmt: skip
            lines += ["", f"![confusion matrix]({cm_file}) ![reliability diagram]({rel_file})", "", ece + "."]
        lines.append("")
    report.write_metrics(os.path.join(folder, REPORT_FILE), content)
    return "## Evaluation by class\n\n" + "\n".join(lines).rstrip() + f"\n\nAll of it in `{REPORT_FILE}`."
