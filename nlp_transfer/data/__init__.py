"""Datasets for the recipes: Hub ids, local files and built-in offline sets, checked and shaped into a DatasetDict.

Every problem a user can cause (missing file, unsupported extension, missing column, nulls, unknown labels, a
single class, bad encoding, empty splits) raises `NLPTransferError` with the problem and the fix in one line.

- `files`: the local file formats, `check_file` before parsing, `short_error` (a parser's own message, not the
  generic wrapper `datasets` puts round it), `rename_splits` (dev/valid -> validation).
- `folders`: ``<split>/<label>/*.txt`` folders and .tar/.tar.gz archives, read once into the nlp_transfer cache.
- `sources`: `load_raw_datasets` (files, builtin, text folders, saved DatasetDicts, the Hub), `load_hub_dataset`
  (the Hub fallback QA shares), `load_from_args`, `dataset_label`.
- `classification`: `prepare_classification` (columns, labels, held-out splits, subsets) -> `LabelInfo`,
  `tokenize_classification`, `classification_from_args`.
- `texts`: `read_texts`, unlabelled text (a .txt file, a table's column, a text folder or archive).
"""

from .classification import LabelInfo, classification_from_args, prepare_classification, tokenize_classification
from .files import check_file, file_format, rename_splits, short_error
from .folders import is_text_folder, text_folder_entries, text_folder_files
from .sources import DEFAULT_DATASET, dataset_label, load_from_args, load_hub_dataset, load_raw_datasets
from .texts import read_texts

__all__ = [
    "DEFAULT_DATASET",
    "LabelInfo",
    "check_file",
    "classification_from_args",
    "dataset_label",
    "file_format",
    "is_text_folder",
    "load_from_args",
    "load_hub_dataset",
    "load_raw_datasets",
    "prepare_classification",
    "read_texts",
    "rename_splits",
    "short_error",
    "text_folder_entries",
    "text_folder_files",
    "tokenize_classification",
]
