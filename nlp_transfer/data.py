"""Datasets for the recipes: Hub ids, local files and built-in offline sets, checked and shaped into a DatasetDict.

Every problem a user can cause (missing file, unsupported extension, missing column, nulls, unknown labels, a
single class, bad encoding, empty splits) raises `NLPTransferError` with the problem and the fix in one line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import datasets
from datasets import ClassLabel, DatasetDict, Sequence, Value

from . import assets
from .errors import NLPTransferError
from .network import require_hub

logger = logging.getLogger(__name__)

_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation"}
DEFAULT_DATASET = "builtin:bbc_news"


# --------------------------------------------------------------------------------------------------- loading
def file_format(path: str) -> tuple[str, dict[str, Any]]:
    base = path[:-3] if path.endswith(".gz") else path
    ext = os.path.splitext(base)[1].lower()
    if ext not in _FORMATS:
        raise NLPTransferError(
            f"unsupported file type '{ext or os.path.basename(path)}' for {path}: use .csv, .tsv, .json, .jsonl or "
            ".parquet (optionally gzipped)"
        )
    builder = _FORMATS[ext]
    kwargs: dict[str, Any] = {}
    if builder == "csv":
        # empty cells are missing values, but the strings "NA"/"null"/"None" stay text
        kwargs.update(keep_default_na=False, na_values=[""])
        if ext == ".tsv":
            # GLUE-style TSV: tabs separate fields and quotes are literal characters
            kwargs.update(sep="\t", quoting=csv.QUOTE_NONE)
    return builder, kwargs


def check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise NLPTransferError(f"{what} not found: {path} (check the path)")
    if not os.path.isfile(path):
        raise NLPTransferError(f"{what} is not a file: {path} (pass the file itself, not a folder)")
    if not os.access(path, os.R_OK):
        raise NLPTransferError(f"{what} is not readable: {path} (check its permissions)")
    if os.path.getsize(path) == 0:
        raise NLPTransferError(f"{what} is empty: {path} (it needs a header or records and at least one row)")
    builder, _ = file_format(path)
    if builder == "parquet":
        return
    opener = gzip.open if path.endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    raise NLPTransferError(
                        f"{what} {path} is not valid UTF-8 (byte {offset + e.start}): re-save it as UTF-8, e.g. "
                        f"iconv -f latin1 -t utf-8"
                    ) from None
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except (OSError, EOFError) as e:
        raise NLPTransferError(f"{what} {path} could not be read ({e}): check the file is not corrupt") from None


_GENERIC = ("An error occurred while generating the dataset",)


def short_error(e: BaseException) -> str:
    """The first line of an exception's message, from the cause that says what went wrong: `datasets` wraps a
    parser's "Expected 1 fields in line 3, saw 2" in a generic "An error occurred while generating the dataset"."""
    while (e.__cause__ or e.__context__) is not None and (not str(e).strip() or str(e).strip().startswith(_GENERIC)):
        e = e.__cause__ or e.__context__
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def load_raw_datasets(
    *,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Load the raw splits from local files, a built-in offline dataset, or the Hugging Face Hub.

    Args:
        dataset_name (`str`, *optional*):
            Hub dataset id, or ``builtin:<name>``. Ignored when ``train_file`` is given.
        dataset_config_name (`str`, *optional*):
            Hub dataset configuration.
        train_file, validation_file, test_file (`str`, *optional*):
            Local csv/tsv/json/jsonl/parquet files (optionally ``.gz``), one per split.
        cache_dir (`str`, *optional*):
            The `datasets` cache folder.

    Returns:
        `datasets.DatasetDict` with the splits that exist, validation aliases (dev, valid) renamed to "validation".
    """
    if train_file is None and (validation_file or test_file):
        raise NLPTransferError("--validation_file/--test_file were given without --train_file: add --train_file")
    if train_file is not None:
        if dataset_name:
            logger.warning("both --dataset_name and --train_file given: using the files")
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        out = {}
        for split, path in files.items():
            if path is None:
                continue
            what = f"--{split}_file"
            check_file(path, what)
            builder, kwargs = file_format(path)
            try:
                out[split] = datasets.load_dataset(
                    builder, data_files={split: path}, split=split, cache_dir=cache_dir, **kwargs
                )
            except Exception as e:  # noqa: BLE001 - any parser failure is a problem with the user's file
                raise NLPTransferError(f"could not parse {what} {path} as {builder}: {short_error(e)}") from None
        return DatasetDict(out)

    name = dataset_name or DEFAULT_DATASET
    if name.startswith("builtin:"):
        path = assets.builtin_dataset_file(name.split(":", 1)[1])
        return DatasetDict({"train": datasets.load_dataset("json", data_files={"train": path}, split="train")})
    if _is_text_folder(name):
        files = text_folder_files(name)
        return DatasetDict(
            {
                split: datasets.load_dataset("json", data_files={split: path}, split=split)
                for split, path in files.items()
            }
        )
    if name.endswith((".tar.gz", ".tgz", ".tar")) and not os.path.exists(name):
        raise NLPTransferError(f"dataset archive not found: {name} (check --dataset_name)")
    if os.path.isdir(name):
        try:
            loaded = datasets.load_from_disk(name)
        except Exception:  # noqa: BLE001 - not a save_to_disk folder: let load_dataset try (data folder)
            loaded = None
        if isinstance(loaded, DatasetDict):
            return rename_splits(loaded)
    if not os.path.exists(name):  # a Hub id: fail in seconds, not a minute of retries, without a network
        require_hub(name, "dataset", cache_dir)
    try:
        loaded = datasets.load_dataset(name, dataset_config_name, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - network, auth, unknown id, missing config
        raise NLPTransferError(
            f"could not load dataset '{name}' from the Hugging Face Hub ({short_error(e)}); offline, pass local files "
            "with --train_file/--validation_file or use builtin:bbc_news"
        ) from None
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return rename_splits(loaded)


# ------------------------------------------------------------------------- folders of .txt files per label
_TEXT_SPLITS = {"train": "train", "test": "test", **_SPLIT_ALIASES, "validation": "validation"}
_SKIP_LABEL_DIRS = {"unsup"}  # aclImdb's unlabelled reviews


def _is_text_folder(name: str) -> bool:
    """A .tar/.tar.gz archive, or a folder with ``train/<label>/`` sub-folders (at the top or one level down)."""
    if os.path.isfile(name):
        return name.endswith((".tar.gz", ".tgz", ".tar"))
    if not os.path.isdir(name) or os.path.isfile(os.path.join(name, "dataset_dict.json")):
        return False
    roots = [name] + [os.path.join(name, d) for d in os.listdir(name) if os.path.isdir(os.path.join(name, d))]
    for root in roots:
        train = os.path.join(root, "train")
        if os.path.isdir(train) and any(os.path.isdir(os.path.join(train, d)) for d in os.listdir(train)):
            return True
    return False


def _text_folder_entries(name: str):
    """Yield ``(split, label, text)`` for every ``<split>/<label>/*.txt`` in a folder or a tar archive (a single
    top-level folder, as in aclImdb.tar.gz, is allowed)."""
    import tarfile

    def parse(parts: list[str]):
        if len(parts) >= 3 and parts[-3] in _TEXT_SPLITS and parts[-2] not in _SKIP_LABEL_DIRS:
            if parts[-1].endswith(".txt") and len(parts) <= 4:
                return _TEXT_SPLITS[parts[-3]], parts[-2]
        return None

    if os.path.isfile(name):
        try:
            with tarfile.open(name, "r:*") as tar:
                for member in tar:
                    where = parse(member.name.strip("./").split("/")) if member.isfile() else None
                    if where:
                        raw = tar.extractfile(member).read()
                        yield (*where, raw.decode("utf-8", errors="replace").strip())
        except (tarfile.TarError, OSError, EOFError) as e:
            raise NLPTransferError(f"could not read the archive {name} ({e}): check the file is not corrupt") from None
        return
    for root, _dirs, files in sorted(os.walk(name)):
        rel = os.path.relpath(root, name).split(os.sep)
        for f in sorted(files):
            where = parse([*rel, f])
            if where:
                with open(os.path.join(root, f), "rb") as fh:
                    yield (*where, fh.read().decode("utf-8", errors="replace").strip())


def text_folder_files(name: str) -> dict[str, str]:
    """Convert a ``<split>/<label>/*.txt`` dataset (a folder, or a .tar/.tar.gz such as IMDB's aclImdb) into one
    JSON-lines file per split (``text``, ``label`` = the folder name) in the nlp_transfer cache, once; later runs
    reuse them. The cache key is the path, size and modification time of the source."""
    import hashlib
    import json

    st = os.stat(name)
    key = hashlib.sha256(f"{os.path.abspath(name)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = assets.cache_dir() / "datasets" / f"textfolder-{key}"
    done = dest / "splits.json"
    if not done.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        logger.info("reading %s (once; cached in %s)", name, dest)
        handles: dict = {}
        counts: dict[str, int] = {}
        try:
            for split, label, text in _text_folder_entries(name):
                if split not in handles:
                    handles[split] = open(dest / f"{split}.jsonl.tmp", "w", encoding="utf-8")  # noqa: SIM115
                handles[split].write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
                counts[split] = counts.get(split, 0) + 1
        finally:
            for h in handles.values():
                h.close()
        if "train" not in counts:
            raise NLPTransferError(
                f"{name} holds no train/<label>/*.txt files: a text-folder dataset needs train/<label>/ folders of "
                ".txt files (and optionally test/ or validation/)"
            )
        for split in counts:
            os.replace(dest / f"{split}.jsonl.tmp", dest / f"{split}.jsonl")
        done.write_text(json.dumps(counts))
        logger.info("text folder %s: %s", name, ", ".join(f"{s} {n}" for s, n in counts.items()))
    counts = json.loads(done.read_text())
    return {split: str(dest / f"{split}.jsonl") for split in counts}


def rename_splits(ds: DatasetDict) -> DatasetDict:
    return DatasetDict({_SPLIT_ALIASES.get(k, k): v for k, v in ds.items()})


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
    """Whether a split's label column (not a ClassLabel) holds only None or -1."""
    if isinstance(ds.features[label_column], ClassLabel):
        return False
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
def load_from_args(args) -> DatasetDict:
    """`load_raw_datasets` with a `DataArguments`' sources."""
    return load_raw_datasets(
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        train_file=args.train_file,
        validation_file=args.validation_file,
        test_file=args.test_file,
    )


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


def dataset_label(args, default: str = DEFAULT_DATASET) -> str:
    """How the card names the data: a Hub/builtin id as given, a local file by its name (not a private path)."""
    if args.train_file:
        return os.path.basename(args.train_file)
    return args.dataset_name or default


# ------------------------------------------------------------------------------------------ unlabelled text
def read_texts(path: str, text_column: str = "text", *, flag: str = "--unlabeled_file") -> list[str]:
    """Unlabelled texts from ``path``: a .txt file (one text per line, optionally .gz), a csv/tsv/json/jsonl/parquet
    file (its ``text_column``), or a ``<split>/<label>/*.txt`` folder or archive (every split's texts, labels
    ignored). Blank texts are dropped; ``flag`` names the option in messages.

    Raises:
        `NLPTransferError` for a missing path, a missing column or no text at all.
    """
    if not os.path.exists(path):
        raise NLPTransferError(f"{flag} not found: {path} (check the path)")
    if path.endswith((".txt", ".txt.gz")):
        import gzip

        try:
            with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
                texts = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError:
            raise NLPTransferError(f"{flag} {path} is not UTF-8 text: save it as UTF-8") from None
    elif _is_text_folder(path):
        texts = [text.strip() for _, _, text in _text_folder_entries(path) if text.strip()]
    elif os.path.isdir(path):
        raise NLPTransferError(
            f"{flag} {path} is a folder without <split>/<label>/*.txt files: pass a text file (one text per line), a "
            "csv/jsonl file, or such a folder or .tar.gz"
        )
    else:
        raw = load_raw_datasets(train_file=path)["train"]
        if text_column not in raw.column_names:
            raise NLPTransferError(
                f"{flag} {path} has no column '{text_column}' (columns: {', '.join(raw.column_names)}): name the "
                "text column with --text_column"
            )
        texts = [t.strip() for t in raw[text_column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise NLPTransferError(f"{flag} {path} holds no text")
    return texts
