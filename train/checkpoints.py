"""A training checkpoint's life, in the order it happens: written, marked complete, rotated; and, when a run starts
again, the checkpoint it resumes from and what the stopped attempt left after it removed.

transformers' Trainer writes `checkpoint-<step>/` (model or adapter, DeepSpeed state with optimizer and scheduler,
per-rank RNG states, trainer_state.json with the data position) but cannot tell a finished checkpoint from one
killed mid-write, and rotates before anything could mark it finished. So:
1. save: the Trainer's `_save` (train/trainer.py) adds what it does not write itself (`write_checkpoint_extras`);
2. complete: `CheckpointCallback.on_save` runs after every rank's files are written: barrier -> `mark_complete`
   (the COMPLETE marker, which lists every file with its size: the manifest) -> `rotate`; the Trainer's own
   rotation is off (save_total_limit=None);
3. resume: `resume_point` considers complete checkpoints only, and resumes only from one whose manifest's files are
   all still there; a resumed run must keep the settings that shape the optimisation and the task
   (`changed_settings`); newer checkpoints and metrics rows of later steps, left by the attempt that stopped, go.
The format of what is written (marker, manifest, checkpoint info), which eval and export read as well, is
ghostprobe/models/video_llama/run_dir.py.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
from pathlib import Path

import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback

from ghostprobe.files import write_json_atomic, write_text_atomic
from ghostprobe.models.video_llama.run_dir import (
    CHECKPOINT_INFO,
    COMPLETE_MARKER,
    TRAINABLES_FILE,
    IncompleteCheckpoint,
    checkpoint_step,
    complete_checkpoints,
    is_complete,
    list_checkpoints,
    mark_complete,
    verify_checkpoint,
)
from train.callbacks import METRICS_FILE, VAL_SCORES_DIR
from train.launch import refuse

log = logging.getLogger(__name__)


# ---- 1. save --------------------------------------------------------------------------------------------------
def write_checkpoint_extras(checkpoint: Path, model, state_dict: dict | None, info: dict) -> None:
    """What a checkpoint holds besides the Trainer's files: ghostprobe_checkpoint.json (`info`: format, base model,
    prompt, answers, step) and, for a LoRA checkpoint, trainables.safetensors: every trained tensor outside the
    adapter, taken from `state_dict` (the one save_model gathered under ZeRO-3; None: the model's own), named as in
    the base model."""
    if info["format"] == "lora":
        _save_trainables(checkpoint, model, state_dict)
    write_json_atomic(checkpoint / CHECKPOINT_INFO, info)


def _save_trainables(checkpoint: Path, model, state_dict: dict | None) -> None:
    from safetensors.torch import save_file

    if state_dict is None:
        state_dict = model.state_dict()
    names = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    missing = [n for n in names if n not in state_dict]
    if missing:
        raise RuntimeError(
            f"trained tensors {missing[:3]} are missing from the gathered state dict: "
            "is stage3_gather_16bit_weights_on_model_save on?"
        )
    tensors = {n.removeprefix("base_model.model."): state_dict[n].detach().cpu().contiguous() for n in names}
    empty = [n for n, t in tensors.items() if t.numel() == 0]
    if empty:  # a ZeRO-3 placeholder instead of the weights (the LLaVA #1619 failure)
        raise RuntimeError(f"trained tensors {empty[:3]} are empty: ZeRO-3 parameters were not gathered")
    save_file(tensors, str(checkpoint / TRAINABLES_FILE), metadata={"format": "pt"})


# ---- 2. complete, rotate --------------------------------------------------------------------------------------
class CheckpointCallback(TrainerCallback):
    """After the Trainer wrote checkpoint-N on every rank: copy that step's val scores in, wait for all ranks,
    write the completion marker (rank 0), then keep the last `keep_last` complete checkpoints plus the best."""

    def __init__(self, run_dir: Path, keep_last: int | None):
        self.run_dir, self.keep_last = run_dir, keep_last

    def on_save(self, args, state, control, **kwargs):
        checkpoint = self.run_dir / f"checkpoint-{state.global_step}"
        if dist.is_initialized():
            dist.barrier()  # every rank has written its optimizer shard and RNG state
        if state.is_world_process_zero:
            scores = self.run_dir / VAL_SCORES_DIR / f"step-{state.global_step}.json"
            if scores.is_file():
                shutil.copy(scores, checkpoint / "val_scores.json")
            mark_complete(checkpoint)
            best = Path(state.best_model_checkpoint) if state.best_model_checkpoint else None
            for path in rotate(self.run_dir, self.keep_last, keep=best):
                log.info("deleted old checkpoint %s (checkpoint.keep_last=%s)", path.name, self.keep_last)
        if dist.is_initialized():
            dist.barrier()  # nobody moves on (or is killed) before the marker exists


def rotate(run_dir: Path, keep_last: int | None, keep: Path | None = None) -> list[Path]:
    """Delete complete checkpoints beyond the newest `keep_last` (never `keep`, the best one) and interrupted
    ones older than the newest complete checkpoint; return what was deleted. `keep_last` None keeps all."""
    complete = complete_checkpoints(run_dir)
    if not complete:
        return []
    doomed = [
        p
        for p in list_checkpoints(run_dir)
        if not is_complete(p) and checkpoint_step(p) < checkpoint_step(complete[-1])
    ]
    if keep_last is not None:
        survivors = set(complete[-max(keep_last, 1) :])
        doomed += [p for p in complete if p not in survivors and (keep is None or p.name != keep.name)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# ---- 3. resume ------------------------------------------------------------------------------------------------
def resume_point(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from (every rank); refuses to start afresh over an earlier run's checkpoints, to
    resume from a checkpoint that lost files, and to resume with other settings. Newer checkpoints and metrics rows
    of later steps, left by the attempt that stopped, are removed (rank 0)."""
    try:
        resume = find_resume_checkpoint(cfg.resume, run_dir)
    except FileNotFoundError as error:  # not complete, or lost files since
        refuse(f"train: {error}")
    if resume is None and cfg.resume is None and complete_checkpoints(run_dir):
        refuse(
            f"train: {run_dir} already holds checkpoints of an earlier run: pass resume=auto to continue it, "
            "or another output_dir to start afresh"
        )
    if resume is not None:
        _check_unchanged_settings(cfg, resume)
    if dist.get_rank() == 0:
        if resume is not None or cfg.resume == "auto":
            discard_after(run_dir, resume)
        drop_metrics_after(run_dir, checkpoint_step(resume) if resume is not None else 0)
    dist.barrier()
    return resume


def find_resume_checkpoint(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None (`resume=null`, or `auto` with no complete checkpoint yet: a fresh
    start), the newest complete one (`auto`), or the given folder (must be complete). A complete checkpoint that
    has lost files since is refused (IncompleteCheckpoint naming them), not skipped: resuming from an older one
    would delete it."""
    if resume in (None, False, "null", "none"):
        return None
    if resume == "auto":
        complete = complete_checkpoints(run_dir)
        skipped = [
            p.name
            for p in list_checkpoints(run_dir)
            if not is_complete(p) and (not complete or checkpoint_step(p) > checkpoint_step(complete[-1]))
        ]
        if skipped:
            log.warning("resume=auto: skipping interrupted checkpoint(s) %s (no %s marker)", skipped, COMPLETE_MARKER)
        if not complete:
            return None
        try:
            return verify_checkpoint(complete[-1], "resume")
        except IncompleteCheckpoint as damaged:
            earlier = (
                (f"; or resume={complete[-2]} to continue from the one before (the newer checkpoints are then deleted)")
                if len(complete) > 1
                else ""
            )
            raise IncompleteCheckpoint(f"resume=auto: {damaged}{earlier}") from None
    path = Path(resume)
    if not is_complete(path):
        raise FileNotFoundError(
            f"resume={resume}: not a complete checkpoint (no {COMPLETE_MARKER} marker); use "
            "resume=auto to take the newest complete one"
        )
    try:
        return verify_checkpoint(path, "resume")
    except IncompleteCheckpoint as damaged:
        raise IncompleteCheckpoint(f"resume={resume}: {damaged}") from None


def _check_unchanged_settings(cfg: DictConfig, resume: Path) -> None:
    """Refuse to resume with settings that change the optimisation or the task (anything not in
    `resume_may_change`) from those the run was trained with, as its config.yaml holds them."""
    saved = resume.parent / "config.yaml"
    if not saved.is_file():
        log.warning(
            "%s: no config.yaml beside %s: this run's settings cannot be compared with those it was trained with",
            resume.parent,
            resume.name,
        )
        return
    changes = changed_settings(
        OmegaConf.to_container(OmegaConf.load(saved)),
        OmegaConf.to_container(cfg, resolve=True),
        list(cfg.resume_may_change),
    )
    if changes:
        refuse(
            f"train: cannot resume {resume.parent} with other settings than it was trained with "
            f"({saved.name}): {', '.join(changes)}. These change the optimisation or the task mid-run. Resume "
            "without these overrides, or train with them as a new run (another output_dir, no resume=). What a "
            "resume may change is listed in resume_may_change (conf/train.yaml)"
        )


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


def _flatten(config: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; lists are values (train.modules is one setting)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def discard_after(run_dir: Path, resumed: Path | None) -> list[Path]:
    """Remove checkpoints newer than the one resumed from (interrupted writes, or a run continued from an older
    checkpoint on purpose): the resumed run writes those steps again and must not mix its files with theirs."""
    start = checkpoint_step(resumed) if resumed is not None else -1
    doomed = [p for p in list_checkpoints(run_dir) if checkpoint_step(p) > start]
    for path in doomed:
        log.warning("removing %s: newer than the checkpoint training resumes from", path)
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def drop_metrics_after(run_dir: Path, step: int) -> int:
    """Before training continues from `step`: remove the RUN/metrics.jsonl rows of later steps (an earlier attempt
    logged them past its last complete checkpoint; the resumed run logs those steps again) and lines a kill cut
    short. The file is replaced atomically; returns how many rows went."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return 0
    text = path.read_text()
    kept, later, unreadable = [], 0, 0
    for line in text.splitlines():
        try:
            row_step = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            unreadable += 1
            continue
        if row_step > step:
            later += 1
        else:
            kept.append(line)
    if later or unreadable or (text and not text.endswith("\n")):  # the next row must start a line
        # atomic: a kill now leaves the old file or the new one, never a mix
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    if later or unreadable:
        log.warning(
            "%s: removed %d row(s) of steps after step %d, where training continues, and %d unreadable line(s)",
            path,
            later,
            step,
            unreadable,
        )
    return later + unreadable
