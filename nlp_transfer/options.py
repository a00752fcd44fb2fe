"""The everyday training options of every recipe, applied by `nlp_transfer.run.train` and described by its card:
``--hpo_trials`` (`search`), ``--early_stopping_patience``, ``--class_weights`` (`class_weights`), ``--calibrate``
(`calibration`), and ``--report_to tensorboard``'s one event file per run.

`apply` checks each option against the run's task, data and Trainer (one line where it cannot apply: a task it does
not fit, a Trainer that computes its own loss, no validation split, a frozen head fitted on cached features) before
the output folder is cleared, then sets it on the Trainer through the HF hook made for it.
"""

from __future__ import annotations

import logging

import numpy as np

from . import calibration, class_weights
from .errors import NLPTransferError

logger = logging.getLogger(__name__)


def _asked(args) -> dict[str, bool]:
    return {
        "--hpo_trials": bool(args.hpo_trials),
        "--early_stopping_patience": bool(args.early_stopping_patience),
        "--class_weights": args.class_weights not in (None, "none"),
        "--calibrate": bool(args.calibrate),
    }


# what each option needs: a validation split / the Trainer's own loop (not the cached-features head fit)
NEEDS_VALIDATION = {
    "--hpo_trials": "each trial is scored on it",
    "--early_stopping_patience": "training stops on it",
    "--calibrate": "the temperature is fitted on it",
}
NEEDS_TRAINER_LOOP = ("--hpo_trials", "--early_stopping_patience")
SINGLE_LABEL_ONLY = ("--class_weights", "--calibrate")


def apply(run, trainer, splits: dict):
    """Check and set the options on ``trainer``; returns the TensorBoard callback (kept open for the final
    evaluations, see `_one_tensorboard_file`) or None."""
    from transformers import EarlyStoppingCallback, Trainer

    from . import tasks
    from .features import CachedFeaturesTrainer

    args, model = run.training_args, trainer.model
    asked = [flag for flag, on in _asked(args).items() if on]
    config = getattr(model, "config", None)
    if config is None and asked:  # multitask: one model per task behind one Trainer
        raise NLPTransferError(f"{asked[0]} is not supported by the {run.name} recipe: drop {asked[0]}")
    problem = getattr(config, "problem_type", None)
    single_label = run.task is tasks.CLASSIFICATION and problem in (None, "single_label_classification")
    for flag in asked:
        if flag in SINGLE_LABEL_ONLY and not single_label:
            raise NLPTransferError(f"{flag} applies to single-label classification, not this run: drop {flag}")
        if flag in NEEDS_VALIDATION and ("validation" not in splits or trainer.eval_dataset is None):
            raise NLPTransferError(
                f"{flag} needs a validation split ({NEEDS_VALIDATION[flag]}), and this run has none: give "
                "--validation_file or keep --validation_split above 0"
            )
        if flag in NEEDS_TRAINER_LOOP and isinstance(trainer, CachedFeaturesTrainer):
            raise NLPTransferError(
                f"{flag}: a frozen backbone with cached features fits its head in one go, outside the Trainer's "
                f"loop (no evaluations to stop on or trials to drive): drop {flag}, or add --cache_features false"
            )
    if "--class_weights" in asked and type(trainer).compute_loss is not Trainer.compute_loss:
        raise NLPTransferError(
            f"--class_weights: {type(trainer).__name__} computes its own loss (distillation, domain adaptation), "
            "which the weights would not reach: drop --class_weights"
        )
    if "--hpo_trials" in asked and run.resume is not None:
        raise NLPTransferError("--hpo_trials cannot resume a run: start it again with --overwrite_output_dir")
    if (args.early_stopping_patience or args.hpo_trials) and "metric_for_best_model" not in run.explicit:
        args.metric_for_best_model = metric = run.task.selection_metric(model)
        args.greater_is_better = not (metric.endswith("loss") or metric == "mse")
    if args.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold))
    data = trainer.train_dataset
    column = next((c for c in ("labels", "label") if c in (getattr(data, "column_names", None) or [])), None)
    if single_label and column is not None:
        names = [config.id2label[i] for i in range(config.num_labels)]
        weights = class_weights.resolve(args.class_weights, np.asarray(data[column]), names)  # warns on imbalance
        if weights is not None:
            trainer.compute_loss_func = class_weights.weighted_cross_entropy(weights)
            run.class_weights = dict(zip(names, weights))
            logger.info("class weights: %s", ", ".join(f"{n} {w:.3f}" for n, w in zip(names, weights)))
    return _one_tensorboard_file(trainer)


def after_training(run, trainer, splits: dict, before_evaluate) -> dict:
    """Right after ``trainer.train``: the search's and early stopping's facts; calibration (before the final
    evaluations, so they score the calibrated model)."""
    args, out = run.training_args, {}
    if run.class_weights:
        out["class_weights"] = run.class_weights
    if run.hpo:
        best = run.hpo["best"]
        out.update(
            hpo_trials=len(run.hpo["trials"]), hpo_best_trial=best["trial"], hpo_seconds=run.hpo["seconds"],
            hpo_best_objective=best[run.hpo["metric"]],
        )  # fmt: skip
    if args.early_stopping_patience:
        out.update(_early_stopping_facts(trainer))
    if args.calibrate:
        out.update(calibration.calibrate(trainer, splits["validation"], before_evaluate=before_evaluate))
    return out


def after_evaluation(run, metrics: dict, board) -> dict:
    """After the final evaluations: close the TensorBoard writer; the held-out splits' ECE before calibration."""
    if board is not None and board.tb_writer is not None:
        board.tb_writer.close()
        board.tb_writer = None
    if run.training_args.calibrate:  # the head was divided by T, so logits * T are the uncalibrated ones
        return calibration.uncalibrated_ece(run.predictions, metrics["calibration_temperature"])
    return {}


def _one_tensorboard_file(trainer):
    """``--report_to tensorboard``: keep the final evaluations in the training's event file. transformers closes
    its writer when training ends and the next evaluation opens a new file named by the current second, which
    replaces the training's file when both fall in the same second (short runs lost their curves)."""
    from transformers.integrations import TensorBoardCallback

    board = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)), None)
    if board is not None:
        board.on_train_end = lambda *a, **k: board.tb_writer.flush() if board.tb_writer is not None else None
    return board


def _early_stopping_facts(trainer) -> dict:
    """What metrics.json and the card say about early stopping: where it stopped, the best step it kept."""
    state, args = trainer.state, trainer.args
    best = state.best_model_checkpoint
    best_step = int(best.rstrip("/").rsplit("-", 1)[-1]) if best else None
    stopped = state.global_step < state.max_steps
    if stopped:
        logger.info(
            "early stopping: eval_%s did not improve by more than %g for %d evaluations; stopped at step %d of %d, "
            "best step %s (%s) loaded", args.metric_for_best_model, args.early_stopping_threshold,
            args.early_stopping_patience, state.global_step, state.max_steps, best_step, state.best_metric,
        )  # fmt: skip
    return {
        "train_early_stopped": stopped,
        "train_stopped_at_step": state.global_step,
        "train_planned_steps": state.max_steps,
        "train_best_step": best_step,
        "train_best_metric": state.best_metric,
    }


def card_lines(args, metrics: dict) -> dict:
    """The card's lines for --early_stopping_patience, --class_weights and --calibrate, from what the run did."""
    out = {}
    if args.early_stopping_patience:
        best = (
            f"best step {metrics.get('train_best_step')} (eval_{args.metric_for_best_model} "
            f"{metrics.get('train_best_metric'):.4f}) kept"
            if metrics.get("train_best_metric") is not None
            else ""
        )
        ran = (
            f"stopped at step {metrics['train_stopped_at_step']} of {metrics['train_planned_steps']}: no improvement "
            f"of eval_{args.metric_for_best_model} by more than {args.early_stopping_threshold:g} in "
            f"{args.early_stopping_patience} evaluation(s)"
            if metrics.get("train_early_stopped")
            else f"ran all {metrics.get('train_planned_steps')} steps (patience {args.early_stopping_patience})"
        )
        out["early_stopping"] = "; ".join(x for x in (ran, best) if x)
    if metrics.get("class_weights"):
        out["class_weights"] = ", ".join(f"{k} {v:.3f}" for k, v in metrics["class_weights"].items()) + (
            " (inverse frequency, --class_weights auto)" if args.class_weights == "auto" else ""
        )
    if metrics.get("calibration_temperature"):
        out["calibration"] = (
            f"temperature {metrics['calibration_temperature']:.3f} fitted on the validation split, folded into the "
            "head (pipeline scores are calibrated)"
        )
    return out
