"""ONNX Runtime export of a finished run: ``nlp-transfer export OUTPUT_DIR [--format onnx] [--quantize int8]``, and
``--export onnx [--quantize int8]`` on every recipe (the same function, called after the folder is published).

What it writes, ``OUTPUT_DIR/onnx/``:

- ``model.onnx``: the model exported by torch's exporter (``torch.onnx.export(..., dynamo=True)``, opset 18,
  dynamic batch and sequence axes), one file; with ``--quantize int8`` also ``model_quantized.onnx``
  (``onnxruntime.quantization.quantize_dynamic``, per-channel int8 weights, activations quantised at run time),
  which the folder then loads by default;
- the tokenizer, ``config.json`` (``auto_map`` -> ``onnx_model.py``, ``nlp_transfer_onnx``: the default file, its
  inputs), ``onnx_model.py`` (`nlp_transfer.onnx_model`, copied) and the folder's other code files
  (``qa_pipeline.py`` for QA, ``pooled_model.py`` for ``--pooling``), so that
  ``pipeline(task, model="OUTPUT_DIR/onnx", trust_remote_code=True)`` runs ONNX Runtime;
- ``onnx_check.json``: the parity check, also merged into ``OUTPUT_DIR/metrics.json`` (``onnx_*``) and the card.

Order, and what is refused (one line each, nothing half-written: the folder is built in ``OUTPUT_DIR/.onnx-*`` and
renamed into place only once every check passed):

1. the folder is a finished run whose round-trip record replays (`nlp_transfer.tasks.verify_recorded`); the task is
   text classification or extractive QA; onnx, onnxscript and onnxruntime are installed (else the extra to install);
2. the model is rebuilt in fp32 from the folder alone; a LoRA folder is merged into its base first (``merged/``, the
   base weights saved next to the adapter, or the base it names): exporting the unmerged PEFT graph is the known
   PEFT->ONNX pitfall (extra matmuls per layer, or a failed trace);
3. parity: ``pipeline(...)`` on the written folder must reproduce the PyTorch folder on the recorded held-out inputs:
   fp32 with the same labels/answers and logits within ``1e-4`` (relative above 1, as the round trip); int8 with the
   same labels (answers for QA) on >= 99 % of the recorded inputs and, when the recipe passes its validation split,
   of the held-out rows, whose accuracy in PyTorch, ONNX fp32 and ONNX int8 is reported.

Why torch's exporter and not optimum: optimum-onnx 0.1.0 (the current release) requires ``transformers<4.58`` and
fails to import under transformers 5 (huggingface/optimum-onnx#114); the issue asked us not to write an exporter, and
we don't: ``torch.onnx.export`` is PyTorch's own. The folder keeps optimum's layout (``model.onnx``,
``model_quantized.onnx``, ``config.json``), so ``ORTModelForSequenceClassification.from_pretrained`` reads it where
optimum installs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

from . import onnx_model
from .artifacts import roundtrip
from .artifacts.folder import CARD_FILE, FINISHED_MARKER
from .artifacts.report import write_metrics
from .artifacts.saving import MERGED_DIR, has_weights, is_adapter
from .errors import NLPTransferError
from .tasks import get as get_task
from .tasks import verify_recorded

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
CHECK_FILE = "onnx_check.json"
STAGING_PREFIX = ".onnx-"
OPSET = 18
FP32_ATOL = 1e-4
INT8_MIN_AGREEMENT = 0.99
EXTRA = "pip install 'nlp-transfer[onnx]'"
OUTPUTS = {"text-classification": ("logits",), "question-answering": ("start_logits", "end_logits")}
ORT_CLASSES = {
    "text-classification": ("AutoModelForSequenceClassification", "ORTModelForSequenceClassification"),
    "question-answering": ("AutoModelForQuestionAnswering", "ORTModelForQuestionAnswering"),
}
CARD_MARK = "<!-- nlp_transfer: onnx export -->"


def require_onnx() -> None:
    """onnx, onnxscript (torch's exporter) and onnxruntime, or one line naming the extra."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            raise NLPTransferError(f"ONNX export needs {name}, which is not installed: {EXTRA}") from None


def export_onnx(folder: str, *, quantize: str | None = None, held_out=None) -> dict:
    """Write ``folder/onnx/`` (see the module docstring) and return the parity report.

    Args:
        folder (`str`): a finished run's output folder.
        quantize (`str`, *optional*): ``"int8"`` to also write the dynamically quantised model.
        held_out (`datasets.Dataset`, *optional*): tokenised labelled rows (``input_ids``, ``attention_mask``, ...,
            ``labels``) for the held-out accuracy of PyTorch vs ONNX fp32 vs int8 (single-label classification).
    """
    from .hub import check_finished_run

    check_finished_run(folder)
    rec = roundtrip.read_record(folder)
    task = rec.get("task", "text-classification")
    if task not in OUTPUTS:
        raise NLPTransferError(f"{folder} holds a {task} model: ONNX export supports {' and '.join(OUTPUTS)} folders")
    if quantize not in (None, "int8"):
        raise NLPTransferError(f"--quantize {quantize} is not supported: use --quantize int8 or leave it out")
    require_onnx()
    verify_recorded(folder)  # the PyTorch folder is what its record says, before anything is derived from it
    started = time.perf_counter()
    model, tokenizer, trust = _plain_model(folder, rec, task)
    stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder)
    try:
        inputs = _export(model, tokenizer, task, rec, os.path.join(stage, onnx_model.FP32_FILE))
        _write_folder(folder, stage, tokenizer, task, inputs, default_file=onnx_model.FP32_FILE)
        report = {"format": "onnx", "opset": OPSET, "inputs": inputs, "task": task}
        report["fp32"] = _parity(stage, onnx_model.FP32_FILE, model, tokenizer, task, rec, strict=True)
        files = [onnx_model.FP32_FILE]
        if quantize:
            _quantize(os.path.join(stage, onnx_model.FP32_FILE), os.path.join(stage, onnx_model.INT8_FILE))
            report["int8"] = _parity(stage, onnx_model.INT8_FILE, model, tokenizer, task, rec, strict=False)
            files.append(onnx_model.INT8_FILE)
        if held_out is not None and task == "text-classification":
            report["held_out"] = _held_out(model, stage, held_out, files)
        _check_int8(report, folder)
        if quantize:
            _write_folder(folder, stage, tokenizer, task, inputs, default_file=onnx_model.INT8_FILE)
        report["size_mb"] = {f: round(os.path.getsize(os.path.join(stage, f)) / 1e6, 2) for f in files}
        report["default_file"] = files[-1]
        report["export_seconds"] = round(time.perf_counter() - started, 1)
        write_metrics(os.path.join(stage, CHECK_FILE), report)
        _replace_dir(stage, os.path.join(folder, ONNX_DIR))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _record(folder, report)
    logger.info("ONNX export written to %s (%s)", os.path.join(folder, ONNX_DIR), _summary(report))
    return report


# ----------------------------------------------------------------------------------------------- the model
def _plain_model(folder: str, rec: dict, task: str):
    """The folder's model in fp32 as one plain module: a LoRA adapter merged into its base."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    trust = bool(rec.get("trust_remote_code", False)) or os.path.isfile(os.path.join(folder, "pooled_model.py"))
    auto = getattr(transformers, ORT_CLASSES[task][0])
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    t = get_task(task)
    if not is_adapter(folder):
        model = auto.from_pretrained(folder, trust_remote_code=trust, dtype=torch.float32)
    elif os.path.isfile(os.path.join(folder, MERGED_DIR, "config.json")):
        model = auto.from_pretrained(os.path.join(folder, MERGED_DIR), trust_remote_code=trust, dtype=torch.float32)
    else:
        with tempfile.TemporaryDirectory() as base_dir:
            base = base_dir if has_weights(folder) else roundtrip.adapter_base(folder, rec.get("base_model_path"))
            if base is None:
                raise NLPTransferError(
                    f"{folder} holds only a LoRA adapter and its base model is not available here: export on a "
                    "machine that has the base, or retrain with --merge_lora true"
                )
            if has_weights(folder):  # the base weights saved next to the adapter, without the adapter files
                for name in os.listdir(folder):
                    if name == "config.json" or name.startswith("model.safetensors") or name.endswith(".py"):
                        os.symlink(os.path.join(os.path.abspath(folder), name), os.path.join(base_dir, name))
            peft_model, _ = roundtrip.adapter_model(folder, base, lambda p, c: t.load_base(p, c, trust), trust)
            model = peft_model.merge_and_unload()
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust)
    model.config.id2label, model.config.label2id = config.id2label, config.label2id
    return model.float().eval(), tokenizer, trust


def _forward_names(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _sample(model, tokenizer, task: str, rec: dict) -> dict:
    """Two recorded inputs, tokenised as the pipeline does (batch 2: torch.export must not specialise on 1)."""
    names = _forward_names(model) & {"input_ids", "attention_mask", "token_type_ids"}
    if task == "question-answering":
        from .qa_pipeline import CONFIG_KEY, DEFAULTS, encode_windows

        qa = {**DEFAULTS, **(getattr(model.config, CONFIG_KEY, None) or {})}
        examples = (rec["examples"] * 2)[:2]
        enc, _ = encode_windows(
            tokenizer,
            [e["question"] for e in examples],
            [e["context"] for e in examples],
            max_seq_len=qa["max_seq_len"],
            doc_stride=qa["doc_stride"],
            padding="longest",
        )
        enc = {k: torch.tensor(enc[k][:2]) for k in names if k in enc}
    else:
        inputs = (rec["inputs"] * 2)[:2]
        texts = [x["text"] if isinstance(x, dict) else x for x in inputs]
        pairs = [x["text_pair"] for x in inputs] if isinstance(inputs[0], dict) else None
        enc = tokenizer(
            texts, pairs, padding=True, truncation=True, max_length=rec.get("max_seq_length"), return_tensors="pt"
        )
        enc = {k: v for k, v in enc.items() if k in names}
    if enc["input_ids"].shape[0] < 2 or enc["input_ids"].shape[1] < 2:
        raise NLPTransferError("the recorded inputs are too short to trace the model for ONNX (please report this)")
    return enc


def _export(model, tokenizer, task: str, rec: dict, path: str) -> list[str]:
    """``torch.onnx.export`` (the torch.export-based exporter), dynamic batch and sequence axes, one file."""
    import warnings

    sample = _sample(model, tokenizer, task, rec)
    names = list(sample)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (),
                kwargs=sample,
                input_names=names,
                output_names=list(OUTPUTS[task]),
                dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
            program.save(path, external_data=False)
    except NLPTransferError:
        raise
    except Exception as e:  # the exporter's own failure: name the model and where to look
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise NLPTransferError(
            f"torch.onnx.export could not export {type(model).__name__} ({type(e).__name__}: {first}); the PyTorch "
            "folder is unchanged (please report this with the model type)"
        ) from None
    return names


def _quantize(src: str, dst: str) -> None:
    """Dynamic int8 quantisation (weights int8 with a scale per output channel, activations at run time) after
    onnxruntime's pre-processing."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst + ".pre.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs "please consider pre-processing" on the root logger
    try:
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        # per-channel weight scales: on a briefly trained MiniLM QA model 80 % of answers stayed the same vs 66 % with
        # one scale per tensor (100 held-out SQuAD questions), same file size
        quantize_dynamic(pre, dst, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
        if os.path.exists(pre):
            os.remove(pre)


def _write_folder(folder, stage, tokenizer, task, inputs, *, default_file) -> None:
    """Tokenizer, config.json (auto_map to onnx_model.py, the default file) and the code files next to the model."""
    tokenizer.save_pretrained(stage)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    auto, ort = ORT_CLASSES[task]
    config["auto_map"] = {**config.get("auto_map", {}), auto: f"onnx_model.{ort}"}
    config[onnx_model.CONFIG_KEY] = {"file_name": default_file, "inputs": inputs, "opset": OPSET}
    with open(os.path.join(stage, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    shutil.copyfile(onnx_model.__file__, os.path.join(stage, "onnx_model.py"))
    for name in os.listdir(folder):  # qa_pipeline.py, pooled_model.py: what config.json names
        if name.endswith(".py") and name != "onnx_model.py":
            shutil.copyfile(os.path.join(folder, name), os.path.join(stage, name))


# -------------------------------------------------------------------------------------------------- checks
def _onnx_pipeline(stage: str, file_name: str, task: str):
    from transformers import pipeline

    return pipeline(task, model=stage, trust_remote_code=True, device="cpu", model_kwargs={"file_name": file_name})


def _parity(stage, file_name, model, tokenizer, task, rec, *, strict: bool) -> dict:
    """The ONNX folder through ``pipeline(...)`` vs the PyTorch model on the recorded inputs."""
    pipe = _onnx_pipeline(stage, file_name, task)
    if task == "question-answering":
        from .tasks.question_answering import compare_answers

        examples, expected = rec["examples"], rec["expected"]
        got = pipe([{"question": e["question"], "context": e["context"]} for e in examples])
        got = got if isinstance(got, list) else [got]
        same = [g["answer"] == expected[e["id"]]["text"] for e, g in zip(examples, got)]
        diff = max(abs(float(g["score"]) - float(expected[e["id"]]["score"])) for e, g in zip(examples, got))
        if strict:
            compare_answers(examples, expected, got, f"ONNX {file_name}", max(FP32_ATOL, float(rec.get("atol", 0))))
        return {"examples": len(examples), "agreement": float(np.mean(same)), "max_abs_score_diff": diff}
    from .tasks.classification import compare, model_logits

    inputs = rec["inputs"]
    expected = model_logits(model, tokenizer, inputs, rec.get("max_seq_length") or tokenizer.model_max_length)
    results = pipe(inputs, top_k=None, function_to_apply="none", truncation=True)
    label2id = model.config.label2id
    got = np.zeros_like(expected)
    for i, scores in enumerate(results):
        for s in scores:
            got[i, label2id[s["label"]]] = s["score"]
    id2label = {int(i): n for i, n in model.config.id2label.items()}
    top = [id2label[int(i)] for i in got.argmax(-1)] if got.shape[1] > 1 else []
    if strict:
        compare(expected, got, top, f"ONNX {file_name}", id2label, FP32_ATOL)
    return {
        "examples": len(inputs),
        "agreement": _agreement(expected, got, model.config.problem_type),
        "max_abs_logit_diff": float(np.max(np.abs(expected - got))),
    }


def _agreement(expected: np.ndarray, got: np.ndarray, problem_type: str | None) -> float | None:
    """Share of rows with the same prediction: argmax; every label's side of 0 for multi-label; None for
    regression (a score has no label to agree on: its logit difference is reported instead)."""
    if problem_type == "regression" or expected.shape[1] == 1:
        return None
    if problem_type == "multi_label_classification":
        return float(np.mean(np.all((expected > 0) == (got > 0), axis=1)))
    return float(np.mean(expected.argmax(-1) == got.argmax(-1)))


@torch.no_grad()
def _held_out(model, stage: str, dataset, files: list[str], batch_size: int = 32) -> dict:
    """Accuracy of PyTorch fp32 vs each ONNX file on the tokenised held-out rows, and the agreement with PyTorch."""
    import onnxruntime

    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in dataset.column_names]
    label_key = "labels" if "labels" in dataset.column_names else "label"
    if label_key not in dataset.column_names or not keys:
        return {}
    names = _forward_names(model)
    keys = [k for k in keys if k in names]
    sessions = {
        f: onnxruntime.InferenceSession(os.path.join(stage, f), providers=["CPUExecutionProvider"]) for f in files
    }
    feeds_of = {f: {i.name for i in s.get_inputs()} for f, s in sessions.items()}
    preds = {"pytorch": [], **{f: [] for f in files}}
    labels = []
    pad = 0 if model.config.pad_token_id is None else model.config.pad_token_id
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        width = max(len(x) for x in rows["input_ids"])
        batch = {
            k: np.array(
                [list(x) + [pad if k == "input_ids" else 0] * (width - len(x)) for x in rows[k]], dtype=np.int64
            )
            for k in keys
        }
        labels.extend(rows[label_key])
        preds["pytorch"].append(model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy())
        for f, s in sessions.items():
            preds[f].append(s.run(None, {k: v for k, v in batch.items() if k in feeds_of[f]})[0])
    if model.config.problem_type not in (None, "single_label_classification"):
        return {}
    labels = np.asarray(labels)
    out = {"rows": int(len(labels))}
    reference = np.concatenate(preds["pytorch"]).argmax(-1)
    out["accuracy_pytorch"] = float(np.mean(reference == labels))
    for f in files:
        p = np.concatenate(preds[f]).argmax(-1)
        key = "int8" if f == onnx_model.INT8_FILE else "fp32"
        out[f"accuracy_onnx_{key}"] = float(np.mean(p == labels))
        out[f"agreement_onnx_{key}"] = float(np.mean(p == reference))
    return out


def _check_int8(report: dict, folder: str) -> None:
    if "int8" not in report:
        return
    measured = [("recorded inputs", report["int8"].get("agreement"))]
    measured.append(("held-out rows", report.get("held_out", {}).get("agreement_onnx_int8")))
    for where, value in measured:
        if value is not None and value < INT8_MIN_AGREEMENT:
            raise NLPTransferError(
                f"the int8 model agrees with the PyTorch model on only {value:.1%} of the {where} (needs >= "
                f"{INT8_MIN_AGREEMENT:.0%}): nothing was written; export without --quantize for fp32 ONNX "
                f"({folder} is unchanged)"
            )


# ------------------------------------------------------------------------------------------------- writing
def _replace_dir(stage: str, dest: str) -> None:
    """``stage`` becomes ``dest``; an older ``dest`` is removed only after the rename succeeded."""
    old = None
    if os.path.exists(dest):
        old = tempfile.mkdtemp(prefix=STAGING_PREFIX + "old-", dir=os.path.dirname(dest))
        os.rmdir(old)
        os.rename(dest, old)
    os.rename(stage, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def metrics_of(report: dict) -> dict:
    """The report as flat ``onnx_*`` metrics (what metrics.json gets)."""
    out = {}
    for part in ("fp32", "int8"):
        for k, v in report.get(part, {}).items():
            if k != "examples" and v is not None:
                out[f"onnx_{part}_{k}"] = v
    for k, v in report.get("held_out", {}).items():
        out[f"onnx_heldout_{k}"] = v
    for f, mb in report.get("size_mb", {}).items():
        out[f"onnx_size_mb_{'int8' if f == onnx_model.INT8_FILE else 'fp32'}"] = mb
    return out


def _summary(report: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics_of(report).items())


def _record(folder: str, report: dict) -> None:
    """The parity figures into metrics.json (atomically: it is the finished marker) and a section of the card."""
    path = os.path.join(folder, FINISHED_MARKER)
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)
    metrics = {k: v for k, v in metrics.items() if not k.startswith("onnx_")}
    metrics.update(metrics_of(report))
    tmp = path + ".tmp"
    write_metrics(tmp, metrics)
    os.replace(tmp, path)
    card_path = os.path.join(folder, CARD_FILE)
    if os.path.isfile(card_path):
        with open(card_path, encoding="utf-8") as f:
            card = f.read().split(CARD_MARK)[0].rstrip() + "\n"
        with open(card_path + ".tmp", "w", encoding="utf-8") as f:
            f.write(card + "\n" + CARD_MARK + "\n" + card_section(report))
        os.replace(card_path + ".tmp", card_path)


def card_section(report: dict) -> str:
    task = report["task"]
    diff = "max_abs_score_diff" if task == "question-answering" else "max_abs_logit_diff"
    what = "answers" if task == "question-answering" else "labels"
    rows = [
        f"| ONNX fp32 (`onnx/{onnx_model.FP32_FILE}`) | {report['size_mb'][onnx_model.FP32_FILE]} MB | "
        f"{_pct(report['fp32'].get('agreement'))} | {report['fp32'][diff]:.1e} |"
    ]
    if "int8" in report:
        rows.append(
            f"| ONNX int8 (`onnx/{onnx_model.INT8_FILE}`) | {report['size_mb'][onnx_model.INT8_FILE]} MB | "
            f"{_pct(report['int8'].get('agreement'))} | {report['int8'][diff]:.1e} |"
        )
    held = report.get("held_out") or {}
    held_line = ""
    if held:
        parts = [f"PyTorch {held['accuracy_pytorch']:.2%}", f"ONNX fp32 {held['accuracy_onnx_fp32']:.2%}"]
        if "accuracy_onnx_int8" in held:
            parts.append(
                f"ONNX int8 {held['accuracy_onnx_int8']:.2%} "
                f"({held['agreement_onnx_int8']:.2%} same labels as PyTorch)"
            )
        held_line = f"\nAccuracy on the {held['rows']} held-out rows: " + ", ".join(parts) + "."
    return f"""## ONNX Runtime

`onnx/` holds this model for ONNX Runtime (exported with `torch.onnx.export`, opset {report["opset"]}), loaded by
`onnx/onnx_model.py` (`trust_remote_code=True` runs it; it opens an `onnxruntime.InferenceSession`):

```python
from transformers import pipeline

pipe = pipeline("{task}", model="PATH_OR_REPO/onnx", trust_remote_code=True)  # loads onnx/{report["default_file"]}
```

| file | size | same {what} as PyTorch (recorded inputs) | largest difference |
|---|---|---|---|
{chr(10).join(rows)}
{held_line}
"""


def _pct(v) -> str:
    return "n/a (regression)" if v is None else f"{v:.0%}"


# ------------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> dict:
    """``nlp-transfer export OUTPUT_DIR [--format onnx] [--quantize int8]``."""
    import argparse

    from .cli import setup_logging

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise NLPTransferError(f"{message} (see `nlp-transfer export --help`)")

    parser = Parser(
        prog="nlp-transfer export",
        description="Write OUTPUT_DIR/onnx/: the finished run's model for ONNX Runtime, checked against the PyTorch "
        "folder on its recorded held-out inputs (needs `pip install nlp-transfer[onnx]`).",
    )
    parser.add_argument("output_dir", help="the --output_dir of a finished run")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    parser.add_argument("--quantize", default=None, choices=["int8"], help="also write a dynamically quantised model")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_logging()
    report = export_onnx(args.output_dir, quantize=args.quantize)
    print(os.path.join(args.output_dir, ONNX_DIR), file=sys.stdout)
    return report
