"""Local data files: the formats read, the checks before parsing, one-line parser errors and split names."""

from __future__ import annotations

import codecs
import csv
import gzip
import os
from typing import Any

from datasets import DatasetDict

from ..errors import NLPTransferError

_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "validation"}


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


def rename_splits(ds: DatasetDict) -> DatasetDict:
    return DatasetDict({SPLIT_ALIASES.get(k, k): v for k, v in ds.items()})
