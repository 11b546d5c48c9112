"""Trainer callbacks that log and steer: metrics as JSONL, per-sample val scores, W&B, stop-at-step. (Checkpoint
completion and rotation, and trimming metrics.jsonl on resume, are the checkpoint lifecycle: train/checkpoints.py.)

Callbacks run on every rank; only rank 0 (`state.is_world_process_zero`) writes files or talks to W&B, so a run
has one metrics file and one W&B run however many ranks it has.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from transformers import TrainerCallback

from ghostprobe.files import JsonlAppender, write_json_atomic
from ghostprobe.metrics.common import nan_to_none
from ghostprobe.models.video_llama.run_dir import is_complete

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
        self._appender = None  # opened at the first log, by rank 0 only

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            record = {
                "step": state.global_step,
                "time": round(time.time(), 3),
                **{k: _jsonable(v) for k, v in logs.items()},
            }
            if self._appender is None:
                self._appender = JsonlAppender(self.path)
            self._appender.write([record])

    def on_train_end(self, args, state, control, **kwargs):
        if self._appender is not None:
            self._appender.close()
            self._appender = None


class ValScores(TrainerCallback):
    """Writes each validation's per-sample P(yes) to RUN/val_scores/step-N.json (and later into the checkpoint of
    that step), so a reloaded checkpoint can be checked against what training measured."""

    def __init__(self, run_dir: Path, score_metrics):
        self.dir, self.score_metrics = run_dir / VAL_SCORES_DIR, score_metrics

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and self.score_metrics.last_scores:
            self.dir.mkdir(exist_ok=True)
            record = {
                "step": state.global_step,
                "metrics": {k: _jsonable(v) for k, v in (metrics or {}).items()},
                "scores": self.score_metrics.last_scores,
            }
            write_json_atomic(self.dir / f"step-{state.global_step}.json", record, indent=1)


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
            project=self.settings["project"],
            entity=self.settings.get("entity"),
            group=self.settings["group"],
            name=self.run_dir.name,
            id=id_file.read_text().strip(),
            resume="allow",
            dir=str(self.run_dir),
            mode=self.settings["mode"],
            tags=list(self.settings.get("tags") or []),
            config=self.config,
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is not None and logs:
            values = {k: v for k, v in logs.items() if isinstance(_jsonable(v), (int, float))}
            self.run.log(
                {
                    ("val/" if k.startswith("eval_") else "train/") + k.removeprefix("eval_"): v
                    for k, v in values.items()
                },
                step=state.global_step,
            )

    def on_save(self, args, state, control, **kwargs):
        checkpoint = self.run_dir / f"checkpoint-{state.global_step}"
        if self.run is None or not self.settings.get("log_checkpoints", True) or not is_complete(checkpoint):
            return
        import wandb

        artifact = wandb.Artifact(
            f"{self.run_dir.name}-checkpoint",
            type="model",
            metadata={"step": state.global_step, "best_metric": state.best_metric},
        )
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
