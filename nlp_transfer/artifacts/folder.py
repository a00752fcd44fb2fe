"""The output folder's lifecycle: refuse a folder that holds a run (unless overwrite/resume), stage the final
artifacts in ``output_dir/.export-in-progress/``, then move them into place with ``metrics.json`` last.

A folder with ``metrics.json`` holds a finished run; a crash leaves the previous files or the checkpoints, never a
folder that looks finished but is not.
"""

from __future__ import annotations

import logging
import os
import shutil

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
        entries = sorted(e for e in os.listdir(output_dir) if e != STAGING_NAME)
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
        p = os.path.join(output_dir, entry)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    logger.info("--overwrite_output_dir: cleared %s", output_dir)


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


def write_run_config(path: str, config: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Resolved configuration of this run; rerun with: --config run_config.yaml\n")
        yaml.safe_dump(config, f, sort_keys=True)
