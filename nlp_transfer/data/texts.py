"""Unlabelled text: one reader for a .txt file, a table's text column, or a text folder or archive."""

from __future__ import annotations

import gzip
import os

from ..errors import NLPTransferError
from .folders import is_text_folder, text_folder_entries
from .sources import load_raw_datasets


def read_texts(path: str, text_column: str = "text", *, flag: str = "--unlabeled_file") -> list[str]:
    """Unlabelled texts from ``path``: a .txt file (one text per line, optionally .gz), a csv/tsv/json/jsonl/parquet
    file (its ``text_column``), or a ``<split>/<label>/*.txt`` folder or archive (every split's texts, labels
    ignored), or ``builtin:<name>`` (the texts of a built-in offline dataset, labels ignored). Blank texts are
    dropped; ``flag`` names the option in messages.

    Raises:
        `NLPTransferError` for a missing path, a missing column or no text at all.
    """
    if path.startswith("builtin:"):
        from .. import assets

        name = path.split(":", 1)[1]
        if name not in assets.BUILTIN_DATASETS:
            raise NLPTransferError(f"{flag} {path}: no such built-in dataset (choose from {assets.BUILTIN_DATASETS})")
        path = assets.builtin_dataset_file(name)
    if not os.path.exists(path):
        raise NLPTransferError(f"{flag} not found: {path} (check the path)")
    if path.endswith((".txt", ".txt.gz")):
        try:
            with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
                texts = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError:
            raise NLPTransferError(f"{flag} {path} is not UTF-8 text: save it as UTF-8") from None
    elif is_text_folder(path):
        texts = [text.strip() for _, _, text in text_folder_entries(path) if text.strip()]
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
