"""Fail fast when the Hugging Face Hub is unreachable.

Without a network, transformers and datasets retry a Hub download for about a minute before they give up. Before a
model or dataset is fetched by Hub id, `require_hub` makes one quick request to the endpoint (``HF_ENDPOINT``) with
huggingface_hub's own HTTP client (its proxies and headers), at most once per process. When it gets no answer:

- what is asked for is in the local Hugging Face cache: a warning, and offline mode from then on (``HF_HUB_OFFLINE``),
  so transformers and datasets read the cache at once instead of retrying;
- otherwise `NLPTransferError`, with the fix (a local folder or file, or ``HF_HUB_OFFLINE=1``).

In offline mode (``HF_HUB_OFFLINE=1``) nothing is probed: the libraries read the cache and the loaders' own messages
apply.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import sys

from .errors import NLPTransferError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # seconds: to connect, and for the answer to a HEAD request
# files one of which a cached model repo holds (a model, a tokenizer-only repo, a PEFT adapter)
_MODEL_FILES = ("config.json", "tokenizer_config.json", "adapter_config.json")


@functools.cache
def unreachable(endpoint: str) -> str | None:
    """None when ``endpoint`` answers (any HTTP status), else why it did not: asked once per process."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT, follow_redirects=False)
    except Exception as e:  # noqa: BLE001 - no answer at all: refused, no DNS, timeout, proxy or TLS failure
        reason = " ".join(str(e).split())[:120]
        return f"{type(e).__name__}: {reason}" if reason else type(e).__name__
    return None


def in_cache(repo_id: str, repo_type: str = "model", cache_dir: str | None = None) -> bool:
    """Whether the local cache holds ``repo_id`` the way offline loading finds it: a model's files in the hub cache
    (``try_to_load_from_cache``), a dataset prepared before in the datasets cache."""
    if repo_type == "dataset":
        from datasets import config
        from datasets.naming import camelcase_to_snakecase

        *namespace, name = repo_id.split("/")
        root = os.path.join(
            os.path.expanduser(str(cache_dir or config.HF_DATASETS_CACHE)),
            "___".join(namespace + [camelcase_to_snakecase(name)]),
        )
        return any(os.path.isdir(p) for p in glob.glob(os.path.join(glob.escape(root), "*", "*", "*")))
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache_dir), str) for f in _MODEL_FILES)


def go_offline() -> None:
    """Offline mode for the rest of the process (and its children): huggingface_hub (which transformers asks) and
    datasets read their constants once, at import, so set those as well as the environment."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:
        ds_config.HF_HUB_OFFLINE = ds_config.HF_DATASETS_OFFLINE = True


def require_hub(repo_id: str, repo_type: str = "model", cache_dir: str | None = None) -> None:
    """Before a download of ``repo_id`` from the Hub: fail within seconds when the Hub cannot be reached and the local
    cache does not hold it (see the module docstring)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return
    reason = unreachable(constants.ENDPOINT)
    if reason is None:
        return
    if in_cache(repo_id, repo_type, cache_dir):
        logger.warning(
            "cannot reach %s (%s): using the %s %s from the local Hugging Face cache (offline mode from here on)",
            constants.ENDPOINT,
            reason,
            repo_type,
            repo_id,
        )
        go_offline()
        return
    raise NLPTransferError(
        f"cannot reach {constants.ENDPOINT} ({reason}) to download the {repo_type} '{repo_id}': without a network "
        "pass a local folder (or file) instead, or set HF_HUB_OFFLINE=1 to use what the local Hugging Face cache holds"
    )
