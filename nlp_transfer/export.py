"""Artifacts: the output-folder policy, the pipeline-ready export, the round-trip check and the model card.

Layout of a finished classification run (``metrics.json`` is moved into place last: its presence marks a finished
run)::

    output_dir/
      config.json              architecture + id2label/label2id
      model.safetensors        full/frozen/partial: the fine-tuned weights
                               lora: the unchanged base weights (omitted with --save_base_model false)
      adapter_config.json      lora only
      adapter_model.safetensors  lora only: LoRA matrices + the trained head
      tokenizer files          model_max_length = the max_seq_length used in training
      merged/                  lora + --merge_lora: standalone model with the adapter folded in
      metrics.json, run_config.yaml, training_curves.png, README.md (model card)
      checkpoint-*/            Trainer checkpoints (resume with --resume_from_checkpoint true)

Why the base weights sit next to a LoRA adapter: when a folder holds ``config.json`` plus an adapter,
transformers (5.x) loads the base model *from that folder* and applies the adapter on top, which is the only way
plain ``pipeline(model=output_dir)`` gets both the label names and the trained head. Without them it would load the
base config from the Hub id in ``adapter_config.json`` and lose the head.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import torch
import yaml
from transformers.trainer_utils import get_last_checkpoint

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

FINISHED_MARKER = "metrics.json"
_TMP_NAME = ".export-in-progress"


# ------------------------------------------------------------------------------------------- output folder
def check_output_dir(
    output_dir: str, *, overwrite: bool = False, resume_from_checkpoint: str | None = None
) -> str | None:
    """Apply the output-folder policy before any expensive work.

    A non-empty ``output_dir`` is refused unless the user asks to overwrite or to resume.

    Args:
        output_dir (`str`): the run's folder.
        overwrite (`bool`, defaults to `False`): the user passed ``--overwrite_output_dir``.
        resume_from_checkpoint (`str`, *optional*): a checkpoint folder, or ``true``/``last`` for the latest
            ``checkpoint-*`` in ``output_dir``.

    Returns:
        The checkpoint folder to resume from, or None.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NLPTransferError(f"--output_dir {output_dir} is a file: choose a folder path")
    if resume_from_checkpoint:
        if resume_from_checkpoint.lower() in ("true", "last", "latest", "1", "yes"):
            ckpt = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
            if ckpt is None:
                raise NLPTransferError(
                    f"--resume_from_checkpoint: no checkpoint-* folder in {output_dir} to resume from; give the "
                    "checkpoint path, or start a new run without it"
                )
            return ckpt
        if not os.path.isdir(resume_from_checkpoint):
            raise NLPTransferError(f"--resume_from_checkpoint: checkpoint folder not found: {resume_from_checkpoint}")
        return resume_from_checkpoint
    if os.path.isdir(output_dir):
        entries = sorted(e for e in os.listdir(output_dir) if e != _TMP_NAME)
        if entries and not overwrite:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise NLPTransferError(
                f"--output_dir {output_dir} already holds a run ({shown}): pass --overwrite_output_dir to replace "
                "it, --resume_from_checkpoint true to continue it, or choose another --output_dir"
            )
    return None


def clear_output_dir(output_dir: str) -> None:
    """Empty ``output_dir`` (only called with --overwrite_output_dir, after data and model loaded fine)."""
    if not os.path.isdir(output_dir):
        return
    for entry in os.listdir(output_dir):
        p = os.path.join(output_dir, entry)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    logger.info("--overwrite_output_dir: cleared %s", output_dir)


def staging_dir(output_dir: str) -> str:
    """A fresh folder inside ``output_dir`` where the final artifacts are written before they move into place."""
    path = os.path.join(output_dir, _TMP_NAME)
    if os.path.isdir(path):
        shutil.rmtree(path)  # left by a crashed export; ours alone
    os.makedirs(path)
    return path


def publish(stage: str, output_dir: str) -> None:
    """Move every staged artifact into ``output_dir`` (``metrics.json`` last), then remove the staging folder."""
    entries = sorted(os.listdir(stage), key=lambda e: e == FINISHED_MARKER)
    for entry in entries:
        src, dst = os.path.join(stage, entry), os.path.join(output_dir, entry)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(src, dst)
    os.rmdir(stage)


# --------------------------------------------------------------------------------------------------- saving
def save_classifier(
    model,
    tokenizer,
    folder: str,
    *,
    base_model_path: str,
    base_model_name: str,
    max_seq_length: int,
    save_base_model: bool = True,
    merge_lora: bool = False,
    trust_remote_code: bool = False,
) -> None:
    """Write a trained sequence classifier so that ``pipeline("text-classification", model=folder)`` loads it.

    Args:
        model: the trained model (a `peft.PeftModel` for LoRA).
        tokenizer: its tokenizer; saved with ``model_max_length=max_seq_length`` so ``truncation=True`` at
            inference reproduces training-time inputs.
        folder (`str`): destination (a staging folder).
        base_model_path (`str`): where the base checkpoint was loaded from (LoRA: reloaded to write base weights).
        base_model_name (`str`): the user-facing name (Hub id or path) recorded in ``adapter_config.json``.
        max_seq_length (`int`): the truncation length used in training.
        save_base_model (`bool`, defaults to `True`): LoRA: write the base weights next to the adapter.
        merge_lora (`bool`, defaults to `False`): LoRA: also write ``merged/``, a standalone merged model.
        trust_remote_code (`bool`, defaults to `False`): passed when reloading the base model.
    """
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    tokenizer.model_max_length = max_seq_length
    if isinstance(model, PeftModel):
        config = model.get_base_model().config
        if save_base_model:
            base = AutoModelForSequenceClassification.from_pretrained(
                base_model_path, config=config, trust_remote_code=trust_remote_code
            )
            base.save_pretrained(folder)
            del base
        else:
            config.save_pretrained(folder)
        model.save_pretrained(folder)
        adapter_cfg_path = os.path.join(folder, "adapter_config.json")
        with open(adapter_cfg_path, encoding="utf-8") as f:
            adapter_cfg = json.load(f)
        adapter_cfg["base_model_name_or_path"] = base_model_name
        with open(adapter_cfg_path, "w", encoding="utf-8") as f:
            json.dump(adapter_cfg, f, indent=2, sort_keys=True)
        if merge_lora:
            merged_dir = os.path.join(folder, "merged")
            base = AutoModelForSequenceClassification.from_pretrained(
                base_model_path, config=config, trust_remote_code=trust_remote_code
            )
            merged = PeftModel.from_pretrained(base, folder).merge_and_unload()
            merged.save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
            del merged, base
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in os.listdir(folder):  # safetensors only
        if name.endswith((".bin", ".pt", ".pth")):
            raise NLPTransferError(f"refusing to write pickle weights ({name}); this is a bug, please report it")


def write_run_config(path: str, config: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Resolved configuration of this run; rerun with: --config run_config.yaml\n")
        yaml.safe_dump(config, f, sort_keys=True)


# ------------------------------------------------------------------------------------------ round-trip check
@torch.no_grad()
def _model_logits(model, tokenizer, inputs: list, max_seq_length: int) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for x in inputs:
        enc = (
            tokenizer(**x, truncation=True, max_length=max_seq_length, return_tensors="pt")
            if isinstance(x, dict)
            else tokenizer(x, truncation=True, max_length=max_seq_length, return_tensors="pt")
        )
        out = model(**{k: v.to(device) for k, v in enc.items()})
        rows.append(out.logits[0].float().cpu().numpy())
    return np.stack(rows)


def _pipeline_logits(folder: str, inputs: list, label2id: dict[str, int], device) -> tuple[np.ndarray, list[str]]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=folder, device=device)
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


def _compare(expected: np.ndarray, got: np.ndarray, top: list[str], source: str, id2label: dict, atol: float) -> dict:
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


def verify_pipeline(
    folder: str,
    model,
    tokenizer,
    inputs: list,
    *,
    label2id: dict[str, int],
    max_seq_length: int,
    atol: float = 1e-4,
) -> dict:
    """Reload ``folder`` with plain ``transformers.pipeline`` and check it reproduces ``model``'s outputs.

    Args:
        folder (`str`): the saved output folder.
        model: the trained in-memory model.
        tokenizer: its tokenizer.
        inputs (`list`): a few held-out texts (``str``) or pairs (``{"text": .., "text_pair": ..}``).
        label2id (`dict`): the trained label names.
        max_seq_length (`int`): the training truncation length.
        atol (`float`, defaults to 1e-4): tolerance on raw logits.

    Returns:
        `dict` with the number of examples checked, the largest logit difference and the predicted label names.

    Raises:
        `NLPTransferError` when labels or logits differ.
    """
    expected = _model_logits(model, tokenizer, inputs, max_seq_length)
    got, top = _pipeline_logits(folder, inputs, label2id, next(model.parameters()).device)
    id2label = {i: n for n, i in label2id.items()}
    return _compare(expected, got, top, f"pipeline({folder})", id2label, atol)


def verify_adapter(
    folder: str,
    model,
    tokenizer,
    inputs: list,
    *,
    base_model_path: str,
    max_seq_length: int,
    trust_remote_code: bool = False,
    atol: float = 1e-4,
) -> dict:
    """For an adapter-only folder (``--save_base_model false``): reload it the PEFT way,
    ``PeftModel.from_pretrained(base, folder)`` on a fresh base built with the folder's config (labels, head size),
    and check it reproduces ``model``'s outputs. Same return value and errors as `verify_pipeline`."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers import logging as hf_logging

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base has no trained head; the adapter brings it
    try:
        base = AutoModelForSequenceClassification.from_pretrained(
            base_model_path, config=config, trust_remote_code=trust_remote_code
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    reloaded = PeftModel.from_pretrained(base, folder).to(next(model.parameters()).device)
    expected = _model_logits(model, tokenizer, inputs, max_seq_length)
    got = _model_logits(reloaded, tokenizer, inputs, max_seq_length)
    id2label = {int(i): n for i, n in config.id2label.items()}
    top = [id2label[int(i)] for i in got.argmax(-1)] if got.shape[1] > 1 else []
    return _compare(expected, got, top, f"PeftModel.from_pretrained(base, {folder})", id2label, atol)


# --------------------------------------------------------------------------------------------- model card
def write_model_card(
    path: str,
    *,
    base_model: str,
    strategy: str,
    library_name: str,
    dataset_name: str,
    problem_type: str,
    label_names: list[str] | None,
    metrics: dict,
    main_metric: str,
    hyperparameters: dict,
    lora: dict | None,
    trainable_params: int,
    total_params: int,
    max_seq_length: int,
    has_curves: bool,
    merged: bool,
) -> None:
    """Write a Hugging Face model card (``README.md``) with metadata, results and copy-paste usage."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    eval_results = []
    for k, v in metrics.items():
        if (
            k.startswith(("eval_", "test_"))
            and isinstance(v, (int, float))
            and not k.endswith(("_runtime", "_per_second", "_loss", "_epoch"))
        ):
            split, name = k.split("_", 1)
            eval_results.append(
                EvalResult(
                    task_type="text-classification",
                    dataset_type=dataset_name,
                    dataset_name=dataset_name,
                    dataset_split="validation" if split == "eval" else "test",
                    metric_type=name,
                    metric_value=round(float(v), 4),
                )
            )
    data = ModelCardData(
        base_model=None if os.path.exists(base_model) else base_model,  # metadata wants a Hub id, not a path
        library_name=library_name,
        pipeline_tag="text-classification",
        tags=["nlp_transfer", "text-classification", strategy] + (["lora", "peft"] if lora else []),
        model_name=f"{os.path.basename(base_model.rstrip('/'))} fine-tuned on {dataset_name}",
        eval_results=eval_results or None,
    )
    rows = "\n".join(
        f"| {k} | {v:.4f} |"
        for k, v in sorted(metrics.items())
        if k.startswith(("eval_", "test_")) and isinstance(v, float) and not k.endswith(("_runtime", "_per_second"))
    )
    labels = ", ".join(f"`{n}`" for n in label_names) if label_names else "a single regression score"
    lora_line = (
        f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, targets={lora['targets']}; "
        "the classification head is trained in full and saved with the adapter.\n"
        if lora
        else ""
    )
    hp = "\n".join(f"- {k}: {v}" for k, v in hyperparameters.items())
    usage = f"""```python
from transformers import pipeline

clf = pipeline("text-classification", model="PATH_OR_REPO", truncation=True)
clf("your text here")
```
`truncation=True` cuts inputs at {max_seq_length} tokens, as in training."""
    if problem_type == "regression":
        usage += ' For this regression model call `clf(text, function_to_apply="none")` to get the raw score.'
    if problem_type == "multi_label_classification":
        usage += " For all labels with their probabilities call `clf(text, top_k=None)` (sigmoid per label)."
    if lora:
        usage += f"""

With PEFT, on top of the base model:
```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

base = AutoModelForSequenceClassification.from_pretrained("{base_model}", num_labels={len(label_names or [0])})
model = PeftModel.from_pretrained(base, "PATH_OR_REPO")
```"""
        if merged:
            usage += "\n\n`merged/` holds a standalone copy with the adapter folded in (no PEFT needed)."
    body = f"""
# {data.model_name}

Fine-tuned from `{base_model}` with nlp_transfer ({strategy} strategy) on `{dataset_name}` for
{problem_type.replace("_", " ")} over {labels}.

## Results

| metric | value |
|---|---|
{rows}

Main metric: `{main_metric}`. All figures are on held-out data the model did not train on.
{"" if not has_curves else chr(10) + "![training curves](training_curves.png)" + chr(10)}
## Training

- Strategy: `{strategy}`; {trainable_params:,} of {total_params:,} parameters trained.
{lora_line}- Max sequence length: {max_seq_length}
{hp}

The full resolved configuration is in `run_config.yaml`.

## Usage

{usage}
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    card.save(path)
