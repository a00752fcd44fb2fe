"""Multi-task transfer: one shared encoder, one classification head per task, trained jointly.

What the ``multitask`` recipe composes from the classification pieces (docs/ARCHITECTURE.md, "Multi-task"):

- `MultiTaskArguments` and `read_tasks`: the ``tasks:`` list of a YAML config (or a YAML/JSON file given with
  ``--tasks``); each entry is a name, a loss weight and any `DataArguments` option (files or Hub ids, columns, text
  pairs, labels, splits), loaded and checked exactly as the classify recipe does it.
- `build_model`: the joint model. Each task's model (a *view*) is a complete ``AutoModelForSequenceClassification``
  whose encoder module is the same object as the other views' (``base_model_prefix``), so a view is at once the
  joint model seen through that task's head and a model ``save_pretrained`` writes as a pipeline-ready folder.
  Strategies: full, frozen, partial (applied to the shared encoder) and LoRA (one adapter injected into the shared
  encoder, `peft.inject_adapter_in_model`; every head trains in full).
- `TaskBatchSampler`: every batch holds one task; which task is drawn per batch from ``--sampling``.
- `MultiTaskTrainer`: a `transformers.Trainer` with that sampler, per-task loss weights, per-task evaluation (its own
  dict-of-datasets evaluation, each task with its own metrics) and checkpoints that store the shared encoder once.
- `task_model`: what one task's folder holds (the view; for LoRA a `peft.PeftModel` with the shared adapter and
  that task's head, checked against the joint model before it is exported).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import yaml
from transformers import AutoModelForSequenceClassification, Trainer

from .config import DataArguments
from .errors import NLPTransferError

logger = logging.getLogger(__name__)

SAMPLING = ("proportional", "temperature", "equal")
# per-task keys a YAML entry may hold besides DataArguments' options
_TASK_KEYS = ("name", "loss_weight")
# options that belong to the whole run (one encoder, one tokenizer): named when a task entry sets them
_GLOBAL_KEYS = ("model_name_or_path", "tokenizer_name", "strategy", "lora_r", "learning_rate", "seed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class MultiTaskArguments:
    """The tasks trained together and how batches are drawn from them."""

    tasks: str | None = field(
        default=None,
        metadata={
            "help": "The tasks: in a --config YAML a list of entries (name, loss_weight and any classify data "
            "option: train_file/validation_file/test_file or dataset_name, text_column, text_pair_column, "
            "label_column, ...); on the command line a YAML/JSON file holding that list. Default: BBC News topics "
            "and CrowdFlower tweet sentiment (built in)."
        },
    )
    sampling: str = field(
        default="proportional",
        metadata={
            "help": "Which task each batch comes from. proportional: every training example once per epoch, the "
            "tasks' batches shuffled together; temperature: task t drawn with probability ~ n_t^(1/T) "
            "(--sampling_temperature; small tasks drawn more often); equal: every task equally often.",
            "choices": list(SAMPLING),
        },
    )
    sampling_temperature: float = field(
        default=2.0, metadata={"help": "--sampling temperature: T (1 = proportional, large = equal)."}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Truncation length of every task that does not set its own."}
    )

    def __post_init__(self):
        if self.sampling not in SAMPLING:
            raise NLPTransferError(f"--sampling {self.sampling}: choose one of {', '.join(SAMPLING)}")
        if not self.sampling_temperature > 0:
            raise NLPTransferError(f"--sampling_temperature must be > 0, got {self.sampling_temperature}")
        if self.max_seq_length < 8:
            raise NLPTransferError(f"--max_seq_length must be at least 8, got {self.max_seq_length}")


DEFAULT_TASKS = [
    {"name": "topics", "dataset_name": "builtin:bbc_news", "max_train_samples": 1000, "max_eval_samples": 200},
    {"name": "sentiment", "dataset_name": "builtin:crowdflower_tweets", "max_train_samples": 1000,
     "max_eval_samples": 200, "max_seq_length": 64},
]  # fmt: skip


@dataclass
class TaskData:
    """One task of the run: its name, data options, loss weight, splits and labels."""

    name: str
    data_args: DataArguments
    loss_weight: float = 1.0
    splits: object = None  # DatasetDict, text and labels
    labels: object = None  # data.LabelInfo
    tokenized: object = None
    max_seq_length: int = 128


def task_entries(args: MultiTaskArguments) -> list[dict]:
    """The task list as given: the YAML list, the file ``--tasks`` names, or the default."""
    entries = args.tasks
    if entries is None:
        return copy.deepcopy(DEFAULT_TASKS)
    if isinstance(entries, str):
        if not os.path.isfile(entries):
            raise NLPTransferError(
                f"--tasks {entries}: no such file; give a YAML/JSON file with a list of task entries, or put the "
                "list under 'tasks:' in the --config YAML"
            )
        try:
            with open(entries, encoding="utf-8") as f:
                entries = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise NLPTransferError(
                f"--tasks {args.tasks}: not readable as YAML/JSON ({str(e).splitlines()[0]})"
            ) from None
        if isinstance(entries, dict) and "tasks" in entries:
            entries = entries["tasks"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise NLPTransferError("tasks: give a non-empty list of entries, each a mapping with at least 'name' and data")
    return entries


def read_tasks(args: MultiTaskArguments) -> list[TaskData]:
    """Check every entry (names, keys, values) before any data loads; returns the tasks with their options."""
    known = {f.name for f in dataclasses.fields(DataArguments)}
    tasks, seen = [], set()
    for i, entry in enumerate(task_entries(args)):
        name = entry.get("name")
        where = f"tasks[{i}]" + (f" ({name})" if name else "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise NLPTransferError(
                f"{where}: every task needs a 'name' of letters, digits, '_' or '-' (it names its output folder)"
            )
        if name in seen:
            raise NLPTransferError(f"{where}: two tasks are named {name!r}; give each task its own name")
        seen.add(name)
        shared = sorted(set(entry) & set(_GLOBAL_KEYS))
        if shared:
            raise NLPTransferError(
                f"{where}: {', '.join(shared)} is an option of the whole run (one shared encoder and tokenizer), "
                "not of a task: set it once at the top level"
            )
        unknown = sorted(set(entry) - known - set(_TASK_KEYS))
        if unknown:
            import difflib

            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, [*known, *_TASK_KEYS], n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise NLPTransferError(f"{where}: unknown key(s) {', '.join(hints)}; a task takes name, loss_weight and "
                                   "the classify data options (see recipes/README.md, multitask)")  # fmt: skip
        weight = entry.get("loss_weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
            raise NLPTransferError(f"{where}: loss_weight must be a number > 0, got {weight!r}")
        options = {k: v for k, v in entry.items() if k in known}
        options.setdefault("max_seq_length", args.max_seq_length)
        try:
            data_args = DataArguments(**options)
        except NLPTransferError as e:
            raise NLPTransferError(f"{where}: {e}") from None
        except (TypeError, ValueError) as e:  # a YAML value of the wrong type, e.g. max_seq_length: "long"
            raise NLPTransferError(f"{where}: a value has the wrong type ({e}); see the data options") from None
        if data_args.train_file is None and data_args.dataset_name is None:
            raise NLPTransferError(f"{where}: no data: give train_file (and validation_file) or dataset_name")
        tasks.append(TaskData(name, data_args, float(weight), max_seq_length=data_args.max_seq_length))
    if len(tasks) < 2:
        logger.warning("only one task (%s): this is single-task training; the classify recipe does the same", name)
    return tasks


# ---------------------------------------------------------------------------------------------- sampling
def task_probabilities(sizes: list[int], sampling: str, temperature: float) -> np.ndarray:
    """The share of batches each task gets: proportional to its size, to size^(1/T), or equal."""
    n = np.asarray(sizes, dtype=float)
    if sampling == "equal":
        w = np.ones_like(n)
    elif sampling == "temperature":
        w = n ** (1.0 / temperature)
    else:
        w = n
    return w / w.sum()


class TaskBatchSampler(torch.utils.data.Sampler):
    """Batches of one task each over the tasks laid end to end (task t's rows are ``offsets[t] + i``).

    An epoch has as many batches as proportional sampling needs to show every example once (the sum over tasks of
    ``ceil(n_t / batch_size)``), so ``--num_train_epochs`` and the step count mean what they mean for one task.
    ``proportional``: exactly those batches, shuffled together. ``temperature`` / ``equal``: each batch's task is
    drawn with `task_probabilities`; a task's rows are gone through in a fresh random order, again when used up
    (so a small task's rows repeat within an epoch). Seeded by ``seed`` and the epoch (`set_epoch`): every process
    of a distributed run sees the same sequence, and a resumed run the same one again.
    """

    def __init__(self, sizes: list[int], batch_size: int, *, sampling: str, temperature: float, seed: int):
        # not `self.batch_size`: accelerate's BatchSamplerShard reads that attribute and then treats a task's last,
        # shorter batch as the end of the data, so ranks drew different numbers of batches and DDP hung (measured);
        # without it every batch counts as one, whatever its length
        self.sizes, self.rows_per_batch, self.sampling, self.seed = list(sizes), batch_size, sampling, seed
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        self.probs = task_probabilities(self.sizes, sampling, temperature)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return sum(math.ceil(n / self.rows_per_batch) for n in self.sizes)

    def _batches_of(self, t: int, rng: np.random.Generator):
        while True:  # endless: the task's rows in a fresh random order each pass
            order = rng.permutation(self.sizes[t]) + self.offsets[t]
            for i in range(0, len(order), self.rows_per_batch):
                yield order[i : i + self.rows_per_batch].tolist()

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.sampling == "proportional":
            tasks = np.repeat(np.arange(len(self.sizes)), [math.ceil(n / self.rows_per_batch) for n in self.sizes])
            rng.shuffle(tasks)
        else:
            tasks = rng.choice(len(self.sizes), size=len(self), p=self.probs)
        streams = [self._batches_of(t, rng) for t in range(len(self.sizes))]
        for t in tasks:
            yield next(streams[t])


class TasksDataset(torch.utils.data.Dataset):
    """The tasks' tokenized training rows laid end to end, each row tagged with its ``task_id``."""

    def __init__(self, datasets: list):
        self.datasets = datasets
        self.offsets = np.cumsum([0] + [len(d) for d in datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> dict:
        t = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.datasets[t][int(i - self.offsets[t])]


def with_task_id(ds, task_id: int):
    """``ds`` with a ``task_id`` column (and without ``length``, which only length-grouped batching reads)."""
    ds = ds.remove_columns([c for c in ("length",) if c in ds.column_names])
    return ds.add_column("task_id", [task_id] * len(ds))


# ------------------------------------------------------------------------------------------------ model
class MultiTaskModel(torch.nn.Module):
    """The joint model: ``views[name]`` is task ``name``'s sequence classifier; all views hold the same encoder
    module. ``forward(task_id=...)`` runs the batch's task (a batch holds one task)."""

    def __init__(self, views: dict):
        super().__init__()
        self.names = list(views)
        self.views = torch.nn.ModuleDict(views)
        self.config = views[self.names[0]].config  # what Trainer reads (e.g. for logging), the first task's
        # the shared encoder's other names in state_dict(): left out of checkpoints, restored by identity on load
        self._keys_to_ignore_on_save = alias_keys(self)

    def forward(self, task_id, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        view = self.views[self.names[int(task_id.reshape(-1)[0])]]
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return view(**kwargs)

    def tie_weights(self):  # Trainer calls it after a checkpoint load that misses exactly the alias keys
        pass


def alias_keys(module: torch.nn.Module) -> list[str]:
    """state_dict keys whose tensor already appeared under an earlier key (the shared encoder's other names)."""
    seen, aliases = set(), []
    for k, v in module.state_dict(keep_vars=True).items():
        ptr = (v.data_ptr(), v.shape, v.dtype) if v.numel() else (id(v),)
        if ptr in seen:
            aliases.append(k)
        seen.add(ptr)
    return aliases


def encoder_of(view) -> torch.nn.Module:
    encoder = getattr(view, view.base_model_prefix, None)
    if not isinstance(encoder, torch.nn.Module):
        raise NLPTransferError(
            f"multitask: cannot tell the encoder of {type(view).__name__} from its head; use a BERT- or GPT-style "
            "checkpoint whose transformers class has a base model"
        )
    return encoder


def build_model(first_view, tasks: list[TaskData]) -> MultiTaskModel:
    """Views for every task on ``first_view``'s encoder (the first task's model as loaded): each other task gets the
    same architecture's head for its labels, freshly initialised (seeded)."""
    encoder = encoder_of(first_view)
    views = {tasks[0].name: first_view}
    for t in tasks[1:]:
        config = copy.deepcopy(first_view.config)
        config.id2label, config.label2id = dict(t.labels.id2label), dict(t.labels.label2id)
        config.num_labels = t.labels.num_labels
        config.problem_type = t.labels.problem_type
        view = AutoModelForSequenceClassification.from_config(config)
        setattr(view, view.base_model_prefix, encoder)
        views[t.name] = view
    return MultiTaskModel(views)


def apply_strategy(model: MultiTaskModel, strategy, model_args) -> dict:
    """The transfer strategy on the shared encoder; heads always train. Returns the LoRA config (or None)."""
    from . import strategies

    first = model.views[model.names[0]]
    if not strategy.writes_adapter:
        for name in model.names:
            strategy.apply(model.views[name], model_args, "SEQ_CLS")  # idempotent on the shared encoder
        lora = None
    else:
        from peft import LoraConfig, inject_adapter_in_model

        targets = model_args.lora_target_modules or strategies.default_lora_targets(first)
        lora = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                          target_modules=targets)  # fmt: skip
        encoder = encoder_of(first)
        try:
            inject_adapter_in_model(lora, encoder)
        except ValueError as e:
            raise NLPTransferError(
                f"LoRA could not be applied ({str(e).splitlines()[0][:200]}): check the --lora_* options"
            ) from None
        for n, p in encoder.named_parameters():
            p.requires_grad = "lora_" in n
        for name in model.names:  # the heads: everything of a view outside the encoder
            enc = {id(p) for p in encoder.parameters()}
            for p in model.views[name].parameters():
                if id(p) not in enc:
                    p.requires_grad = True
        logger.info("lora: one adapter (r=%d alpha=%d targets=%s) shared by %d tasks, each with its own head",
                    model_args.lora_r, model_args.lora_alpha, targets, len(model.names))  # fmt: skip
    model._keys_to_ignore_on_save = alias_keys(model)
    trainable, total = strategies.count_parameters(model)
    logger.info("strategy %s: %s trainable of %s parameters (%.2f%%; %d tasks share the encoder)", strategy.name,
                f"{trainable:,}", f"{total:,}", 100 * trainable / max(total, 1), len(model.names))  # fmt: skip
    return lora


# ---------------------------------------------------------------------------------------------- trainer
class MultiTaskTrainer(Trainer):
    """`Trainer` for a `MultiTaskModel`: one-task batches from `TaskBatchSampler`, loss times the task's weight,
    evaluation per task (``eval_<task>_<metric>``, each with its own ``compute_metrics``) plus ``eval_average``
    (the mean of each task's main metric; regression tasks count with their Pearson r)."""

    def __init__(self, *args, tasks: list[TaskData], sampling: str, temperature: float, **kwargs):
        self.tasks, self.sampling, self.temperature = tasks, sampling, temperature
        self.task_metrics: dict = {}
        super().__init__(*args, **kwargs)
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if getattr(self, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3:
            raise NLPTransferError(
                "multitask runs do not support DeepSpeed ZeRO-3 (its gathered export rebuilds one model class): use "
                "ZeRO-2, FSDP or DDP (recipes/accelerate/)"
            )

    def get_train_dataloader(self):
        sampler = TaskBatchSampler(
            [len(d) for d in self.train_dataset.datasets],
            self._train_batch_size,
            sampling=self.sampling,
            temperature=self.temperature,
            seed=self.args.seed,
        )
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = self.tasks[int(inputs["task_id"].reshape(-1)[0])].loss_weight
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if weight == 1.0 or not model.training:  # evaluation losses stay unweighted, comparable across runs
            return out
        return (out[0] * weight, out[1]) if return_outputs else out * weight

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        data = self.eval_dataset if eval_dataset is None else eval_dataset
        if isinstance(data, dict):  # Trainer evaluates each entry, calling back here with "<prefix>_<task>"
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            from .metrics import MAIN_METRIC

            mains = []
            for t in self.tasks:
                main = "pearson" if t.labels.problem_type == "regression" else MAIN_METRIC[t.labels.problem_type]
                value = metrics.get(f"{metric_key_prefix}_{t.name}_{main}")
                if value is not None and not math.isnan(value):
                    mains.append(value)
            if mains:
                metrics[f"{metric_key_prefix}_average"] = float(np.mean(mains))
                self.log({f"{metric_key_prefix}_average": metrics[f"{metric_key_prefix}_average"]})
            return metrics
        names = [t.name for t in self.tasks if metric_key_prefix.endswith("_" + t.name)]
        if names:
            self.compute_metrics = self.task_metrics[max(names, key=len)]
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def _save(self, output_dir=None, state_dict=None):
        """Checkpoints hold the shared encoder once (safetensors refuses tensors stored under two names)."""
        import safetensors.torch

        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        skip = set(alias_keys(model))
        state = {k: v.contiguous() for k, v in (state_dict or model.state_dict()).items() if k not in skip}
        safetensors.torch.save_file(state, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))


# ------------------------------------------------------------------------------------------------ export
def task_model(model: MultiTaskModel, name: str, lora_config, load_base, examples, tokenizer, max_len: int):
    """What task ``name``'s folder holds: its view (the joint model through that task's head). Under LoRA a
    `peft.PeftModel` on a fresh base (``load_base(config)``) with the shared adapter and this task's head copied in,
    refused unless it gives the joint model's logits on ``examples``."""
    view = model.views[name]
    if lora_config is None:
        return view
    from peft import get_peft_model

    from . import heads
    from .tasks.classification import model_logits

    head_name = heads.find_head(view)[0]
    config = dataclasses.replace(lora_config, task_type="SEQ_CLS", modules_to_save=[head_name])
    from transformers import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base's head is new here: the trained one is copied in below
    try:
        fresh = get_peft_model(load_base(view.config), config)
    finally:
        hf_logging.set_verbosity(verbosity)
    state = {k: v for k, v in view.state_dict().items() if not k.startswith(head_name + ".")}
    missing = fresh.get_base_model().load_state_dict(state, strict=False)
    lora_missing = [k for k in missing.missing_keys if "lora_" in k]
    wrapper = fresh.get_base_model().get_submodule(head_name)
    wrapper.modules_to_save["default"].load_state_dict(view.get_submodule(head_name).state_dict())
    fresh.eval()
    expected = model_logits(view, tokenizer, examples, max_len)
    got = model_logits(fresh, tokenizer, examples, max_len)
    diff = float(np.abs(expected - got).max()) if len(examples) else 0.0
    if lora_missing or diff > 1e-4:
        raise NLPTransferError(
            f"multitask: task {name}'s adapter model does not reproduce the joint model (max logit diff {diff:.1e}, "
            f"{len(lora_missing)} adapter weights not copied); please report this with your config"
        )
    return fresh


def task_log_history(log_history: list[dict], name: str, names: list[str]) -> list[dict]:
    """The run's log history as task ``name``'s own: its ``eval_<name>_x`` as ``eval_x``, other tasks' dropped."""
    out = []
    for h in log_history:
        row = {}
        for k, v in h.items():
            m = re.match(r"^(eval|test)_(.+)$", k)
            owner = next((n for n in sorted(names, key=len, reverse=True) if m and m.group(2).startswith(n + "_")),
                         None)  # fmt: skip
            if owner is None:
                if not (m and m.group(2) == "average"):
                    row[k] = v
            elif owner == name:
                row[f"{m.group(1)}_{m.group(2)[len(name) + 1 :]}"] = v
        if set(row) - {"step", "epoch"}:
            out.append(row)
    return out


def task_metrics(metrics: dict, name: str, names: list[str]) -> dict:
    return task_log_history([metrics], name, names)[0] if metrics else {}


class TaskTrainerView:
    """The run's trainer as `run.finish` sees it for one task: that task's model and log history."""

    def __init__(self, trainer, model, log_history):
        self._trainer, self.model = trainer, model
        self.state = copy.copy(trainer.state)
        self.state.log_history = log_history

    def __getattr__(self, item):
        return getattr(self._trainer, item)


def summary_card(path: str, base_model: str, tasks: list[TaskData], per_task: dict, sampling: str, strategy: str):
    lines = [
        "# Multi-task run",
        "",
        f"One {base_model} encoder trained jointly on {len(tasks)} tasks ({strategy}, sampling: {sampling}); each "
        "task's folder holds the encoder with that task's head and loads on its own:",
        "",
        "| task | folder | data | training examples | main held-out metric |",
        "|---|---|---|---|---|",
    ]
    for t in tasks:
        m = per_task[t.name]
        key = next((k for k in ("eval_accuracy", "eval_f1_micro", "eval_pearson", "eval_mse") if k in m), None)
        value = f"{key[5:]} {m[key]:.4f}" if key else "—"
        data = t.data_args.dataset_name or os.path.basename(t.data_args.train_file or "")
        lines.append(f"| {t.name} | `{t.name}/` | {data} | {len(t.splits['train'])} | {value} |")
    lines += [
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'clf = pipeline("text-classification", model="PATH/{tasks[0].name}", truncation=True)',
        "```",
        "",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
