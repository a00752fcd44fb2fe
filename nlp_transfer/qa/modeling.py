"""The extractive QA model: a new span head on a checkpoint's backbone."""

from __future__ import annotations

import logging

from ..errors import NLPTransferError
from ..modeling import LOAD_ERRORS, load_error

logger = logging.getLogger(__name__)


def load_qa_model(
    name_or_path: str,
    *,
    pad_token_id: int | None = None,
    config=None,
    trust_remote_code: bool = False,
    revision: str = "main",
):
    """``AutoModelForQuestionAnswering`` with a new span head (``qa_outputs``) on the checkpoint's backbone.

    Several decoder QA classes (Llama, Mistral, Qwen2/3, ...) keep their backbone under ``transformer`` while
    ``*ForCausalLM`` checkpoints store it under ``model``: transformers then loads *no* pretrained weight and only
    says so in a load report. This function notices (missing weights outside the head), loads the backbone on its
    own with ``AutoModel`` and puts it in place, and refuses a checkpoint whose weights still don't fit.
    Architectures transformers has no QA head for raise `NLPTransferError` naming ones that do.

    Args:
        name_or_path (`str`): checkpoint folder or Hub id.
        pad_token_id (`int`, *optional*): set on the config when it has none (decoders).
        config (*optional*): a config to use instead of the checkpoint's (e.g. a saved QA folder's).
        trust_remote_code (`bool`), revision (`str`): passed to transformers.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForQuestionAnswering
    from transformers import logging as hf_logging
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

    if config is None:
        try:
            config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, revision=revision)
        except LOAD_ERRORS as e:
            raise load_error(name_or_path, e) from None
        except KeyError as e:
            raise NLPTransferError(f"{name_or_path}: this transformers version does not know model type {e}") from None
    remote = trust_remote_code and "AutoModelForQuestionAnswering" in (getattr(config, "auto_map", None) or {})
    if config.model_type not in MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES and not remote:
        raise NLPTransferError(
            f"{name_or_path} is a '{config.model_type}' model, for which transformers has no extractive "
            "question-answering head: use an encoder (BERT, RoBERTa, DeBERTa, ELECTRA, MiniLM, ...) or a decoder "
            "that has one (GPT-2, GPT-Neo, GPT-J, Llama, Mistral, Qwen2/3, ...)"
        )
    if getattr(config, "pad_token_id", None) is None and pad_token_id is not None:
        config.pad_token_id = pad_token_id
    kwargs = {"config": config, "trust_remote_code": trust_remote_code, "revision": revision}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new head (expected) and any misfit (checked below)
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
        lost = sorted(k for k in info["missing_keys"] if not k.startswith("qa_outputs."))
        if lost:
            backbone, info = AutoModel.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
            if info["missing_keys"]:
                raise NLPTransferError(
                    f"the weights in {name_or_path} do not fit a {type(model).__name__} ({len(lost)} missing, e.g. "
                    f"{lost[0]}): is it a complete checkpoint of this architecture?"
                )
            setattr(model, model.base_model_prefix, backbone)
            logger.info(
                "%s stores its backbone under another name than %s expects ('%s'); loaded it separately",
                name_or_path,
                type(model).__name__,
                model.base_model_prefix,
            )
    except LOAD_ERRORS as e:
        raise load_error(name_or_path, e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model
