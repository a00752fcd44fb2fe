"""Writing a trained task model so that plain transformers loads it: weights or adapter + head, tokenizer, config.

Why the base weights sit next to a LoRA adapter: when a folder holds ``config.json`` plus an adapter,
transformers (5.x) loads the base model *from that folder* and applies the adapter on top, which is the only way
plain ``pipeline(model=output_dir)`` gets both the label names and the trained head. Without them it would load the
base config from the Hub id in ``adapter_config.json`` and lose the head (docs/DESIGN_NOTES.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from ..errors import NLPTransferError

MERGED_DIR = "merged"


def save_model(
    model,
    tokenizer,
    folder: str,
    *,
    load_base: Callable,
    base_model_name: str,
    max_seq_length: int,
    save_base_model: bool = True,
    merge_adapter: bool = False,
) -> None:
    """Write a trained task model (a `peft.PeftModel` for adapter strategies) and its tokenizer to ``folder``.

    Args:
        model: the trained model.
        tokenizer: its tokenizer; saved with ``model_max_length=max_seq_length`` so ``truncation=True`` at
            inference reproduces training-time inputs.
        folder (`str`): destination (a staging folder).
        load_base (`Callable[[config], model]`): adapters: rebuilds the untrained base model with its task head (for
            the base weights and ``merged/``); the task provides it (`nlp_transfer.tasks.Task.load_base`).
        base_model_name (`str`): the user-facing name (Hub id or path) recorded in ``adapter_config.json``.
        max_seq_length (`int`): the truncation length used in training.
        save_base_model (`bool`, defaults to `True`): adapters: write the base weights next to the adapter.
        merge_adapter (`bool`, defaults to `False`): adapters: also write ``merged/``, a standalone merged model.
    """
    from peft import PeftModel

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
        _name_adapter_base(folder, base_model_name)
        if merge_adapter:
            merged_dir = os.path.join(folder, MERGED_DIR)
            merged = PeftModel.from_pretrained(load_base(config), folder).merge_and_unload()
            merged.save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
            del merged
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in os.listdir(folder):  # safetensors only
        if name.endswith((".bin", ".pt", ".pth")):
            raise NLPTransferError(f"refusing to write pickle weights ({name}); this is a bug, please report it")


def _name_adapter_base(folder: str, base_model_name: str) -> None:
    """``adapter_config.json`` names the base as the user gave it, not the offline copy's site-packages path."""
    path = os.path.join(folder, "adapter_config.json")
    with open(path, encoding="utf-8") as f:
        adapter_cfg = json.load(f)
    adapter_cfg["base_model_name_or_path"] = base_model_name
    with open(path, "w", encoding="utf-8") as f:
        json.dump(adapter_cfg, f, indent=2, sort_keys=True)


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


def has_weights(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "model.safetensors")) or os.path.isfile(
        os.path.join(folder, "model.safetensors.index.json")
    )


def is_adapter(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "adapter_config.json"))
