"""``--hpo_trials N``: hyperparameter search through ``Trainer.hyperparameter_search`` (optuna backend), then the
best trial's settings retrained as the run itself.

No search loop of ours: the Trainer runs each trial (``model_init`` -> train -> evaluate on the validation split,
optuna's median pruner stopping hopeless trials at their evaluations). ``model_init`` hands back the run's own model
reset to the weights it started from, so every recipe searches without building its model twice and every trial
starts from the same point (the Trainer re-seeds before each). The space is per strategy (`SPACES`), seeded by
``--seed`` (TPE sampler), bounded by ``--hpo_timeout``. Trials save no checkpoints; the retrained best run is a
normal run (checkpoints, round trip, card), and the folder gets ``hpo_trials.csv`` and ``hpo_trials.png``.

What is searched are TrainingArguments only (learning rate, epochs, batch size, warmup): settings that change the
model's shape (LoRA r/alpha) or the distillation loss (T, alpha) would need the recipe to rebuild its model per
trial, and are not searched in this version (the card lists the space that was).
"""

from __future__ import annotations

import copy
import logging
import math
import time

from transformers import TrainerCallback

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

# strategy -> TrainingArguments field -> ("log" | "float" | "int", low, high) or ("choice", [values])
_COMMON = {
    "num_train_epochs": ("int", 1, 5),
    "per_device_train_batch_size": ("choice", [8, 16, 32]),
    "warmup_steps": ("float", 0.0, 0.2),  # a fraction of the steps, like the recipes' default 0.1
}
SPACES = {
    "full": {"learning_rate": ("log", 1e-5, 2e-4), **_COMMON},
    "partial": {"learning_rate": ("log", 1e-5, 2e-4), **_COMMON},
    "lora": {"learning_rate": ("log", 1e-4, 1e-2), **_COMMON},
    "frozen": {"learning_rate": ("log", 1e-3, 1e-1), **_COMMON},
}
CSV_FILE, PLOT_FILE = "hpo_trials.csv", "hpo_trials.png"


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise NLPTransferError(
            "--hpo_trials needs optuna: pip install 'nlp-transfer[hpo]' (or pip install optuna)"
        ) from None


def space_for(strategy: str) -> dict:
    return SPACES.get(strategy, SPACES["full"])


def _suggest(trial, space: dict) -> dict:
    out = {}
    for name, (kind, *bounds) in space.items():
        if kind == "log":
            out[name] = trial.suggest_float(name, bounds[0], bounds[1], log=True)
        elif kind == "float":
            out[name] = trial.suggest_float(name, bounds[0], bounds[1])
        elif kind == "int":
            out[name] = trial.suggest_int(name, bounds[0], bounds[1])
        else:
            out[name] = trial.suggest_categorical(name, bounds[0])
    return out


def describe(space: dict) -> str:
    parts = []
    for name, (kind, *b) in space.items():
        parts.append(
            f"{name} in {b[0]}"
            if kind == "choice"
            else f"{name} {b[0]:g}-{b[1]:g}" + (" (log)" if kind == "log" else "")
        )
    return "; ".join(parts)


class StepsPerTrial(TrainerCallback):
    """The optimizer steps each trial ran (a pruned trial stops early), by trial number."""

    def __init__(self, trainer):
        self.trainer, self.steps = trainer, {}

    def on_step_end(self, args, state, control, **kwargs):
        trial = getattr(self.trainer, "_trial", None)
        if trial is not None and hasattr(trial, "number"):
            self.steps[trial.number] = state.global_step


def search(run, trainer, metric: str, greater_is_better: bool) -> dict:
    """Run ``--hpo_trials`` trials; set the best trial's values on the run's TrainingArguments; leave the Trainer
    ready to train the best setting from the start. Returns the trials (for the folder's table) and the best."""
    import optuna

    args = run.training_args
    space = space_for(run.strategy.name if run.strategy else "full")
    model = trainer.model
    initial = copy.deepcopy(model.state_dict())

    def model_init(trial=None):
        model.load_state_dict(initial)
        return model

    saved = {k: getattr(args, k) for k in ("save_strategy", "load_best_model_at_end")}
    if isinstance(args.warmup_steps, int):  # the Trainer casts a trial's value to the option's type: keep fractions
        args.warmup_steps = float(args.warmup_steps)
    callbacks = [c for c in trainer.callback_handler.callbacks if type(c).__name__ == "EarlyStoppingCallback"]
    for c in callbacks:  # early stopping needs load_best_model_at_end, which needs checkpoints: off for the trials
        trainer.remove_callback(c)
    args.save_strategy, args.load_best_model_at_end = "no", False
    trainer.model_init = model_init
    # transformers sets a trial's values on trainer.args but reads the batch size from trainer._train_batch_size,
    # set once in Trainer.__init__: without this, a searched per_device_train_batch_size changes nothing (every
    # trial, and the retrained best, trained at the first batch size; measured: the steps column below)
    setup = trainer._hp_search_setup

    def hp_search_setup(trial):
        setup(trial)
        trainer._train_batch_size = trainer.args.train_batch_size

    trainer._hp_search_setup = hp_search_setup
    steps = StepsPerTrial(trainer)
    trainer.add_callback(steps)
    storage = optuna.storages.InMemoryStorage()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key = f"eval_{metric}"
    start = time.time()
    best = trainer.hyperparameter_search(
        hp_space=lambda trial: _suggest(trial, space),
        compute_objective=lambda m: m[key],
        n_trials=args.hpo_trials,
        direction="maximize" if greater_is_better else "minimize",
        backend="optuna",
        timeout=args.hpo_timeout,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        study_name="nlp_transfer",
        storage=storage,
    )  # fmt: skip
    elapsed = time.time() - start
    study = optuna.load_study(study_name="nlp_transfer", storage=storage)
    trials = [
        {"trial": t.number, "state": t.state.name.lower(), key: t.value, **t.params,
         "steps": steps.steps.get(t.number), "seconds": round(t.duration.total_seconds(), 1) if t.duration else None}
        for t in study.trials
    ]  # fmt: skip
    trainer.remove_callback(steps)
    for k, v in saved.items():
        setattr(args, k, v)
    for c in callbacks:
        trainer.add_callback(c)
    for name, value in best.hyperparameters.items():
        old = getattr(args, name)
        setattr(args, name, type(old)(value) if old is not None else value)
    trainer._train_batch_size = args.train_batch_size  # the retrained run: the best trial's batch size
    if trainer.model is None:  # the last trial released it
        trainer.model = trainer.model_wrapped = model_init()
    logger.info(
        "search: %d trial(s) in %.0f s; best trial %s: %s=%.4f with %s; retraining it as the run", len(trials),
        elapsed, best.run_id, key, best.objective,
        ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.hyperparameters.items()),
    )  # fmt: skip
    return {
        "trials": trials,
        "best": {"trial": int(best.run_id), key: best.objective, **best.hyperparameters},
        "space": describe(space),
        "metric": key,
        "seconds": round(elapsed, 1),
    }


def write(folder: str, hpo: dict) -> str:
    """hpo_trials.csv and hpo_trials.png in ``folder``; the card's markdown."""
    import csv
    import os

    from .artifacts import report

    trials, key = hpo["trials"], hpo["metric"]
    columns = list(dict.fromkeys(k for t in trials for k in t))
    with open(os.path.join(folder, CSV_FILE), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(trials)
    report.plot_trials(trials, key, os.path.join(folder, PLOT_FILE))
    rows = ["| trial | state | " + " | ".join(c for c in columns if c not in ("trial", "state")) + " |",
            "|" + "---|" * len(columns)]  # fmt: skip
    for t in trials:
        cells = [t.get(c) for c in columns if c not in ("trial", "state")]
        fmt = [
            "" if v is None else (f"{v:.4g}" if isinstance(v, float) and not math.isnan(v) else str(v)) for v in cells
        ]
        rows.append(f"| {t['trial']} | {t['state']} | " + " | ".join(fmt) + " |")
    best = hpo["best"]
    return (
        f"## Hyperparameter search\n\n{len(trials)} trial(s) of `Trainer.hyperparameter_search` (optuna, TPE seeded "
        f"by the run's seed), {hpo['seconds']:.0f} s, scored by `{key}` on the validation split; "
        f"space: {hpo['space']}. "
        f"The model in this folder is trial {best['trial']}'s setting retrained from the start.\n\n"
        + "\n".join(rows)
        + f"\n\n![trials]({PLOT_FILE})"
    )
