"""Publishing a finished run to a model hub (the Hugging Face Hub, or any server ``HF_ENDPOINT`` points at).

Two ways in, one code path:

- ``--push_to_hub`` on any recipe (with ``--hub_model_id``, ``--hub_private_repo``, ``--hub_revision``: the
  `transformers.TrainingArguments` fields). The recipe checks the repo id and the token *before* training, trains,
  writes and verifies its output folder as usual, then pushes that folder. Trainer's own pushing is switched off
  (``push_to_hub`` is set to false on the arguments, which is also what ``run_config.yaml`` records, so rerunning a
  config never publishes by surprise): the Hub gets the verified folder, not intermediate checkpoints.
- ``nlp-transfer push OUTPUT_DIR REPO_ID [--private] [--revision R]`` pushes a finished run without retraining.

Before anything is uploaded the folder is reloaded the way a user would load it (``pipeline(...)``, and
``PeftModel.from_pretrained`` for adapters) and its predictions on the held-out examples recorded at training time
(``roundtrip_check.json``) are compared with the trained model's (`nlp_transfer.tasks.verify_recorded`); the card's
metadata is validated by the server. A failed check refuses the push.

What is uploaded: everything in the folder but ``checkpoint-*`` (optimizer state, large, not for serving) and
``roundtrip_check.json``, also the one in ``merged/`` (it holds raw held-out texts of the user's data). The card's
``PATH_OR_REPO`` placeholders are filled with the repo id in the uploaded copy; the local card is left as it is.

Tokens come only from the environment (``HF_TOKEN``) or the hub's own login (``hf auth login``), read by
huggingface_hub itself. ``--hub_token`` is refused (a token on a command line or in a YAML file ends up in shell
history, process lists and ``run_config.yaml``); no token is ever logged, written or put in an error message.

Network: every request has a timeout (``NLP_TRANSFER_HUB_TIMEOUT`` seconds, default 60, per connect/read/write) and a
push is tried at most ``NLP_TRANSFER_HUB_RETRIES`` times (default 3; waits 1, 2, 4 ... s) on timeouts, connection
errors and 5xx/429 answers (huggingface_hub also retries single uploads itself). Refusals (401/403/404/400) fail at
once. The local output folder is never changed by a push.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .artifacts.folder import FINISHED_MARKER, LOCK_NAME, ROUNDTRIP_FILE, STAGING_NAME
from .errors import NLPTransferError, redact
from .tasks import verify_recorded

logger = logging.getLogger(__name__)

PUSH_IGNORE = ("checkpoint-*", STAGING_NAME, LOCK_NAME, ROUNDTRIP_FILE, ".onnx-*")
PLACEHOLDER = "PATH_OR_REPO"
ENV_TIMEOUT = "NLP_TRANSFER_HUB_TIMEOUT"
ENV_RETRIES = "NLP_TRANSFER_HUB_RETRIES"


@dataclass
class PushTarget:
    repo_id: str
    private: bool | None = None
    revision: str | None = None


def check_repo_id(repo_id: str) -> str:
    """``name`` (created under the token's user) or ``namespace/name``, in the Hub's character set."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not repo_id or repo_id.count("/") > 1 or os.path.isabs(repo_id) or repo_id.startswith("."):
        raise NLPTransferError(
            f"repo id '{repo_id}' is not of the form 'name' or 'namespace/name' (letters, digits, '-', '_', '.')"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise NLPTransferError(
            f"repo id '{repo_id}' is not of the form 'name' or 'namespace/name' (letters, digits, '-', '_', '.'; "
            "no '--' or '..', at most 96 characters)"
        ) from None
    return repo_id


def require_token() -> None:
    """Fail early, before any training, when no token is available to huggingface_hub."""
    from huggingface_hub import get_token

    if not get_token():
        raise NLPTransferError(
            "no Hugging Face token found: set HF_TOKEN in the environment or run `hf auth login` (tokens are never "
            "taken on the command line)"
        )


TOKEN_REFUSED = (
    "a token on the command line or in a config file (--hub_token) is not accepted: it would end up in shell "
    "history and logs; set HF_TOKEN in the environment or run `hf auth login` instead"
)


def refuse_token_argument(training_args) -> None:
    if getattr(training_args, "hub_token", None):
        raise NLPTransferError(TOKEN_REFUSED)


def plan_push(training_args) -> PushTarget | None:
    """Called by every recipe right after parsing: check the push options before any expensive work.

    Returns the push target (``--hub_model_id``, default: the output folder's name, as Trainer does) or None
    without ``--push_to_hub``; switches Trainer's own pushing off (see the module docstring)."""
    refuse_token_argument(training_args)
    if not training_args.push_to_hub:
        return None
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    check_repo_id(repo_id)
    require_token()
    training_args.push_to_hub = False
    return PushTarget(repo_id, training_args.hub_private_repo, training_args.hub_revision)


def check_finished_run(folder: str) -> None:
    """A folder a recipe finished: ``metrics.json`` (written last), ``config.json``, weights or adapter."""
    if not os.path.isdir(folder):
        raise NLPTransferError(f"{folder} is not a folder: give the --output_dir of a finished run")
    names = set(os.listdir(folder))
    weights = {"model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors"}
    tasks = sorted(n for n in names if os.path.isfile(os.path.join(folder, n, ROUNDTRIP_FILE)))
    if tasks and "config.json" not in names:  # a multitask run: one model per task folder
        raise NLPTransferError(
            f"{folder} is a multitask run ({', '.join(tasks)}): push one task's folder, e.g. nlp-transfer push "
            f"{os.path.join(folder, tasks[0])} <repo id>-{tasks[0]} (or train with --push_to_hub to push every task)"
        )
    if FINISHED_MARKER not in names or "config.json" not in names or not names & weights:
        missing = [n for n in (FINISHED_MARKER, "config.json") if n not in names] or ["weights"]
        raise NLPTransferError(
            f"{folder} is not a finished nlp_transfer run (no {', '.join(missing)}): push the --output_dir of a run "
            "that completed, or finish it with --resume_from_checkpoint true"
        )
    if ROUNDTRIP_FILE not in names:
        raise NLPTransferError(
            f"{folder} has no {ROUNDTRIP_FILE} (written at the end of every run since nlp_transfer 0.1): rerun the "
            "recipe to produce a verifiable folder"
        )


def _files_to_push(folder: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in PUSH_IGNORE))
        for name in sorted(files):
            # the round-trip record holds held-out texts wherever a check left it (``merged/`` has its own)
            if name == ROUNDTRIP_FILE or (rel_root == "." and any(fnmatch.fnmatch(name, p) for p in PUSH_IGNORE)):
                continue
            out.append(os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/"))
    return out


def _rewritten(folder: str, files: list[str], repo: str) -> dict[str, bytes]:
    """The files whose uploaded copy differs from the local one (the local folder is never changed):

    - ``README.md``: the usage snippets' ``PATH_OR_REPO`` becomes the repo id.
    - ``adapter_config.json`` of a LoRA folder that carries its base weights: ``base_model_name_or_path`` becomes the
      repo itself. transformers loads a *Hub* adapter repo by building the base from that field (a local folder
      with a config.json is the exception), so naming the original base would make ``pipeline(model=repo)`` load
      a base without the trained label names; naming the repo loads its own config (labels), base weights and
      adapter, for ``pipeline``, ``AutoModel*`` and ``AutoPeftModel*`` alike. ``PeftModel.from_pretrained(base,
      repo)`` ignores the field. The original base stays in the card's ``base_model`` metadata.
    """
    out = {}
    if "README.md" in files:
        with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
            out["README.md"] = f.read().replace(PLACEHOLDER, repo).encode("utf-8")
    if "adapter_config.json" in files and ("model.safetensors" in files or "model.safetensors.index.json" in files):
        with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["base_model_name_or_path"] = repo
        out["adapter_config.json"] = json.dumps(cfg, indent=2, sort_keys=True).encode("utf-8")
    return out


@contextmanager
def _bounded_requests(timeout: float):
    """huggingface_hub's shared HTTP client has no timeout; give it one for the duration of the push."""
    from huggingface_hub.utils import _http

    # the current factory is private state; fall back to the public default, or leave the client alone on a
    # huggingface_hub without client factories (pushes then rely on the library's own retries, without a timeout)
    factory = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or getattr(_http, "default_client_factory", None)
    if factory is None or not hasattr(_http, "set_client_factory"):
        logger.warning("this huggingface_hub has no client factory: pushing without a request timeout")
        yield
        return

    def with_timeout():
        client = factory()
        client.timeout = type(client.timeout)(timeout)
        return client

    _http.set_client_factory(with_timeout)
    try:
        yield
    finally:
        _http.set_client_factory(factory)


def _transport_errors() -> tuple[type[Exception], ...]:
    from huggingface_hub.utils import _http

    return tuple(getattr(_http, "_DEFAULT_RETRY_ON_EXCEPTIONS", ())) + (ConnectionError, TimeoutError)


def _scrub(text: str) -> str:
    from huggingface_hub import get_token

    token = get_token()
    text = redact(" ".join(str(text).split()))
    return text.replace(token, "***") if token else text


def _describe_http_error(e) -> tuple[bool, str]:
    """(retryable, one-line reason) for an HfHubHTTPError."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    server = ""
    try:
        server = e.response.json().get("error", "")
    except Exception:  # noqa: BLE001 - not JSON
        pass
    reason = f"HTTP {status}" + (f" ({server})" if server else "")
    if status in (401, 403):
        reason += ": the token is missing, invalid, or lacks write access to this namespace"
    return status is None or status >= 500 or status in (408, 429), reason


def push_folder(
    folder: str,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    retries: int | None = None,
    timeout: float | None = None,
) -> str:
    """Upload a finished, verified run folder to ``repo_id`` (created if missing) and return the commit URL.

    Args:
        folder (`str`): the run's output folder (see `check_finished_run`).
        repo_id (`str`): ``name`` or ``namespace/name``.
        private (`bool`, *optional*): visibility of a repo this call creates (an existing repo keeps its own).
        revision (`str`, *optional*): branch to commit to, created from ``main`` when missing.
        commit_message (`str`, *optional*): defaults to "Upload <folder name> with nlp_transfer".
        retries (`int`, *optional*): attempts on transient failures (env ``NLP_TRANSFER_HUB_RETRIES``, default 3).
        timeout (`float`, *optional*): seconds per network operation (env ``NLP_TRANSFER_HUB_TIMEOUT``, default 60).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
    from huggingface_hub.errors import HfHubHTTPError

    retries = max(1, int(retries or os.environ.get(ENV_RETRIES) or 3))
    timeout = float(timeout or os.environ.get(ENV_TIMEOUT) or 60)
    files = _files_to_push(folder)
    api = HfApi()
    name = os.path.basename(os.path.abspath(folder))
    last = ""
    for attempt in range(1, retries + 1):
        try:
            with _bounded_requests(timeout):
                repo = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
                contents = _rewritten(folder, files, repo)
                if "README.md" in contents:
                    try:
                        ModelCard(contents["README.md"].decode("utf-8")).validate()
                    except ValueError as e:
                        raise NLPTransferError(
                            f"the hub refused the model card's metadata ({_scrub(e)}); nothing was uploaded"
                        ) from None
                if revision and revision != "main":
                    api.create_branch(repo, branch=revision, exist_ok=True)
                ops = [
                    CommitOperationAdd(path_in_repo=f, path_or_fileobj=contents.get(f, os.path.join(folder, f)))
                    for f in files
                ]
                info = api.create_commit(
                    repo,
                    operations=ops,
                    commit_message=commit_message or f"Upload {name} with nlp_transfer",
                    revision=revision,
                )
            logger.info("pushed %d files of %s to %s (revision %s)", len(files), folder, repo, revision or "main")
            return info.commit_url
        except HfHubHTTPError as e:
            retryable, last = _describe_http_error(e)
            if not retryable:
                break
        except _transport_errors() as e:
            last = f"{type(e).__name__}: {_scrub(e) or 'no answer'} (timeout {timeout:g} s per request)"
        if attempt < retries:
            wait = 2 ** (attempt - 1)
            logger.warning("push attempt %d/%d failed (%s); retrying in %d s", attempt, retries, last, wait)
            time.sleep(wait)
    from huggingface_hub import constants

    raise NLPTransferError(
        f"pushing {folder} to {repo_id} at {constants.ENDPOINT} failed ({_scrub(last)}); the local run is intact: "
        f"retry with `nlp-transfer push {folder} {repo_id}`"
    )


def push_run(folder: str, target: PushTarget, *, commit_message: str | None = None) -> str:
    """Check that ``folder`` is a finished run, reload it and compare predictions with the recorded ones, then
    push it. Returns the commit URL."""
    check_finished_run(folder)
    try:
        check = verify_recorded(folder)
    except NLPTransferError:
        raise
    except Exception as e:  # noqa: BLE001 - a folder that won't even load (corrupt weights, edited config, ...)
        raise NLPTransferError(
            f"{folder} does not load the way a user would load it ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); refusing to push"
        ) from None
    logger.info("round trip before pushing: %s", json.dumps(check))
    url = push_folder(
        folder, target.repo_id, private=target.private, revision=target.revision, commit_message=commit_message
    )
    logger.info("pushed: %s", url)
    return url


# ------------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> dict:
    """``nlp-transfer push OUTPUT_DIR REPO_ID [--private] [--revision R] [--commit_message M]``."""
    import argparse

    from .cli import setup_logging

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, no usage dump, nothing of the command line that could be a token
            raise NLPTransferError(f"{redact(message)} (see `nlp-transfer push --help`)")

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a.split("=", 1)[0] in ("--hub_token", "--token") for a in argv):
        raise NLPTransferError(TOKEN_REFUSED)
    parser = Parser(
        prog="nlp-transfer push",
        description="Push a finished run's output folder to a model hub, after reloading it and checking its "
        "predictions. The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT selects another server.",
    )
    parser.add_argument("output_dir", help="the --output_dir of a finished run")
    parser.add_argument("repo_id", help="'name' (under your user) or 'namespace/name'")
    parser.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    parser.add_argument("--revision", default=None, help="branch to push to (created from main when missing)")
    parser.add_argument("--commit_message", default=None)
    args = parser.parse_args(argv)
    setup_logging()
    check_repo_id(args.repo_id)
    check_finished_run(args.output_dir)
    require_token()
    url = push_run(
        args.output_dir,
        PushTarget(args.repo_id, args.private or None, args.revision),
        commit_message=args.commit_message,
    )
    print(url, file=sys.stdout)
    return {"commit_url": url}
