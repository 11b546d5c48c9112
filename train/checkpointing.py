"""Checkpoint bookkeeping the Trainer lacks: completion markers, `resume=auto`, keep-last-K rotation.

transformers' Trainer writes `checkpoint-<step>/` (model or adapter, DeepSpeed state with optimizer and scheduler,
per-rank RNG states, trainer_state.json with the data position) but cannot tell a finished checkpoint from one
killed mid-write, and rotates before anything could mark it finished. So the Trainer's own rotation is off
(save_total_limit=None) and `CheckpointCallback.on_save` (train/callbacks.py) runs, after every rank's files are
written: barrier -> `mark_complete` (ghostprobe/models/video_llama/finetuned.py: the marker lists every file with its
size) -> `rotate`. `resume=auto` only ever considers complete checkpoints, and resumes only from one whose files are
all still there; a resumed run must keep the settings that shape the optimisation and the task (`changed_settings`).
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from pathlib import Path

from ghostprobe.models.video_llama.finetuned import (COMPLETE_MARKER, IncompleteCheckpoint, checkpoint_step,
                                                     complete_checkpoints, is_complete, list_checkpoints,
                                                     verify_checkpoint)

log = logging.getLogger(__name__)


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
    start), the newest complete one (`auto`), or the given folder (must be complete). A complete checkpoint that
    has lost files since is refused (IncompleteCheckpoint naming them), not skipped: resuming from an older one
    would delete it."""
    if resume in (None, False, "null", "none"):
        return None
    if resume == "auto":
        complete = complete_checkpoints(run_dir)
        skipped = [p.name for p in list_checkpoints(run_dir)
                   if not is_complete(p) and (not complete or checkpoint_step(p) > checkpoint_step(complete[-1]))]
        if skipped:
            log.warning("resume=auto: skipping interrupted checkpoint(s) %s (no %s marker)", skipped, COMPLETE_MARKER)
        if not complete:
            return None
        try:
            return verify_checkpoint(complete[-1], "resume")
        except IncompleteCheckpoint as damaged:
            earlier = (f"; or resume={complete[-2]} to continue from the one before (the newer checkpoints are then "
                       "deleted)") if len(complete) > 1 else ""
            raise IncompleteCheckpoint(f"resume=auto: {damaged}{earlier}") from None
    path = Path(resume)
    if not is_complete(path):
        raise FileNotFoundError(f"resume={resume}: not a complete checkpoint (no {COMPLETE_MARKER} marker); use "
                                "resume=auto to take the newest complete one")
    try:
        return verify_checkpoint(path, "resume")
    except IncompleteCheckpoint as damaged:
        raise IncompleteCheckpoint(f"resume={resume}: {damaged}") from None


def _flatten(config: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; lists are values (train.modules is one setting)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(trained: dict, now: dict, may_change: list[str]) -> list[str]:
    """The settings of `now` that differ from those the run was `trained` with (resolved configs), as
    "key (old -> new)", leaving out the keys matching a `may_change` pattern (fnmatch: "logger.*")."""
    before, after = _flatten(trained), _flatten(now)
    missing = object()
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, missing), after.get(key, missing)
        if old == new or any(fnmatch.fnmatchcase(key, pattern) for pattern in may_change):
            continue
        shown = ["(absent)" if v is missing else _short(v) for v in (old, new)]
        changes.append(f"{key} ({shown[0]} -> {shown[1]})")
    return changes


def _short(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def discard_after(run_dir: Path, resumed: Path | None) -> list[Path]:
    """Remove checkpoints newer than the one resumed from (interrupted writes, or a run continued from an older
    checkpoint on purpose): the resumed run writes those steps again and must not mix its files with theirs."""
    start = checkpoint_step(resumed) if resumed is not None else -1
    doomed = [p for p in list_checkpoints(run_dir) if checkpoint_step(p) > start]
    for path in doomed:
        log.warning("removing %s: newer than the checkpoint training resumes from", path)
        shutil.rmtree(path, ignore_errors=True)
    return doomed
