"""Where the raw splits come from: local files, a built-in offline set, a text folder, a saved DatasetDict or the
Hugging Face Hub."""

from __future__ import annotations

import logging
import os

import datasets
from datasets import DatasetDict

from .. import assets
from ..errors import NLPTransferError
from ..network import require_hub
from .files import check_file, file_format, rename_splits, short_error
from .folders import is_text_folder, text_folder_files

logger = logging.getLogger(__package__)  # one logger for the package: log lines keep the name nlp_transfer.data

DEFAULT_DATASET = "builtin:bbc_news"


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
    if is_text_folder(name):
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
    return load_hub_dataset(
        name,
        dataset_config_name,
        cache_dir=cache_dir,
        offline="pass local files with --train_file/--validation_file or use builtin:bbc_news",
    )


def load_hub_dataset(name: str, config_name: str | None, *, cache_dir: str | None, offline: str) -> DatasetDict:
    """A Hub dataset's splits (a lone split as ``train``), validation aliases (dev, valid) renamed to "validation".

    Raises:
        `NLPTransferError` in one line when it can't be loaded; ``offline`` ends it: what to pass instead offline.
    """
    try:
        loaded = datasets.load_dataset(name, config_name, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - network, auth, unknown id, missing config
        raise NLPTransferError(
            f"could not load dataset '{name}' from the Hugging Face Hub ({short_error(e)}); offline, {offline}"
        ) from None
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return rename_splits(loaded)


def load_from_args(args) -> DatasetDict:
    """`load_raw_datasets` with a `DataArguments`' sources."""
    return load_raw_datasets(
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        train_file=args.train_file,
        validation_file=args.validation_file,
        test_file=args.test_file,
    )


def dataset_label(args, default: str = DEFAULT_DATASET) -> str:
    """How the card names the data: a Hub/builtin id as given, a local file by its name (not a private path)."""
    if args.train_file:
        return os.path.basename(args.train_file)
    return args.dataset_name or default
