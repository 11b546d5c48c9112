"""Checkpoint bookkeeping the Trainer lacks: completion markers, `resume=auto`, keep-last-K rotation.

transformers' Trainer writes `checkpoint-<step>/` (model or adapter, DeepSpeed state with optimizer and scheduler,
per-rank RNG states, trainer_state.json with the data position) but cannot tell a finished checkpoint from one
killed mid-write, and rotates before anything could mark it finished. So the Trainer's own rotation is off
(save_total_limit=None) and `CheckpointCallback.on_save` (train/callbacks.py) runs, after every rank's files are
written: barrier -> `mark_complete` -> `rotate`. `resume=auto` only ever considers complete checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from ghostprobe.models.video_llama.finetuned import (COMPLETE_MARKER, checkpoint_step, complete_checkpoints,
                                                     is_complete, list_checkpoints)

log = logging.getLogger(__name__)


def mark_complete(checkpoint: Path) -> None:
    """Write the completion marker (last, flushed to disk): from now on the checkpoint may be loaded or resumed."""
    marker = checkpoint / COMPLETE_MARKER
    tmp = marker.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump({"step": checkpoint_step(checkpoint), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)  # atomic: the marker is either absent or whole


def rotate(run_dir: Path, keep_last: int | None, keep: Path | None = None) -> list[Path]:
    """Delete complete checkpoints beyond the newest `keep_last` (never `keep`, the best one) and interrupted
    ones older than the newest complete checkpoint; return what was deleted. `keep_last` None keeps all."""
    complete = complete_checkpoints(run_dir)
    if not complete:
        return []
    doomed = [p for p in list_checkpoints(run_dir)
              if not is_complete(p) and checkpoint_step(p) < checkpoint_step(complete[-1])]
    if keep_last is not None:
        survivors = set(complete[-max(keep_last, 1):])
        doomed += [p for p in complete if p not in survivors and (keep is None or p.name != keep.name)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def find_resume_checkpoint(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None (`resume=null`, or `auto` with no complete checkpoint yet: a fresh
    start), the newest complete one (`auto`), or the given folder (must be complete)."""
    if resume in (None, False, "null", "none"):
        return None
    if resume == "auto":
        complete = complete_checkpoints(run_dir)
        skipped = [p.name for p in list_checkpoints(run_dir)
                   if not is_complete(p) and (not complete or checkpoint_step(p) > checkpoint_step(complete[-1]))]
        if skipped:
            log.warning("resume=auto: skipping interrupted checkpoint(s) %s (no %s marker)", skipped, COMPLETE_MARKER)
        return complete[-1] if complete else None
    path = Path(resume)
    if not is_complete(path):
        raise FileNotFoundError(f"resume={resume}: not a complete checkpoint (no {COMPLETE_MARKER} marker); use "
                                "resume=auto to take the newest complete one")
    return path


def discard_after(run_dir: Path, resumed: Path | None) -> list[Path]:
    """Remove checkpoints newer than the one resumed from (interrupted writes, or a run continued from an older
    checkpoint on purpose): the resumed run writes those steps again and must not mix its files with theirs."""
    start = checkpoint_step(resumed) if resumed is not None else -1
    doomed = [p for p in list_checkpoints(run_dir) if checkpoint_step(p) > start]
    for path in doomed:
        log.warning("removing %s: newer than the checkpoint training resumes from", path)
        shutil.rmtree(path, ignore_errors=True)
    return doomed
