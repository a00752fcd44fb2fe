"""Sentiment specifics on top of classification: label forms, readable label names, and long texts.

Label forms understood (``label_scheme="auto"`` detects them; the other schemes force one):

========================================  =====================================================================
labels in the data                        classes written (id order)
========================================  =====================================================================
words, any case: negative/neg,            negative, [neutral,] positive — neutral only when the data has it;
neutral/neu, positive/pos                 "very negative"/"very positive" (also very_negative, ...) give the
                                          five SST-5 classes
0/1 (ints or digit strings)               negative, positive
-1/0/1                                    negative, neutral, positive
0/1/2 (no other values)                   negative, neutral, positive (the TweetEval/SemEval order)
0..4 with a 4 (and a 0)                   very negative, negative, neutral, positive, very positive (SST-5)
1..5 star ratings (no 0; "4 stars" too)   by ``star_classes``: 2 -> 1-2 negative, 4-5 positive, 3 dropped;
                                          3 (default) -> 1-2 negative, 3 neutral, 4-5 positive;
                                          5 -> one class per star, very negative .. very positive
========================================  =====================================================================

The 2-class star mapping drops 3-star rows (as the Yelp/Amazon polarity datasets were built); the recipe logs how
many. Anything else (an unknown word, fractional scores) is an `NLPTransferError` that points at ``classify``
(arbitrary labels) or ``classify --problem_type regression`` (scores).

Long texts (``long_text``): a model reads ``max_seq_length`` tokens, so a longer review must be cut or split.

- ``head``: the first tokens (what ``pipeline(..., truncation=True)`` does by default).
- ``tail``: the last tokens; the saved tokenizer gets ``truncation_side="left"``, so the pipeline does the same.
- ``head_tail``: the first ``head_fraction`` of the budget plus the end of the text (Sun et al. 2019, "How to
  Fine-Tune BERT for Text Classification?", found head 128 + tail 382 best on IMDB). The cut is made on the text,
  at token boundaries (`shorten`), so the same function prepares text for any pipeline.
- ``windows``: every window of ``max_seq_length`` tokens overlapping by ``window_stride`` tokens; training sees
  each window with its document's label, prediction pools the windows' logits (``mean`` or ``max``) per document.

`predict` applies the strategy a model was trained with (saved in its ``config.json``) to new texts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

LABEL_SCHEMES = ("auto", "words", "binary", "three_way", "five_way", "stars")
LONG_TEXT = ("head", "tail", "head_tail", "windows")
NAMES = {
    2: ["negative", "positive"],
    3: ["negative", "neutral", "positive"],
    5: ["very negative", "negative", "neutral", "positive", "very positive"],
}
_WORDS = {
    "negative": "negative",
    "neg": "negative",
    "positive": "positive",
    "pos": "positive",
    "neutral": "neutral",
    "neu": "neutral",
    "neut": "neutral",
    "very negative": "very negative",
    "very positive": "very positive",
    "strongly negative": "very negative",
    "strongly positive": "very positive",
}
_STARS = {
    2: {1: "negative", 2: "negative", 3: None, 4: "positive", 5: "positive"},
    3: {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"},
    5: {i: NAMES[5][i - 1] for i in range(1, 6)},
}
_STAR_TEXT = re.compile(r"^([1-5])\s*(stars?)?$")
# config.json attributes that record how a sentiment model reads long texts (see `predict`)
CONFIG_KEYS = ("long_text", "head_fraction", "window_stride", "window_pooling")


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        m = _STAR_TEXT.match(v.strip().lower()) or re.match(r"^[+-]?\d+$", v.strip())
        if m:
            return int(m.group(1) if m.re is _STAR_TEXT else m.group(0))
    return None


def _word(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    key = re.sub(r"[\s_-]+", " ", v.strip().lower())
    return _WORDS.get(key)


def label_mapping(
    values: Sequence[Any], *, label_scheme: str = "auto", star_classes: int = 3
) -> tuple[dict[Any, int | None], list[str], str]:
    """Work out what sentiment labels mean.

    Args:
        values (`Sequence`): the distinct raw labels of the training data (strings or numbers).
        label_scheme (`str`, defaults to `"auto"`): one of `LABEL_SCHEMES`; ``auto`` detects it (see module doc).
        star_classes (`int`, defaults to 3): for star ratings 1-5, how many classes to map them to (2, 3 or 5).

    Returns:
        `(mapping, names, scheme)`: raw value -> class id (None = drop the row), the class names in id order, and
        the scheme used.
    """
    if label_scheme not in LABEL_SCHEMES:
        raise NLPTransferError(f"unknown --label_scheme '{label_scheme}': choose one of {', '.join(LABEL_SCHEMES)}")
    if star_classes not in _STARS:
        raise NLPTransferError(f"--star_classes must be 2, 3 or 5, got {star_classes}")
    uniq = list(dict.fromkeys(values))
    if not uniq:
        raise NLPTransferError("the training data has no labels")
    words = {v: _word(v) for v in uniq}
    ints = {v: _as_int(v) for v in uniq}
    scheme = label_scheme
    if scheme == "auto":
        if all(w is not None for w in words.values()):
            scheme = "words"
        elif all(i is not None for i in ints.values()):
            got = set(ints.values())
            if got <= {0, 1}:
                scheme = "binary"
            elif got <= {-1, 0, 1}:
                scheme = "three_way"
            elif got <= {0, 1, 2}:
                scheme = "three_way"
            elif got <= {0, 1, 2, 3, 4}:
                scheme = "five_way"
            elif got <= {1, 2, 3, 4, 5}:
                scheme = "stars"
            else:
                raise NLPTransferError(
                    f"integer labels {sorted(got)[:8]} are not a sentiment scale nlp_transfer knows (0/1, -1/0/1, "
                    "0/1/2, 0..4, stars 1..5): set --label_scheme, or use the classify recipe for arbitrary labels"
                )
        else:
            odd = next(v for v in uniq if words[v] is None and ints[v] is None)
            hint = (
                "use classify --problem_type regression for scores"
                if isinstance(odd, float)
                else "use the classify recipe for other label sets"
            )
            raise NLPTransferError(
                f"label {odd!r} is not a sentiment label (negative/neutral/positive words, 0/1, -1/0/1, 0/1/2, "
                f"0..4 or 1-5 stars): {hint}"
            )
    if scheme == "words":
        bad = [v for v, w in words.items() if w is None]
        if bad:
            raise NLPTransferError(
                f"--label_scheme words: {bad[0]!r} is not negative/neutral/positive (or very negative/very positive)"
            )
        present = set(words.values())
        names = NAMES[5] if present & {"very negative", "very positive"} else NAMES[3 if "neutral" in present else 2]
        index = {n: i for i, n in enumerate(names)}
        return {v: index[w] for v, w in words.items()}, names, scheme

    bad = [v for v, i in ints.items() if i is None]
    if bad:
        raise NLPTransferError(f"--label_scheme {scheme} needs integer labels; found {bad[0]!r}")
    allowed = {
        "binary": {0: 0, 1: 1},
        "three_way": {-1: 0, 0: 1, 1: 2} if -1 in ints.values() else {0: 0, 1: 1, 2: 2},
        "five_way": {i: i for i in range(5)},
    }
    if scheme == "stars":
        table = _STARS[star_classes]
        names = NAMES[star_classes]
        index = {n: i for i, n in enumerate(names)}
        out = {}
        for v, i in ints.items():
            if i not in table:
                raise NLPTransferError(f"star rating {v!r} is outside 1..5: fix the label or set --label_scheme")
            out[v] = None if table[i] is None else index[table[i]]
        return out, names, f"stars->{star_classes}"
    table = allowed[scheme]
    names = NAMES[{"binary": 2, "three_way": 3, "five_way": 5}[scheme]]
    outside = [v for v, i in ints.items() if i not in table]
    if outside:
        raise NLPTransferError(
            f"--label_scheme {scheme} allows labels {sorted(table)}; found {outside[0]!r}: set --label_scheme"
        )
    return {v: table[i] for v, i in ints.items()}, names, scheme


# ---------------------------------------------------------------------------------------------- long texts
def shorten(texts: list[str], tokenizer, *, max_seq_length: int, long_text: str, head_fraction: float = 0.25):
    """Cut texts longer than the token budget as ``long_text`` says (``head_tail`` only; ``head``/``tail`` are the
    tokenizer's own truncation and ``windows`` splits instead of cutting). The cut is made on the text at token
    boundaries, found with the tokenizer's offset mapping, so the result can go through any tokenizer call or
    pipeline; texts that fit are returned unchanged."""
    if long_text != "head_tail":
        return texts
    budget = max_seq_length - tokenizer.num_special_tokens_to_add()
    head = max(1, int(round(budget * head_fraction)))
    tail = budget - head
    if tail < 1:
        raise NLPTransferError("--head_fraction leaves no room for the tail: use a value below 1")
    try:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    except NotImplementedError:
        raise NLPTransferError(
            "--long_text head_tail needs a fast tokenizer (offset mapping): use head, tail or windows"
        ) from None
    out = []
    for text, offsets in zip(texts, enc["offset_mapping"]):
        if len(offsets) <= budget:
            out.append(text)
            continue
        cut_head = offsets[head - 1][1]
        cut_tail = offsets[len(offsets) - tail][0]
        out.append(text[:cut_head].rstrip() + " " + text[cut_tail:].lstrip())
    return out


def tokenize(
    dd,
    tokenizer,
    *,
    max_seq_length: int,
    long_text: str = "head",
    head_fraction: float = 0.25,
    window_stride: int = 32,
    max_windows: int | None = None,
):
    """Tokenise a DatasetDict of ``text``/``label`` rows for a long-text strategy.

    Adds ``length`` (for length-grouped batching) and, for ``windows``, ``doc_id`` (the row each window came from;
    the Trainer drops it before the forward pass). ``max_windows`` caps the windows per document in the *train*
    split only (the first ones), so one very long review can't dominate an epoch; evaluation always sees them all.
    """
    from datasets import DatasetDict

    if long_text not in LONG_TEXT:
        raise NLPTransferError(f"unknown --long_text '{long_text}': choose one of {', '.join(LONG_TEXT)}")
    if long_text == "windows" and not 0 <= window_stride < max_seq_length - tokenizer.num_special_tokens_to_add():
        raise NLPTransferError(
            f"--window_stride ({window_stride}) must be at least 0 and smaller than the {max_seq_length}-token window"
        )

    def fn(batch, split):
        texts = shorten(
            batch["text"], tokenizer, max_seq_length=max_seq_length, long_text=long_text, head_fraction=head_fraction
        )
        if long_text != "windows":
            enc = tokenizer(texts, truncation=True, max_length=max_seq_length)
            enc["label"] = batch["label"]
        else:
            enc = tokenizer(
                texts, truncation=True, max_length=max_seq_length, stride=window_stride, return_overflowing_tokens=True
            )
            owner = enc.pop("overflow_to_sample_mapping")
            keep = list(range(len(owner)))
            if split == "train" and max_windows:
                seen: dict[int, int] = {}
                keep = []
                for j, o in enumerate(owner):
                    seen[o] = seen.get(o, 0) + 1
                    if seen[o] <= max_windows:
                        keep.append(j)
            enc = {k: [v[j] for j in keep] for k, v in enc.items()}
            enc["label"] = [batch["label"][owner[j]] for j in keep]
            enc["doc_id"] = [batch["_row"][owner[j]] for j in keep]
        enc["length"] = [len(x) for x in enc["input_ids"]]
        return enc

    out = {}
    for split, ds in dd.items():
        if long_text == "windows":
            ds = ds.add_column("_row", list(range(len(ds))))
        out[split] = ds.map(
            fn,
            batched=True,
            remove_columns=ds.column_names,
            fn_kwargs={"split": split},
            desc=f"Tokenizing {split} ({long_text})",
        )
    return DatasetDict(out)


def pool_windows(logits: np.ndarray, doc_ids: Sequence[int], pooling: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Pool window logits per document, in order of first appearance: returns ``(doc_logits, first_index)``, where
    ``first_index[d]`` is the position of document ``d``'s first window (to read its label)."""
    doc_ids = np.asarray(doc_ids)
    uniq, first, inverse = np.unique(doc_ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # documents in their original order
    pooled = np.zeros((len(uniq), logits.shape[1]), dtype=np.float64)
    if pooling == "mean":
        np.add.at(pooled, inverse, logits)
        pooled /= np.bincount(inverse)[:, None]
    elif pooling == "max":
        pooled[:] = -np.inf
        np.maximum.at(pooled, inverse, logits)
    else:
        raise NLPTransferError(f"unknown --window_pooling '{pooling}': choose mean or max")
    return pooled[order], first[order]


class WindowedMetrics:
    """``compute_metrics`` for window-level predictions: pools them per document, then scores documents.

    Set ``doc_ids`` to the ``doc_id`` column of the split about to be evaluated (the recipe does this before each
    ``trainer.evaluate``). Predictions must come back in dataset order: in transformers 5 that means a sequential
    eval sampler, i.e. not ``train_sampling_strategy="group_by_length"`` (which reorders evaluation too).
    """

    def __init__(self, pooling: str = "mean"):
        self.pooling = pooling
        self.doc_ids: list[int] | None = None
        self.last = None  # (document logits, references) of the last evaluation, as `metrics.ClassificationMetrics`

    def __call__(self, eval_pred) -> dict[str, float]:
        from .metrics import compute_from_logits

        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        if self.doc_ids is None or len(self.doc_ids) != len(logits):
            raise RuntimeError("WindowedMetrics.doc_ids does not match the evaluated split")
        pooled, first = pool_windows(logits, self.doc_ids, self.pooling)
        self.last = (pooled, np.asarray(eval_pred.label_ids)[first])
        out = compute_from_logits(pooled, self.last[1], "single_label_classification")
        out["windows_per_doc"] = float(len(logits) / len(first))
        return out


def predict(
    model: str, texts: list[str], *, batch_size: int = 32, device: str | None = None, trust_remote_code: bool = False
) -> list[dict]:
    """Classify ``texts`` with a sentiment model folder the way it was trained to read long texts.

    For ``head`` and ``tail`` models this gives what ``pipeline("text-classification", model, truncation=True)``
    gives; ``head_tail`` and ``windows`` need this function (or `shorten` before a pipeline, for head_tail).

    ``trust_remote_code=True`` loads a folder trained with ``--pooling mean|cls|last`` (it carries pooled_model.py).

    Returns:
        One ``{"label": name, "score": probability}`` per text.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    clf = AutoModelForSequenceClassification.from_pretrained(model, trust_remote_code=trust_remote_code).eval()
    if device:
        clf.to(device)
    cfg = clf.config
    long_text = getattr(cfg, "long_text", "head")
    max_len = tokenizer.model_max_length
    texts = shorten(
        list(texts),
        tokenizer,
        max_seq_length=max_len,
        long_text=long_text,
        head_fraction=getattr(cfg, "head_fraction", 0.25),
    )
    kwargs: dict[str, Any] = {"truncation": True, "max_length": max_len, "padding": True, "return_tensors": "pt"}
    logits_all = []
    doc_ids: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            if long_text == "windows":
                enc = tokenizer(
                    chunk, stride=getattr(cfg, "window_stride", 32), return_overflowing_tokens=True, **kwargs
                )
                owner = enc.pop("overflow_to_sample_mapping").tolist()
                doc_ids += [start + o for o in owner]
            else:
                enc = tokenizer(chunk, **kwargs)
            enc = {k: v.to(clf.device) for k, v in enc.items()}
            logits_all.append(clf(**enc).logits.float().cpu().numpy())
    logits = np.concatenate(logits_all)
    if long_text == "windows":
        logits, _ = pool_windows(logits, doc_ids, getattr(cfg, "window_pooling", "mean"))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return [{"label": cfg.id2label[int(p.argmax())], "score": float(p.max())} for p in probs]


# ------------------------------------------------------------------------------- the recipe's pieces
@dataclass
class SentimentArguments:
    """What sentiment labels mean and how long texts are read."""

    label_scheme: Literal["auto", "words", "binary", "three_way", "five_way", "stars"] = field(
        default="auto",
        metadata={
            "help": "auto detects: words (negative/neutral/positive, any case), binary 0/1, three_way -1/0/1 or "
            "0/1/2, five_way 0..4, stars 1..5. Set it when auto guesses wrong."
        },
    )
    star_classes: int = field(
        default=3,
        metadata={
            "help": "Star ratings 1-5 become 2 classes (1-2 negative, 4-5 positive, 3-star rows dropped), 3 (1-2 "
            "negative, 3 neutral, 4-5 positive) or 5 (one class per star)."
        },
    )
    long_text: Literal["head", "tail", "head_tail", "windows"] = field(
        default="head_tail",
        metadata={
            "help": "Texts over --max_seq_length tokens: keep the head, the tail, head+tail (--head_fraction of "
            "the budget from the start, the rest from the end), or read every window and pool their logits."
        },
    )
    head_fraction: float = field(
        default=0.25, metadata={"help": "head_tail: share of the token budget from the start."}
    )
    window_stride: int = field(
        default=32, metadata={"help": "windows: tokens each window overlaps the previous one by."}
    )
    window_pooling: Literal["mean", "max"] = field(
        default="mean", metadata={"help": "windows: how a document's window logits are combined."}
    )
    max_windows: int | None = field(
        default=8, metadata={"help": "windows: at most this many (first) windows per training document."}
    )

    def __post_init__(self):
        if self.star_classes not in (2, 3, 5):
            raise NLPTransferError(f"--star_classes must be 2, 3 or 5, got {self.star_classes}")
        if not 0 < self.head_fraction < 1:
            raise NLPTransferError(f"--head_fraction must be between 0 and 1, got {self.head_fraction}")
        if self.window_stride < 0:
            raise NLPTransferError(f"--window_stride must be at least 0, got {self.window_stride}")
        if self.max_windows is not None and self.max_windows < 1:
            raise NLPTransferError(f"--max_windows must be at least 1, got {self.max_windows}")

    def config_entries(self) -> dict:
        """How the model reads long texts, stored in its ``config.json`` (`predict` reads it back)."""
        return {k: getattr(self, k) for k in CONFIG_KEYS}

    def describe(self) -> str:
        """The card's "long texts" line."""
        if self.long_text == "head_tail":
            return f"head_tail (head {self.head_fraction:.0%} of the budget)"
        if self.long_text == "windows":
            return (
                f"windows (stride {self.window_stride}, {self.window_pooling} pooling); predict with "
                "nlp_transfer.sentiment.predict"
            )
        return self.long_text


def map_labels(raw, *, label_column: str, label_scheme: str, star_classes: int):
    """Replace the raw label column by sentiment class ids in every split; drop rows the mapping drops."""
    from datasets import ClassLabel

    train = raw["train"]
    if label_column not in train.column_names:
        raise NLPTransferError(
            f"column '{label_column}' not found in the train split; its columns are: {', '.join(train.column_names)} "
            "(choose one with --label_column)"
        )
    values: set = set()  # the scheme is read off every split's labels, so dev/test spellings map too
    for ds in raw.values():
        if label_column in ds.column_names:
            feat = ds.features[label_column]
            vals = {v for v in ds[label_column] if v is not None}
            if vals <= {-1} and ds is not train:  # an unlabelled test split (GLUE marks it -1)
                continue
            values |= {feat.names[v] for v in vals if v >= 0} if isinstance(feat, ClassLabel) else vals
    values = sorted(values, key=str)
    mapping, names, scheme = label_mapping(values, label_scheme=label_scheme, star_classes=star_classes)
    out = {}
    for split, ds in raw.items():
        if label_column not in ds.column_names:
            out[split] = ds
            continue
        split_feat = ds.features[label_column]

        def code(v):  # class id; -1 dropped by the mapping (3-star rows for 2 classes); -2 unknown; None missing
            if v is None:
                return None
            if v not in mapping:
                return -2
            return -1 if mapping[v] is None else mapping[v]

        def encode(batch, split_feat=split_feat):
            vals = batch[label_column]
            if isinstance(split_feat, ClassLabel):
                vals = [split_feat.names[v] if v is not None and v >= 0 else None for v in vals]
            return {"_sentiment": [code(v) for v in vals]}

        ds = ds.map(encode, batched=True, desc=f"Mapping {split} labels")
        ids = ds["_sentiment"]
        unknown = sum(1 for i in ids if i == -2)
        if unknown:
            first = next(v for v, i in zip(ds[label_column], ids) if i == -2)
            raise NLPTransferError(
                f"the {split} split has {unknown} row(s) with a label the train split lacks (first: {first!r}): "
                "drop them, or train on data that has them"
            )
        dropped = sum(1 for i in ids if i == -1)
        if dropped:
            logger.warning("%s: dropped %d row(s) the %s mapping leaves out (3-star ratings)", split, dropped, scheme)
            ds = ds.filter(lambda b: [i != -1 for i in b["_sentiment"]], batched=True)
        ds = ds.remove_columns(label_column).rename_column("_sentiment", label_column)
        out[split] = ds
    logger.info("labels: %s scheme -> %s", scheme, names)
    return type(raw)(out), names, scheme


def trained_labels(model, tokenizer, texts, names, max_len, sent_args) -> list[str]:
    """The trained (in-memory) model's labels for ``texts``, prepared exactly as for evaluation."""
    import torch
    from datasets import Dataset, DatasetDict
    from transformers import DataCollatorWithPadding

    one = DatasetDict({"validation": Dataset.from_dict({"text": texts, "label": [0] * len(texts)})})
    feats = tokenize(
        one,
        tokenizer,
        max_seq_length=max_len,
        long_text=sent_args.long_text,
        head_fraction=sent_args.head_fraction,
        window_stride=sent_args.window_stride,
    )["validation"]
    model = model.eval()
    batch = DataCollatorWithPadding(tokenizer)(
        [{k: f[k] for k in tokenizer.model_input_names if k in f} for f in feats]
    )
    with torch.no_grad():
        logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().cpu().numpy()
    if sent_args.long_text == "windows":
        logits, _ = pool_windows(logits, feats["doc_id"], sent_args.window_pooling)
    return [names[int(i)] for i in logits.argmax(-1)]


def check_predict(folder: str, model, tokenizer, texts: list[str], names, max_len: int, sent_args) -> dict:
    """Round trip of `predict` (which applies ``--long_text`` itself): it must give the trained model's labels."""
    from .modeling import needs_remote_code

    trust = needs_remote_code(model)
    got = [p["label"] for p in predict(folder, texts, device=str(model.device), trust_remote_code=trust)]
    want = trained_labels(model, tokenizer, texts, names, max_len, sent_args)
    if got != want:
        raise NLPTransferError(
            f"round-trip check failed: sentiment.predict on {folder} gave {got}, the trained model {want}"
        )
    return {"examples": len(texts)}


def evaluation_setup(sent_args, training_args, explicit: set[str], tokenized, problem_type: str):
    """``compute_metrics`` for the Trainer and the ``before_evaluate(split)`` hook of `nlp_transfer.run.train`.

    ``--long_text windows`` pools window logits per document, so evaluation must see windows in dataset order and
    know each split's document ids; other long-text modes use the plain classification metrics."""
    from .metrics import make_compute_metrics

    if sent_args.long_text != "windows":
        return make_compute_metrics(problem_type), None
    if training_args.train_sampling_strategy == "group_by_length":
        # transformers 5 also length-groups (reorders) *evaluation* batches under group_by_length, and pooling needs
        # windows in dataset order. Windows are nearly all full-length anyway, so grouping would save little.
        if "train_sampling_strategy" in explicit:
            logger.warning("--long_text windows evaluates in dataset order: using train_sampling_strategy random")
        training_args.train_sampling_strategy = "random"
    compute_metrics = WindowedMetrics(sent_args.window_pooling)

    def point_metrics_at(split):
        compute_metrics.doc_ids = list(tokenized[split]["doc_id"])

    if "validation" in tokenized:
        point_metrics_at("validation")
    return compute_metrics, point_metrics_at
