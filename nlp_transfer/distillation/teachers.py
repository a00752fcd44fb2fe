"""Teachers: loading a fine-tuned classifier or extractive QA model (full or LoRA) as a frozen teacher, the
fingerprints that key the on-disk teacher-output cache, the teacher's logits and the cache itself (the QA teacher's
outputs are in `qa_targets`)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import torch
from torch import nn

from ..cache import cached_arrays, weights_fingerprint
from ..errors import NLPTransferError
from .students import has_trained_labels

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- teacher loading
def teacher_task(config) -> str:
    """``"qa"`` for a question-answering checkpoint, ``"classification"`` for a sequence classifier (or unknown)."""
    archs = getattr(config, "architectures", None) or []
    return "qa" if any(a.endswith("ForQuestionAnswering") for a in archs) else "classification"


def _check_teacher_config(config, where: str, task: str) -> None:
    archs = getattr(config, "architectures", None) or []
    suffix = "ForQuestionAnswering" if task == "qa" else "ForSequenceClassification"
    if archs and not any(a.endswith(suffix) for a in archs):
        raise NLPTransferError(
            f"the teacher {where} is a {archs[0]} model, not a sequence classifier or extractive QA model: distil "
            "from a folder made by `nlp-transfer classify`/`sentiment`/`qa`, or another *ForSequenceClassification "
            "/ *ForQuestionAnswering checkpoint"
        )


def _check_adapter_task(adapter_cfg_path: str, where: str, task: str) -> None:
    """An adapter folder's config may be the base's (architectures BertModel...): the adapter's task type decides."""
    with open(adapter_cfg_path, encoding="utf-8") as f:
        peft_task = json.load(f).get("task_type")
    if peft_task not in (None, "QUESTION_ANS" if task == "qa" else "SEQ_CLS"):
        raise NLPTransferError(
            f"the teacher adapter {where} was trained for {peft_task}, not "
            f"{'extractive QA' if task == 'qa' else 'sequence classification'}: distil from a classifier or QA "
            "adapter"
        )


def check_finished_teacher(path: str) -> None:
    """Refuse an unfinished nlp_transfer run as a teacher (its folder has the run's files but no ``metrics.json``,
    which is written last): its weights may be a half-published or an older run's. Other checkpoints pass."""
    from ..artifacts.folder import FINISHED_MARKER, RUN_CONFIG_FILE, STAGING_NAME

    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, FINISHED_MARKER)):
        return
    names = set(os.listdir(path))
    if RUN_CONFIG_FILE in names or STAGING_NAME in names or any(n.startswith("checkpoint-") for n in names):
        raise NLPTransferError(
            f"the teacher {path} is an unfinished nlp_transfer run (no {FINISHED_MARKER}): finish it with "
            "--resume_from_checkpoint true, or distil from a finished run"
        )


def _teacher_folder(path: str) -> tuple[str, bool]:
    """``(path, is_adapter)``: whether ``path`` is an adapter-only folder; a LoRA run's folder that holds a
    ``merged/`` copy loads as that full model."""
    check_finished_teacher(path)
    is_adapter = os.path.isdir(path) and os.path.isfile(os.path.join(path, "adapter_config.json"))
    if is_adapter and os.path.isfile(os.path.join(path, "merged", "config.json")):
        return os.path.join(path, "merged"), False  # the run already wrote a merged copy
    return path, is_adapter


def _teacher_config(name_or_path: str, path: str, *, is_adapter: bool, task: str, trust_remote_code: bool):
    """The teacher's config, checked to be a classifier's (``task="qa"``: an extractive QA model's)."""
    from transformers import AutoConfig

    from ..modeling import LOAD_ERRORS, load_error

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except LOAD_ERRORS as e:
        if is_adapter:
            raise NLPTransferError(
                f"the teacher adapter {name_or_path} has no config.json with its label names: distil from the "
                "output folder of `nlp-transfer classify` (it writes one), or from a full model"
            ) from None
        raise load_error(name_or_path, e) from None
    if is_adapter:
        _check_adapter_task(os.path.join(path, "adapter_config.json"), name_or_path, task)
    else:
        _check_teacher_config(config, name_or_path, task)
    return config


def _load_full_teacher(auto, name_or_path: str, path: str, config, *, task: str, kwargs: dict) -> nn.Module:
    """A full checkpoint, refused when its head (or any other weight) is missing."""
    from ..modeling import LOAD_ERRORS, load_error

    head_names = ("qa_outputs",) if task == "qa" else ("classifier", "score")
    try:
        model, loading = auto.from_pretrained(path, config=config, output_loading_info=True, **kwargs)
    except LOAD_ERRORS as e:
        raise load_error(name_or_path, e) from None
    missing = list(loading.get("missing_keys", []))
    head_missing = [k for k in missing if any(h in k for h in head_names)]
    if head_missing:
        raise NLPTransferError(
            f"the teacher {name_or_path} has no trained {'span' if task == 'qa' else 'classification'} head "
            f"({head_missing[0]} is missing): fine-tune it first, e.g. with `nlp-transfer "
            f"{'qa' if task == 'qa' else 'classify'}`, and distil from that folder"
        )
    if missing:
        raise NLPTransferError(
            f"the teacher {name_or_path} is missing weights ({missing[0]}, ...): is it a complete checkpoint?"
        )
    return model


def _lora_base(
    auto, path: str, config, *, base_model: str | None, task: str, trust_remote_code: bool, kwargs: dict
) -> tuple[nn.Module, str]:
    """The model the adapter in ``path`` goes onto, and its name: the base weights embedded in the folder, or else
    ``base_model`` or the base its adapter config names. Silences transformers' logging (the caller restores it)."""
    from peft import PeftConfig
    from safetensors.torch import load_file
    from transformers import logging as hf_logging

    from ..modeling import resolve_model_path

    peft_cfg = PeftConfig.from_pretrained(path)
    embedded = os.path.join(path, "model.safetensors")
    hf_logging.set_verbosity_error()  # the base has no trained head: the adapter brings it
    if os.path.isfile(embedded) and base_model is None:
        model = auto.from_config(config, **kwargs)
        model.load_state_dict(load_file(embedded), strict=False)
        return model, peft_cfg.base_model_name_or_path
    base_name = base_model or peft_cfg.base_model_name_or_path
    try:
        base_path = resolve_model_path(base_name)
        if task == "qa":
            from ..qa import load_qa_model

            model = load_qa_model(base_path, config=config, trust_remote_code=trust_remote_code)
        else:
            model = auto.from_pretrained(base_path, config=config, **kwargs)
    except (NLPTransferError, OSError, ValueError) as e:
        raise NLPTransferError(
            f"the teacher adapter's base model {base_name} can't be loaded "
            f"({str(e).splitlines()[0][:120]}): pass its local folder with --teacher_base_model"
        ) from None
    return model, base_name


def _merge_adapter(model: nn.Module, name_or_path: str, path: str) -> nn.Module:
    """``model`` with the LoRA adapter in ``path`` merged into its weights."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, path).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as e:
        raise NLPTransferError(
            f"the teacher adapter in {name_or_path} does not fit its base model "
            f"({str(e).splitlines()[0][:160]}): pass the base it was trained on with --teacher_base_model"
        ) from None


def load_teacher(
    name_or_path: str,
    *,
    base_model: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    task: str = "classification",
) -> tuple[nn.Module, dict]:
    """Load a fine-tuned sequence classifier (``task="qa"``: extractive QA model) as a plain model in eval mode,
    LoRA adapters merged in.

    Accepts a full model folder or Hub id, a toolkit LoRA folder (adapter + embedded base weights, or ``merged/``),
    or an adapter-only folder whose base is ``base_model`` or the one its ``adapter_config.json`` names.

    Returns:
        `(model, info)`: info has ``kind`` ("full" or "lora"), ``base`` (LoRA: the base checkpoint) and ``path``.
    """
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification
    from transformers import logging as hf_logging

    from ..modeling import resolve_model_path

    auto = AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification
    kwargs = {"trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    path, is_adapter = _teacher_folder(resolve_model_path(name_or_path))
    config = _teacher_config(name_or_path, path, is_adapter=is_adapter, task=task, trust_remote_code=trust_remote_code)
    if task != "qa" and not has_trained_labels(config) and not is_adapter:
        logger.warning("the teacher's labels have no names (%s); check it is a fine-tuned classifier", config.id2label)
    info = {"kind": "full", "path": name_or_path, "base": None}
    verbosity = hf_logging.get_verbosity()
    try:
        if not is_adapter:
            model = _load_full_teacher(auto, name_or_path, path, config, task=task, kwargs=kwargs)
        else:
            model, info["base"] = _lora_base(
                auto,
                path,
                config,
                base_model=base_model,
                task=task,
                trust_remote_code=trust_remote_code,
                kwargs=kwargs,
            )
            model = _merge_adapter(model, name_or_path, path)
            info["kind"] = "lora"
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model, info


# ------------------------------------------------------------------------------------------- teacher cache
teacher_fingerprint = weights_fingerprint  # names kept for the distillation package's callers


@torch.inference_mode()
def teacher_logits(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    pairs: list[str] | None = None,
    *,
    max_seq_length: int,
    batch_size: int = 64,
    desc: str = "teacher logits",
) -> np.ndarray:
    """The teacher's logits for every text (rows in input order), batched by length, with a progress bar."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", mininterval=2.0):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx],
            [pairs[i] for i in idx] if pairs else None,
            truncation=True,
            max_length=max_seq_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def cached_teacher_logits(cache_dir: str, key: dict, compute):
    """The teacher's outputs for ``key`` (teacher, data, preprocessing) from the on-disk cache, or computed and
    stored (`nlp_transfer.cache.cached_arrays`). Returns ``(outputs, hit)``."""
    return cached_arrays(cache_dir, key, compute, what="teacher outputs")
