"""What both distillation recipes (classification and extractive QA) do alike around the losses: load the teacher
and its student and pair them (`load_pair`), read or compute the teacher's outputs once (`teacher_pass`,
`teacher_outputs`), score the teacher on the held-out splits (`teacher_metrics`), build the trainer
(`make_trainer`), and tell `nlp_transfer.run.finish` how the student is exported and described (`export_options`,
`card_info`, and `report.Compression` for the compression report)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import NLPTransferError
from .students import (
    check_pairing,
    has_trained_labels,
    layer_pairs,
    num_hidden_layers,
    parse_layers,
    student_from_teacher,
)
from .teachers import cached_teacher_logits, load_teacher, teacher_fingerprint
from .trainer import DistillationCollator, DistillationTrainer, make_projections

logger = logging.getLogger(__name__)

PROBLEM = "single_label_classification"  # the one classification problem distillation supports


@dataclass
class Pair:
    """A teacher and its student, loaded and checked by `load_pair`.

    Attributes:
        teacher (`nn.Module`), teacher_info (`dict`): the frozen teacher (adapters merged in) and how it loaded
            (``kind``, ``base``, ``path``: see `load_teacher`).
        teacher_dir (`str`), teacher_tok: where it loaded from, and its tokenizer.
        student (`nn.Module`), student_tok: the untrained student and its tokenizer (a cut student shares the
            teacher's).
        student_path (`str`, *optional*): a pretrained student's resolved checkpoint; None for a cut student.
        kept (`list[int]`, *optional*): the teacher layers a cut student keeps; None for a pretrained student.
        label (`str`): how the report and the card name the student.
        same_tokenizer (`bool`), layer_map (`list`): see `check_pairing` and `layer_pairs`.
        live (`bool`): the teacher runs at every training step (hidden-state / attention losses need its insides).
    """

    teacher: nn.Module
    teacher_info: dict
    teacher_dir: str
    teacher_tok: Any
    student: nn.Module
    student_tok: Any
    student_path: str | None
    kept: list[int] | None
    label: str
    same_tokenizer: bool
    layer_map: list
    live: bool
    fingerprint: str | None = None


def label_names(config) -> list[str]:
    return [config.id2label[i] for i in range(config.num_labels)]


def align_labels(names_from: list[str], names_to: list[str], what: str) -> list[int]:
    """For each label of ``names_from`` the index of the same label in ``names_to`` (by name, case-insensitive;
    integer names 0..K-1 fall back to ids when no name matches). Refuses labels ``names_to`` lacks."""
    exact = {n: i for i, n in enumerate(names_to)}
    folded = {str(n).lower(): i for i, n in enumerate(names_to)}
    if all(str(n) in exact or str(n).lower() in folded for n in names_from):
        return [exact.get(str(n), folded.get(str(n).lower())) for n in names_from]
    if all(str(n).isdigit() and int(n) < len(names_to) for n in names_from):
        logger.warning(
            "%s: labels %s do not name the teacher's labels; reading them as label ids (%s)",
            what,
            names_from,
            ", ".join(f"{i}={n}" for i, n in enumerate(names_to)),
        )
        return [int(n) for n in names_from]
    missing = [str(n) for n in names_from if str(n) not in exact and str(n).lower() not in folded]
    raise NLPTransferError(
        f"{what} has label(s) the teacher does not know: {', '.join(missing[:10])} (teacher labels: "
        f"{', '.join(map(str, names_to))}); distil on data with the teacher's label set"
    )


def _pretrained_student(path: str, name: str, tokenizer, teacher, *, task: str, trust_remote_code: bool):
    """A pretrained checkpoint with a new head for the task; a classifier keeps its own label order when its head
    was trained on the teacher's labels, and is refused when trained on others."""
    from .. import modeling

    if task == "qa":
        from ..qa import load_qa_model

        return load_qa_model(path, pad_token_id=tokenizer.pad_token_id, trust_remote_code=trust_remote_code)
    from transformers import AutoConfig

    names = label_names(teacher.config)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except modeling.LOAD_ERRORS as e:
        raise modeling.load_error(name, e) from None
    if has_trained_labels(config) and config.num_labels > 1:
        own = label_names(config)
        if sorted(map(str.lower, own)) != sorted(map(str.lower, names)):
            raise NLPTransferError(
                f"the student's labels ({', '.join(own)}) differ from the teacher's ({', '.join(names)}): use a "
                "student without a trained head, or one with the same labels"
            )
        names = own
    return modeling.load_sequence_classifier(
        path,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        problem_type=PROBLEM,
        pad_token_id=tokenizer.pad_token_id,
        trust_remote_code=trust_remote_code,
    )


def load_pair(args, *, task: str = "classification") -> Pair:
    """Load the teacher (``task="qa"``: an extractive QA model) and its student from a `DistillArguments`: a
    student cut from the teacher (``--student_layers``) or a pretrained ``--student_name_or_path``; check that the
    pair supports the losses asked for and map the student's layers onto the teacher's."""
    from ..modeling import load_tokenizer, resolve_model_path

    teacher_dir = resolve_model_path(args.teacher_name_or_path)  # fail fast on mistyped paths
    student_path = resolve_model_path(args.student_name_or_path) if args.student_name_or_path else None
    if student_path and args.student_layers:
        raise NLPTransferError("--student_layers cuts a student from the teacher; drop it or --student_name_or_path")
    attn = "eager" if args.attention_weight > 0 else None  # fused attention kernels return no maps
    trust = args.trust_remote_code
    teacher, info = load_teacher(
        args.teacher_name_or_path,
        base_model=args.teacher_base_model,
        trust_remote_code=trust,
        attn_implementation=attn,
        task=task,
    )
    teacher_tok = load_tokenizer(
        teacher_dir, trust_remote_code=trust, hint="or distil from the run's own output folder"
    )
    n_teacher = num_hidden_layers(teacher.config)
    logger.info(
        "teacher: %s (%s, %d layers, %s parameters)", args.teacher_name_or_path, info["kind"], n_teacher,
        f"{sum(p.numel() for p in teacher.parameters()):,}",
    )  # fmt: skip
    kept = None
    if student_path is None:
        kept = parse_layers(args.student_layers, n_teacher)
        student, student_tok = student_from_teacher(teacher, kept), teacher_tok
        label = f"{args.teacher_name_or_path} (layers {','.join(map(str, kept))})"
    else:
        student_tok = load_tokenizer(student_path, trust_remote_code=trust, hint="or choose a student that has them")
        student = _pretrained_student(
            student_path, args.student_name_or_path, student_tok, teacher, task=task, trust_remote_code=trust
        )
        if attn:
            student.set_attn_implementation(attn)
        label = args.student_name_or_path
    same = check_pairing(args, teacher, student, teacher_tok, student_tok, kept)
    layer_map = layer_pairs(num_hidden_layers(student.config), n_teacher, kept)
    live = args.hidden_weight > 0 or args.attention_weight > 0
    return Pair(teacher, info, teacher_dir, teacher_tok, student, student_tok, student_path, kept, label, same,
                layer_map, live)  # fmt: skip


@contextlib.contextmanager
def teacher_pass(pair: Pair, training_args, desc: str = "teacher outputs"):
    """The teacher on the training device while its outputs are computed (the main process first, so the others
    read its cache), then back on the CPU unless it runs live during training."""
    pair.teacher.to(training_args.device)
    with training_args.main_process_first(desc=desc):
        yield
    if not pair.live:
        pair.teacher.to("cpu")  # its outputs are cached: free the accelerator's memory for the student


def teacher_outputs(pair: Pair, args, split: str, key: dict, compute: Callable):
    """The teacher's outputs on one split: read from the on-disk cache (``--teacher_cache_dir``, default
    ``$NLP_TRANSFER_CACHE/teacher_logits``) under the teacher's fingerprint, its base, ``key`` (data and
    preprocessing) and ``split``, else ``compute()``-d once and stored."""
    from .. import assets

    cache_dir = args.teacher_cache_dir or os.path.join(str(assets.cache_dir()), "teacher_logits")
    if pair.fingerprint is None:
        pair.fingerprint = teacher_fingerprint(pair.teacher, pair.teacher_dir)
    key = {"teacher": pair.fingerprint, "teacher_base": pair.teacher_info["base"], **key, "split": split}
    return cached_teacher_logits(cache_dir, key, compute)[0]


def teacher_metrics(splits, score: Callable[[str], dict], fmt: str = "{:.4f}") -> dict:
    """The teacher's ``score(split)`` on the held-out splits present (``eval_*``, ``test_*``), logged once."""
    out = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in splits:
            out.update({f"{prefix}_{k}": v for k, v in score(split).items()})
    if out:
        logger.info("teacher: %s", ", ".join(f"{k}={fmt.format(v)}" for k, v in out.items()))
    return out


def make_trainer(pair: Pair, args, job, model, *, train_dataset, eval_dataset, compute_metrics) -> DistillationTrainer:
    """The `DistillationTrainer` of the (strategy-applied) student ``model``, with the learned hidden-state
    projections when the widths differ (restored from the checkpoint ``job`` resumes from)."""
    projections = None
    if args.hidden_weight > 0:
        projections = make_projections(
            model.config.hidden_size, pair.teacher.config.hidden_size, len(pair.layer_map) + 1
        )
    trainer = DistillationTrainer(
        model=model,
        args=job.training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DistillationCollator(pair.student_tok),
        processing_class=pair.student_tok,
        compute_metrics=compute_metrics,
        temperature=args.temperature,
        alpha=args.alpha,
        teacher=pair.teacher if pair.live else None,
        hidden_weight=args.hidden_weight,
        attention_weight=args.attention_weight,
        layer_map=pair.layer_map,
        projections=projections,
    )
    if job.resume:
        trainer.load_projections(job.resume)
    return trainer


def export_options(pair: Pair, args) -> dict:
    """`nlp_transfer.tasks.Export` fields for the student's base. A cut student has no checkpoint of its own: its
    base is cut again from the teacher and always written next to an adapter. A pretrained student's base is its
    checkpoint."""
    from .. import strategies

    if pair.kept is None:
        return {"base_model_path": pair.student_path, "base_model_name": args.student_name_or_path}
    if strategies.get(args.strategy).writes_adapter and not args.save_base_model:
        logger.warning("a student cut from the teacher has no checkpoint of its own: writing its base weights anyway")
    teacher, kept = pair.teacher, pair.kept

    def load_base(config):  # the untrained cut student, with the trained one's config (the task's settings)
        base = student_from_teacher(teacher, kept)
        base.config = config
        return base

    return {
        "load_base": load_base,
        "save_base_model": True,
        "base_model_path": pair.teacher_dir,
        "base_model_name": pair.label,
    }


def card_info(pair: Pair, args, dataset_name: str, hyperparameters: dict, label_names: list[str] | None = None):
    """The student's `CardInfo`: based on the pretrained student (else the teacher), titled "<student> distilled
    from <teacher>", tagged ``distillation``."""
    from ..artifacts.card import CardInfo

    def short(name: str) -> str:
        return os.path.basename(name.rstrip("/"))

    return CardInfo(
        dataset_name,
        hyperparameters,
        base_model=args.student_name_or_path or args.teacher_name_or_path,
        title=f"{short(pair.label)} distilled from {short(args.teacher_name_or_path)}",
        tags=["distillation"],
        label_names=label_names,
    )
