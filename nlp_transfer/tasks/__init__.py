"""Tasks: one registry of what a task's models are and how their output folders are saved, checked and described.

    text-classification   `classification.ClassificationTask` (classify, sentiment, distill)
    question-answering    `question_answering.QuestionAnsweringTask` (qa, distill with a QA teacher)
    fill-mask             `language_modeling.FillMaskTask` (pretrain, masked LM)
    text-generation       `language_modeling.TextGenerationTask` (pretrain, causal LM)

A task is a small `Task` subclass registered here under its pipeline tag (docs/ARCHITECTURE.md, "Adding a task").
`verify_recorded` repeats any folder's round trip from its ``roundtrip_check.json`` by dispatching on the task
named there; `task_of_checkpoint` tells which task a saved checkpoint was trained for.
"""

from __future__ import annotations

import json
import os

from ..artifacts import roundtrip
from ..errors import NLPTransferError
from .base import Export, Task
from .classification import ClassificationTask
from .language_modeling import FillMaskTask, TextGenerationTask
from .question_answering import QuestionAnsweringTask

__all__ = [
    "CLASSIFICATION",
    "FILL_MASK",
    "QUESTION_ANSWERING",
    "TASKS",
    "TEXT_GENERATION",
    "Export",
    "Task",
    "get",
    "register",
    "task_of_checkpoint",
    "verify_recorded",
]

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    if name not in TASKS:
        raise NLPTransferError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[name]


CLASSIFICATION = register(ClassificationTask())
QUESTION_ANSWERING = register(QuestionAnsweringTask())
FILL_MASK = register(FillMaskTask())
TEXT_GENERATION = register(TextGenerationTask())


def verify_recorded(folder: str) -> dict:
    """Repeat a run's round-trip check from the folder alone: reload it the way a user would and compare with the
    trained model's outputs recorded in ``roundtrip_check.json``. Runs at the end of every recipe and before every
    push.

    Returns:
        `dict`: check name (``pipeline``, ``peft``) -> result (examples, largest difference).

    Raises:
        `NLPTransferError` when the record is missing or a reload disagrees with it.
    """
    rec = roundtrip.read_record(folder)
    return get(rec.get("task", CLASSIFICATION.name)).replay(folder, rec)  # records before 0.1 named no task


def task_of_checkpoint(path: str) -> str | None:
    """The registered task a local checkpoint folder was trained for (its adapter's PEFT task type, else its
    architecture's auto-class suffix), or None when it names none (e.g. a base checkpoint, or a Hub id)."""
    adapter = os.path.join(path, "adapter_config.json")
    config = os.path.join(path, "config.json")
    try:
        if os.path.isfile(adapter):
            with open(adapter, encoding="utf-8") as f:
                task_type = json.load(f).get("task_type")
            return next((t.name for t in TASKS.values() if t.peft_task_type == task_type), None)
        with open(config, encoding="utf-8") as f:
            archs = json.load(f).get("architectures") or []
    except (OSError, ValueError):
        return None
    for t in TASKS.values():
        suffix = t.auto_class.replace("AutoModel", "")  # AutoModelForQuestionAnswering -> ForQuestionAnswering
        if any(str(a).endswith(suffix) for a in archs):
            return t.name
    return None
