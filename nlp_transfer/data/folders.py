"""Text-folder datasets: ``<split>/<label>/*.txt`` in a folder or a .tar/.tar.gz archive (IMDB's aclImdb), read
once into JSON-lines files in the nlp_transfer cache."""

from __future__ import annotations

import logging
import os

from .. import assets
from ..errors import NLPTransferError
from .files import SPLIT_ALIASES

logger = logging.getLogger(__package__)  # one logger for the package: log lines keep the name nlp_transfer.data

_TEXT_SPLITS = {"train": "train", "test": "test", **SPLIT_ALIASES, "validation": "validation"}
_SKIP_LABEL_DIRS = {"unsup"}  # aclImdb's unlabelled reviews


def is_text_folder(name: str) -> bool:
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


def text_folder_entries(name: str):
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
            for split, label, text in text_folder_entries(name):
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
