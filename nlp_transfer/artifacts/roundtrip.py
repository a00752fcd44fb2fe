"""The round-trip record: a few held-out inputs and the trained model's outputs, written to
``roundtrip_check.json`` so that the check can be repeated from the folder alone (`nlp_transfer.tasks.verify_recorded`,
run at the end of every recipe and before every push). The task-specific checks are in `nlp_transfer.tasks`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

from ..errors import NLPTransferError
from .folder import ROUNDTRIP_FILE

logger = logging.getLogger(__name__)


def record(folder: str, task: str, **fields) -> None:
    """Write the record of ``task`` (its registry name) with ``fields`` to ``folder/roundtrip_check.json``."""
    with open(os.path.join(folder, ROUNDTRIP_FILE), "w", encoding="utf-8") as f:
        json.dump({"task": task, **fields}, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def read_record(folder: str) -> dict:
    path = os.path.join(folder, ROUNDTRIP_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise NLPTransferError(f"cannot read {path} ({e}); rerun the recipe to produce a verifiable folder") from None


def adapter_model(folder: str, base_model_path: str, load: Callable, trust_remote_code: bool):
    """``PeftModel.from_pretrained(base, folder)`` on a fresh base built with the folder's config (labels, head);
    ``load(path, config)`` builds the base. Returns ``(model, config)``."""
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


def adapter_base(folder: str, recorded: str | None) -> str | None:
    """The base model an adapter folder names (``adapter_config.json``), resolved the way the recipes resolve it
    (offline copies of shipped models); the path recorded at training time when it still exists. None when the
    folder carries its own base weights and the named base is not loadable here (e.g. a student cut from its
    teacher): the pipeline check is then the only one."""
    from ..modeling import resolve_model_path

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
        if embedded:
            logger.info("round trip: %s names base %r, which is not loadable here; pipeline check only", folder, name)
            return None
        raise
