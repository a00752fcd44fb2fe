"""The output folder's lifecycle: refuse a folder that holds a run (unless overwrite/resume), stage the final
artifacts in ``output_dir/.export-in-progress/``, then move them into place with ``metrics.json`` last.

A folder with ``metrics.json`` holds a finished run; a crash leaves the previous files or the checkpoints, never a
folder that looks finished but is not.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import socket
import time

import yaml

from ..errors import NLPTransferError
from ..interrupt import last_complete_checkpoint

logger = logging.getLogger(__name__)

FINISHED_MARKER = "metrics.json"
STAGING_NAME = ".export-in-progress"
ROUNDTRIP_FILE = "roundtrip_check.json"  # held-out inputs + the trained model's outputs (kept local, never pushed)
RUN_CONFIG_FILE = "run_config.yaml"
CURVES_FILE = "training_curves.png"
CARD_FILE = "README.md"
LOCK_NAME = ".nlp_transfer.lock"  # held for the run's lifetime: {"pid", "host", "started"} of its owner
_NOT_A_RUN = (STAGING_NAME, LOCK_NAME)
_held: dict[str, bool] = {}  # lock path -> whether this process created the output folder


def check_output_dir(
    output_dir: str, *, overwrite: bool = False, resume_from_checkpoint: str | None = None
) -> str | None:
    """Apply the output-folder policy before any expensive work.

    A non-empty ``output_dir`` is refused unless the user asks to overwrite or to resume.

    Args:
        output_dir (`str`): the run's folder.
        overwrite (`bool`, defaults to `False`): the user passed ``--overwrite_output_dir``.
        resume_from_checkpoint (`str`, *optional*): a checkpoint folder, or ``true``/``last`` for the latest
            ``checkpoint-*`` in ``output_dir``.

    Returns:
        The checkpoint folder to resume from, or None.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NLPTransferError(f"--output_dir {output_dir} is a file: choose a folder path")
    if resume_from_checkpoint:
        if resume_from_checkpoint.lower() in ("true", "last", "latest", "1", "yes"):
            ckpt = last_complete_checkpoint(output_dir)
            if ckpt is None:
                raise NLPTransferError(
                    f"--resume_from_checkpoint: no checkpoint-* folder in {output_dir} to resume from; give the "
                    "checkpoint path, or start a new run without it"
                )
            return ckpt
        if not os.path.isdir(resume_from_checkpoint):
            raise NLPTransferError(f"--resume_from_checkpoint: checkpoint folder not found: {resume_from_checkpoint}")
        return resume_from_checkpoint
    if os.path.isdir(output_dir):
        entries = sorted(e for e in os.listdir(output_dir) if e not in _NOT_A_RUN)
        if entries and not overwrite:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise NLPTransferError(
                f"--output_dir {output_dir} already holds a run ({shown}): pass --overwrite_output_dir to replace "
                "it, --resume_from_checkpoint true to continue it, or choose another --output_dir"
            )
    return None


def clear_output_dir(output_dir: str) -> None:
    """Empty ``output_dir`` (only called with --overwrite_output_dir, after data and model loaded fine)."""
    if not os.path.isdir(output_dir):
        return
    for entry in os.listdir(output_dir):
        if entry == LOCK_NAME:
            continue  # ours: held until the run ends
        p = os.path.join(output_dir, entry)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    logger.info("--overwrite_output_dir: cleared %s", output_dir)


def claim_output_dir(output_dir: str) -> None:
    """Create ``output_dir`` if needed and lock it for this run (``.nlp_transfer.lock``, with the owner's pid), before
    any data or model loads: a path that cannot be created or written fails now, not after training, and a second
    run started into the same folder is refused while the first is alive. A lock left by a dead process (kill -9)
    is taken over with a warning. Released by `release_output_dir`, at the latest when the process exits."""
    created = not os.path.isdir(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise NLPTransferError(
            f"cannot create --output_dir {output_dir} ({e.strerror or e}): choose a folder path you can write"
        ) from None
    path = os.path.join(output_dir, LOCK_NAME)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _take_over(path, output_dir)
            continue
        except OSError as e:
            raise NLPTransferError(
                f"--output_dir {output_dir} is not writable ({e.strerror or e}): choose a folder you can write"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(owner, f)
        break
    if not _held:
        atexit.register(release_all)
    _held[path] = created


def _take_over(path: str, output_dir: str) -> None:
    """Remove a lock whose owner is this process or a dead one; refuse a live owner's."""
    try:
        with open(path, encoding="utf-8") as f:
            owner = json.load(f)
    except (OSError, ValueError):
        owner = {}
    pid, host = owner.get("pid"), owner.get("host")
    here = host == socket.gethostname()
    if pid != os.getpid() or not here:
        if not here or _alive(pid):
            where = f"pid {pid} on {host}" if host else "another process"
            raise NLPTransferError(
                f"--output_dir {output_dir} is in use by another run ({where}, started {owner.get('started', '?')}): "
                f"wait for it to finish, or choose another --output_dir (if that run is gone, delete {path})"
            )
        logger.warning("%s: taking over the lock of pid %s, which is no longer running", output_dir, pid)
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def release_output_dir(output_dir: str) -> None:
    """Remove this run's lock (and the folder, when this run created it and left nothing in it)."""
    path = os.path.join(output_dir, LOCK_NAME)
    created = _held.pop(path, None)
    if created is None:
        return
    try:
        with open(path, encoding="utf-8") as f:
            mine = json.load(f).get("pid") == os.getpid()
    except (OSError, ValueError):
        mine = False
    if mine:
        os.remove(path)
    if created and os.path.isdir(output_dir) and not os.listdir(output_dir):
        os.rmdir(output_dir)


def release_all() -> None:
    for path in list(_held):
        release_output_dir(os.path.dirname(path))


def staging_dir(output_dir: str) -> str:
    """A fresh folder inside ``output_dir`` where the final artifacts are written before they move into place."""
    path = os.path.join(output_dir, STAGING_NAME)
    if os.path.isdir(path):
        shutil.rmtree(path)  # left by a crashed export; ours alone
    os.makedirs(path)
    return path


def publish(stage: str, output_dir: str) -> None:
    """Move every staged artifact into ``output_dir`` (``metrics.json`` last), then remove the staging folder."""
    entries = sorted(os.listdir(stage), key=lambda e: e == FINISHED_MARKER)
    for entry in entries:
        src, dst = os.path.join(stage, entry), os.path.join(output_dir, entry)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(src, dst)
    os.rmdir(stage)


def write_run_config(path: str, config: dict, notes: list[str] = ()) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Resolved configuration of this run; rerun with: --config run_config.yaml\n")
        f.writelines(f"# {n}\n" for n in notes)
        yaml.safe_dump(config, f, sort_keys=True)
