"""Resolve a checkpoint (local folder, offline copy, Hub id) and load its tokenizer and a classification model
(BERT-style encoders and GPT-style decoders). The transfer strategies are in `nlp_transfer.strategies`, the task
models in `nlp_transfer.tasks`."""

from __future__ import annotations

import logging
import os
import re

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers import logging as hf_logging

from . import assets
from .errors import NLPTransferError
from .network import require_hub

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
    require_hub(name_or_path)  # seconds, not a minute of retries, without a network
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


def _safetensors_error() -> type[Exception]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # older safetensors
        from safetensors_rust import SafetensorError
    return SafetensorError


# what loading a checkpoint raises for a broken or unreachable one (a truncated or empty model.safetensors raises
# SafetensorError); every load site turns these into `load_error`'s one line
LOAD_ERRORS = (OSError, ValueError, ImportError, _safetensors_error())
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def check_tokenizer_files(folder: str, hint: str = "or pass --tokenizer_name <the base model>") -> None:
    """Refuse a local checkpoint folder without tokenizer files: transformers would build a 5-token tokenizer from
    the config alone and every word would train as [UNK]."""
    names = set(os.listdir(folder))
    if not names & set(_TOKENIZER_FILES) and not any(n.endswith(".model") for n in names):
        raise NLPTransferError(
            f"{folder} holds no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}, ...): save the base model's "
            f"tokenizer into it (tokenizer.save_pretrained({folder!r})), {hint}"
        )


def load_tokenizer(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    revision: str = "main",
    hint: str = "or pass --tokenizer_name <the base model>",
):
    """Load a tokenizer and give it a pad token if it has none (GPT-style decoders): eos, else unk. A local folder
    must hold tokenizer files (``hint`` says what else the user can do)."""
    if os.path.isdir(name_or_path):
        check_tokenizer_files(name_or_path, hint)
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, revision=revision)
    except LOAD_ERRORS as e:
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
    transformers' load report (which lists it as missing) is silenced for the load.

    Intermediate-task transfer: when ``name_or_path`` is already a fine-tuned sequence classifier (its config names a
    ``...ForSequenceClassification`` architecture) with other labels, its encoder is kept and its head is replaced
    by a new one for these labels (logged); with the same label names the head is kept (training continues). A LoRA
    folder (``adapter_config.json``) reaches here merged (`starting_checkpoint`)."""
    try:
        previous = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, revision=revision)
        head_labels = _trained_labels(previous)
        replace_head = head_labels is not None and head_labels != label2id
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
            if replace_head:
                return _new_head(name_or_path, config, head_labels, trust_remote_code, revision)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, config=config, trust_remote_code=trust_remote_code, revision=revision,
                output_loading_info=True,
            )  # fmt: skip
        finally:
            hf_logging.set_verbosity(verbosity)
        if head_labels is not None:
            logger.info("%s is a classifier for these same labels: training continues with its head", name_or_path)
        dropped = weight_groups(info.get("unexpected_keys"))
        if dropped:  # e.g. the masked-LM head of an `nlp-transfer pretrain` folder: unused, not an error
            new = weight_groups(info.get("missing_keys"))
            logger.info(
                "%s: its %s weights are not part of a classifier (a pretraining head) and are dropped; newly "
                "initialised: %s", name_or_path, ", ".join(dropped), ", ".join(new) or "nothing",
            )  # fmt: skip
    except LOAD_ERRORS as e:
        raise load_error(name_or_path, e) from None
    except KeyError as e:  # unknown model_type in an old/new config
        raise NLPTransferError(f"{name_or_path}: this transformers version does not know model type {e}") from None
    return model


def _trained_labels(config) -> dict | None:
    """The label map of a fine-tuned sequence classifier's config; None for a base checkpoint (no such head)."""
    if not any(a.endswith("ForSequenceClassification") for a in getattr(config, "architectures", None) or []):
        return None
    return {str(k): int(v) for k, v in (config.label2id or {}).items()}


def _new_head(path: str, config, old_labels: dict, trust_remote_code: bool, revision: str):
    """The classifier at ``path`` with its encoder kept and a freshly initialised head for ``config``'s labels."""
    from transformers import AutoModel

    model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    prefix = model.base_model_prefix
    if not isinstance(getattr(model, prefix, None), torch.nn.Module):
        raise NLPTransferError(
            f"{path}: cannot tell the encoder of {type(model).__name__} from its head; start from its base model"
        )
    setattr(model, prefix, AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision))
    logger.info(
        "%s is a fine-tuned classifier for other labels (%s): intermediate-task transfer keeps its encoder, drops "
        "its head and initialises a new one for this task's %d labels (%s)",
        path, ", ".join(sorted(old_labels, key=old_labels.get)), config.num_labels,
        ", ".join(str(config.id2label[i]) for i in range(config.num_labels)),
    )  # fmt: skip
    return model


def starting_checkpoint(path: str, trust_remote_code: bool = False) -> str:
    """Where a run starting from ``path`` loads its weights: ``path`` itself, or for a LoRA output folder of a
    sequence classifier (``adapter_config.json``) its adapter merged into its base, saved once under the cache
    folder (``$NLP_TRANSFER_CACHE/merged_adapters/``) and reused."""
    config_file = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(config_file):
        return path
    import json

    with open(config_file, encoding="utf-8") as f:
        task_type = json.load(f).get("task_type")
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        pooled = json.load(f).get("model_type") == "pooled_classifier"
    if task_type != "SEQ_CLS" or pooled:
        raise NLPTransferError(
            f"{path} is a LoRA folder ({task_type or 'no task type'}{', pooled head' if pooled else ''}): only "
            "text-classification adapters are merged automatically; start from its merged/ folder (--merge_lora "
            "true writes one) or from its base model"
        )
    return _merged_adapter_folder(path, trust_remote_code)


def _merged_adapter_folder(folder: str, trust_remote_code: bool) -> str:
    import hashlib
    import json

    from peft import PeftModel

    digest = hashlib.sha256(os.path.realpath(folder).encode())
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if os.path.isfile(os.path.join(folder, name)):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(f.read())
    out = os.path.join(str(assets.cache_dir()), "merged_adapters", digest.hexdigest()[:16])
    if os.path.isfile(os.path.join(out, "config.json")):
        return out
    with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
        name = json.load(f).get("base_model_name_or_path")
    if not name:
        raise NLPTransferError(
            f"{folder}/adapter_config.json names no base model: start from its merged/ folder (--merge_lora true "
            "writes one) or from its base model"
        )
    base = resolve_model_path(name)  # the base the adapter was trained on (offline copies of shipped models too)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base's head is untrained here: the adapter brings the trained one
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, config=config, trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True
        )
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    except LOAD_ERRORS as e:
        raise load_error(folder, e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    tmp = out + f".tmp{os.getpid()}"  # written aside, then moved into place: never a half-written cache entry
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code).save_pretrained(tmp)
    os.replace(tmp, out)
    logger.info("%s is a LoRA folder: its adapter is merged into its base (%s) first, saved at %s", folder, base, out)
    return out


def weight_groups(names) -> list[str]:
    """Weight names by module, for logs: ``cls.predictions.transform.dense.weight`` -> ``cls.predictions.*``."""
    return sorted({".".join(k.split(".")[:-1][:2] or [k]) + ".*" for k in names or []})


def fit_max_length(max_seq_length: int, config) -> int:
    """``max_seq_length``, cut to the model's position limit (with a warning) when it is longer."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit and max_seq_length > limit:
        logger.warning("max_seq_length %d exceeds the model's %d positions; using %d", max_seq_length, limit, limit)
        return limit
    return max_seq_length


def tokenizer_for(model_args, model_path: str):
    """`load_tokenizer` for a recipe's `ModelArguments`: ``--tokenizer_name`` when given, else the model's own."""
    source = resolve_model_path(model_args.tokenizer_name) if model_args.tokenizer_name else model_path
    return load_tokenizer(source, trust_remote_code=model_args.trust_remote_code, revision=model_args.model_revision)


def classifier_for(model_args, model_path: str, labels, tokenizer, head_args=None):
    """`load_sequence_classifier` for a recipe's `ModelArguments` and the data's `LabelInfo`; with `HeadArguments`
    naming a pooling (``--pooling mean|cls|last``), `load_pooled_classifier`."""
    if head_args is not None and head_args.pooling != "model":
        return load_pooled_classifier(
            model_path,
            labels,
            pooling=head_args.pooling,
            pool_layers=head_args.pool_layers,
            trust_remote_code=model_args.trust_remote_code,
            revision=model_args.model_revision,
        )
    return load_sequence_classifier(
        model_path,
        num_labels=labels.num_labels,
        id2label=labels.id2label,
        label2id=labels.label2id,
        problem_type=labels.problem_type,
        pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.model_revision,
    )


def load_pooled_classifier(
    name_or_path: str, labels, *, pooling: str, pool_layers: int, trust_remote_code=False, revision="main"
):
    """`nlp_transfer.pooled_model.PooledModelForSequenceClassification` on the checkpoint's backbone
    (``AutoModel``; a task head the checkpoint has, e.g. an MLM head, is dropped) with a new linear head."""
    from transformers import AutoModel

    from .pooled_model import PooledClassifierConfig, PooledModelForSequenceClassification

    try:
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # unused pretraining-head weights of the checkpoint: expected, logged below
        try:
            backbone = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, revision=revision)
        finally:
            hf_logging.set_verbosity(verbosity)
    except LOAD_ERRORS as e:
        raise load_error(name_or_path, e) from None
    layers = getattr(backbone.config, "num_hidden_layers", None)
    if layers is not None and pool_layers > layers + 1:  # hidden_states: the embeddings + one per layer
        raise NLPTransferError(
            f"--pool_layers {pool_layers}: {name_or_path} has {layers} layers (plus its embeddings): use at most "
            f"{layers + 1}"
        )
    backbone_cfg = {
        k: v for k, v in backbone.config.to_dict().items() if k not in ("_name_or_path", "id2label", "label2id")
    }
    config = PooledClassifierConfig(
        backbone=backbone_cfg,
        pooling=pooling,
        pool_layers=pool_layers,
        classifier_dropout=getattr(backbone.config, "hidden_dropout_prob", 0.1) or 0.0,
        num_labels=labels.num_labels,
        id2label=labels.id2label,
        label2id=labels.label2id,
        problem_type=labels.problem_type,
    )
    logger.info(
        "head: %s pooling over the last %d layer(s) of %s (%s), new linear head; the folder carries pooled_model.py "
        "and loads with trust_remote_code=True",
        pooling, pool_layers, name_or_path, type(backbone).__name__,
    )  # fmt: skip
    return PooledModelForSequenceClassification(config, backbone=backbone)


def pooled_base(path: str, config, trust_remote_code: bool = False):
    """The untrained pooled classifier for ``config`` on the backbone at ``path`` (what an adapter sits on)."""
    from transformers import AutoModel

    from .pooled_model import PooledModelForSequenceClassification

    backbone = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    return PooledModelForSequenceClassification(config, backbone=backbone)


def needs_remote_code(model) -> bool:
    """Whether the folder this model saves to loads only with ``trust_remote_code=True`` (a pooled classifier)."""
    from .pooled_model import PooledClassifierConfig

    config = getattr(model, "config", None)
    return isinstance(config, PooledClassifierConfig) or getattr(config, "model_type", None) == "pooled_classifier"
