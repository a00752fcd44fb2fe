"""Runs that survive interruption.

- **SIGTERM** (what job schedulers, ``kill`` and ``torchrun`` send first): the current optimizer step finishes, a
  checkpoint is saved in ``output_dir/checkpoint-<step>``, training stops, and the recipe exits with status 143 and
  one line saying how to continue (the same command plus ``--resume_from_checkpoint true``). Under DDP every rank
  learns of the signal at the same step (a one-element all-reduce per step), so no rank waits on another forever.
- **SIGKILL** (or a crash, or power loss) cannot be caught: the run resumes from the last *complete* checkpoint
  (`last_complete_checkpoint`: Trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one is
  skipped). The final folder is only ever written through the staging folder
  (`nlp_transfer.artifacts.folder.publish`), so an interrupted run never leaves a half-written final folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal

from transformers import TrainerCallback

from .errors import RunInterrupted

logger = logging.getLogger(__name__)


class StopOnSignal(TrainerCallback):
    """Trainer callback: on SIGTERM, save a checkpoint at the end of the current step and stop training."""

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = signals
        self.received: int | None = None
        self.stopped_at: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is None:
            logger.warning(
                "received %s: saving a checkpoint after this step, then stopping", signal.Signals(signum).name
            )
        self.received = signum

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def on_step_end(self, args, state, control, **kwargs):
        flag = self.received is not None
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            t = torch.tensor([1.0 if flag else 0.0], device=args.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
        if flag:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control

    def on_train_end(self, args, state, control, **kwargs):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}


def guard(trainer) -> StopOnSignal:
    """Install `StopOnSignal` on ``trainer``; call `raise_if_stopped` after ``trainer.train()``."""
    cb = StopOnSignal()
    trainer.add_callback(cb)
    return cb


def raise_if_stopped(cb: StopOnSignal, output_dir: str) -> None:
    if cb.stopped_at is not None:
        raise RunInterrupted(
            f"stopped by {signal.Signals(cb.received or signal.SIGTERM).name} at step {cb.stopped_at}; checkpoint "
            f"saved in {os.path.join(output_dir, f'checkpoint-{cb.stopped_at}')}: rerun the same command with "
            "--resume_from_checkpoint true to continue"
        )


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The ``checkpoint-<step>`` folder with the highest step whose ``trainer_state.json`` (written last) parses."""
    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(m.group(1)), name))
    for _, name in sorted(found, reverse=True):
        try:
            with open(os.path.join(output_dir, name, "trainer_state.json"), encoding="utf-8") as f:
                json.load(f)
            return os.path.join(output_dir, name)
        except (OSError, ValueError):
            logger.warning("skipping %s: incomplete (interrupted while saving)", name)
    return None
