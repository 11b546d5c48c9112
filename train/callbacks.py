"""Trainer callbacks: checkpoint completion and rotation, metrics as JSONL, W&B, per-sample val scores, stop-at-step.

Callbacks run on every rank; only rank 0 (`state.is_world_process_zero`) writes files or talks to W&B, so a run
has one metrics file and one W&B run however many ranks it has.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from pathlib import Path

import torch.distributed as dist
from transformers import TrainerCallback

from ghostprobe.files import write_json_atomic, write_text_atomic
from ghostprobe.metrics.common import nan_to_none
from ghostprobe.models.video_llama.finetuned import is_complete, mark_complete

from train.checkpointing import rotate

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
VAL_SCORES_DIR = "val_scores"


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    return nan_to_none(value)  # e.g. AUROC with one class is undefined: null


class JsonlMetrics(TrainerCallback):
    """Every log (training: loss, learning_rate, grad_norm, samples_per_s, tokens_per_s, mfu, peak_memory_gib;
    validation: eval_*) as one JSON line in RUN/metrics.jsonl, with the step and wall time."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            record = {"step": state.global_step, "time": round(time.time(), 3),
                      **{k: _jsonable(v) for k, v in logs.items()}}
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


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
        log.warning("%s: removed %d row(s) of steps after step %d, where training continues, and %d unreadable "
                    "line(s)", path, later, step, unreadable)
    return later + unreadable


class ValScores(TrainerCallback):
    """Writes each validation's per-sample P(yes) to RUN/val_scores/step-N.json (and later into the checkpoint of
    that step), so a reloaded checkpoint can be checked against what training measured."""

    def __init__(self, run_dir: Path, score_metrics):
        self.dir, self.score_metrics = run_dir / VAL_SCORES_DIR, score_metrics

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and self.score_metrics.last_scores:
            self.dir.mkdir(exist_ok=True)
            record = {"step": state.global_step, "metrics": {k: _jsonable(v) for k, v in (metrics or {}).items()},
                      "scores": self.score_metrics.last_scores}
            write_json_atomic(self.dir / f"step-{state.global_step}.json", record, indent=1)


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


class StopAtStep(TrainerCallback):
    """Ends training after `step` optimizer steps while keeping the schedule of the full run (`train.stop_at_step`):
    for time-boxed sessions and for testing that stop + resume equals an uninterrupted run. A checkpoint is written
    at the stop (unless checkpoint.every_steps=0), so `resume=auto` continues from there and no step is lost."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control


class WandbLogger(TrainerCallback):
    """Weights & Biases on rank 0: one run per run directory (resumed runs continue it), grouped by experiment,
    the resolved config uploaded, every log, and each complete checkpoint as a reference artifact (a file://
    pointer: nothing is uploaded)."""

    def __init__(self, run_dir: Path, settings: dict, config: dict):
        self.run_dir, self.settings, self.config = run_dir, settings, config
        self.run = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.run is not None:
            return
        import wandb

        id_file = self.run_dir / "wandb_run_id"
        if not id_file.is_file():
            id_file.write_text(secrets.token_hex(4))  # kept, so that resuming continues this W&B run
        self.run = wandb.init(
            project=self.settings["project"], entity=self.settings.get("entity"), group=self.settings["group"],
            name=self.run_dir.name, id=id_file.read_text().strip(), resume="allow", dir=str(self.run_dir),
            mode=self.settings["mode"], tags=list(self.settings.get("tags") or []), config=self.config)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is not None and logs:
            values = {k: v for k, v in logs.items() if isinstance(_jsonable(v), (int, float))}
            self.run.log({("val/" if k.startswith("eval_") else "train/") + k.removeprefix("eval_"): v
                          for k, v in values.items()}, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        checkpoint = self.run_dir / f"checkpoint-{state.global_step}"
        if self.run is None or not self.settings.get("log_checkpoints", True) or not is_complete(checkpoint):
            return
        import wandb

        artifact = wandb.Artifact(f"{self.run_dir.name}-checkpoint", type="model",
                                  metadata={"step": state.global_step, "best_metric": state.best_metric})
        artifact.add_reference(checkpoint.resolve().as_uri(), checksum=False)
        aliases = [f"step-{state.global_step}", "latest"]
        if state.best_model_checkpoint and Path(state.best_model_checkpoint).name == checkpoint.name:
            aliases.append("best")
        self.run.log_artifact(artifact, aliases=aliases)

    def finish(self) -> None:
        """Close the W&B run (after the final test evaluation, which is logged too)."""
        if self.run is not None:
            self.run.finish()
            self.run = None
