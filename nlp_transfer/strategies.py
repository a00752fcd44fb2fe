"""Transfer strategies: which weights of a pretrained task model train. One registry; a new method is one entry.

    full      every weight trains.
    frozen    feature extraction: the backbone (``model.base_model``) is frozen, the new task head trains.
    partial   the embeddings and the bottom N transformer layers are frozen; the rest and the head train.
    lora      PEFT LoRA adapters on the attention projections (PEFT's per-architecture choice) plus the task head,
              which PEFT trains in full and saves with the adapter (``modules_to_save``).

Each `Strategy` says how it is applied, its default learning rate (used when the user sets none), whether it writes
an adapter (the export then saves PEFT files, can merge them and checks the folder the PEFT way too), and what the
model card says about it. Adding a PEFT method (IA3, ...) is one `register(Strategy(...))` here; recipes, export and
cards read the entry, never the strategy's name. See docs/ARCHITECTURE.md, "Adding a strategy".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import NLPTransferError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Strategy:
    """One transfer strategy.

    Args:
        name (`str`): the ``--strategy`` value.
        help (`str`): one line for ``--help``.
        default_learning_rate (`float`): used when neither the YAML nor the command line sets ``--learning_rate``
            (measured reasons in docs/DESIGN_NOTES.md).
        apply (`Callable[[model, args, task_type], model]`): freezes or wraps the task model; ``args`` holds the
            strategy options (`nlp_transfer.config.StrategyArguments`), ``task_type`` is the task's PEFT task type.
        writes_adapter (`bool`, defaults to `False`): the trained model is a `peft.PeftModel`; the folder holds
            adapter files, ``--merge_lora`` / ``--save_base_model`` apply.
        card_line (`Callable[[args, model], str]`, *optional*): a markdown bullet for the card's training section.
        head_only (`bool`, defaults to `False`): only the task head trains, so its input is a fixed function of the
            example: the recipes then train the head on cached backbone features (`nlp_transfer.features`,
            ``--cache_features``).
    """

    name: str
    help: str
    default_learning_rate: float
    apply: Callable
    writes_adapter: bool = False
    card_line: Callable | None = None
    head_only: bool = False

    @property
    def library_name(self) -> str:
        """The card's ``library_name``: what loads the folder."""
        return "peft" if self.writes_adapter else "transformers"

    @property
    def tags(self) -> list[str]:
        return [self.name] + (["peft"] if self.writes_adapter and self.name != "peft" else [])


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    STRATEGIES[strategy.name] = strategy
    return strategy


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise NLPTransferError(f"unknown strategy '{name}': choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def apply(model, args, *, task_type: str = "SEQ_CLS"):
    """Apply ``args.strategy`` to ``model`` and log what trains; returns the model to train."""
    strategy = get(args.strategy)
    model = strategy.apply(model, args, task_type)
    trainable, total = count_parameters(model)
    logger.info(
        "strategy %s: %s trainable of %s parameters (%.2f%%)",
        strategy.name,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return model


# ------------------------------------------------------------------------------------------------ the entries
def _full(model, args, task_type):
    return model


def _frozen(model, args, task_type):
    for p in model.base_model.parameters():
        p.requires_grad = False
    return model


def layer_list(backbone: torch.nn.Module, num_layers: int | None) -> tuple[str, torch.nn.ModuleList]:
    """The backbone's transformer layers (the first `ModuleList` of ``num_layers`` modules) and its name."""
    for name, module in backbone.named_modules():
        if (
            isinstance(module, torch.nn.ModuleList)
            and len(module) > 0
            and (num_layers is None or len(module) == num_layers)
        ):
            return name, module
    raise NLPTransferError(
        f"could not find the transformer layers of {type(backbone).__name__} for --strategy partial: use "
        "--strategy frozen or lora instead"
    )


def _partial(model, args, task_type):
    backbone = model.base_model
    layers_name, layers = layer_list(backbone, getattr(model.config, "num_hidden_layers", None))
    n = len(layers) // 2 if args.num_frozen_layers is None else args.num_frozen_layers
    if not 0 <= n <= len(layers):
        raise NLPTransferError(f"--num_frozen_layers must be between 0 and {len(layers)} for this model, got {n}")
    # "embeddings" = every backbone parameter registered before the first layer (token, position, type
    # embeddings and their norm), which holds for BERT, GPT-2, Llama and the other HF architectures.
    first_layer = {id(p) for p in layers[0].parameters()}
    for p in backbone.parameters():
        if id(p) in first_layer:
            break
        p.requires_grad = False
    for layer in layers[:n]:
        for p in layer.parameters():
            p.requires_grad = False
    logger.info("partial: froze the embeddings and %d of %d layers (%s)", n, len(layers), layers_name)
    return model


def default_lora_targets(model) -> list[str] | str:
    """PEFT's default LoRA targets for this architecture, or "all-linear" when PEFT has no entry for it."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as mapping

    model_type = getattr(model.config, "model_type", None)
    if isinstance(getattr(model.config, "backbone", None), dict):  # a pooled classifier: its backbone's entry
        model_type = model.config.backbone.get("model_type", model_type)
    targets = mapping.get(model_type)
    return list(targets) if targets else "all-linear"


def _lora(model, args, task_type):
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = args.lora_target_modules or default_lora_targets(model)
    # GPT-2-style Conv1D layers store weights transposed; PEFT needs to know (it warns and fixes it otherwise)
    conv1d = isinstance(targets, list) and any(
        isinstance(m, Conv1D) and n.split(".")[-1] in targets for n, m in model.named_modules()
    )
    config = LoraConfig(
        task_type=task_type,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=conv1d,
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as e:
        raise NLPTransferError(
            f"LoRA could not be applied ({str(e).splitlines()[0][:200]}): check the --lora_* options"
        ) from None
    logger.info("lora: r=%d alpha=%d dropout=%s targets=%s", args.lora_r, args.lora_alpha, args.lora_dropout, targets)
    return model


def _lora_card_line(args, model, head: str) -> str:
    targets = args.lora_target_modules or default_lora_targets(model.get_base_model())
    return (
        f"- LoRA: r={args.lora_r}, alpha={args.lora_alpha}, dropout={args.lora_dropout}, targets={targets}; "
        f"{head} is trained in full and saved with the adapter."
    )


# A frozen backbone leaves a linear probe, whose best step depends on the feature scale: MiniLM-L6's pooled features
# have std 0.06, and on BBC News 1e-3 underfit badly (73% held-out) where 3e-2 gave 91.5% and 1e-1 93.3%
# (recipes/README.md). LoRA on short CPU budgets likewise wants more than the 4e-4..5e-4 of the LoRA paper's long
# runs: on SST-2 (8k rows, 2 epochs) 2e-3 gave 83.7% where 5e-4 gave 81.3%. Shipped configs set measured values.
register(Strategy("full", "train every weight", 5e-5, _full))
register(
    Strategy(
        "frozen",
        "feature extraction: backbone frozen, its features computed once and cached, new head trained on them",
        3e-2,
        _frozen,
        head_only=True,
    )
)
register(Strategy("partial", "embeddings and the bottom --num_frozen_layers layers frozen", 5e-5, _partial))
register(
    Strategy("lora", "PEFT LoRA adapters plus the head", 1e-3, _lora, writes_adapter=True, card_line=_lora_card_line)
)
