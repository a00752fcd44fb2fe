"""The on-disk array cache shared by the distillation teacher's outputs and the frozen backbone's features: an entry
is keyed by a dict naming the weights, the data and the preprocessing (its sha256 names the file), written
atomically, and a changed weight, text or option is a miss, never a wrong hit."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np
from torch import nn

logger = logging.getLogger(__name__)


def hash_file(h, path: str) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)


def weights_fingerprint(model: nn.Module, source: str = "") -> str:
    """A stable id for a model's weights: a hash of its weight files when ``source`` is a local folder, else of its
    parameters (merged LoRA teachers, a backbone inside a bigger model)."""
    h = hashlib.sha256()
    files = []
    if source and os.path.isdir(source):
        files = sorted(
            os.path.join(source, n)
            for n in os.listdir(source)
            if n.endswith(".safetensors") or n in ("config.json", "adapter_config.json")
        )
    if files:
        for path in files:
            h.update(os.path.basename(path).encode())
            hash_file(h, path)
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


def cached_arrays(cache_dir: str, key: dict, compute, *, what: str = "outputs", name: str = "logits"):
    """Return the cached arrays for ``key``, or ``compute()`` them and store them atomically (with ``key`` beside
    them as json, to see what an entry holds). ``compute`` returns an array (stored under ``name``) or a dict of
    arrays. Returns ``(arrays, hit)``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = os.path.join(cache_dir, f"{digest}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path) as z:
                out = {k: z[k] for k in z.files}
            logger.info("%s for %s: cache hit (%s)", what, key.get("split", "data"), path)
            return (out[name] if set(out) == {name} else out), True
        except (OSError, ValueError, KeyError):
            logger.warning("cache file %s is unreadable; recomputing", path)
    arr = compute()
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **(arr if isinstance(arr, dict) else {name: arr}))
    with open(os.path.join(cache_dir, f"{digest}.json"), "w", encoding="utf-8") as f:
        json.dump(key, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    logger.info("%s for %s cached in %s", what, key.get("split", "data"), path)
    return arr, False
