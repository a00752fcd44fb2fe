"""Extractive question answering: SQuAD-format data, window features with start/end labels, and n-best
post-processing into answers.

Submodules:
    data         SQuAD json / flat rows into the canonical columns (`FEATURES`), the checks and answer repair
                 (`check_examples`), the by-article split (`split_by_article`), `subsample`, `articles_summary`;
                 `load_from_args`: all of it from the recipes' `QADataArguments`.
    features     `prepare_features`: overlapping windows over each context, with start/end labels;
                 `check_window_budget`: refuses a --doc_stride that leaves questions no room.
    postprocess  `postprocess` (windows' logits into answers), `references`, `feature_order` and
                 `make_compute_metrics` (SQuAD EM/F1 for the Trainer).
    modeling     `load_qa_model`: a new span head on a checkpoint's backbone.
    steps        what the QA recipes share: window budget, model inputs, settings, round-trip examples.

The question-answering pipeline each output folder carries is `nlp_transfer.qa_pipeline`, a self-contained file
outside this package. Import the names below from ``nlp_transfer.qa``: the function `postprocess` shadows its
submodule as an attribute of the package.
"""

from .data import (
    FEATURES,
    REPAIR_DISTANCE,
    article_keys,
    articles_summary,
    check_examples,
    dataset_label,
    load_from_args,
    load_qa_datasets,
    split_by_article,
    subsample,
)
from .features import check_window_budget, prepare_features
from .modeling import load_qa_model
from .postprocess import feature_order, make_compute_metrics, postprocess, references
from .steps import (
    model_inputs,
    pipeline_settings,
    postprocess_settings,
    prediction_files,
    round_trip_examples,
)

__all__ = [
    "FEATURES",
    "REPAIR_DISTANCE",
    "article_keys",
    "articles_summary",
    "check_examples",
    "check_window_budget",
    "dataset_label",
    "feature_order",
    "load_from_args",
    "load_qa_datasets",
    "load_qa_model",
    "make_compute_metrics",
    "model_inputs",
    "pipeline_settings",
    "postprocess",
    "postprocess_settings",
    "prediction_files",
    "prepare_features",
    "references",
    "round_trip_examples",
    "split_by_article",
    "subsample",
]
