"""The shared steps of every recipe, written once: ``start`` -> (recipe: data, task model + strategy, Trainer) ->
``train`` -> ``finish``. Plain functions, no base recipe class (docs/ARCHITECTURE.md).

- `start`: parse defaults < ``--config`` YAML < CLI, logging, the strategy's default learning rate, the push plan,
  the output-folder policy (refuse / overwrite / resume), the resolved model path and the seed — all before any
  data or model loads.
- `train`: clear an overwritten folder (only now: data and model loaded fine), SIGTERM guard, ``trainer.train``,
  evaluation of every held-out split under its prefix (``eval_``, ``test_``).
- `finish`: the export tail for every task — gather the model (ZeRO-3, autocast), stage, save, verify the round
  trip (pipeline, PEFT, ``merged/``) and record it, extra files, run config, curves, card, repeat the check from the
  folder alone, ``metrics.json`` last, publish, push.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments, set_seed

from . import hub, interrupt, options, search, strategies, tasks
from .artifacts import card as cards
from .artifacts import distributed, folder, report
from .artifacts.saving import MERGED_DIR, save_model
from .cli import setup_logging
from .config import StrategyArguments, parse_args, to_serialisable
from .errors import NLPTransferError
from .modeling import resolve_model_path, starting_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """A started run: its arguments and the decisions `start` made.

    Attributes:
        name (`str`): the recipe's name (default output folder ``outputs/<name>-<time>``).
        args (`tuple`): the parsed argument dataclasses, in the recipe's order.
        training_args (`TransferTrainingArguments`): the one `TrainingArguments` among ``args``.
        explicit (`set[str]`): options the user set (YAML or CLI), so recipes can choose data-aware defaults.
        strategy (`Strategy`, *optional*), strategy_args (`StrategyArguments`, *optional*): how weights train.
        task (`Task`, *optional*): the task the recipe trains.
        output_dir (`str`), resume (`str`, *optional*): the folder and the checkpoint to resume from.
        push (`PushTarget`, *optional*): where ``--push_to_hub`` publishes the finished folder.
        model_path (`str`, *optional*): ``--model_name_or_path`` resolved (offline copies, local folders).
    """

    name: str
    args: tuple
    training_args: TrainingArguments
    explicit: set[str]
    strategy: strategies.Strategy | None
    strategy_args: StrategyArguments | None
    task: tasks.Task | None
    output_dir: str
    resume: str | None
    push: hub.PushTarget | None
    model_path: str | None = None
    predictions: dict = field(default_factory=dict)  # eval/test prefix -> (logits, references) of the final scoring
    class_weights: dict | None = None  # label -> weight, when --class_weights weighs the loss
    hpo: dict | None = None  # --hpo_trials: the trials and the best (search.search)

    def eval_split(self, splits: dict):
        """The validation split for the Trainer; with none, evaluation during training is switched off."""
        if "validation" not in splits and self.training_args.eval_strategy != "no":
            self.training_args.eval_strategy = "no"
        return splits.get("validation")


def start(
    name: str,
    argv: list[str] | None,
    arg_types: tuple,
    *,
    defaults: dict,
    doc: str | None,
    task: tasks.Task | None = None,
    prog: str | None = None,
) -> Run:
    """Parse and check everything that can be checked before data or a model loads.

    Args:
        name (`str`): the recipe's name (``python -m nlp_transfer.recipes.<name>`` unless ``prog`` says otherwise).
        argv (`list[str]`, *optional*): command-line arguments (default ``sys.argv[1:]``).
        arg_types (`tuple`): the argument dataclasses.
        defaults (`dict`): the recipe's defaults (lowest precedence).
        doc (`str`): ``--help``'s description (the recipe's docstring).
        task (`Task`, *optional*): the task the recipe trains (it may adjust the training arguments).
        prog (`str`, *optional*): the program name ``--help`` shows.
    """
    args, explicit = parse_args(
        arg_types, argv, defaults=defaults, description=doc, prog=prog or f"python -m nlp_transfer.recipes.{name}"
    )
    training_args = next(a for a in args if isinstance(a, TrainingArguments))
    setup_logging(training_args.should_log)
    if getattr(training_args, "precision_reason", None):
        logger.info("precision %s: %s", precision_of(training_args), training_args.precision_reason)
    strategy_args = next((a for a in args if isinstance(a, StrategyArguments)), None)
    strategy = strategies.get(strategy_args.strategy) if strategy_args else None
    if "learning_rate" not in explicit and strategy is not None:
        training_args.learning_rate = strategy.default_learning_rate
    if "dataloader_pin_memory" not in explicit and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning is for host-to-GPU copies; on CPU it only warns
    if task is not None:
        task.configure_training(training_args, explicit)
    if getattr(training_args, "export", None):  # before any training: the export needs its packages and a task
        from . import export

        if task is None or task.name not in export.OUTPUTS:
            raise NLPTransferError(
                f"--export onnx supports {' and '.join(export.OUTPUTS)} runs, not {name}: drop --export"
            )
        export.require_onnx()
    if getattr(training_args, "hpo_trials", None):
        search.require_optuna()
    if "output_dir" not in explicit:
        training_args.output_dir = os.path.join("outputs", f"{name}-" + time.strftime("%Y%m%d-%H%M%S"))
    push = hub.plan_push(training_args)  # repo id and token checked before any training
    resume = folder.check_output_dir(
        training_args.output_dir,
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    _refuse_writing_over_inputs(training_args.output_dir, args)
    if training_args.process_index == 0:  # one owner per run, also under torchrun
        folder.claim_output_dir(training_args.output_dir)
    model_name = next((a.model_name_or_path for a in args if hasattr(a, "model_name_or_path")), None)
    model_path = resolve_model_path(model_name) if model_name else None  # fail fast on a mistyped path
    if model_path is not None and os.path.isdir(model_path):  # a LoRA folder as the start: merged first
        model_path = starting_checkpoint(model_path, getattr(strategy_args, "trust_remote_code", False))
    set_seed(training_args.seed)
    return Run(
        name, args, training_args, explicit, strategy, strategy_args, task, training_args.output_dir, resume, push,
        model_path,
    )  # fmt: skip


def _refuse_writing_over_inputs(output_dir: str, args: tuple) -> None:
    """The output folder must not be a checkpoint the run reads (overwriting the model it fine-tunes, or the teacher
    it distils, would destroy it mid-run: LoRA export reloads the base from there)."""
    out = os.path.realpath(output_dir)
    for a in args:
        for name in ("model_name_or_path", "teacher_name_or_path", "student_name_or_path", "tokenizer_name"):
            value = getattr(a, name, None)
            if value and os.path.isdir(value) and os.path.realpath(value) == out:
                raise NLPTransferError(
                    f"--output_dir {output_dir} is the --{name} this run reads: write the new model to another folder"
                )


def train(run: Run, trainer, splits: dict, *, before_evaluate: Callable[[str], None] | None = None) -> dict:
    """Train (resuming when asked), then evaluate each held-out split of ``splits`` (``validation`` -> ``eval_*``,
    ``test`` -> ``test_*``). ``before_evaluate(split)`` runs before each evaluation (e.g. to point
    ``compute_metrics`` at that split). Returns the train and held-out metrics."""
    args = run.training_args
    board = options.apply(run, trainer, splits)  # search, early stopping, class weights: checked before clearing
    if args.overwrite_output_dir and run.resume is None and args.should_save:
        folder.clear_output_dir(run.output_dir)
    # these heads' losses are per-batch means that ignore num_items_in_batch; left True, Trainer multiplies the
    # loss by the number of processes under DDP (2x gradients and logged loss on 2 ranks, measured)
    trainer.model_accepts_loss_kwargs = False
    stop = interrupt.guard(trainer)  # SIGTERM: checkpoint, stop, exit 143 with how to resume
    if args.hpo_trials:
        run.hpo = search.search(run, trainer, args.metric_for_best_model, args.greater_is_better)
    trainable, total = strategies.count_parameters(trainer.model)  # before ZeRO-3 shards it; after a search's rebuild
    result = trainer.train(resume_from_checkpoint=run.resume)
    interrupt.raise_if_stopped(stop, run.output_dir)
    metrics = {k if k.startswith("train_") else f"train_{k}": v for k, v in result.metrics.items()}
    metrics.update(trainable_params=trainable, total_params=total)
    metrics.update(options.after_training(run, trainer, splits, before_evaluate))  # early stop facts, calibration
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in splits:
            if before_evaluate is not None:
                before_evaluate(split)
            metrics.update(trainer.evaluate(splits[split], metric_key_prefix=prefix))
            if getattr(trainer.compute_metrics, "last", None) is not None:
                run.predictions[prefix] = trainer.compute_metrics.last
    metrics.update(options.after_evaluation(run, metrics, board))
    return metrics


@dataclass
class Extras:
    """What a recipe adds to the folder beyond the task's files, computed from the plain trained model on rank 0
    (see `finish`'s ``extras``): JSON files, metrics, and a card section."""

    files: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    card_section: str = ""


def finish(
    run: Run,
    trainer,
    metrics: dict,
    *,
    export: tasks.Export,
    card: cards.CardInfo,
    extras: Callable[[object], Extras] | None = None,
) -> dict:
    """The export tail of every recipe. Every rank calls it; only rank 0 writes.

    Args:
        run (`Run`), trainer: the run and its trained Trainer.
        metrics (`dict`): from `train` (updated in place and returned).
        export (`Export`): the tokenizer, lengths, round-trip examples and task settings of the trained model.
        card (`CardInfo`): what the card says about the data and the run.
        extras (`Callable[[model], Extras]`, *optional*): more artifacts from the plain trained model (distillation's
            compression report), written into the folder before the card.

    Returns:
        The metrics (with ``output_dir`` on rank 0, and ``hub_commit_url`` after a push).
    """
    task, strategy, sargs = run.task, run.strategy, run.strategy_args
    distributed.prepare_export(trainer)  # every rank: ZeRO-3 shards gathered, autocast wrapper removed on rank 0
    if not trainer.is_world_process_zero():
        return metrics
    model = trainer.model
    _fill_export_defaults(run, export)
    adapter = strategy.writes_adapter
    merged = adapter and sargs.merge_lora
    stage = folder.staging_dir(run.output_dir)
    task.configure(model, export)
    save_model(
        model,
        export.tokenizer,
        stage,
        load_base=export.load_base,
        base_model_name=export.base_model_name,
        max_seq_length=export.max_seq_length,
        save_base_model=export.save_base_model,
        merge_adapter=merged,
    )
    task.after_save(stage, export)
    _round_trip(run, model, stage, export, metrics, peft_only=adapter and not export.save_base_model, merged=merged)
    extra = extras(model) if extras else Extras()
    metrics.update(extra.metrics)
    for name, content in {**export.files, **extra.files}.items():
        report.write_metrics(os.path.join(stage, name), content)
    notes = (
        [f"trained in {precision_of(run.training_args)} ({run.training_args.precision_reason})"]
        if getattr(run.training_args, "precision_reason", None)
        else []
    )
    config = to_serialisable(*run.args)
    if run.hpo:  # the searched values are in the file: rerunning it trains the best setting without searching again
        n = config.pop("hpo_trials", None)
        config.pop("hpo_timeout", None)
        notes.append(
            f"hyperparameters: the best of {len(run.hpo['trials'])} trials of --hpo_trials {n} (not searched again)"
        )
    folder.write_run_config(os.path.join(stage, folder.RUN_CONFIG_FILE), config, notes=notes)
    has_curves = report.plot_training_curves(
        trainer.state.log_history, os.path.join(stage, folder.CURVES_FILE), main_metric=task.main_metric(card)
    )
    reports = task.evaluation_report(stage, run.predictions, card, metrics)  # per-class tables, plots
    searched = search.write(stage, run.hpo) if run.hpo else ""  # hpo_trials.csv/png, the card's table
    section = "\n\n".join(x for x in (searched, reports, extra.card_section or card.extra_section) if x)
    _write_card(run, model, stage, export, card, metrics, has_curves, merged, section)
    tasks.verify_recorded(stage)  # the check every push repeats, from the folder alone
    report.write_metrics(os.path.join(stage, folder.FINISHED_MARKER), metrics)
    folder.publish(stage, run.output_dir)
    if run.training_args.export:
        metrics.update(_export(run, trainer))
    if run.push:
        metrics["hub_commit_url"] = hub.push_folder(
            run.output_dir, run.push.repo_id, private=run.push.private, revision=run.push.revision
        )
    fmt = "{:.2f}" if task.diff_metric == "max_abs_score_diff" else "{:.4f}"
    logger.info("held-out metrics: %s", ", ".join(f"{k}={fmt.format(v)}" for k, v in task.headline(metrics).items()))
    logger.info(
        "trained in %.0f s; output written to %s", metrics.get("train_runtime", 0), os.path.abspath(run.output_dir)
    )
    folder.release_output_dir(run.output_dir)
    metrics["output_dir"] = run.output_dir
    return metrics


def _export(run: Run, trainer) -> dict:
    """``--export onnx``: the published folder's ONNX copy, checked on the validation split too (classification)."""
    from datasets import Dataset

    from . import export

    held_out = trainer.eval_dataset if isinstance(trainer.eval_dataset, Dataset) else None
    try:
        report = export.export_onnx(run.output_dir, quantize=run.training_args.quantize, held_out=held_out)
    except NLPTransferError as e:
        raise NLPTransferError(
            f"{e} -- the trained model itself is complete in {run.output_dir}; after a fix, rerun only the export: "
            f"nlp-transfer export {run.output_dir}" + (" --quantize int8" if run.training_args.quantize else "")
        ) from None
    return export.metrics_of(report)


def precision_of(training_args) -> str:
    """What the run trains in: ``bf16`` / ``fp16`` (autocast on CPU or mixed precision on GPU) or ``fp32``."""
    return "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"


def _fill_export_defaults(run: Run, export: tasks.Export) -> None:
    sargs = run.strategy_args
    export.base_model_path = export.base_model_path or run.model_path
    export.base_model_name = export.base_model_name or getattr(sargs, "model_name_or_path", export.base_model_path)
    export.trust_remote_code = export.trust_remote_code or getattr(sargs, "trust_remote_code", False)
    if export.save_base_model is None:
        export.save_base_model = sargs.save_base_model
    if export.load_base is None:
        path, trust = export.base_model_path, export.trust_remote_code
        export.load_base = lambda config: run.task.load_base(path, config, trust)


def _round_trip(run: Run, model, stage: str, export, metrics: dict, *, peft_only: bool, merged: bool) -> None:
    """The saved folder must reproduce the trained model: ``pipeline(...)`` when it holds a full model (extra
    checks too), else the PEFT way; ``merged/`` by pipeline as well. Each check records itself in its folder."""
    task = run.task
    atol = task.tolerance(run.training_args)
    checks = {}
    if not peft_only:
        checks["pipeline"] = task.check(stage, model, export, peft=False, record=True, atol=atol)
        for name, check in export.extra_checks.items():
            checks[name] = check(stage)
    else:  # adapter-only folder: plain pipeline() can't load it by design; check the PEFT way
        checks["peft"] = task.check(stage, model, export, peft=True, record=True, atol=atol)
    if merged:
        checks["pipeline_merged"] = task.check(
            os.path.join(stage, MERGED_DIR), model, export, peft=False, record=True, atol=atol
        )
    for name, c in checks.items():
        if task.diff_metric in c:
            logger.info(
                "round trip (%s): %d held-out examples reproduced, %s %.1e", name, c["examples"], task.diff_metric,
                c[task.diff_metric],
            )  # fmt: skip
            metrics[f"roundtrip_{name}_{task.diff_metric}"] = c[task.diff_metric]
        else:
            logger.info("round trip (%s): %d held-out examples reproduced", name, c["examples"])


def _write_card(run: Run, model, stage, export, card, metrics, has_curves: bool, merged: bool, section: str) -> None:
    task, strategy, sargs, args = run.task, run.strategy, run.strategy_args, run.training_args
    base_model = card.base_model or export.base_model_name
    sections = task.card_sections(
        card, export, metrics, base_model=base_model, strategy=strategy.name, adapter=strategy.writes_adapter,
        merged=merged,
    )  # fmt: skip
    hyperparameters = {
        "learning_rate": args.learning_rate,
        "epochs": args.num_train_epochs,
        "batch_size": args.per_device_train_batch_size
        if args.gradient_accumulation_steps == 1
        else f"{args.per_device_train_batch_size * args.gradient_accumulation_steps} per step "
        f"({args.gradient_accumulation_steps} passes of {args.per_device_train_batch_size})",
        "seed": args.seed,
        "precision": precision_of(args)
        + (f" ({args.precision_reason})" if getattr(args, "precision_reason", None) else ""),
        **card.hyperparameters,
        **options.card_lines(args, metrics),
    }
    strategy_line = [strategy.card_line(sargs, model, task.head)] if strategy.card_line else []
    trainable, total = strategies.count_parameters(model)
    data = _card_data(run, card, base_model, sections)
    cards.write_card(
        os.path.join(stage, folder.CARD_FILE),
        data,
        **{k: v for k, v in sections.items() if k not in ("eval_rows", "training_lines")},
        strategy=strategy.name,
        trainable_params=f"{metrics.get('trainable_params', trainable):,}",
        total_params=f"{metrics.get('total_params', total):,}",
        training_lines=strategy_line
        + sections["training_lines"]
        + [f"- {k}: {v}" for k, v in hyperparameters.items()],
        has_curves=has_curves,
        split_note=card.split_note,
        extra_section=section,
    )


def _card_data(run: Run, card, base_model: str, sections: dict):
    from huggingface_hub import ModelCardData

    task, strategy = run.task, run.strategy
    return ModelCardData(
        base_model=cards.metadata_base_model(base_model),
        license=cards.card_license(run.training_args.license, base_model),
        datasets=cards.card_datasets(card.dataset_name),
        library_name=strategy.library_name,
        pipeline_tag=task.name,
        tags=["nlp_transfer", *task.tags, *strategy.tags, *card.tags],
        model_name=sections["model_name"],
        eval_results=cards.eval_results(sections["eval_rows"], task_type=task.name, dataset_name=card.dataset_name),
    )
