"""Knowledge distillation (``nlp_transfer.recipes.distill`` and its QA branch ``distill_qa``), in seven parts:

- `losses`: the KD, cross-entropy, hidden-state and attention losses (the formula is in its docstring), and `MASK`.
- `students`: teacher/student layer pairing and students cut from a teacher.
- `teachers`: teacher loading (full or LoRA), fingerprints, the teacher's logits and their on-disk cache.
- `qa_targets`: the QA teacher's windows and answers, and its scores mapped onto the student's windows.
- `trainer`: the collator and the `Trainer` that distil, and the hidden-state projections.
- `report`: weights size, CPU speed and the compression report of teacher and student (`Compression`, the
  recipes' ``extras`` for `nlp_transfer.run.finish`).
- `setup`: what both recipes do alike: load and pair teacher and student, the teacher's cached outputs and
  held-out metrics, the trainer, the export and card options.

Every public name is importable from here (``distillation.load_teacher(...)``).
"""

from ..cache import data_fingerprint
from .losses import MASK, attention_loss, distillation_loss, hidden_state_loss, kd_loss
from .qa_targets import map_qa_targets, qa_teacher_answers, qa_teacher_windows
from .report import (
    Compression,
    compression_markdown,
    compression_report,
    describe_model,
    log_summary,
    measure_speed,
    speed_rows,
    weights_size_mb,
)
from .setup import (
    Pair,
    align_labels,
    card_info,
    export_options,
    label_names,
    load_pair,
    make_trainer,
    teacher_metrics,
    teacher_outputs,
    teacher_pass,
)
from .students import (
    check_pairing,
    has_trained_labels,
    layer_pairs,
    num_hidden_layers,
    parse_layers,
    student_from_teacher,
)
from .teachers import (
    cached_teacher_logits,
    load_teacher,
    teacher_fingerprint,
    teacher_logits,
    teacher_task,
)
from .trainer import PROJECTION_FILE, DistillationCollator, DistillationTrainer, make_projections

__all__ = [
    "MASK",
    "PROJECTION_FILE",
    "Compression",
    "DistillationCollator",
    "DistillationTrainer",
    "Pair",
    "align_labels",
    "attention_loss",
    "cached_teacher_logits",
    "card_info",
    "check_pairing",
    "compression_markdown",
    "compression_report",
    "data_fingerprint",
    "describe_model",
    "distillation_loss",
    "export_options",
    "has_trained_labels",
    "hidden_state_loss",
    "kd_loss",
    "label_names",
    "layer_pairs",
    "load_pair",
    "load_teacher",
    "log_summary",
    "make_projections",
    "make_trainer",
    "map_qa_targets",
    "measure_speed",
    "num_hidden_layers",
    "parse_layers",
    "qa_teacher_answers",
    "qa_teacher_windows",
    "speed_rows",
    "student_from_teacher",
    "teacher_fingerprint",
    "teacher_logits",
    "teacher_metrics",
    "teacher_outputs",
    "teacher_pass",
    "teacher_task",
    "weights_size_mb",
]
