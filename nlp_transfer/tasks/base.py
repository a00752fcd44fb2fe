"""What a task is to the rest of the toolkit (`Task`), and what a recipe hands the export about its model
(`Export`). The registry and the tasks themselves are in `nlp_transfer.tasks`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Export:
    """The trained model's side of the export, as a recipe knows it (`nlp_transfer.run.finish` fills the defaults).

    Args:
        tokenizer: the tokenizer the model trained with (saved with ``model_max_length=max_seq_length``).
        max_seq_length (`int`): the truncation length (QA: the window length) used in training.
        examples (`list`): the held-out inputs the saved folder must reproduce: texts or ``{"text", "text_pair"}``
            (classification), ``{"id", "question", "context"}`` rows (QA).
        expected (`dict`, *optional*): QA: the recipe's post-processed answers for ``examples``, by question id.
        label2id (`dict`, *optional*): classification: the trained label names.
        settings (`dict`): task settings stored in ``config.json`` for inference (QA: windows, answer length).
        files (`dict`): extra JSON files for the folder, name -> content (predictions, compression report).
        extra_checks (`dict`): name -> ``check(folder) -> dict``, run after the task's own pipeline check.
        base_model_path (`str`, *optional*): where the base was loaded from; default: the run's resolved model path.
        base_model_name (`str`, *optional*): the base as the user named it, for ``adapter_config.json``.
        load_base (`Callable[[config], model]`, *optional*): adapters: rebuilds the untrained base with its head;
            default: the task's `Task.load_base` on ``base_model_path``.
        save_base_model (`bool`, *optional*): adapters: write the base weights too; default ``--save_base_model``.
        trust_remote_code (`bool`): passed on when a base is reloaded.
    """

    tokenizer: Any
    max_seq_length: int
    examples: list
    expected: dict | None = None
    label2id: dict | None = None
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    extra_checks: dict = field(default_factory=dict)
    base_model_path: str | None = None
    base_model_name: str | None = None
    load_base: Callable | None = None
    save_base_model: bool | None = None
    trust_remote_code: bool = False


class Task:
    """A task: how its models load, save, prove their round trip and describe themselves.

    Subclasses set the class attributes and implement the methods; one instance of each is registered in
    `nlp_transfer.tasks.TASKS` under ``name`` (the pipeline tag). See docs/ARCHITECTURE.md, "Adding a task".

    Attributes:
        name (`str`): registry key, the pipeline tag and the ``task`` of ``roundtrip_check.json``.
        auto_class (`str`): the transformers auto class of its models.
        peft_task_type (`str`): PEFT's task type (decides which head LoRA trains and saves).
        head (`str`): how the card names the trained head.
        diff_metric (`str`): the round-trip result key recorded in metrics.json (``roundtrip_<check>_<diff_metric>``).
        tags (`tuple`): card tags.
    """

    name: str = ""
    auto_class: str = ""
    peft_task_type: str = ""
    head: str = "the task head"
    diff_metric: str = "max_abs_diff"
    tags: tuple = ()

    def load_base(self, path: str, config, trust_remote_code: bool = False):
        """The untrained task model at ``path`` built with ``config`` (adapters: the base under the adapter)."""
        raise NotImplementedError

    def configure_training(self, training_args, explicit: set[str]) -> None:
        """Adjust the training arguments this task needs (called by `nlp_transfer.run.start`). Default: nothing."""

    def configure(self, model, export: Export) -> None:
        """Before saving: write what inference needs into the model's config. Default: nothing."""

    def after_save(self, folder: str, export: Export) -> None:
        """After saving ``folder`` (and its ``merged/`` copy): add files the folder needs. Default: nothing."""

    def tolerance(self, training_args) -> float:
        """The round trip's tolerance on raw outputs."""
        return 1e-4

    def check(self, folder: str, model, export: Export, *, peft: bool, record: bool, atol: float = 1e-4) -> dict:
        """Reload ``folder`` as a user would (``pipeline``, or ``PeftModel.from_pretrained`` when ``peft``), compare
        with ``model`` on ``export.examples``; with ``record``, write ``roundtrip_check.json``. Raises
        `NLPTransferError` on a mismatch."""
        raise NotImplementedError

    def replay(self, folder: str, rec: dict) -> dict:
        """Repeat the check from the folder and its record alone (no trained model): every push does this."""
        raise NotImplementedError

    def main_metric(self, card) -> str:
        raise NotImplementedError

    def selection_metric(self, model) -> str:
        """The evaluation metric (without ``eval_``) early stopping and the best checkpoint are chosen by, for a
        trained ``model`` of this task. Default: the loss."""
        return "loss"

    def evaluation_report(self, folder: str, predictions: dict, card, metrics: dict) -> str:
        """Write report files (per-class tables, plots) for ``predictions`` (eval/test prefix -> (logits,
        references)) into ``folder``; return the card's markdown for them. Default: nothing."""
        return ""

    def headline(self, metrics: dict) -> dict:
        """The held-out metrics the recipe's last log line shows."""
        raise NotImplementedError

    def card_sections(
        self, card, export: Export, metrics: dict, *, base_model: str, strategy: str, adapter: bool, merged: bool
    ) -> dict:
        """The card's task-specific parts: ``model_name``, ``summary``, ``results`` (rows), ``results_note``,
        ``eval_rows`` (``(split, metric, value)`` for the metadata), ``training_lines`` and ``usage``."""
        raise NotImplementedError
