"""The model card (``README.md``): metadata as `huggingface_hub.ModelCardData`, the text rendered from one template
(``model_card_template.md`` beside this file) through `huggingface_hub.ModelCard.from_template`. Tasks fill in the
sections that differ (summary, results, usage: `nlp_transfer.tasks.Task.card_sections`); `nlp_transfer.run.finish`
fills in the rest."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import NLPTransferError

TEMPLATE = os.path.join(os.path.dirname(__file__), "model_card_template.md")
_DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".arrow", ".gz", ".tar", ".zip")


@dataclass
class CardInfo:
    """What a recipe tells the card about its run (everything else comes from the arguments and metrics).

    Args:
        dataset_name (`str`): how the card names the data (a Hub/builtin id as given, a local file by its name).
        hyperparameters (`dict`): extra "- name: value" lines after the learning rate, epochs, batch size and seed.
        base_model (`str`, *optional*): the model it was fine-tuned from, as the user named it; defaults to
            ``--model_name_or_path``.
        title (`str`, *optional*): replaces the task's default "<base> fine-tuned on <data>".
        tags (`list[str]`): extra tags (e.g. ``distillation``).
        extra_section (`str`): markdown placed after the training section (e.g. distillation's compression table).
        split_note (`str`, *optional*): how the evaluation split was made, when the recipe made it.
        label_names (`list[str]`, *optional*), problem_type (`str`, *optional*): classification.
    """

    dataset_name: str
    hyperparameters: dict = field(default_factory=dict)
    base_model: str | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    extra_section: str = ""
    split_note: str | None = None
    label_names: list[str] | None = None
    problem_type: str = "single_label_classification"


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
    from ..modeling import resolve_model_path

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


def eval_results(rows: list[tuple[str, str, float]], *, task_type: str, dataset_name: str) -> list | None:
    """``model-index`` entries for ``(split prefix, metric, value)`` rows (``eval`` -> validation)."""
    from huggingface_hub import EvalResult

    out = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split="validation" if split == "eval" else "test",
            metric_type=name,
            metric_value=round(float(value), 4),
        )
        for split, name, value in rows
    ]
    return out or None


def write_card(path: str, data, **sections) -> None:
    """Render the template with ``data`` (`huggingface_hub.ModelCardData`) and ``sections`` and save it."""
    from huggingface_hub import ModelCard

    ModelCard.from_template(data, template_path=TEMPLATE, **sections).save(path)


def metadata_base_model(base_model: str) -> str | None:
    """Card metadata wants a Hub id, never a local path."""
    return None if os.path.exists(base_model) else base_model
