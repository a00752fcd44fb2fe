"""Multi-task transfer: one pretrained encoder fine-tuned jointly on several classification tasks, one head each.

Launch commands::

    # embedded default, no arguments, no network: MiniLM-L6 on BBC News topics and CrowdFlower tweet sentiment at
    # once (1,000 training rows of each), ~4 min on 2 CPU cores
    python -m nlp_transfer.recipes.multitask

    # a shipped config: the tasks are a list in the YAML (each takes the classify data options)
    python -m nlp_transfer.recipes.multitask --config recipes/multitask/minilm_glue_small.yaml

    # the task list from a file, sampling small tasks more often
    nlp-transfer multitask --tasks my_tasks.yaml --sampling temperature --sampling_temperature 2 --output_dir out/

    # intermediate-task transfer needs no recipe of its own: a classifier folder of task A starts task B
    python -m nlp_transfer.recipes.classify --model_name_or_path out_task_a/ --train_file task_b.csv ...

    # then, per task, anywhere transformers (and peft, for LoRA) is installed:
    #   pipeline("text-classification", model="out/<task>/", truncation=True)

Each task entry: ``name`` (its folder), ``loss_weight`` (default 1) and any data option of the classify recipe
(``train_file``/``validation_file``/``test_file`` or ``dataset_name``, ``text_column``, ``text_pair_column``,
``label_column``, ``problem_type``, ``validation_split``, ``max_train_samples``, ``max_seq_length``, ...). A task
with no validation data gets one held out of its training rows, as classify does.
Strategies: full | frozen | partial | lora (one adapter on the shared encoder, a head per task).
Outputs: ``out/<task>/`` per task (encoder + that task's head, labels, round trip checked, card naming the other
tasks), ``out/metrics.json`` (every task's metrics), ``out/README.md`` (a summary), ``out/checkpoint-*/``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from transformers import DataCollatorWithPadding

from nlp_transfer import data, hub, modeling, multitask, run, tasks
from nlp_transfer.artifacts import folder, report
from nlp_transfer.artifacts.card import CardInfo
from nlp_transfer.cli import run_main
from nlp_transfer.config import TRAINING_DEFAULTS, ModelArguments, TransferTrainingArguments, to_serialisable
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.metrics import make_compute_metrics
from nlp_transfer.tasks.classification import round_trip_inputs

logger = logging.getLogger("nlp_transfer.recipes.multitask")
TASK = tasks.CLASSIFICATION
ARG_TYPES = (ModelArguments, multitask.MultiTaskArguments, TransferTrainingArguments)
# length-grouped batching is per dataset; the task sampler draws its own batches
DEFAULTS = {**TRAINING_DEFAULTS, "train_sampling_strategy": "random"}


def main(argv: list[str] | None = None) -> dict:
    # ---- 1. configuration, every task entry checked, output folder, seed: before anything loads
    job = run.start("multitask", argv, ARG_TYPES, defaults=DEFAULTS, doc=__doc__, task=TASK)
    model_args, mt_args, training_args = job.args
    jobs = multitask.read_tasks(mt_args)
    if "ddp_find_unused_parameters" not in job.explicit:
        training_args.ddp_find_unused_parameters = True  # a batch uses one head: the others get no gradient

    # ---- 2. data: each task loaded and checked as classify does it
    if mt_args.tasks is None:
        logger.info("no tasks given: BBC News topics + CrowdFlower tweet sentiment (data_cards/)")
    for t in jobs:
        try:
            t.splits, t.labels = data.classification_from_args(
                data.load_from_args(t.data_args), t.data_args, seed=training_args.seed
            )
        except NLPTransferError as e:
            raise NLPTransferError(f"task {t.name}: {e}") from None

    # ---- 3. one tokenizer and encoder, a head per task, the transfer strategy on the shared encoder
    tokenizer = modeling.tokenizer_for(model_args, job.model_path)
    first = modeling.classifier_for(model_args, job.model_path, jobs[0].labels, tokenizer)
    model = multitask.build_model(first, jobs)
    lora = multitask.apply_strategy(model, job.strategy, model_args)

    # ---- 4. tokenise each task, Trainer, train and evaluate every task
    train_sets, evals = [], {"validation": {}, "test": {}}
    for i, t in enumerate(jobs):
        t.max_seq_length = modeling.fit_max_length(t.data_args.max_seq_length, first.config)
        with training_args.main_process_first(desc=f"tokenizing {t.name}"):
            t.tokenized = data.tokenize_classification(t.splits, tokenizer, max_seq_length=t.max_seq_length)
        for split, ds in t.tokenized.items():
            ds = multitask.with_task_id(ds, i)
            if split == "train":
                train_sets.append(ds)
            else:
                evals[split][t.name] = ds
    trainer = multitask.MultiTaskTrainer(
        model=model,
        args=training_args,
        train_dataset=multitask.TasksDataset(train_sets),
        eval_dataset=job.eval_split({k: v for k, v in evals.items() if v}),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        tasks=jobs,
        sampling=mt_args.sampling,
        temperature=mt_args.sampling_temperature,
    )
    trainer.task_metrics = {t.name: make_compute_metrics(t.labels.problem_type) for t in jobs}
    metrics = run.train(job, trainer, {k: v for k, v in evals.items() if v})

    # ---- 5. finish, per task: out/<task>/ saved, round trip checked, card; then out/metrics.json last
    return _finish(job, trainer, model, jobs, lora, metrics, mt_args, tokenizer)


def _finish(job, trainer, model, jobs, lora, metrics, mt_args, tokenizer) -> dict:
    from nlp_transfer.artifacts import distributed

    distributed.prepare_export(trainer)
    names = [t.name for t in jobs]
    trust = bool(getattr(job.strategy_args, "trust_remote_code", False))

    def load_base(config):  # LoRA: the untrained base a task's adapter folder is rebuilt on
        return TASK.load_base(job.model_path, config, trust)

    per_task = {}
    for t in jobs:
        examples = round_trip_inputs(t.splits)
        exported = multitask.task_model(model, t.name, lora, load_base, examples, tokenizer, t.max_seq_length)
        others = [n for n in names if n != t.name]
        sub = dataclasses.replace(
            job,
            output_dir=os.path.join(job.output_dir, t.name),
            push=hub.PushTarget(f"{job.push.repo_id}-{t.name}", job.push.private, job.push.revision)
            if job.push else None,
        )  # fmt: skip
        view = multitask.TaskTrainerView(
            trainer, exported, multitask.task_log_history(trainer.state.log_history, t.name, names)
        )
        if trainer.is_world_process_zero():
            os.makedirs(sub.output_dir, exist_ok=True)
        task_metrics = {k: v for k, v in metrics.items() if k.startswith("train_")}
        task_metrics.update(multitask.task_metrics({k: v for k, v in metrics.items() if not k.startswith("train_")},
                                                   t.name, names))  # fmt: skip
        per_task[t.name] = run.finish(
            sub,
            view,
            task_metrics,
            export=tasks.Export(tokenizer, t.max_seq_length, examples, label2id=t.labels.label2id),
            card=CardInfo(
                data.dataset_label(t.data_args),
                {
                    "training examples": len(t.splits["train"]),
                    "trained jointly with": ", ".join(others),
                    "task sampling": mt_args.sampling,
                    "loss weight": t.loss_weight,
                },
                label_names=t.labels.names,
                problem_type=t.labels.problem_type,
                tags=["multitask"],
                extra_section=f"## Multi-task training\n\nThis model's encoder was trained jointly on {len(names)} "
                f"tasks ({', '.join(names)}), one head each, batches drawn by {mt_args.sampling} sampling; this "
                f"folder holds the encoder with the `{t.name}` head. The other tasks' folders are its siblings.",
            ),  # fmt: skip
        )
    if not trainer.is_world_process_zero():
        return metrics
    metrics["tasks"] = {n: {k: v for k, v in m.items() if k != "output_dir"} for n, m in per_task.items()}
    stage = folder.staging_dir(job.output_dir)
    folder.write_run_config(os.path.join(stage, folder.RUN_CONFIG_FILE), to_serialisable(*job.args))
    multitask.summary_card(os.path.join(stage, folder.CARD_FILE), job.strategy_args.model_name_or_path, jobs,
                           per_task, mt_args.sampling, job.strategy.name)  # fmt: skip
    report.write_metrics(os.path.join(stage, folder.FINISHED_MARKER), metrics)
    folder.publish(stage, job.output_dir)
    folder.release_output_dir(job.output_dir)
    logger.info("multitask: %d task folders in %s", len(jobs), os.path.abspath(job.output_dir))
    metrics["output_dir"] = job.output_dir
    return metrics


if __name__ == "__main__":
    sys.exit(run_main(main))
