"""A sequence classifier that pools the backbone's token states itself: mean pooling (what sentence-embedding
checkpoints such as all-MiniLM-L6-v2 were trained for), the first token's state without the pooler, or the last
non-pad token's, over the last layer or several layers concatenated (feature fusion).

transformers' own ``*ForSequenceClassification`` heads cannot express these (BERT's reads the [CLS] pooler, which
sentence-embedding checkpoints never trained), so a folder trained with ``--pooling mean|cls|last`` carries this
file (``config.json``'s ``auto_map`` names it) and loads with the remote-code opt-in::

    pipeline("text-classification", model=folder, trust_remote_code=True)

This file is copied into such folders as is: it imports only torch and transformers, never nlp_transfer.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("mean", "cls", "last")


class PooledClassifierConfig(PretrainedConfig):
    """Args:
    backbone (`dict`): the backbone's own config (``to_dict()``), rebuilt with ``AutoConfig.for_model``.
    pooling (`str`): ``mean`` (attention-masked mean of the token states), ``cls`` (the first token's state),
        ``last`` (the last non-pad token's state: decoders).
    pool_layers (`int`): pool each of the last N layers and concatenate (N = 1: the last layer only).
    classifier_dropout (`float`): dropout on the pooled vector before the linear classifier.
    """

    model_type = "pooled_classifier"

    def __init__(self, backbone=None, pooling="mean", pool_layers=1, classifier_dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.backbone = dict(backbone or {})
        self.pooling = pooling
        self.pool_layers = pool_layers
        self.classifier_dropout = classifier_dropout

    def backbone_config(self):
        cfg = dict(self.backbone)
        return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


def pool(states: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """One vector per row of ``states`` [B, T, H]."""
    if attention_mask is None:
        attention_mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
    mask = attention_mask.to(states.device)
    if how == "mean":
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if how == "cls":
        return states[:, 0]
    positions = torch.arange(states.shape[1], device=states.device)
    last = (positions * mask.long()).argmax(-1)  # the last kept position, with left or right padding
    return states[torch.arange(states.shape[0], device=states.device), last]


class PooledModelForSequenceClassification(PreTrainedModel):
    config_class = PooledClassifierConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True

    def __init__(self, config: PooledClassifierConfig, backbone: nn.Module | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.backbone_config())
        width = self.backbone.config.hidden_size * config.pool_layers
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(width, config.num_labels)
        self._takes = set(inspect.signature(self.backbone.forward).parameters)
        self.post_init()

    def _init_weights(self, module):
        if module is getattr(self, "classifier", None):
            std = getattr(self.backbone.config, "initializer_range", 0.02)
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.backbone.get_input_embeddings()

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """The pooled vector the classifier reads (the sentence embedding), [B, hidden * pool_layers]."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and "token_type_ids" in self._takes:
            inputs["token_type_ids"] = token_type_ids
        k = self.config.pool_layers
        out = self.backbone(**inputs, output_hidden_states=k > 1, return_dict=True)
        layers = out.hidden_states[-k:] if k > 1 else (out.last_hidden_state,)
        return torch.cat([pool(h, attention_mask, self.config.pooling) for h in layers], -1)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        pooled = self.embed(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            problem = self.config.problem_type
            if problem == "regression":
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            elif problem == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float().view(-1, self.config.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


PooledClassifierConfig.register_for_auto_class()
PooledModelForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
