"""``--hpo_trials N``: hyperparameter search through ``Trainer.hyperparameter_search`` (optuna backend), then the
best trial's settings retrained as the run itself.

No search loop of ours: the Trainer runs each trial (``model_init`` -> train -> evaluate on the validation split,
optuna's median pruner stopping hopeless trials at their evaluations). ``model_init`` hands back the run's own model
reset to the weights it started from, so every recipe searches without building its model twice and every trial
starts from the same point (the Trainer re-seeds before each). The space is per strategy (`SPACES`), seeded by
``--seed`` (TPE sampler), bounded by ``--hpo_timeout``. Trials save no checkpoints; the retrained best run is a
normal run (checkpoints, round trip, card), and the folder gets ``hpo_trials.csv`` and ``hpo_trials.png``.

What is searched (`SPACES`, the card lists it): TrainingArguments (learning rate, epochs, batch size, warmup; the
Trainer sets them per trial), LoRA's ``r`` and ``alpha`` (a different adapter shape: ``model_init`` then rebuilds
the adapter on the run's starting weights, PEFT's ``unload()`` of the model the recipe built, with the trial's
values), and the settings a Trainer subclass declares in its ``hpo_space`` (distillation's ``temperature`` and
``alpha``, set on the Trainer per trial). A Trainer with modules of its own that train (distillation's hidden-state
projections, domain adaptation's discriminator) defines ``reset_for_trial(model)``, called with each trial's model,
so that every trial, and the retrained best, starts from the same point. The best values are written back to the
recipe's arguments, so the card, ``run_config.yaml`` and reports name them.
"""

from __future__ import annotations

import copy
import logging
import math
import time

from transformers import TrainerCallback

from . import strategies
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
    # the adapter's shape: alpha / r scales its update, so both are searched (r=8, alpha=16 is the default)
    "lora": {
        "learning_rate": ("log", 1e-4, 1e-2),
        **_COMMON,
        "lora_r": ("choice", [4, 8, 16, 32]),
        "lora_alpha": ("choice", [8, 16, 32, 64]),
    },
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


ADAPTER_SHAPE = ("lora_r", "lora_alpha")  # searched values that rebuild the model


def space_for(strategy: str, trainer=None) -> dict:
    """The strategy's space plus what the Trainer declares in ``hpo_space`` (distillation: T and alpha)."""
    return {**SPACES.get(strategy, SPACES["full"]), **getattr(trainer, "hpo_space", {})}


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


class PerTrial(TrainerCallback):
    """What each trial ran, by trial number: its optimizer steps (a pruned trial stops early) and its trainable
    parameters (LoRA r changes them)."""

    def __init__(self, trainer):
        self.trainer, self.steps, self.trainable = trainer, {}, {}

    def _number(self):
        trial = getattr(self.trainer, "_trial", None)
        return trial.number if trial is not None and hasattr(trial, "number") else None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self._number() is not None and model is not None:
            self.trainable[self._number()] = strategies.count_parameters(model)[0]

    def on_step_end(self, args, state, control, **kwargs):
        if self._number() is not None:
            self.steps[self._number()] = state.global_step


def _model_init(run, trainer, space: dict):
    """``model_init(trial)``: the run's model at its starting weights, with a rebuilt adapter when LoRA's shape is
    searched (the trial's values; the run's arguments for the retrained best, ``trial=None``)."""
    model = trainer.model
    reset = getattr(trainer, "reset_for_trial", None)
    shape = [k for k in ADAPTER_SHAPE if k in space]
    if shape and run.strategy is not None and run.strategy.writes_adapter:
        task_type = next(iter(model.peft_config.values())).task_type
        base = copy.deepcopy(model).unload()  # the starting weights, adapter layers removed (not merged)

        def model_init(trial=None):
            sargs = copy.copy(run.strategy_args)
            # the Trainer calls model_init before it asks hp_space for the trial's values; optuna gives the same
            # value to the second suggestion of a name within a trial
            for k, v in (_suggest(trial, {k: space[k] for k in shape}) if trial is not None else {}).items():
                setattr(sargs, k, v)
            new = strategies.apply(copy.deepcopy(base), sargs, task_type=task_type)
            if reset is not None:
                reset(new)
            return new

        return model_init
    initial = copy.deepcopy(model.state_dict())

    def model_init(trial=None):
        model.load_state_dict(initial)
        if reset is not None:
            reset(model)
        return model

    return model_init


def search(run, trainer, metric: str, greater_is_better: bool) -> dict:
    """Run ``--hpo_trials`` trials; set the best trial's values on the run's arguments (and the Trainer's own
    settings); leave the Trainer ready to train the best setting from the start. Returns the trials (for the
    folder's table) and the best."""
    import optuna

    args = run.training_args
    space = space_for(run.strategy.name if run.strategy else "full", trainer)
    own = [k for k in space if k in getattr(trainer, "hpo_space", {})]  # set on the Trainer per trial
    hf = {k for k in space if hasattr(args, k)}  # set on trainer.args by the Trainer itself

    saved = {k: getattr(args, k) for k in ("save_strategy", "load_best_model_at_end")}
    if isinstance(args.warmup_steps, int):  # the Trainer casts a trial's value to the option's type: keep fractions
        args.warmup_steps = float(args.warmup_steps)
    callbacks = [c for c in trainer.callback_handler.callbacks if type(c).__name__ == "EarlyStoppingCallback"]
    for c in callbacks:  # early stopping needs load_best_model_at_end, which needs checkpoints: off for the trials
        trainer.remove_callback(c)
    args.save_strategy, args.load_best_model_at_end = "no", False
    trainer.model_init = _model_init(run, trainer, space)
    # transformers sets a trial's values on trainer.args but reads the batch size from trainer._train_batch_size,
    # set once in Trainer.__init__: without this, a searched per_device_train_batch_size changes nothing (every
    # trial, and the retrained best, trained at the first batch size; measured: the steps column below)
    setup = trainer._hp_search_setup

    def hp_search_setup(trial):
        setup(trial)
        trainer._train_batch_size = trainer.args.train_batch_size
        for k in own:
            if trial is not None and k in trial.params:
                setattr(trainer, k, trial.params[k])

    trainer._hp_search_setup = hp_search_setup
    per_trial = PerTrial(trainer)
    trainer.add_callback(per_trial)
    storage = optuna.storages.InMemoryStorage()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key = f"eval_{metric}"
    start = time.time()

    def hp_space(trial):  # every value is suggested (so the trial holds it); the Trainer gets its own fields
        return {k: v for k, v in _suggest(trial, space).items() if k in hf}

    best = trainer.hyperparameter_search(
        hp_space=hp_space,
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
         "trainable_params": per_trial.trainable.get(t.number), "steps": per_trial.steps.get(t.number),
         "seconds": round(t.duration.total_seconds(), 1) if t.duration else None}
        for t in study.trials
    ]  # fmt: skip
    trainer.remove_callback(per_trial)
    for k, v in saved.items():
        setattr(args, k, v)
    for c in callbacks:
        trainer.add_callback(c)
    _set_best(run, trainer, best.hyperparameters, own)
    trainer._train_batch_size = args.train_batch_size  # the retrained run: the best trial's batch size
    trainer.model = trainer.model_wrapped = trainer.call_model_init(None)  # the best's shape (trainable counts)
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


def _set_best(run, trainer, values: dict, own: list[str]) -> None:
    """The best trial's values on every argument dataclass that has the field (TrainingArguments, the strategy's
    and distillation's), so the retrained run, its card and run_config.yaml use them; the Trainer's own settings
    on the Trainer."""
    for name, value in values.items():
        for a in run.args:
            if hasattr(a, name):
                old = getattr(a, name)
                setattr(a, name, type(old)(value) if old is not None else value)
        if name in own:
            setattr(trainer, name, value)


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
