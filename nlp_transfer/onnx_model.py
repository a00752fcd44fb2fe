"""ONNX Runtime models that ``transformers.pipeline(...)`` runs like PyTorch ones.

``nlp-transfer export OUTPUT_DIR --format onnx`` writes ``OUTPUT_DIR/onnx/``: ``model.onnx`` (fp32; with
``--quantize int8`` also ``model_quantized.onnx``), the tokenizer, ``config.json`` and a copy of this file, which
``config.json`` names under ``auto_map``. With plain transformers and onnxruntime::

    from transformers import pipeline

    clf = pipeline("text-classification", model="out/onnx", trust_remote_code=True)  # runs out/onnx/onnx_model.py
    qa = pipeline("question-answering", model="out/onnx", trust_remote_code=True)    # QA folders

``trust_remote_code=True`` runs this file (read it first: it only opens an ``onnxruntime.InferenceSession``). The
file loaded by default is ``config.json``'s ``nlp_transfer_onnx.file_name`` (the int8 one when it was written);
``pipeline(..., model_kwargs={"file_name": "model.onnx"})`` picks another. The folder has the layout optimum's
``ORTModelForSequenceClassification`` / ``ORTModelForQuestionAnswering`` read (``model.onnx`` + ``config.json``),
for environments where optimum-onnx installs (it does not support transformers 5 yet).

Why not optimum's classes directly: optimum-onnx 0.1.0 (the current release) requires ``transformers<4.58`` and does
not import under transformers 5 (huggingface/optimum-onnx#114). This module imports only numpy, torch, transformers
and onnxruntime: it is loaded from model folders where nlp_transfer may not be installed.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput


class _NotSupportedFilter(logging.Filter):
    """Drops pipeline's "The model 'ORTModelFor...' is not supported for <task>" error: the check compares the class
    name with transformers' own architectures only, so every remote-code model trips it, and these ones work."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "The model 'ORTModelFor" not in str(record.msg)


logging.getLogger("transformers.pipelines.base").addFilter(_NotSupportedFilter())

CONFIG_KEY = "nlp_transfer_onnx"  # config.json entry: {"file_name": ..., "inputs": [...], "quantized": ...}
FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"


class _ORTModel(PreTrainedModel):
    """A `PreTrainedModel` whose forward runs an ONNX Runtime session (no torch weights)."""

    config_class = PretrainedConfig
    base_model_prefix = "onnx"
    main_input_name = "input_ids"

    def __init__(self, config, session=None, file_name: str | None = None):
        super().__init__(config)
        self.session = session
        self.file_name = file_name
        self.input_names = {i.name for i in session.get_inputs()} if session is not None else set()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # inputs are handed to onnxruntime as numpy arrays

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *model_args,
        config=None,
        file_name: str | None = None,
        providers: list[str] | None = None,
        session_options=None,
        **kwargs,
    ):
        """Open ``<folder>/<file_name>`` (default: the file ``config.json`` names) in an ``InferenceSession``."""
        import onnxruntime

        folder = str(pretrained_model_name_or_path)
        if config is None:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=kwargs.get("trust_remote_code", False))
        file_name = file_name or (getattr(config, CONFIG_KEY, None) or {}).get("file_name", FP32_FILE)
        session = onnxruntime.InferenceSession(
            os.path.join(folder, file_name),
            sess_options=session_options,
            providers=providers or ["CPUExecutionProvider"],
        )
        return cls(config, session, file_name).eval()

    def _run(self, **inputs) -> list[torch.Tensor]:
        feeds = {
            k: v.detach().cpu().numpy().astype(np.int64)
            for k, v in inputs.items()
            if v is not None and k in self.input_names
        }
        return [torch.from_numpy(np.asarray(o)) for o in self.session.run(None, feeds)]


class ORTModelForSequenceClassification(_ORTModel):
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        (logits,) = self._run(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return SequenceClassifierOutput(logits=logits)


class ORTModelForQuestionAnswering(_ORTModel):
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        start, end = self._run(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return QuestionAnsweringModelOutput(start_logits=start, end_logits=end)
