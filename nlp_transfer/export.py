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

An extractive QA run (``nlp_transfer.recipes.qa``) writes the same files plus ``predictions.json`` and
``qa_pipeline.py``: transformers 5.x has no "question-answering" pipeline any more, so the folder carries its own
(`nlp_transfer.qa_pipeline`) and names it in ``config.json`` (``custom_pipelines``), with the window and answer
settings it was trained with (``nlp_transfer_qa``); see `save_qa_model`.

Why the base weights sit next to a LoRA adapter: when a folder holds ``config.json`` plus an adapter,
transformers (5.x) loads the base model *from that folder* and applies the adapter on top, which is the only way
plain ``pipeline(model=output_dir)`` gets both the label names and the trained head. Without them it would load the
base config from the Hub id in ``adapter_config.json`` and lose the head.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import numpy as np
import torch
import yaml

from .errors import NLPTransferError
from .interrupt import last_complete_checkpoint

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
            ckpt = last_complete_checkpoint(output_dir)
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
    load_base=None,
) -> None:
    """Write a trained sequence classifier so that ``pipeline("text-classification", model=folder)`` loads it
    (or, with ``load_base``, another task model: the QA recipe goes through `save_qa_model`).

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
        load_base (`Callable[[config], model]`, *optional*): LoRA: rebuilds the untrained base model with its task
            head from ``base_model_path`` (for the base weights and ``merged/``); defaults to
            ``AutoModelForSequenceClassification.from_pretrained(base_model_path, config=config)``.
    """
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    if load_base is None:

        def load_base(config):
            return AutoModelForSequenceClassification.from_pretrained(
                base_model_path, config=config, trust_remote_code=trust_remote_code
            )

    tokenizer.model_max_length = max_seq_length
    if isinstance(model, PeftModel):
        config = model.get_base_model().config
        if save_base_model:
            base = load_base(config)
            base.save_pretrained(folder)
            del base
        else:
            config.save_pretrained(folder)
        model.save_pretrained(folder)
        check_adapter_file(folder)
        adapter_cfg_path = os.path.join(folder, "adapter_config.json")
        with open(adapter_cfg_path, encoding="utf-8") as f:
            adapter_cfg = json.load(f)
        adapter_cfg["base_model_name_or_path"] = base_model_name
        with open(adapter_cfg_path, "w", encoding="utf-8") as f:
            json.dump(adapter_cfg, f, indent=2, sort_keys=True)
        if merge_lora:
            merged_dir = os.path.join(folder, "merged")
            base = load_base(config)
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


def check_adapter_file(folder: str) -> None:
    """Refuse an adapter file with no weights: what DeepSpeed ZeRO-3 leaves when partitioned LoRA weights are saved
    without gathering them first (a known PEFT/DeepSpeed pitfall; `gather_zero3` prevents it)."""
    from safetensors import safe_open

    path = os.path.join(folder, "adapter_model.safetensors")
    with safe_open(path, framework="pt") as f:
        sizes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    empty = [k for k, shape in sizes.items() if not shape or 0 in shape]
    if not sizes or empty:
        raise NLPTransferError(
            f"the saved adapter {path} is empty ({len(empty)} of {len(sizes)} tensors have no values): under "
            "DeepSpeed ZeRO-3 the weights must be gathered before saving; please report this with your accelerate "
            "config"
        )


def prepare_export(trainer) -> None:
    """Every rank calls this after training; rank 0's ``trainer.model`` is then the plain trained model to save:

    - mixed precision: accelerate patched ``forward`` to run under autocast; the patch is removed, so the round-trip
      check compares the saved fp32 weights with the same fp32 forward a user's ``pipeline`` runs (under bf16
      autocast the two differed by 1.5e-4 on a tiny model, over the check's tolerance);
    - DeepSpeed ZeRO-3: the shards are gathered (`gather_zero3`).
    """
    from accelerate.utils import extract_model_from_parallel

    gather_zero3(trainer)
    if trainer.is_world_process_zero():
        trainer.model = extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)


def gather_zero3(trainer) -> None:
    """Make the trained model saveable on rank 0 under DeepSpeed ZeRO-3; a no-op otherwise.

    ZeRO-3 partitions every parameter across ranks, so rank 0's model holds empty placeholders: saving it writes an
    empty adapter, and the round-trip check cannot run it. Every rank calls this after training (the gather is a
    collective); rank 0 then gets an ordinary unsharded copy of the trained model (same class, same PEFT config,
    gathered weights) as ``trainer.model``. Needs ``zero3_save_16bit_model: true`` in the accelerate config (as in
    ``recipes/accelerate/deepspeed_zero3.yaml``). Untested here: no DeepSpeed on the CPU CI machines.
    """
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if not (getattr(trainer, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3):
        return
    state = trainer.accelerator.get_state_dict(trainer.deepspeed)  # every rank; the full state dict on rank 0
    if not trainer.is_world_process_zero():
        return
    from peft import PeftModel, get_peft_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        base = model.get_base_model()
        fresh = get_peft_model(type(base)(base.config), model.peft_config["default"])
    else:
        fresh = type(model)(model.config)  # the constructor, not from_config: no zero.Init partitioning
    result = fresh.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if result.missing_keys:
        raise NLPTransferError(
            f"gathering the ZeRO-3 model gave no weights for {result.missing_keys[:3]}; please report this with "
            "your accelerate config"
        )
    trainer.model = fresh.eval()


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
    record: bool = True,
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
        record (`bool`, defaults to `True`): write the inputs and the trained model's logits to
            ``roundtrip_check.json`` in ``folder``, so `verify_recorded` (run before every push) can repeat the check
            without the trained model.

    Returns:
        `dict` with the number of examples checked, the largest logit difference and the predicted label names.

    Raises:
        `NLPTransferError` when labels or logits differ.
    """
    expected = _model_logits(model, tokenizer, inputs, max_seq_length)
    got, top = _pipeline_logits(folder, inputs, label2id, next(model.parameters()).device)
    id2label = {i: n for n, i in label2id.items()}
    result = _compare(expected, got, top, f"pipeline({folder})", id2label, atol)
    if record:
        _record(
            folder,
            "text-classification",
            inputs=inputs,
            expected_logits=expected.tolist(),
            label2id=label2id,
            max_seq_length=max_seq_length,
            atol=atol,
        )
    return result


def _adapter_model(folder: str, base_model_path: str, load, trust_remote_code: bool):
    """``PeftModel.from_pretrained(base, folder)`` on a fresh base built with the folder's config (labels, head)."""
    from peft import PeftModel
    from transformers import AutoConfig
    from transformers import logging as hf_logging

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base has no trained head; the adapter brings it
    try:
        base = load(base_model_path, config)
    finally:
        hf_logging.set_verbosity(verbosity)
    return PeftModel.from_pretrained(base, folder).eval(), config


def _load_classifier_base(path, config, trust_remote_code=False):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, config=config, trust_remote_code=trust_remote_code)


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
    record: bool = True,
) -> dict:
    """For an adapter-only folder (``--save_base_model false``): reload it the PEFT way,
    ``PeftModel.from_pretrained(base, folder)`` on a fresh base built with the folder's config (labels, head size),
    and check it reproduces ``model``'s outputs. Same return value, errors and ``record`` as `verify_pipeline`."""
    expected = _model_logits(model, tokenizer, inputs, max_seq_length)
    result = _check_adapter_logits(
        folder,
        expected,
        inputs,
        base_model_path,
        max_seq_length,
        trust_remote_code,
        atol,
        device=next(model.parameters()).device,
    )
    if record:
        _record(
            folder,
            "text-classification",
            inputs=inputs,
            expected_logits=expected.tolist(),
            label2id=None,
            max_seq_length=max_seq_length,
            atol=atol,
            base_model_path=base_model_path,
            trust_remote_code=trust_remote_code,
        )
    return result


def _check_adapter_logits(folder, expected, inputs, base_model_path, max_seq_length, trust_remote_code, atol, device):
    from transformers import AutoTokenizer

    reloaded, config = _adapter_model(
        folder, base_model_path, lambda p, c: _load_classifier_base(p, c, trust_remote_code), trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    got = _model_logits(reloaded.to(device), tokenizer, inputs, max_seq_length)
    id2label = {int(i): n for i, n in config.id2label.items()}
    top = [id2label[int(i)] for i in got.argmax(-1)] if got.shape[1] > 1 else []
    return _compare(expected, got, top, f"PeftModel.from_pretrained(base, {folder})", id2label, atol)


def _record(folder: str, task: str, **fields) -> None:
    from .hub import ROUNDTRIP_FILE

    with open(os.path.join(folder, ROUNDTRIP_FILE), "w", encoding="utf-8") as f:
        json.dump({"task": task, **fields}, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def _adapter_base(folder: str, recorded: str | None) -> str | None:
    """The base model an adapter folder names (``adapter_config.json``), resolved the way the recipes resolve it
    (offline copies of shipped models); the path recorded at training time when it still exists."""
    from .modeling import resolve_model_path

    if recorded and os.path.isdir(recorded):
        return recorded
    with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
        name = json.load(f).get("base_model_name_or_path")
    embedded = os.path.isfile(os.path.join(folder, "model.safetensors"))
    try:
        if not name:
            raise NLPTransferError(f"{folder}/adapter_config.json names no base model (base_model_name_or_path)")
        return resolve_model_path(name)
    except NLPTransferError:
        if embedded:  # e.g. a distilled student cut from its teacher: the folder's own base is the only one
            logger.info("round trip: %s names base %r, which is not loadable here; pipeline check only", folder, name)
            return None
        raise


def verify_recorded(folder: str) -> dict:
    """Repeat a run's round-trip check from the folder alone: reload it the way a user would and compare with the
    trained model's outputs recorded in ``roundtrip_check.json`` (see `verify_pipeline`). Runs at the end of every
    recipe and before every push.

    Classification: ``pipeline("text-classification", model=folder)`` when the folder holds a full model (or an
    adapter with its base weights), and ``PeftModel.from_pretrained(base, folder)`` for every adapter. QA: the
    folder's question-answering pipeline, and PEFT for adapters.

    Returns:
        `dict`: check name -> result (examples, largest difference).

    Raises:
        `NLPTransferError` when the record is missing or a reload disagrees with it.
    """
    from .hub import ROUNDTRIP_FILE

    path = os.path.join(folder, ROUNDTRIP_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as e:
        raise NLPTransferError(f"cannot read {path} ({e}); rerun the recipe to produce a verifiable folder") from None
    has_weights = os.path.isfile(os.path.join(folder, "model.safetensors")) or os.path.isfile(
        os.path.join(folder, "model.safetensors.index.json")
    )
    is_adapter = os.path.isfile(os.path.join(folder, "adapter_config.json"))
    checks = {}
    if rec["task"] == "question-answering":
        if has_weights:
            checks["pipeline"] = verify_qa_pipeline(
                folder, rec["examples"], rec["expected"], atol=rec["atol"], record=False
            )
        base = _adapter_base(folder, rec.get("base_model_path")) if is_adapter else None
        if base:
            checks["peft"] = verify_qa_adapter(
                folder,
                rec["examples"],
                rec["expected"],
                base_model_path=base,
                trust_remote_code=rec.get("trust_remote_code", False),
                atol=rec["atol"],
                record=False,
            )
        return checks
    import numpy as np
    from transformers import AutoConfig

    expected = np.asarray(rec["expected_logits"], dtype=np.float32)
    inputs, max_len = rec["inputs"], rec["max_seq_length"]
    if has_weights:
        label2id = rec.get("label2id") or {n: int(i) for i, n in AutoConfig.from_pretrained(folder).id2label.items()}
        got, top = _pipeline_logits(folder, inputs, label2id, "cpu")
        id2label = {i: n for n, i in label2id.items()}
        checks["pipeline"] = _compare(expected, got, top, f"pipeline({folder})", id2label, rec["atol"])
    base = _adapter_base(folder, rec.get("base_model_path")) if is_adapter else None
    if base:
        checks["peft"] = _check_adapter_logits(
            folder,
            expected,
            inputs,
            base,
            max_len,
            rec.get("trust_remote_code", False),
            rec["atol"],
            device="cpu",
        )
    for c in checks.values():
        c.pop("predicted_labels", None)
    return checks


# --------------------------------------------------------------------------------------------- model card
_DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".arrow", ".gz", ".tar", ".zip")


def card_datasets(dataset_name: str) -> list[str] | None:
    """The card's ``datasets`` metadata: a Hub dataset id as given; nothing for local files and built-in data (the
    metadata field links to Hub datasets)."""
    if (
        dataset_name
        and not dataset_name.startswith("builtin:")
        and not dataset_name.lower().endswith(_DATA_FILE_SUFFIXES)
        and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", dataset_name)
        and not os.path.exists(dataset_name)
    ):
        return [dataset_name]
    return None


def card_license(explicit: str | None, base_model: str) -> str | None:
    """``--license`` when given, else the license the base model's own card declares when that card is on disk
    (shipped offline copies, local folders, runs of this toolkit); else None (the card then names no license and
    the Hub shows "unknown": set --license)."""
    if explicit:
        return explicit
    from .modeling import resolve_model_path

    try:
        path = resolve_model_path(base_model)
    except NLPTransferError:
        return None
    readme = os.path.join(path, "README.md")
    if not os.path.isfile(readme):
        return None
    try:
        from huggingface_hub import ModelCard

        lic = ModelCard.load(readme).data.license
    except Exception:  # noqa: BLE001 - a base card we cannot parse names no license
        return None
    return lic if isinstance(lic, str) else None


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
    title: str | None = None,
    extra_tags: list[str] | None = None,
    extra_section: str = "",
    license: str | None = None,
) -> None:
    """Write a Hugging Face model card (``README.md``) with metadata, results and copy-paste usage.

    ``title`` replaces the default "<base> fine-tuned on <data>", ``extra_tags`` add to the card's tags and
    ``extra_section`` (markdown, e.g. distillation's compression table) goes after the training section."""
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
        license=card_license(license, base_model),
        datasets=card_datasets(dataset_name),
        library_name=library_name,
        pipeline_tag="text-classification",
        tags=["nlp_transfer", "text-classification", strategy]
        + (["lora", "peft"] if lora else [])
        + (extra_tags or []),
        model_name=title or f"{os.path.basename(base_model.rstrip('/'))} fine-tuned on {dataset_name}",
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
{extra_section}
## Usage

{usage}
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    card.save(path)


# ------------------------------------------------------------------------------------------- extractive QA
QA_PIPELINE_FILE = "qa_pipeline.py"


def _qa_pipeline_source() -> str:
    from . import qa_pipeline

    return qa_pipeline.__file__


def save_qa_model(
    model,
    tokenizer,
    folder: str,
    *,
    base_model_path: str,
    base_model_name: str,
    max_seq_length: int,
    qa_settings: dict,
    save_base_model: bool = True,
    merge_lora: bool = False,
    trust_remote_code: bool = False,
    load_base=None,
) -> None:
    """Write a trained extractive QA model so that ``pipeline("question-answering", model=folder,
    trust_remote_code=True)`` loads it with plain transformers.

    As `save_classifier` (weights or adapter + head, tokenizer with ``model_max_length=max_seq_length``), plus:
    ``qa_pipeline.py`` (a copy of `nlp_transfer.qa_pipeline`), registered in ``config.json`` as the folder's
    ``custom_pipelines["question-answering"]``, and ``config.json["nlp_transfer_qa"] = qa_settings`` (the window,
    answer-length and no-answer settings the pipeline uses by default).

    Args:
        qa_settings (`dict`): ``max_seq_len``, ``doc_stride``, ``max_answer_len``, ``n_best_size``,
            ``handle_impossible_answer``, ``null_score_diff_threshold``.
        Other arguments: see `save_classifier`.
    """
    from peft import PeftModel

    from .qa import load_qa_model
    from .qa_pipeline import CONFIG_KEY

    config = model.get_base_model().config if isinstance(model, PeftModel) else model.config
    setattr(config, CONFIG_KEY, dict(qa_settings))
    config.custom_pipelines = {
        "question-answering": {
            "impl": "qa_pipeline.ExtractiveQAPipeline",
            "pt": ["AutoModelForQuestionAnswering"],
            "type": "text",
        }
    }
    save_classifier(
        model,
        tokenizer,
        folder,
        base_model_path=base_model_path,
        base_model_name=base_model_name,
        max_seq_length=max_seq_length,
        save_base_model=save_base_model,
        merge_lora=merge_lora,
        trust_remote_code=trust_remote_code,
        load_base=load_base
        or (lambda config: load_qa_model(base_model_path, config=config, trust_remote_code=trust_remote_code)),
    )
    for target in [folder] + ([os.path.join(folder, "merged")] if merge_lora else []):
        shutil.copyfile(_qa_pipeline_source(), os.path.join(target, QA_PIPELINE_FILE))


def _compare_answers(
    examples: list[dict], expected: dict[str, dict], got: list[dict], source: str, atol: float
) -> dict:
    max_diff, ties = 0.0, 0
    for ex, g in zip(examples, got):
        want = expected[ex["id"]]
        diff = abs(float(g["score"]) - float(want["score"]))
        max_diff = max(max_diff, diff)
        same = (g["answer"], g["start"], g["end"]) == (want["text"], want["start"], want["end"])
        close = diff <= atol * max(1.0, abs(float(want["score"])))
        if not close:
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


def _run_qa_pipeline(pipe, examples: list[dict]) -> list[dict]:
    out = pipe([{"question": ex["question"], "context": ex["context"]} for ex in examples])
    return out if isinstance(out, list) else [out]


def verify_qa_pipeline(
    folder: str, examples: list[dict], expected: dict[str, dict], *, atol: float = 1e-4, record: bool = True
) -> dict:
    """Reload ``folder`` with ``pipeline("question-answering", ...)`` and check that it gives the answers the
    recipe's post-processing gave (``expected``) on ``examples``.

    The pipeline runs with the settings stored in the folder (no arguments), so this also checks that they are the
    training ones. It is built with ``pipeline_class=ExtractiveQAPipeline`` (no code run from the folder), after
    checking that the folder's ``qa_pipeline.py`` is byte-identical to that class's module and registered in
    ``config.json``: ``trust_remote_code=True`` then runs the same code (the tests run that path too).

    Args:
        folder (`str`): the saved output folder.
        examples (`list[dict]`): a few held-out rows (``id``, ``question``, ``context``).
        expected (`dict`): question id -> ``{"text", "start", "end", "score"}`` from `nlp_transfer.qa.postprocess`.
        atol (`float`, defaults to 1e-4): tolerance on scores (logit sums), relative to their size when above 1.
        record (`bool`, defaults to `True`): write ``examples`` and ``expected`` to ``roundtrip_check.json`` for
            `verify_recorded`.

    Returns:
        `dict` with the number of examples, the largest score difference and the number of near-ties (two spans
        whose scores differ by less than the tolerance, where either may win).

    Raises:
        `NLPTransferError` on a different answer or score, or a folder whose pipeline files are missing or stale.
    """
    from transformers import pipeline

    from .qa_pipeline import ExtractiveQAPipeline

    _check_qa_pipeline_files(folder)
    pipe = pipeline("question-answering", model=folder, pipeline_class=ExtractiveQAPipeline, device="cpu")
    result = _compare_answers(examples, expected, _run_qa_pipeline(pipe, examples), f"pipeline({folder})", atol)
    if record:
        _record(folder, "question-answering", examples=examples, expected=expected, atol=atol)
    return result


def verify_qa_adapter(
    folder: str,
    examples: list[dict],
    expected: dict[str, dict],
    *,
    base_model_path: str,
    trust_remote_code: bool = False,
    atol: float = 1e-4,
    record: bool = True,
) -> dict:
    """For an adapter-only QA folder (``--save_base_model false``): ``PeftModel.from_pretrained`` on a fresh base
    built with the folder's config, wrapped in `ExtractiveQAPipeline`; same checks and return value as
    `verify_qa_pipeline`."""
    from transformers import AutoTokenizer

    from .qa import load_qa_model
    from .qa_pipeline import ExtractiveQAPipeline

    _check_qa_pipeline_files(folder)
    model, _ = _adapter_model(
        folder,
        base_model_path,
        lambda p, c: load_qa_model(p, config=c, trust_remote_code=trust_remote_code),
        trust_remote_code,
    )
    pipe = ExtractiveQAPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")
    source = f"PeftModel.from_pretrained(base, {folder})"
    result = _compare_answers(examples, expected, _run_qa_pipeline(pipe, examples), source, atol)
    if record:
        _record(
            folder,
            "question-answering",
            examples=examples,
            expected=expected,
            atol=atol,
            base_model_path=base_model_path,
            trust_remote_code=trust_remote_code,
        )
    return result


def _check_qa_pipeline_files(folder: str) -> None:
    path = os.path.join(folder, QA_PIPELINE_FILE)
    with open(_qa_pipeline_source(), "rb") as f:
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


def write_qa_model_card(
    path: str,
    *,
    base_model: str,
    strategy: str,
    library_name: str,
    dataset_name: str,
    metrics: dict,
    hyperparameters: dict,
    qa_settings: dict,
    lora: dict | None,
    trainable_params: int,
    total_params: int,
    has_curves: bool,
    merged: bool,
    split_note: str | None = None,
    title: str | None = None,
    extra_tags: list[str] | None = None,
    extra_section: str = "",
    license: str | None = None,
) -> None:
    """Write the model card (``README.md``) of an extractive QA model: metadata (``pipeline_tag:
    question-answering``), SQuAD EM/F1, how the evaluation split was made, and copy-paste usage."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    eval_results = [
        EvalResult(
            task_type="question-answering",
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split="validation" if k.startswith("eval_") else "test",
            metric_type=k.split("_", 1)[1],
            metric_value=round(float(v), 4),
        )
        for k, v in metrics.items()
        if k.split("_", 1)[-1] in ("exact_match", "f1") and k.startswith(("eval_", "test_"))
    ]
    data = ModelCardData(
        base_model=None if os.path.exists(base_model) else base_model,  # metadata wants a Hub id, not a path
        license=card_license(license, base_model),
        datasets=card_datasets(dataset_name),
        library_name=library_name,
        pipeline_tag="question-answering",
        tags=["nlp_transfer", "question-answering", "extractive-qa", strategy]
        + (["lora", "peft"] if lora else [])
        + (extra_tags or []),
        model_name=title
        or f"{os.path.basename(base_model.rstrip('/'))} fine-tuned on {dataset_name} for extractive QA",
        eval_results=eval_results or None,
    )
    rows = "\n".join(
        f"| {k} | {v:.2f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in sorted(metrics.items())
        if k.startswith(("eval_", "test_")) and not k.endswith(("_runtime", "_per_second", "_epoch"))
    )
    lora_line = (
        f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, targets={lora['targets']}; "
        "the span head (`qa_outputs`) is trained in full and saved with the adapter.\n"
        if lora
        else ""
    )
    hp = "\n".join(f"- {k}: {v}" for k, v in hyperparameters.items())
    qa = qa_settings
    curves = "\n![training curves](training_curves.png)\n" if has_curves else ""
    note = f"\n{split_note}\n" if split_note else ""
    windows = (
        f"- Windows: {qa['max_seq_len']} tokens, doc stride {qa['doc_stride']}; max answer length "
        f"{qa['max_answer_len']} tokens\n"
    )
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
    if lora:
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
    body = f"""
# {data.model_name}

Fine-tuned from `{base_model}` with nlp_transfer ({strategy} strategy) on `{dataset_name}` for extractive question
answering: the answer is a span of the given context.

## Results

| metric | value |
|---|---|
{rows}

SQuAD exact match and F1 in percent (official answer normalisation), on held-out questions the model did not
train on; `predictions.json` holds every held-out answer.
{note}{curves}
## Training

- Strategy: `{strategy}`; {trainable_params:,} of {total_params:,} parameters trained.
{lora_line}{windows}{hp}

The full resolved configuration is in `run_config.yaml`.
{extra_section}
## Usage

{usage}
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    card.save(path)
