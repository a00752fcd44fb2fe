"""Students and layer pairing: which teacher layer each student layer learns from, and students cut
from a teacher (DistilBERT-style: a copy of some of its layers)."""

from __future__ import annotations

import logging
import re

from torch import nn

from ..errors import NLPTransferError

logger = logging.getLogger(__name__)

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def check_pairing(args, teacher, student, teacher_tok, student_tok, kept: list[int] | None) -> bool:
    """Whether teacher and student tokenise alike (a cut student always does), and refuse intermediate losses that
    the pair can't support: hidden-state/attention losses compare token positions (same tokenizer), attention maps
    also need the same head count. Returns ``same_tokenizer``."""
    same = kept is not None or (
        type(teacher_tok).__name__ == type(student_tok).__name__ and teacher_tok.get_vocab() == student_tok.get_vocab()
    )
    if (args.hidden_weight > 0 or args.attention_weight > 0) and not same:
        raise NLPTransferError(
            "--hidden_weight/--attention_weight compare token positions, so teacher and student must share a "
            "tokenizer; with different tokenizers distil the outputs only (set both to 0)"
        )
    if args.attention_weight > 0:
        heads = (
            getattr(student.config, "num_attention_heads", None),
            getattr(teacher.config, "num_attention_heads", None),
        )
        if heads[0] != heads[1]:
            raise NLPTransferError(
                f"--attention_weight needs the same number of attention heads (student {heads[0]}, teacher "
                f"{heads[1]}): set it to 0"
            )
    return same


def layer_pairs(num_student: int, num_teacher: int, kept: list[int] | None = None) -> list[tuple[int, int]]:
    """Which teacher layer each student layer learns from (0-based layer indices).

    A student cut from the teacher learns from the layers it was copied from (``kept``); otherwise student layer
    i maps to teacher layer ``round((i + 1) * num_teacher / num_student) - 1`` (uniform, last to last)."""
    if kept is not None:
        return list(enumerate(kept))
    return [(i, max(0, round((i + 1) * num_teacher / num_student) - 1)) for i in range(num_student)]


# ---------------------------------------------------------------------------------- students cut from teachers
def parse_layers(spec: str | None, num_layers: int) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``, checked against the teacher's ``num_layers``; None -> every other layer."""
    if spec is None or str(spec).strip() == "":
        return list(range(0, num_layers, 2))
    try:
        layers = [int(x) for x in str(spec).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise NLPTransferError(
            f"--student_layers {spec!r} is not a comma-separated list of layer numbers (e.g. 0,2,4)"
        ) from None
    if not layers:
        raise NLPTransferError("--student_layers is empty: name at least one teacher layer (e.g. 0,2,4)")
    bad = [x for x in layers if not 0 <= x < num_layers]
    if bad:
        raise NLPTransferError(
            f"--student_layers {spec}: the teacher has {num_layers} layers (0..{num_layers - 1}), so {bad[0]} does "
            "not exist"
        )
    if any(b <= a for a, b in zip(layers, layers[1:])):
        raise NLPTransferError(f"--student_layers {spec}: give each layer once, in increasing order (e.g. 0,2,4)")
    return layers


def _layer_container(model: nn.Module, num_layers: int) -> str:
    """Dotted name of the ModuleList that holds the transformer layers (``bert.encoder.layer``, ``transformer.h``,
    ``model.layers``...)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and num_layers > 0:
            return name
    raise NLPTransferError(
        f"could not find the {num_layers} transformer layers of {type(model).__name__} to cut a student from: pass "
        "a pretrained --student_name_or_path instead"
    )


def num_hidden_layers(config) -> int:
    n = getattr(config, "num_hidden_layers", None)
    if n is None:
        raise NLPTransferError(f"the teacher's config ({type(config).__name__}) does not say how many layers it has")
    return int(n)


def student_from_teacher(teacher: nn.Module, layers: list[int]) -> nn.Module:
    """A copy of ``teacher`` (a plain, non-PEFT model) that keeps only ``layers`` (DistilBERT-style
    initialisation): embeddings, head and the kept layers' weights are the teacher's, unchanged."""
    import copy

    config = copy.deepcopy(teacher.config)
    n_teacher = num_hidden_layers(config)
    container = _layer_container(teacher, n_teacher)
    config.num_hidden_layers = len(layers)
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention types (Llama-style configs)
        config.layer_types = [config.layer_types[i] for i in layers]
    student = type(teacher)(config)
    new_index = {old: new for new, old in enumerate(layers)}
    prefix = container + "."
    state = {}
    for key, value in teacher.state_dict().items():
        if key.startswith(prefix):
            idx, rest = key[len(prefix) :].split(".", 1)
            if int(idx) not in new_index:
                continue
            key = f"{prefix}{new_index[int(idx)]}.{rest}"
        state[key] = value.clone()
    student.load_state_dict(state, strict=True)
    student.to(next(teacher.parameters()).dtype)
    logger.info("student: kept teacher layers %s of %d (%s)", layers, n_teacher, container)
    return student


def has_trained_labels(config) -> bool:
    """True when the config names its labels (a fine-tuned head), not ``LABEL_0..`` placeholders."""
    names = list((getattr(config, "id2label", None) or {}).values())
    return bool(names) and not all(_GENERIC_LABEL.match(str(n)) for n in names)
