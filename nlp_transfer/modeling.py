"""Tokenizer and model for a task (BERT-style encoders and GPT-style decoders) and the transfer strategies.

Strategies:
    full      every weight trains.
    frozen    feature extraction: the backbone (``model.base_model``) is frozen, the new task head trains.
    partial   the embeddings and the bottom N transformer layers are frozen; the rest and the head train.
    lora      PEFT LoRA adapters on the attention projections (PEFT's per-architecture choice) plus the task head,
              which PEFT trains in full and saves with the adapter (``modules_to_save``).
"""

from __future__ import annotations

import logging
import os
import re

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers import logging as hf_logging

from . import assets
from .errors import NLPTransferError

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model_path(name_or_path: str) -> str:
    """Where to load ``name_or_path`` from: a local folder as is, a Hub id nlp_transfer ships an offline copy of as
    that copy, any other Hub id unchanged. A path that does not exist raises `NLPTransferError`."""
    expanded = os.path.expanduser(name_or_path)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise NLPTransferError(
                f"{name_or_path} is a folder but holds no config.json: point --model_name_or_path at a saved "
                "Hugging Face checkpoint"
            )
        return expanded
    if os.path.isfile(expanded):
        raise NLPTransferError(
            f"--model_name_or_path {name_or_path} is a file: pass the folder that holds config.json and the weights"
        )
    packaged = assets.packaged_model_path(name_or_path)
    if packaged is not None:
        logger.info("using the offline copy of %s installed at %s", name_or_path, packaged)
        return packaged
    looks_like_path = (
        expanded.startswith((os.sep, ".", "~"))
        or name_or_path.endswith(("/", os.sep))
        or os.path.exists(expanded)
        or not _HUB_ID.match(name_or_path)
    )
    if looks_like_path:
        raise NLPTransferError(f"model path does not exist: {name_or_path} (check --model_name_or_path)")
    return name_or_path


def load_error(name: str, e: Exception) -> NLPTransferError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "custom code" in msg or "trust_remote_code" in msg:
        return NLPTransferError(
            f"{name} needs its own modelling code to load; nlp_transfer does not run it unless asked: review the "
            "code, then pass --trust_remote_code"
        )
    if os.path.isdir(name):
        return NLPTransferError(f"could not load the model in {name} ({msg[:200]}): is it a complete checkpoint?")
    return NLPTransferError(
        f"could not load '{name}' from the Hugging Face Hub ({msg[:200]}); without a network, pass a local folder "
        "with --model_name_or_path (or set HF_HUB_OFFLINE=1 to use the local HF cache)"
    )


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False, revision: str = "main"):
    """Load a tokenizer and give it a pad token if it has none (GPT-style decoders): eos, else unk."""
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(name_or_path, e) from None
    if tok.pad_token is None:
        fallback = tok.eos_token or tok.unk_token
        if fallback is None:
            raise NLPTransferError(
                f"the tokenizer of {name_or_path} has no pad, eos or unk token to pad batches with: use a tokenizer "
                "that defines one (--tokenizer_name)"
            )
        tok.pad_token = fallback
        logger.info("tokenizer has no pad token; padding with %r", fallback)
    return tok


def load_sequence_classifier(
    name_or_path: str,
    *,
    num_labels: int,
    id2label: dict[int, str],
    label2id: dict[str, int],
    problem_type: str,
    pad_token_id: int | None,
    trust_remote_code: bool = False,
    revision: str = "main",
):
    """``AutoModelForSequenceClassification`` with a new head for the given labels; decoders get ``pad_token_id``
    so their head can find the last real token of each padded row. The new head is logged by the caller, so
    transformers' load report (which lists it as missing) is silenced for the load."""
    try:
        config = AutoConfig.from_pretrained(
            name_or_path,
            num_labels=num_labels,
            id2label=id2label,
            label2id=label2id,
            problem_type=problem_type,
            trust_remote_code=trust_remote_code,
            revision=revision,
        )
        if config.pad_token_id is None:
            config.pad_token_id = pad_token_id
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its "newly initialized: classifier" report is expected: the head is new
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, config=config, trust_remote_code=trust_remote_code, revision=revision
            )
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(name_or_path, e) from None
    except KeyError as e:  # unknown model_type in an old/new config
        raise NLPTransferError(f"{name_or_path}: this transformers version does not know model type {e}") from None
    return model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _layer_list(backbone: torch.nn.Module, num_layers: int | None) -> tuple[str, torch.nn.ModuleList]:
    for name, module in backbone.named_modules():
        if (
            isinstance(module, torch.nn.ModuleList)
            and len(module) > 0
            and (num_layers is None or len(module) == num_layers)
        ):
            return name, module
    raise NLPTransferError(
        f"could not find the transformer layers of {type(backbone).__name__} for --strategy partial: use "
        "--strategy frozen or lora instead"
    )


def default_lora_targets(model) -> list[str] | str:
    """PEFT's default LoRA targets for this architecture, or "all-linear" when PEFT has no entry for it."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as mapping

    targets = mapping.get(getattr(model.config, "model_type", None))
    return list(targets) if targets else "all-linear"


def apply_strategy(
    model,
    *,
    strategy: str = "full",
    num_frozen_layers: int | None = None,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    lora_target_modules: list[str] | None = None,
    task_type: str = "SEQ_CLS",
):
    """Freeze or wrap ``model`` for a transfer strategy and return the model to train.

    Args:
        model: a ``*ForSequenceClassification`` (or other task) model with ``base_model`` as its backbone.
        strategy (`str`, defaults to `"full"`): ``full``, ``frozen``, ``partial`` or ``lora``.
        num_frozen_layers (`int`, *optional*): ``partial``: bottom layers to freeze; default half of them.
        lora_r, lora_alpha, lora_dropout: ``lora``: rank, scaling numerator and dropout.
        lora_target_modules (`list[str]`, *optional*): ``lora``: modules to adapt; default PEFT's per-architecture
            choice, else all linear layers.
        task_type (`str`, defaults to `"SEQ_CLS"`): PEFT task type; decides which head is trained and saved.

    Returns:
        The same model (full/frozen/partial) or a `peft.PeftModel` (lora).
    """
    if strategy == "full":
        pass
    elif strategy == "frozen":
        for p in model.base_model.parameters():
            p.requires_grad = False
    elif strategy == "partial":
        backbone = model.base_model
        n_layers = getattr(model.config, "num_hidden_layers", None)
        layers_name, layers = _layer_list(backbone, n_layers)
        n = len(layers) // 2 if num_frozen_layers is None else num_frozen_layers
        if not 0 <= n <= len(layers):
            raise NLPTransferError(f"--num_frozen_layers must be between 0 and {len(layers)} for this model, got {n}")
        # "embeddings" = every backbone parameter registered before the first layer (token, position, type
        # embeddings and their norm), which holds for BERT, GPT-2, Llama and the other HF architectures.
        first_layer = {id(p) for p in layers[0].parameters()}
        for p in backbone.parameters():
            if id(p) in first_layer:
                break
            p.requires_grad = False
        for layer in layers[:n]:
            for p in layer.parameters():
                p.requires_grad = False
        logger.info("partial: froze the embeddings and %d of %d layers (%s)", n, len(layers), layers_name)
    elif strategy == "lora":
        from peft import LoraConfig, get_peft_model
        from transformers.pytorch_utils import Conv1D

        targets = lora_target_modules or default_lora_targets(model)
        # GPT-2-style Conv1D layers store weights transposed; PEFT needs to know (it warns and fixes it otherwise)
        conv1d = isinstance(targets, list) and any(
            isinstance(m, Conv1D) and n.split(".")[-1] in targets for n, m in model.named_modules()
        )
        config = LoraConfig(
            task_type=task_type,
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=targets,
            fan_in_fan_out=conv1d,
        )
        try:
            model = get_peft_model(model, config)
        except ValueError as e:
            raise NLPTransferError(
                f"LoRA could not be applied ({str(e).splitlines()[0][:200]}): check the --lora_* options"
            ) from None
        logger.info("lora: r=%d alpha=%d dropout=%s targets=%s", lora_r, lora_alpha, lora_dropout, targets)
    else:
        raise NLPTransferError(f"unknown strategy '{strategy}': choose full, frozen, partial or lora")
    trainable, total = count_parameters(model)
    logger.info(
        "strategy %s: %s trainable of %s parameters (%.2f%%)",
        strategy,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return model
