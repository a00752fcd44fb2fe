"""Extractive question answering: the answer is a span of the context. transformers 5.x has no
"question-answering" pipeline any more, so every QA folder carries its own (``qa_pipeline.py``, a copy of
`nlp_transfer.qa_pipeline`) and names it in ``config.json`` (``custom_pipelines``), with the window and answer
settings it was trained with (``nlp_transfer_qa``)."""

from __future__ import annotations

import json
import logging
import os
import shutil

from ..artifacts import roundtrip
from ..artifacts.saving import MERGED_DIR, has_weights, is_adapter
from ..errors import NLPTransferError
from .base import Export, Task

logger = logging.getLogger(__name__)

PIPELINE_FILE = "qa_pipeline.py"
HEADLINE = ("exact_match", "f1", "HasAns_f1", "NoAns_f1")


def pipeline_source() -> str:
    from .. import qa_pipeline

    return qa_pipeline.__file__


def compare_answers(
    examples: list[dict], expected: dict[str, dict], got: list[dict], source: str, atol: float
) -> dict:
    """Same answer spans (or a near-tie within ``atol``) and scores within ``atol``, else `NLPTransferError`."""
    max_diff, ties = 0.0, 0
    for ex, g in zip(examples, got):
        want = expected[ex["id"]]
        diff = abs(float(g["score"]) - float(want["score"]))
        max_diff = max(max_diff, diff)
        same = (g["answer"], g["start"], g["end"]) == (want["text"], want["start"], want["end"])
        if diff > atol * max(1.0, abs(float(want["score"]))):
            what = (
                f"answers {g['answer']!r} where the trained model's post-processing gives {want['text']!r}"
                if not same
                else f"scores the answer {g['answer']!r} {g['score']:.4f} instead of {want['score']:.4f}"
            )
            raise NLPTransferError(
                f"round-trip check failed: {source} {what} for question {ex['id']!r}; the checkpoints in the output "
                "folder are kept (please report this)"
            )
        if not same:  # two spans within float noise of each other: either is the model's answer
            ties += 1
            logger.info(
                "round trip: question %r: near-tie between %r and %r (scores %.6f, %.6f)",
                ex["id"],
                g["answer"],
                want["text"],
                g["score"],
                want["score"],
            )
    return {"examples": len(examples), "max_abs_score_diff": max_diff, "near_ties": ties}


def check_pipeline_files(folder: str) -> None:
    """The folder's ``qa_pipeline.py`` is byte-identical to `nlp_transfer.qa_pipeline` and registered."""
    path = os.path.join(folder, PIPELINE_FILE)
    with open(pipeline_source(), "rb") as f:
        want = f.read()
    got = None
    if os.path.isfile(path):
        with open(path, "rb") as f:
            got = f.read()
    if got != want:
        raise NLPTransferError(
            f"round-trip check failed: {path} is missing or differs from nlp_transfer's qa_pipeline.py "
            "(please report this)"
        )
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        registered = json.load(f).get("custom_pipelines", {}).get("question-answering", {})
    if registered.get("impl") != "qa_pipeline.ExtractiveQAPipeline":
        raise NLPTransferError(
            f"round-trip check failed: {folder}/config.json does not register the question-answering pipeline "
            "(please report this)"
        )


def _answers(pipe, examples: list[dict]) -> list[dict]:
    out = pipe([{"question": ex["question"], "context": ex["context"]} for ex in examples])
    return out if isinstance(out, list) else [out]


class QuestionAnsweringTask(Task):
    name = "question-answering"
    auto_class = "AutoModelForQuestionAnswering"
    peft_task_type = "QUESTION_ANS"
    head = "the span head (`qa_outputs`)"
    diff_metric = "max_abs_score_diff"
    tags = ("question-answering", "extractive-qa")

    def load_base(self, path, config, trust_remote_code=False):
        from ..qa import load_qa_model

        return load_qa_model(path, config=config, trust_remote_code=trust_remote_code)

    def configure_training(self, training_args, explicit):
        if "label_names" not in explicit:
            training_args.label_names = ["start_positions", "end_positions"]
        # evaluation hands compute_metrics the input ids, to match logits back to windows (qa.feature_order)
        training_args.include_for_metrics = sorted(set(training_args.include_for_metrics or []) | {"inputs"})
        # 384-token windows: activations dominate peak memory (benchmarks/qa_memory.py: 4.6 GB at 16 windows per
        # pass, 2.9 GB at 8, with the same 16-window optimizer steps). Unless told otherwise, 16 windows per step
        # are taken as two passes of 8: the same batches and updates (each pass's loss is its mean; the Trainer
        # averages the two), 37 % less memory, and 1.41x faster on a 2-core CPU (each pass pads to its own longest
        # window; benchmarks/README.md, "QA memory").
        if (
            not {"per_device_train_batch_size", "gradient_accumulation_steps"} & explicit
            and training_args.per_device_train_batch_size == 16
            and training_args.gradient_accumulation_steps == 1
        ):
            training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps = 8, 2
            logging.getLogger(__name__).info(
                "QA: 16 windows per optimizer step as 2 passes of 8 (same updates, ~37 %% less peak memory); set "
                "--per_device_train_batch_size / --gradient_accumulation_steps to choose"
            )

    def configure(self, model, export):
        from peft import PeftModel

        from ..qa_pipeline import CONFIG_KEY

        config = model.get_base_model().config if isinstance(model, PeftModel) else model.config
        setattr(config, CONFIG_KEY, dict(export.settings))
        config.custom_pipelines = {
            "question-answering": {
                "impl": "qa_pipeline.ExtractiveQAPipeline",
                "pt": ["AutoModelForQuestionAnswering"],
                "type": "text",
            }
        }

    def after_save(self, folder, export):
        for target in (folder, os.path.join(folder, MERGED_DIR)):
            if os.path.isfile(os.path.join(target, "config.json")):
                shutil.copyfile(pipeline_source(), os.path.join(target, PIPELINE_FILE))

    def tolerance(self, training_args):
        # the expected answers come from the evaluation pass, which ran under bf16/fp16 autocast when asked; the
        # reloaded folder runs in fp32, so scores may differ by the half-precision rounding (2e-4 on a tiny model)
        return 2e-2 if training_args.bf16 or training_args.fp16 else 1e-4

    def check(self, folder, model, export: Export, *, peft, record, atol=1e-4):
        return self._verify(
            folder,
            export.examples,
            export.expected,
            atol=atol,
            record=record,
            base_model_path=export.base_model_path if peft else None,
            trust_remote_code=export.trust_remote_code,
        )

    def _verify(self, folder, examples, expected, *, atol, record, base_model_path=None, trust_remote_code=False):
        """``pipeline("question-answering", ...)`` on ``folder`` (or, given ``base_model_path``, the PEFT way: an
        adapter on a fresh base wrapped in the same pipeline class) must give the recipe's answers. Built with
        ``pipeline_class=ExtractiveQAPipeline`` (no code run from the folder) after checking that the folder's
        ``qa_pipeline.py`` is that class's module, so ``trust_remote_code=True`` runs the same code."""
        from transformers import AutoTokenizer, pipeline

        from ..qa_pipeline import ExtractiveQAPipeline

        check_pipeline_files(folder)
        if base_model_path is None:
            pipe = pipeline("question-answering", model=folder, pipeline_class=ExtractiveQAPipeline, device="cpu")
            source = f"pipeline({folder})"
        else:
            model, _ = roundtrip.adapter_model(
                folder,
                base_model_path,
                lambda p, c: self.load_base(p, c, trust_remote_code),
                trust_remote_code,
            )
            pipe = ExtractiveQAPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")
            source = f"PeftModel.from_pretrained(base, {folder})"
        result = compare_answers(examples, expected, _answers(pipe, examples), source, atol)
        if record:
            extra = {"base_model_path": base_model_path, "trust_remote_code": trust_remote_code}
            roundtrip.record(
                folder,
                self.name,
                examples=examples,
                expected=expected,
                atol=atol,
                **(extra if base_model_path else {}),
            )
        return result

    def replay(self, folder, rec):
        checks = {}
        common = {"atol": rec["atol"], "record": False}
        if has_weights(folder):
            checks["pipeline"] = self._verify(folder, rec["examples"], rec["expected"], **common)
        base = roundtrip.adapter_base(folder, rec.get("base_model_path")) if is_adapter(folder) else None
        if base:
            checks["peft"] = self._verify(
                folder,
                rec["examples"],
                rec["expected"],
                base_model_path=base,
                trust_remote_code=rec.get("trust_remote_code", False),
                **common,
            )
        return checks

    def main_metric(self, card):
        return "f1"

    def selection_metric(self, model):
        return "f1"

    def evaluation_report(self, folder, predictions, card, metrics):
        """EM/F1 by question type and by answer length per held-out split: ``eval_report.json`` and a card table."""
        import os

        from ..artifacts import report
        from ..metrics import squad_breakdown

        content, lines = {}, []
        for prefix, (answers, refs, questions) in predictions.items():
            split = {"eval": "validation", "test": "test"}.get(prefix, prefix)
            content[split] = squad_breakdown(answers, refs, questions)
            for kind, title in (("by_question_type", "question type"), ("by_answer_length", "gold answer length")):
                lines += [f"### By {title} ({split})", "", f"| {title} | EM | F1 | questions |", "|---|---|---|---|"]
                lines += [f"| {n} | {v['exact_match']:.2f} | {v['f1']:.2f} | {v['count']} |"
                          for n, v in content[split][kind].items()]  # fmt: skip
                lines.append("")
        if not content:
            return ""
        report.write_metrics(os.path.join(folder, "eval_report.json"), content)
        return "## Evaluation by group\n\n" + "\n".join(lines).rstrip() + "\n\nAll of it in `eval_report.json`."

    def headline(self, metrics):
        return {
            k: v for k, v in metrics.items() if k.startswith(("eval_", "test_")) and k.split("_", 1)[1] in HEADLINE
        }

    def card_sections(self, card, export, metrics, *, base_model, strategy, adapter, merged):
        held_out = {k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))}
        eval_rows = [
            (*k.split("_", 1), v) for k, v in held_out.items() if k.split("_", 1)[-1] in ("exact_match", "f1")
        ]
        results = [
            (k, f"{v:.2f}" if isinstance(v, float) else f"{v}")
            for k, v in sorted(held_out.items())
            if not k.endswith(("_runtime", "_per_second", "_epoch"))
        ]
        qa = export.settings
        return {
            "model_name": card.title
            or f"{os.path.basename(base_model.rstrip('/'))} fine-tuned on {card.dataset_name} for extractive QA",
            "summary": f"Fine-tuned from `{base_model}` with nlp_transfer ({strategy} strategy) on "
            f"`{card.dataset_name}` for extractive question\nanswering: the answer is a span of the given context.",
            "results": results,
            "results_note": "SQuAD exact match and F1 in percent (official answer normalisation), on held-out "
            "questions the model did not\ntrain on; `predictions.json` holds every held-out answer.",
            "eval_rows": eval_rows,
            "training_lines": [
                f"- Windows: {qa['max_seq_len']} tokens, doc stride {qa['doc_stride']}; max answer length "
                f"{qa['max_answer_len']} tokens"
            ],
            "usage": _usage(qa, base_model, adapter, merged),
        }


def _usage(qa: dict, base_model: str, adapter: bool, merged: bool) -> str:
    no_answer = "no-answer allowed" if qa["handle_impossible_answer"] else "always an answer"
    usage = f"""```python
from transformers import pipeline

qa = pipeline("question-answering", model="PATH_OR_REPO", trust_remote_code=True)
qa(question="Who wrote it?", context="It was written by Ada Lovelace in 1843.")
# {{'score': ..., 'start': ..., 'end': ..., 'answer': ...}}
```
transformers 5 no longer ships a `question-answering` pipeline. This folder carries its own, `qa_pipeline.py`
(registered in `config.json` under `custom_pipelines`); `trust_remote_code=True` runs that file, so read it first.
With nlp_transfer installed, the same code runs without remote code:
```python
from nlp_transfer.qa_pipeline import ExtractiveQAPipeline

qa = pipeline("question-answering", model="PATH_OR_REPO", pipeline_class=ExtractiveQAPipeline)
```
Defaults (stored in `config.json` as `nlp_transfer_qa`, the settings used in training and evaluation): windows of
{qa["max_seq_len"]} tokens overlapping by {qa["doc_stride"]} (`max_seq_len`, `doc_stride`), answers of at most
{qa["max_answer_len"]} tokens (`max_answer_len`), {no_answer} (`handle_impossible_answer`). `score` is the span's
start + end logit, not a probability."""
    if adapter:
        usage += f"""

With PEFT, on top of the base model:
```python
from peft import PeftModel
from transformers import AutoModelForQuestionAnswering

model = PeftModel.from_pretrained(AutoModelForQuestionAnswering.from_pretrained("{base_model}"), "PATH_OR_REPO")
```
(For decoders whose QA class names the backbone differently from a causal-LM checkpoint, e.g. Llama, transformers
leaves that base's backbone untrained: build it with `nlp_transfer.qa.load_qa_model("{base_model}")` instead.)"""
        if merged:
            usage += "\n\n`merged/` holds a standalone copy with the adapter folded in (no PEFT needed)."
    return usage
