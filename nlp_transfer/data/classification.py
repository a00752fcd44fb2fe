"""Classification data: the raw splits checked and shaped into ``text`` [, ``text_pair``], ``label`` with the
label names (`LabelInfo`), held-out and sampled splits, and tokenised."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import datasets
from datasets import ClassLabel, DatasetDict, Sequence, Value

from ..errors import NLPTransferError
from .files import short_error

logger = logging.getLogger(__package__)  # one logger for the package: log lines keep the name nlp_transfer.data


# ------------------------------------------------------------------------------------------------ labels
@dataclass
class LabelInfo:
    """What the label column means: the problem type and, for classification, the label names in id order."""

    problem_type: str
    names: list[str] | None

    @property
    def num_labels(self) -> int:
        return 1 if self.names is None else len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return {i: n for i, n in enumerate(self.names or ["score"])}

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in self.id2label.items()}


def _first_null(values: list) -> int | None:
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return i
    return None


def _label_values(ds, multi: bool, sep: str | None) -> list:
    values = ds["label"]
    if multi:
        out = []
        for v in values:
            if isinstance(v, str):
                if sep is None:
                    raise NLPTransferError(
                        "multi-label labels are strings: pass --label_separator (e.g. '|') to split them, or store "
                        "them as lists in json/jsonl/parquet"
                    )
                out.append([p.strip() for p in v.split(sep) if p.strip()])
            elif isinstance(v, (list, tuple)):
                out.append([str(x) for x in v])
            else:
                raise NLPTransferError(
                    f"multi-label needs a list of labels per row, found {type(v).__name__} {v!r}: store lists in "
                    "json/jsonl/parquet, or strings with --label_separator"
                )
        return out
    return values


def _detect_problem_type(value: Any, label_separator: str | None) -> str:
    if isinstance(value, (list, tuple)) or label_separator is not None:
        return "multi_label_classification"
    if isinstance(value, float):
        return "regression"
    return "single_label_classification"


def prepare_classification(
    raw: DatasetDict,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    class_names: list[str] | None = None,
    problem_type: str = "auto",
    label_separator: str | None = None,
    validation_split: float = 0.1,
    test_split: float = 0.0,
    seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    max_test_samples: int | None = None,
) -> tuple[DatasetDict, LabelInfo]:
    """Check the raw splits and turn them into ``text`` [, ``text_pair``], ``label`` columns with integer ids
    (single-label), multi-hot float vectors (multi-label) or floats (regression).

    A validation split (and optionally a test split) is held out of train when missing: seeded, and stratified by
    label for single-label data. ``max_*_samples`` take a seeded random subset, so files sorted by label stay mixed.

    Returns:
        `(DatasetDict, LabelInfo)`.
    """
    _check_split_options(raw, validation_split, test_split)
    out = _strip_labels(_usable_splits(raw, text_column, text_pair_column, label_column))
    problem_type = _resolve_problem_type(out["train"], problem_type, label_separator)
    names, encode, new_feature = _label_encoding(out, problem_type, label_separator, class_names)
    info = LabelInfo(problem_type=problem_type, names=names)
    dd = _encode_labels(out, encode, new_feature)
    held = _hold_out_splits(dd, validation_split, test_split, problem_type, seed)
    _take_subsets(dd, seed, {"train": max_train_samples, "validation": max_eval_samples, "test": max_test_samples})
    _check_final_splits(dd, problem_type, names, max_train_samples, held)
    return dd, info


# ---- columns: which splits count, the wanted columns present, renamed and holding values
def _strip_labels(out: dict) -> dict:
    """String labels without surrounding whitespace (``"pos "`` is ``"pos"``: one class, not two), said once."""
    stripped = {}
    for split, ds in out.items():
        if getattr(ds.features["label"], "dtype", None) not in ("string", "large_string"):
            stripped[split] = ds
            continue
        changed = sum(1 for v in ds["label"] if isinstance(v, str) and v != v.strip())
        if changed:
            logger.warning("%s: %d label(s) had spaces around them; stripped (e.g. 'pos ' is 'pos')", split, changed)
            ds = ds.map(
                lambda b: {"label": [v.strip() if isinstance(v, str) else v for v in b["label"]]},
                batched=True,
                desc=f"Stripping {split} labels",
            )
        stripped[split] = ds
    return stripped


def _check_split_options(raw: DatasetDict, validation_split: float, test_split: float) -> None:
    """Fail early on a dataset without a train split, or held-out fractions outside [0, 1) or summing to 1 or more."""
    if "train" not in raw:
        raise NLPTransferError(
            f"no train split in the dataset (splits: {', '.join(raw) or 'none'}): pass --train_file"
        )
    if not 0 <= validation_split < 1 or not 0 <= test_split < 1 or validation_split + test_split >= 1:
        raise NLPTransferError("--validation_split and --test_split must be in [0, 1) and sum to less than 1")


def _usable_splits(
    raw: DatasetDict, text_column: str, text_pair_column: str | None, label_column: str
) -> dict[str, datasets.Dataset]:
    """The checked train/validation/test splits (an unlabelled test split dropped) with the standard column names."""
    wanted = [c for c in (text_column, text_pair_column, label_column) if c]
    out = {}
    for split, ds in raw.items():
        if split not in ("train", "validation", "test"):
            logger.info("ignoring split '%s'", split)
            continue
        _check_columns(ds, split, wanted, text_column, text_pair_column, label_column)
        if len(ds) == 0:
            raise NLPTransferError(f"the {split} split is empty: it needs at least one row")
        if split == "test" and _has_no_labels(ds, label_column):
            logger.warning("the test split has no labels; it is skipped")
            continue
        ds = _standard_columns(ds, wanted, text_column, text_pair_column, label_column)
        _check_values(ds, split, text_column, text_pair_column, label_column)
        out[split] = ds
    if "train" not in out:
        raise NLPTransferError("no usable train split")
    return out


def _check_columns(
    ds, split: str, wanted: list[str], text_column: str, text_pair_column: str | None, label_column: str
) -> None:
    """Fail on the first wanted column a split lacks, listing the columns it has and the option that picks one."""
    missing = [c for c in wanted if c not in ds.column_names]
    if missing:
        flag = {
            text_column: "--text_column",
            text_pair_column: "--text_pair_column",
            label_column: "--label_column",
        }
        names = ds.column_names
        sep = next((c for c in ";\t|" if len(names) == 1 and c in names[0]), None)
        hint = (
            f": the file looks {sep!r}-separated; csv files must be comma-separated (save it with commas, or as .tsv "
            "for tabs)"
            if sep
            else f" (choose one with {flag[missing[0]]})"
        )
        raise NLPTransferError(
            f"column '{missing[0]}' not found in the {split} split; its columns are: {', '.join(names)}{hint}"
        )


def _has_no_labels(ds, label_column: str) -> bool:
    """Whether a split's label column holds only None or -1 (a ClassLabel column too: GLUE's test splits on the Hub
    are ClassLabel columns of -1)."""
    return all(v is None or v == -1 for v in ds[label_column])  # e.g. GLUE test sets ship without labels


def _standard_columns(ds, wanted: list[str], text_column: str, text_pair_column: str | None, label_column: str):
    """Keep only the wanted columns, renamed to ``text`` [, ``text_pair``] and ``label``."""
    ds = ds.select_columns(wanted)
    rename = {text_column: "text", label_column: "label"}
    if text_pair_column:
        rename[text_pair_column] = "text_pair"
    return ds.rename_columns({k: v for k, v in rename.items() if k != v})


def _check_values(ds, split: str, text_column: str, text_pair_column: str | None, label_column: str) -> None:
    """Fail on missing texts or labels (None/NaN), and on text columns holding anything but strings."""
    for col, flag in (("text", text_column), ("text_pair", text_pair_column), ("label", label_column)):
        if col not in ds.column_names:
            continue
        values = ds[col]
        bad = _first_null(values)
        if bad is not None:
            n = sum(1 for v in values if v is None or (isinstance(v, float) and math.isnan(v)))
            what = "label" if col == "label" else "text"
            raise NLPTransferError(
                f"{n} row(s) of the {split} split have no {what} in column '{flag}' (first at row {bad}): "
                "fill in or drop those rows"
            )
        if col != "label":
            odd = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
            if odd is not None:
                option = "--text_column" if col == "text" else "--text_pair_column"
                raise NLPTransferError(
                    f"column '{flag}' of the {split} split holds {type(values[odd]).__name__} values, not text "
                    f"(first at row {odd}): choose the text column with {option}"
                )


# ---- labels: the problem type, the label names and how each row's label is encoded
def _resolve_problem_type(train, problem_type: str, label_separator: str | None) -> str:
    """``problem_type`` as given or, for ``auto``, what the train label feature and first train label imply."""
    if problem_type != "auto":
        return problem_type
    if isinstance(train.features["label"], ClassLabel):
        return "single_label_classification"
    return _detect_problem_type(train[0]["label"], label_separator)


def _label_encoding(out: dict, problem_type: str, label_separator: str | None, class_names: list[str] | None):
    """The label names, a batched function encoding the ``label`` column, and the encoded column's feature."""
    if problem_type == "regression":
        return None, _encode_regression, Value("float32")
    multi = problem_type == "multi_label_classification"
    per_split = {s: _label_values(ds, multi, label_separator) for s, ds in out.items()}
    names, mapping = _label_names(out["train"].features["label"], per_split["train"], multi, class_names)
    _check_unknown_labels(per_split, mapping, multi)
    if multi:
        k = len(names)

        def encode_multi_hot(batch):
            rows = _label_values_batch(batch["label"], label_separator)
            vecs = []
            for labels in rows:
                v = [0.0] * k
                for x in labels:
                    v[mapping[x]] = 1.0
                vecs.append(v)
            return {"label": vecs}

        return names, encode_multi_hot, Sequence(Value("float32"), length=k)

    def encode_ids(batch):
        return {"label": [mapping[v] for v in batch["label"]]}

    return names, encode_ids, ClassLabel(names=names)


def _encode_regression(batch):
    """Regression labels as floats, failing on a non-numeric one."""
    try:
        return {"label": [float(v) for v in batch["label"]]}
    except (TypeError, ValueError):
        raise NLPTransferError(
            "regression needs numeric labels; found a non-numeric one: check --label_column or --problem_type"
        ) from None


def _label_names(train_feat, train_values: list, multi: bool, class_names: list[str] | None) -> tuple[list, dict]:
    """The label names in id order and a raw label -> id mapping, from a ClassLabel, --class_names or sorted labels."""
    if isinstance(train_feat, ClassLabel) and not multi:
        names = list(train_feat.names)
        mapping = {i: i for i in range(len(names))}
        mapping.update({n: i for i, n in enumerate(names)})
    else:
        flat_train = [x for v in train_values for x in v] if multi else train_values
        uniq = set(flat_train)
        if class_names and not multi:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in uniq):
                raise NLPTransferError("--class_names names integer labels 0..K-1, but the labels are not integers")
            if min(uniq) < 0 or max(uniq) >= len(class_names):
                raise NLPTransferError(
                    f"--class_names gives {len(class_names)} names but the labels go from {min(uniq)} to "
                    f"{max(uniq)}: give one name per label id 0..{max(uniq)}"
                )
            names = list(class_names)
            mapping = {i: i for i in range(len(names))}
        else:
            try:
                ordered = sorted(uniq)
            except TypeError:
                ordered = sorted(uniq, key=str)
            names = [str(v) for v in ordered]
            mapping = {v: i for i, v in enumerate(ordered)}
    if len(names) < 2 and not multi:
        only = names[0] if names else "none"
        raise NLPTransferError(
            f"the training data has only one class ({only}): a classifier needs at least two different labels"
        )
    if multi and not names:
        raise NLPTransferError("the training data has no labels at all: every multi-label row's list is empty")
    return names, mapping


def _check_unknown_labels(per_split: dict[str, list], mapping: dict, multi: bool) -> None:
    """Fail when a validation or test split holds labels the train split lacks."""
    for split, values in per_split.items():
        if split == "train":
            continue
        flat = [x for v in values for x in v] if multi else values
        unknown = sorted({str(v) for v in flat if v not in mapping}, key=str)
        if unknown:
            raise NLPTransferError(
                f"the {split} split has label(s) the train split lacks: {', '.join(unknown[:10])}; the model "
                "can't learn them: add training examples of them or drop those rows"
            )


def _encode_labels(out: dict, encode, new_feature) -> DatasetDict:
    """Every split with its ``label`` column mapped through ``encode`` into ``new_feature``."""
    encoded = {}
    for split, ds in out.items():
        features = ds.features.copy()
        features["label"] = new_feature
        encoded[split] = ds.map(encode, batched=True, features=features, desc=f"Encoding {split} labels")
    return DatasetDict(encoded)


# ---- held-out splits (seeded, stratified by class for single-label data) and subsets
def _hold_out_splits(
    dd: DatasetDict, validation_split: float, test_split: float, problem_type: str, seed: int
) -> list[str]:
    """Hold the missing test, then validation split out of train, in place; validation's fraction is of the whole.
    Returns the names of the splits held out."""
    held = []
    if "test" not in dd and test_split > 0:
        dd["train"], dd["test"] = _hold_out(dd["train"], test_split, "test", problem_type, seed)
        held.append("test")
    if "validation" not in dd and validation_split > 0:
        frac = validation_split / (1 - test_split) if "test" in dd and test_split > 0 else validation_split
        dd["train"], dd["validation"] = _hold_out(dd["train"], frac, "validation", problem_type, seed)
        held.append("validation")
    return held


def _hold_out(ds, fraction: float, name: str, problem_type: str, seed: int):
    """Split ``fraction`` of ``ds`` off as ``(rest, held_out)``, stratified for single-label data when possible."""
    stratify = "label" if problem_type == "single_label_classification" else None
    try:
        parts = ds.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
    except ValueError as e:
        if stratify is None:
            raise NLPTransferError(f"could not hold out a {name} split: {short_error(e)}") from None
        logger.warning("a stratified %s split is impossible (%s); holding out a random one", name, short_error(e))
        parts = ds.train_test_split(test_size=fraction, seed=seed)
    logger.info("held out %d of %d training rows as the %s split (seed %d)", len(parts["test"]), len(ds), name, seed)
    return parts["train"], parts["test"]


def _take_subsets(dd: DatasetDict, seed: int, max_samples: dict[str, int | None]) -> None:
    """Cut each split to its ``max_*_samples`` by a seeded shuffle, in place."""
    for split, n in max_samples.items():
        if split in dd and n is not None:
            if n <= 0:
                raise NLPTransferError(f"--max_{'eval' if split == 'validation' else split}_samples must be positive")
            if n < len(dd[split]):
                dd[split] = dd[split].shuffle(seed=seed).select(range(n))


def _check_final_splits(
    dd: DatasetDict, problem_type: str, names: list | None, max_train_samples: int | None, held: list[str]
) -> None:
    """Fail on a split left empty, single-label training rows left with one class, or a class that only a split
    held out of train holds (a class with one example lands in validation: the model would never train on it).
    A validation *file* may name a class train lacks when the label scheme defines it (sentiment warns)."""
    for split, ds in dd.items():
        if len(ds) == 0:
            raise NLPTransferError(f"the {split} split is empty after splitting: use more data or a larger fraction")
    if problem_type != "single_label_classification":
        return
    in_train = set(dd["train"]["label"])
    fix = "raise --max_train_samples" if max_train_samples is not None else "add training rows of at least two classes"
    if len(in_train) < 2:
        raise NLPTransferError(
            f"the {len(dd['train'])} training row(s) left after splitting and sampling hold a single class: {fix}"
        )
    for split in held:
        missing = sorted({int(v) for v in dd[split]["label"]} - in_train)
        if missing:
            shown = ", ".join(str(names[i]) if names else str(i) for i in missing[:10])
            raise NLPTransferError(
                f"class(es) {shown} have no training rows left after holding out the {split} split (too few "
                "examples: a class needs at least 2): add examples of them, or drop those rows"
            )


def _label_values_batch(values: list, sep: str | None) -> list[list[str]]:
    if values and isinstance(values[0], str):
        return [[p.strip() for p in v.split(sep) if p.strip()] for v in values]
    return [[str(x) for x in v] for v in values]


# ---------------------------------------------------------------------------------------------- tokenising
def tokenize_classification(
    dd: DatasetDict, tokenizer, *, max_seq_length: int, pad_to_max_length: bool = False
) -> DatasetDict:
    """Tokenise ``text`` [+ ``text_pair``] with truncation to ``max_seq_length``, keeping ``label`` and adding a
    ``length`` column that length-grouped batching reads instead of re-measuring every row.

    No padding unless ``pad_to_max_length``: the collator pads each batch to its longest row. `datasets` caches
    the result on disk (keyed by data, tokenizer and arguments), so a second run skips this step.
    """
    has_pair = "text_pair" in dd["train"].column_names
    padding = "max_length" if pad_to_max_length else False

    def fn(batch):
        enc = tokenizer(
            batch["text"],
            batch["text_pair"] if has_pair else None,
            truncation=True,
            max_length=max_seq_length,
            padding=padding,
        )
        enc["length"] = [len(x) for x in enc["input_ids"]]
        return enc

    remove = ["text", "text_pair"] if has_pair else ["text"]
    return DatasetDict(
        {s: ds.map(fn, batched=True, remove_columns=remove, desc=f"Tokenizing {s}") for s, ds in dd.items()}
    )


# ------------------------------------------------------------------------------ from the recipes' arguments
def classification_from_args(raw: DatasetDict, args, *, seed: int, **overrides) -> tuple[DatasetDict, LabelInfo]:
    """`prepare_classification` with a `DataArguments`' columns, label options, splits and subsets (``overrides``
    replace any of them), then one log line of what came out."""
    options = dict(
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        class_names=args.class_names,
        problem_type=args.problem_type,
        label_separator=args.label_separator,
        validation_split=args.validation_split,
        test_split=args.test_split,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        max_test_samples=args.max_test_samples,
    )
    dd, labels = prepare_classification(raw, seed=seed, **{**options, **overrides})
    names = labels.names if labels.names and len(labels.names) <= 20 else ""
    logger.info(
        "%s: %s; %d labels %s", labels.problem_type, ", ".join(f"{s} {len(d)}" for s, d in dd.items()),
        labels.num_labels, names,
    )  # fmt: skip
    return dd, labels
