"""Knowledge distillation: the losses, a `Trainer` that uses them, students cut from a teacher, teacher loading,
the on-disk teacher-output cache and the CPU speed measurement of the compression report.

Losses (per batch; ``alpha``, ``T``, ``hidden_weight`` and ``attention_weight`` come from the command line)::

    loss = alpha * KD + (1 - alpha) * CE + hidden_weight * HID + attention_weight * ATT

    KD  = T^2 * mean_rows KL( softmax(teacher / T) || softmax(student / T) )       (Hinton et al. 2015)
    CE  = cross-entropy with the gold label, over labelled rows only (unlabelled rows: label -100)
    HID = mean over mapped layer pairs of the MSE between student hidden states (through a learned linear
          projection when the widths differ) and teacher hidden states, over real (non-padding) tokens
    ATT = mean over mapped layer pairs of KL(teacher attention || student attention), per head and real query
          token (MiniLM-style), when both have the same number of heads

T^2 keeps the gradient scale of the soft term independent of T, so ``alpha`` means the same at every temperature.
A batch with no labelled row uses KD alone (its CE term would be empty).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

MASK = -1e4  # QA: score of positions outside the distribution (question, special and padding tokens)
PROJECTION_FILE = "distill_projections.pt"  # in checkpoints only: the hidden-state projections, for resuming
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


# ------------------------------------------------------------------------------------------------ losses
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target loss: ``T^2 * mean over rows of KL(softmax(teacher/T) || softmax(student/T))``."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl.mean() * (t * t)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * KD + (1 - alpha) * CE``; CE over rows whose label is not -100. With no labelled row: KD alone."""
    soft = kd_loss(student_logits, teacher_logits, temperature)
    if labels is None or alpha >= 1.0:
        return soft
    labelled = labels != -100
    if not bool(labelled.any()):
        return soft
    hard = F.cross_entropy(student_logits[labelled].float(), labels[labelled])
    return alpha * soft + (1.0 - alpha) * hard


def hidden_state_loss(
    student_hidden: tuple[torch.Tensor, ...],
    teacher_hidden: tuple[torch.Tensor, ...],
    pairs: list[tuple[int, int]],
    attention_mask: torch.Tensor,
    projections: nn.ModuleList | None = None,
) -> torch.Tensor:
    """Mean over ``pairs`` (student index, teacher index into the ``hidden_states`` tuples; 0 = embeddings) of the
    per-token MSE over real tokens, after ``projections[k]`` maps student width to teacher width."""
    mask = attention_mask.unsqueeze(-1).float()
    n_tokens = mask.sum().clamp(min=1)
    total = student_hidden[0].new_zeros((), dtype=torch.float32)
    for k, (s, t) in enumerate(pairs):
        hs = student_hidden[s].float()
        if projections is not None:
            hs = projections[k](hs)
        ht = teacher_hidden[t].float()
        total = total + (((hs - ht) ** 2) * mask).sum() / (n_tokens * ht.shape[-1])
    return total / max(len(pairs), 1)


def attention_loss(
    student_attn: tuple[torch.Tensor, ...],
    teacher_attn: tuple[torch.Tensor, ...],
    pairs: list[tuple[int, int]],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean over layer ``pairs`` of KL(teacher || student) between attention distributions (batch, heads, query,
    key), averaged over heads and real query tokens."""
    q_mask = attention_mask.float()[:, None, :]  # (B, 1, Q)
    total = student_attn[0].new_zeros((), dtype=torch.float32)
    for s, t in pairs:
        a_s = student_attn[s].float().clamp(min=1e-12)
        a_t = teacher_attn[t].float().clamp(min=1e-12)
        kl = (a_t * (a_t.log() - a_s.log())).sum(-1)  # (B, H, Q)
        total = total + (kl * q_mask).sum() / (q_mask.sum() * kl.shape[1]).clamp(min=1)
    return total / max(len(pairs), 1)


def check_options(args) -> None:
    """Refuse impossible distillation settings (a `DistillArguments`) before anything loads."""
    if not args.teacher_name_or_path:
        raise NLPTransferError(
            "no teacher: pass --teacher_name_or_path <folder>, e.g. the output of "
            "`python -m nlp_transfer.recipes.classify --output_dir teacher/`"
        )
    if args.temperature <= 0:
        raise NLPTransferError(f"--temperature must be > 0, got {args.temperature}")
    if not 0.0 <= args.alpha <= 1.0:
        raise NLPTransferError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.hidden_weight < 0 or args.attention_weight < 0:
        raise NLPTransferError("--hidden_weight and --attention_weight must be >= 0")


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


# ------------------------------------------------------------------------------------------- teacher loading
def has_trained_labels(config) -> bool:
    """True when the config names its labels (a fine-tuned head), not ``LABEL_0..`` placeholders."""
    names = list((getattr(config, "id2label", None) or {}).values())
    return bool(names) and not all(_GENERIC_LABEL.match(str(n)) for n in names)


def teacher_task(config) -> str:
    """``"qa"`` for a question-answering checkpoint, ``"classification"`` for a sequence classifier (or unknown)."""
    archs = getattr(config, "architectures", None) or []
    return "qa" if any(a.endswith("ForQuestionAnswering") for a in archs) else "classification"


def _check_teacher_config(config, where: str, task: str) -> None:
    archs = getattr(config, "architectures", None) or []
    suffix = "ForQuestionAnswering" if task == "qa" else "ForSequenceClassification"
    if archs and not any(a.endswith(suffix) for a in archs):
        raise NLPTransferError(
            f"the teacher {where} is a {archs[0]} model, not a sequence classifier or extractive QA model: distil "
            "from a folder made by `nlp-transfer classify`/`sentiment`/`qa`, or another *ForSequenceClassification "
            "/ *ForQuestionAnswering checkpoint"
        )


def load_teacher(
    name_or_path: str,
    *,
    base_model: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    task: str = "classification",
) -> tuple[nn.Module, dict]:
    """Load a fine-tuned sequence classifier (``task="qa"``: extractive QA model) as a plain model in eval mode,
    LoRA adapters merged in.

    Accepts a full model folder or Hub id, a toolkit LoRA folder (adapter + embedded base weights, or ``merged/``),
    or an adapter-only folder whose base is ``base_model`` or the one its ``adapter_config.json`` names.

    Returns:
        `(model, info)`: info has ``kind`` ("full" or "lora"), ``base`` (LoRA: the base checkpoint) and ``path``.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoModelForSequenceClassification
    from transformers import logging as hf_logging

    from .modeling import load_error, resolve_model_path

    auto = AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification
    head_names = ("qa_outputs",) if task == "qa" else ("classifier", "score")

    path = resolve_model_path(name_or_path)
    kwargs = {"trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    adapter_cfg_path = os.path.join(path, "adapter_config.json")
    is_adapter = os.path.isdir(path) and os.path.isfile(adapter_cfg_path)
    if is_adapter and os.path.isfile(os.path.join(path, "merged", "config.json")):
        path, is_adapter = os.path.join(path, "merged"), False  # the run already wrote a merged copy
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if is_adapter:
            raise NLPTransferError(
                f"the teacher adapter {name_or_path} has no config.json with its label names: distil from the "
                "output folder of `nlp-transfer classify` (it writes one), or from a full model"
            ) from None
        raise load_error(name_or_path, e) from None
    if is_adapter:  # the config may be the base's (architectures BertModel...): the adapter's task type decides
        with open(adapter_cfg_path, encoding="utf-8") as f:
            peft_task = json.load(f).get("task_type")
        if peft_task not in (None, "QUESTION_ANS" if task == "qa" else "SEQ_CLS"):
            raise NLPTransferError(
                f"the teacher adapter {name_or_path} was trained for {peft_task}, not "
                f"{'extractive QA' if task == 'qa' else 'sequence classification'}: distil from a classifier or QA "
                "adapter"
            )
    else:
        _check_teacher_config(config, name_or_path, task)
    if task != "qa" and not has_trained_labels(config) and not is_adapter:
        logger.warning("the teacher's labels have no names (%s); check it is a fine-tuned classifier", config.id2label)
    info = {"kind": "full", "path": name_or_path, "base": None}
    verbosity = hf_logging.get_verbosity()
    try:
        if not is_adapter:
            try:
                model, loading = auto.from_pretrained(path, config=config, output_loading_info=True, **kwargs)
            except (OSError, ValueError, ImportError) as e:
                raise load_error(name_or_path, e) from None
            missing = list(loading.get("missing_keys", []))
            head_missing = [k for k in missing if any(h in k for h in head_names)]
            if head_missing:
                raise NLPTransferError(
                    f"the teacher {name_or_path} has no trained {'span' if task == 'qa' else 'classification'} head "
                    f"({head_missing[0]} is missing): fine-tune it first, e.g. with `nlp-transfer "
                    f"{'qa' if task == 'qa' else 'classify'}`, and distil from that folder"
                )
            if missing:
                raise NLPTransferError(
                    f"the teacher {name_or_path} is missing weights ({missing[0]}, ...): is it a complete checkpoint?"
                )
        else:
            from peft import PeftConfig, PeftModel

            peft_cfg = PeftConfig.from_pretrained(path)
            embedded = os.path.join(path, "model.safetensors")
            hf_logging.set_verbosity_error()  # the base has no trained head: the adapter brings it
            if os.path.isfile(embedded) and base_model is None:
                model = auto.from_config(config, **kwargs)
                model.load_state_dict(load_file(embedded), strict=False)
                info["base"] = peft_cfg.base_model_name_or_path
            else:
                base_name = base_model or peft_cfg.base_model_name_or_path
                try:
                    base_path = resolve_model_path(base_name)
                    if task == "qa":
                        from .qa import load_qa_model

                        model = load_qa_model(base_path, config=config, trust_remote_code=trust_remote_code)
                    else:
                        model = auto.from_pretrained(base_path, config=config, **kwargs)
                except (NLPTransferError, OSError, ValueError) as e:
                    raise NLPTransferError(
                        f"the teacher adapter's base model {base_name} can't be loaded "
                        f"({str(e).splitlines()[0][:120]}): pass its local folder with --teacher_base_model"
                    ) from None
                info["base"] = base_name
            try:
                model = PeftModel.from_pretrained(model, path).merge_and_unload()
            except (ValueError, RuntimeError, KeyError) as e:
                raise NLPTransferError(
                    f"the teacher adapter in {name_or_path} does not fit its base model "
                    f"({str(e).splitlines()[0][:160]}): pass the base it was trained on with --teacher_base_model"
                ) from None
            info["kind"] = "lora"
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model, info


# ------------------------------------------------------------------------------------------- teacher cache
def _hash_file(h, path: str) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)


def teacher_fingerprint(model: nn.Module, source: str) -> str:
    """A stable id for the teacher's weights: a hash of its weight files when it is a local folder, else of its
    parameters (LoRA teachers are merged in memory, so they are hashed from the parameters)."""
    h = hashlib.sha256()
    files = []
    if os.path.isdir(source):
        files = sorted(
            os.path.join(source, n)
            for n in os.listdir(source)
            if n.endswith(".safetensors") or n in ("config.json", "adapter_config.json")
        )
    if files:
        for path in files:
            h.update(os.path.basename(path).encode())
            _hash_file(h, path)
    else:
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(texts: list[str], pairs: list[str] | None = None) -> str:
    h = hashlib.sha256()
    for i, t in enumerate(texts):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
        if pairs is not None:
            h.update(pairs[i].encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()[:16]


@torch.inference_mode()
def teacher_logits(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    pairs: list[str] | None = None,
    *,
    max_seq_length: int,
    batch_size: int = 64,
    desc: str = "teacher logits",
) -> np.ndarray:
    """The teacher's logits for every text (rows in input order), batched by length, with a progress bar."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", mininterval=2.0):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx],
            [pairs[i] for i in idx] if pairs else None,
            truncation=True,
            max_length=max_seq_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def cached_teacher_logits(cache_dir: str, key: dict, compute):
    """Return the cached outputs for ``key`` (a dict naming teacher, data and preprocessing), or ``compute()`` them
    and store them atomically. Outputs are an array (classification) or a dict of arrays (QA windows).
    Returns `(outputs, hit)`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = os.path.join(cache_dir, f"{digest}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path) as z:
                out = {k: z[k] for k in z.files}
            logger.info("teacher outputs for %s: cache hit (%s)", key.get("split", "data"), path)
            return (out["logits"] if set(out) == {"logits"} else out), True
        except (OSError, ValueError, KeyError):
            logger.warning("teacher cache file %s is unreadable; recomputing", path)
    arr = compute()
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **(arr if isinstance(arr, dict) else {"logits": arr}))
    with open(os.path.join(cache_dir, f"{digest}.json"), "w", encoding="utf-8") as f:
        json.dump(key, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    logger.info("teacher outputs for %s cached in %s", key.get("split", "data"), path)
    return arr, False


@torch.inference_mode()
def qa_teacher_windows(
    model: nn.Module,
    tokenizer,
    questions: list[str],
    contexts: list[str],
    *,
    max_seq_length: int,
    doc_stride: int,
    batch_size: int = 32,
    desc: str = "teacher spans",
) -> dict[str, np.ndarray]:
    """The QA teacher's start/end logits on its own windows of every (question, context), flattened:
    ``start``/``end`` (all window tokens), ``offsets`` (token character spans in the context, -1 outside it),
    ``lengths`` (tokens per window) and ``example`` (example index of each window)."""
    from tqdm.auto import tqdm

    from .qa_pipeline import encode_windows

    device = next(model.parameters()).device
    enc, _ = encode_windows(tokenizer, questions, contexts, max_seq_len=max_seq_length, doc_stride=doc_stride)
    n = len(enc["input_ids"])
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    starts, ends = [None] * n, [None] * n
    order = sorted(range(n), key=lambda i: len(enc["input_ids"][i]))
    for b in tqdm(range(0, n, batch_size), desc=desc, unit="batch", mininterval=2.0):
        idx = order[b : b + batch_size]
        feats = [{k: enc[k][i] for k in keys} for i in idx]
        batch = tokenizer.pad(feats, padding=True, return_tensors="pt")
        out = model(**{k: v.to(device) for k, v in batch.items()})
        for row, i in enumerate(idx):
            length = len(enc["input_ids"][i])
            starts[i] = out.start_logits[row, :length].float().cpu().numpy()
            ends[i] = out.end_logits[row, :length].float().cpu().numpy()
    offsets = [
        np.asarray([o if o is not None else (-1, -1) for o in offs], dtype=np.int64).reshape(-1, 2)
        for offs in enc["offset_mapping"]
    ]
    return {
        "start": np.concatenate(starts).astype(np.float32),
        "end": np.concatenate(ends).astype(np.float32),
        "offsets": np.concatenate(offsets),
        "lengths": np.asarray([len(x) for x in starts], dtype=np.int64),
        "example": np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64),
    }


def qa_teacher_answers(examples, windows: dict[str, np.ndarray], **settings) -> dict[str, dict]:
    """The teacher's answers from its cached windows (`qa_teacher_windows`), post-processed like the student's."""
    from .qa import postprocess

    lengths = windows["lengths"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    width = int(lengths.max())

    def padded(flat: np.ndarray) -> np.ndarray:
        return np.stack([np.pad(flat[bounds[i] : bounds[i + 1]], (0, width - n)) for i, n in enumerate(lengths)])

    offsets = [
        [tuple(o) if o[0] >= 0 else None for o in windows["offsets"][bounds[i] : bounds[i + 1]].tolist()]
        for i in range(len(lengths))
    ]
    return postprocess(
        examples, windows["example"].tolist(), offsets, padded(windows["start"]), padded(windows["end"]), **settings
    )


def map_qa_targets(teacher: dict[str, np.ndarray], example_idx: list[int], offsets: list) -> tuple[list, list]:
    """Teacher span scores on the student's windows, through character offsets (works across tokenizers).

    For each student window: the teacher window of the same example whose context overlaps it most; then a student
    context token gets the start score of the teacher token that starts at the same character, and the end score of
    the teacher token that ends at the same character; position 0 (the no-answer position) gets the teacher window's
    position 0. Every other position is `MASK` (left out of the KD distribution): question, special and padding
    tokens, and boundaries the teacher's tokenizer has no token for (e.g. the middle of a word it keeps whole). With
    the same tokenizer and window settings this is the identity on context tokens and position 0.
    """
    bounds = np.concatenate([[0], np.cumsum(teacher["lengths"])])
    by_example: dict[int, list[int]] = {}
    for w, e in enumerate(teacher["example"].tolist()):
        by_example.setdefault(e, []).append(w)

    def span(offs: np.ndarray) -> tuple[int, int]:
        real = offs[offs[:, 0] >= 0]
        return (int(real[:, 0].min()), int(real[:, 1].max())) if len(real) else (0, 0)

    starts_out, ends_out = [], []
    for e, s_offs in zip(example_idx, offsets):
        s_arr = np.asarray([o if o is not None else (-1, -1) for o in s_offs], dtype=np.int64).reshape(-1, 2)
        lo, hi = span(s_arr)
        best, best_overlap = None, -1
        for w in by_example.get(int(e), []):
            t_lo, t_hi = span(teacher["offsets"][bounds[w] : bounds[w + 1]])
            overlap = min(hi, t_hi) - max(lo, t_lo)
            if overlap > best_overlap:
                best, best_overlap = w, overlap
        st = np.full(len(s_arr), MASK, dtype=np.float32)
        en = np.full(len(s_arr), MASK, dtype=np.float32)
        if best is not None:
            a, b = bounds[best], bounds[best + 1]
            t_offs, t_st, t_en = teacher["offsets"][a:b], teacher["start"][a:b], teacher["end"][a:b]
            ctx = np.nonzero(t_offs[:, 0] >= 0)[0]
            c_starts, c_ends = t_offs[ctx, 0], t_offs[ctx, 1]
            st[0], en[0] = t_st[0], t_en[0]
            start_at = {int(c): int(ctx[j]) for j, c in enumerate(c_starts)}
            end_at = {int(c): int(ctx[j]) for j, c in enumerate(c_ends)}
            for k, (cs, ce) in enumerate(s_arr.tolist()):
                if cs < 0 or ce <= cs:
                    continue
                if cs in start_at:
                    st[k] = t_st[start_at[cs]]
                if ce in end_at:
                    en[k] = t_en[end_at[ce]]
        starts_out.append(st.tolist())
        ends_out.append(en.tolist())
    return starts_out, ends_out


# --------------------------------------------------------------------------------------------------- trainer
class DistillationCollator:
    """Pads the tokenised rows and stacks the teacher's outputs: ``teacher_logits`` (classification) or
    ``teacher_start``/``teacher_end`` (QA, padded with `MASK` like the inputs); drops ``length`` and other extras."""

    model_keys = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict]) -> dict:
        feats = [{k: r[k] for k in self.model_keys if k in r} for r in rows]
        batch = dict(self.tokenizer.pad(feats, padding=True, return_tensors="pt"))
        if "label" in rows[0] or "labels" in rows[0]:
            batch["labels"] = torch.tensor([r.get("labels", r.get("label")) for r in rows], dtype=torch.long)
        for key in ("start_positions", "end_positions"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows], dtype=torch.long)
        if "teacher_logits" in rows[0]:
            batch["teacher_logits"] = torch.tensor(
                np.asarray([r["teacher_logits"] for r in rows]), dtype=torch.float32
            )
        width = batch["input_ids"].shape[1]
        for key in ("teacher_start", "teacher_end"):
            if key in rows[0]:
                out = torch.full((len(rows), width), MASK, dtype=torch.float32)
                for i, r in enumerate(rows):
                    v = r[key][:width]
                    out[i, : len(v)] = torch.tensor(v, dtype=torch.float32)
                batch[key] = out
        return batch


class DistillationTrainer(Trainer):
    """`Trainer` whose loss is the distillation loss of this module.

    Teacher logits come with each batch (``teacher_logits``, from the cache) unless a live ``teacher`` is given,
    which the hidden-state and attention losses need. ``projections`` (hidden-state loss, different widths) are
    trained with the student, saved in each checkpoint (`PROJECTION_FILE`) but not in the exported student.
    """

    def __init__(
        self,
        *args,
        temperature: float = 2.0,
        alpha: float = 0.5,
        teacher: nn.Module | None = None,
        hidden_weight: float = 0.0,
        attention_weight: float = 0.0,
        layer_map: list[tuple[int, int]] | None = None,
        projections: nn.ModuleList | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if temperature <= 0:
            raise NLPTransferError(f"--temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise NLPTransferError(f"--alpha must be between 0 and 1, got {alpha}")
        if (hidden_weight > 0 or attention_weight > 0) and teacher is None:
            raise ValueError("hidden-state/attention losses need the live teacher")
        self.temperature, self.alpha = temperature, alpha
        self.teacher = teacher.to(self.args.device) if teacher is not None else None
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        self.layer_map = layer_map or []
        self.projections = projections.to(self.args.device) if projections is not None else None
        # the loss is a batch mean: let Trainer scale it for gradient accumulation, not the model's loss kwargs
        self.model_accepts_loss_kwargs = False

    def _extra_outputs(self) -> dict:
        extra = {}
        if self.hidden_weight > 0:
            extra["output_hidden_states"] = True
        if self.attention_weight > 0:
            extra["output_attentions"] = True
        return extra

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        if "teacher_start" in inputs:
            return self._compute_qa_loss(model, inputs, return_outputs)
        labels = inputs.pop("labels", None)
        cached = inputs.pop("teacher_logits", None)
        extra = self._extra_outputs()
        outputs = model(**inputs, **extra)
        t_out = None
        if self.teacher is not None:
            with torch.no_grad():
                t_out = self.teacher(**inputs, **extra)
            t_logits = t_out.logits
        elif cached is not None:
            t_logits = cached
        else:
            raise ValueError("no teacher logits in the batch and no live teacher")
        loss = distillation_loss(outputs.logits, t_logits, labels, temperature=self.temperature, alpha=self.alpha)
        loss = loss + self._intermediate_losses(inputs, outputs, t_out)
        return (loss, outputs) if return_outputs else loss

    def _compute_qa_loss(self, model, inputs, return_outputs):
        """QA: KD on the start and end distributions over each window's positions (teacher scores mapped onto the
        student's tokens, `MASK` where no context token or [CLS] is), plus span cross-entropy on gold positions."""
        t_start, t_end = inputs.pop("teacher_start"), inputs.pop("teacher_end")
        starts, ends = inputs.pop("start_positions", None), inputs.pop("end_positions", None)
        extra = self._extra_outputs()
        outputs = model(**inputs, **extra)
        masked = t_start <= MASK / 2
        s_start = outputs.start_logits.float().masked_fill(masked, MASK)
        s_end = outputs.end_logits.float().masked_fill(t_end <= MASK / 2, MASK)
        soft = 0.5 * (kd_loss(s_start, t_start, self.temperature) + kd_loss(s_end, t_end, self.temperature))
        loss = soft
        if starts is not None and self.alpha < 1.0:
            hard = 0.5 * (
                F.cross_entropy(outputs.start_logits.float(), starts)
                + F.cross_entropy(outputs.end_logits.float(), ends)
            )
            loss = self.alpha * soft + (1.0 - self.alpha) * hard
        t_out = None
        if self.teacher is not None and extra:
            with torch.no_grad():
                t_out = self.teacher(**inputs, **extra)
        loss = loss + self._intermediate_losses(inputs, outputs, t_out)
        return (loss, outputs) if return_outputs else loss

    def _intermediate_losses(self, inputs, outputs, t_out) -> torch.Tensor | float:
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        loss = 0.0
        if self.hidden_weight > 0:
            pairs = [(0, 0)] + [(s + 1, t + 1) for s, t in self.layer_map]
            loss = loss + self.hidden_weight * hidden_state_loss(
                outputs.hidden_states, t_out.hidden_states, pairs, mask, self.projections
            )
        if self.attention_weight > 0:
            loss = loss + self.attention_weight * attention_loss(
                outputs.attentions, t_out.attentions, self.layer_map, mask
            )
        return loss

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.projections is not None and not any(
            p is q for g in optimizer.param_groups for p in g["params"] for q in self.projections.parameters()
        ):
            optimizer.add_param_group({"params": list(self.projections.parameters()), "weight_decay": 0.0})
        return optimizer

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.projections is not None and self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            if os.path.isdir(folder):
                torch.save(self.projections.state_dict(), os.path.join(folder, PROJECTION_FILE))

    def load_projections(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, PROJECTION_FILE)
        if self.projections is not None and os.path.isfile(path):
            self.projections.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))


def make_projections(student_width: int, teacher_width: int, n: int) -> nn.ModuleList | None:
    """One learned linear map per hidden-state pair when widths differ (identity otherwise: returns None)."""
    if student_width == teacher_width:
        return None
    return nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(n))


# ------------------------------------------------------------------------------------------ size and speed
def weights_size_mb(model: nn.Module) -> float:
    """Size of the model's weights as ``save_pretrained`` writes them (safetensors of every parameter and
    persistent buffer, tied weights once), in MB (10^6 bytes)."""
    seen, total = set(), 0
    for t in list(model.state_dict().values()):
        ptr = t.untyped_storage().data_ptr(), t.shape
        if ptr in seen:
            continue
        seen.add(ptr)
        total += t.numel() * t.element_size()
    return total / 1e6


@torch.inference_mode()
def measure_speed(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    *,
    max_seq_length: int,
    pairs: list[str] | None = None,
    n_latency: int = 100,
    batch_size: int = 32,
    n_batches: int = 16,
) -> dict:
    """CPU latency at batch 1 (median ms over ``n_latency`` texts, tokenisation included) and throughput at
    ``batch_size`` (samples/s over ``n_batches`` batches, tokenisation included), after a warm-up.

    The model is measured on the CPU with torch's current thread count, in eval mode; the same texts are used for
    every model measured, so teacher and student figures are comparable. With ``pairs`` (QA: texts are questions,
    pairs their contexts) the pair is cut to ``max_seq_length`` from the context side (one window each)."""
    device = next(model.parameters()).device
    model = model.to("cpu").eval()
    n_pool = max(n_latency, batch_size * n_batches)
    pool = [(texts[i % len(texts)], pairs[i % len(texts)] if pairs else None) for i in range(n_pool)]

    def forward(batch):
        firsts = [a for a, _ in batch]
        seconds = [b for _, b in batch] if pairs else None
        enc = tokenizer(
            firsts,
            seconds,
            truncation="only_second" if pairs else True,
            max_length=max_seq_length,
            padding=True,
            return_tensors="pt",
        )
        model(**enc)

    for t in pool[:4]:
        forward([t])
    forward(pool[:batch_size])
    lat = []
    for t in pool[:n_latency]:
        t0 = time.perf_counter()
        forward([t])
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in range(n_batches):
        forward(pool[b * batch_size : (b + 1) * batch_size])
    elapsed = time.perf_counter() - t0
    model.to(device)
    return {
        "latency_ms_batch1": round(1000 * statistics.median(lat), 3),
        f"throughput_samples_per_s_batch{batch_size}": round(batch_size * n_batches / elapsed, 2),
        "threads": torch.get_num_threads(),
    }


def compression_markdown(report: dict) -> str:
    """The model card's distillation section: how the student was trained and the teacher/student table."""
    t, s, r, d = report["teacher"], report["student"], report["ratios"], report["distillation"]
    rows = [
        ("parameters", f"{t['parameters']:,}", f"{s['parameters']:,}", f"{r['parameters']:.2f}x smaller"),
        ("layers", t["layers"], s["layers"], ""),
        ("weights (MB)", f"{t['weights_mb']:.1f}", f"{s['weights_mb']:.1f}", f"{r['weights_mb']:.2f}x smaller"),
    ]
    if "latency_ms_batch1" in s:
        rows.append(
            (
                "CPU latency, batch 1 (ms)",
                f"{t['latency_ms_batch1']:.1f}",
                f"{s['latency_ms_batch1']:.1f}",
                f"{r['latency_speedup_batch1']:.2f}x faster",
            )
        )
        rows.append(
            (
                "CPU throughput, batch 32 (samples/s)",
                f"{t['throughput_samples_per_s_batch32']:.1f}",
                f"{s['throughput_samples_per_s_batch32']:.1f}",
                f"{r['throughput_speedup_batch32']:.2f}x",
            )
        )
    for k, v in (t.get("metrics") or {}).items():
        sv = (s.get("metrics") or {}).get(k)
        kept = f"{100 * sv / v:.1f}% kept" if sv is not None and v else ""
        rows.append((k, f"{v:.4f}", f"{sv:.4f}" if sv is not None else "-", kept))
    table = "\n".join(f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows)
    layers = f"teacher layers {d['student_layers']}" if d.get("student_layers") else "a pretrained student"
    extra = []
    if d.get("hidden_weight"):
        extra.append(f"hidden-state MSE x{d['hidden_weight']}")
    if d.get("attention_weight"):
        extra.append(f"attention KL x{d['attention_weight']}")
    return f"""
## Distillation

Distilled from the `{t["model"]}` teacher ({d["teacher_kind"]}) into {layers}: loss = {d["alpha"]} x KD
(T={d["temperature"]}) + {round(1 - d["alpha"], 4)} x cross-entropy{"".join(" + " + e for e in extra)}, on
{d["labelled_train_rows"]:,} labelled and {d["unlabelled_train_rows"]:,} unlabelled (soft labels only) examples.
Teacher and student measured the same way in the same run (CPU, {report["machine"]["torch_threads"]} threads;
`compression_report.json`):

| | teacher | student | ratio |
|---|---|---|---|
{table}
"""


def describe_model(
    model: nn.Module,
    tokenizer,
    *,
    name: str,
    metrics: dict,
    max_seq_length: int,
    speed_texts: list[str] | None,
    speed_pairs: list[str] | None = None,
) -> dict:
    """One side of the compression report: size, held-out ``metrics``, and (with ``speed_texts``) CPU speed."""
    side = {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": num_hidden_layers(model.config),
        "weights_mb": round(weights_size_mb(model), 2),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    if speed_texts:
        logger.info("measuring %s: CPU latency and throughput", name)
        side.update(measure_speed(model, tokenizer, speed_texts, pairs=speed_pairs, max_seq_length=max_seq_length))
    return side


def compression_report(sides: dict, distill_info: dict, *, main_metric: str | None) -> dict:
    """``compression_report.json``: both sides as measured, how the student was trained, and the ratios."""
    t, s = sides["teacher"], sides["student"]
    ratios = {
        "parameters": round(t["parameters"] / s["parameters"], 3),
        "weights_mb": round(t["weights_mb"] / s["weights_mb"], 3),
    }
    if "latency_ms_batch1" in s:
        ratios["latency_speedup_batch1"] = round(t["latency_ms_batch1"] / s["latency_ms_batch1"], 3)
        ratios["throughput_speedup_batch32"] = round(
            s["throughput_samples_per_s_batch32"] / t["throughput_samples_per_s_batch32"], 3
        )
    report = {"teacher": t, "student": s, "distillation": distill_info, "ratios": ratios}
    if main_metric:
        t_main, s_main = t["metrics"].get(main_metric), s["metrics"].get(main_metric)
        ratios["metric_kept"] = round(s_main / t_main, 4) if t_main else None
        report["main_metric"] = main_metric
    report["machine"] = {"device": "cpu", "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    return report


def log_summary(report: dict, output_dir: str) -> None:
    key = report.get("main_metric")
    if key:
        t, s = report["teacher"]["metrics"][key], report["student"]["metrics"][key]
        logger.info(
            "student %s=%.4f, teacher %.4f (%.1f%% kept)", key, s, t, 100 * (report["ratios"]["metric_kept"] or 0)
        )
    if "throughput_speedup_batch32" in report["ratios"]:
        logger.info(
            "CPU: throughput x%.2f at batch 32, latency x%.2f at batch 1; %.2fx fewer parameters",
            report["ratios"]["throughput_speedup_batch32"],
            report["ratios"]["latency_speedup_batch1"],
            report["ratios"]["parameters"],
        )
    logger.info("output written to %s", os.path.abspath(output_dir))
