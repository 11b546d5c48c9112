"""transformers' Trainer (with its DeepSpeed integration) plus what this task needs and it lacks.

- `training_arguments`: conf/train.yaml -> TrainingArguments (global batch -> gradient accumulation, precision,
  DeepSpeed config, schedule, eval/save cadence, best-checkpoint metric).
- `VideoLlamaTrainer`: validation by scoring in the same forward pass as the val loss (no generation, so nothing
  ZeRO-3 cannot run): P(yes) is read where the answer's deciding token is predicted, exactly the position
  `backend.yes_probability` reads at eval time; class-balanced sampling; throughput/MFU in every training log;
  LoRA checkpoints that carry every other trained tensor and a ghostprobe_checkpoint.json (what is written:
  train/checkpoints.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import Trainer, TrainingArguments

from ghostprobe.metrics import classification_metrics
from ghostprobe.models.video_llama.processing import IGNORE_INDEX, AnswerChoice, yes_probability_from_logits
from train.checkpoints import write_checkpoint_extras
from train.throughput import peak_memory_gib

# Validation metrics logged (with the eval_ prefix) and selectable as eval.metric.
VAL_METRICS = ("accuracy", "balanced_accuracy", "fpr", "fnr", "auroc", "f1")


def training_arguments(cfg: DictConfig, run_dir: Path, precision: str, world_size: int) -> TrainingArguments:
    """TrainingArguments for conf/train.yaml. Creating them registers the DeepSpeed config with transformers, so
    under ZeRO-3 the model must be loaded after this call (it is then partitioned while loading)."""
    t, ev = cfg.train, cfg.eval
    per_step = t.micro_batch_size * world_size
    if t.global_batch_size % per_step:
        raise ValueError(
            f"train.global_batch_size={t.global_batch_size} is not a multiple of micro_batch_size x "
            f"ranks = {t.micro_batch_size} x {world_size}"
        )
    metric = ev.metric if ev.metric in ("loss", *VAL_METRICS) else None
    if ev.metric is not None and metric is None:
        raise ValueError(f"eval.metric={ev.metric!r}: choose loss or one of {VAL_METRICS}")
    ds_config = OmegaConf.to_container(cfg.deepspeed, resolve=True) if cfg.deepspeed else None
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=ev.batch_size,
        gradient_accumulation_steps=t.global_batch_size // per_step,
        max_steps=t.max_steps if t.max_steps else -1,
        num_train_epochs=t.epochs,
        learning_rate=t.lr,
        lr_scheduler_type=t.schedule,
        lr_scheduler_kwargs=OmegaConf.to_container(t.schedule_kwargs, resolve=True) if t.schedule_kwargs else None,
        warmup_steps=t.warmup,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=bool(t.gradient_checkpointing),
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        seed=t.seed,
        data_seed=t.seed,
        deepspeed=ds_config,
        logging_steps=t.log_every_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",
        eval_strategy="steps" if ev.every_steps else "no",
        eval_steps=ev.every_steps or None,
        save_strategy="steps" if cfg.checkpoint.every_steps else "no",
        save_steps=cfg.checkpoint.every_steps or None,
        save_total_limit=None,  # rotation is train.checkpoints.rotate, after the completion marker
        metric_for_best_model=metric,
        greater_is_better=None if metric is None else metric not in ("loss", "fpr", "fnr"),
        remove_unused_columns=False,  # batches are built by our collator from non-tensor items
        label_names=["labels"],
        dataloader_num_workers=cfg.data.num_workers,
        report_to="none",  # W&B is our own rank-0 callback (train/callbacks.py)
        disable_tqdm=not cfg.progress_bar,
        use_cpu=not torch.cuda.is_available(),
    )


def decision_logits(logits: torch.Tensor, labels: torch.Tensor, choice: AnswerChoice) -> torch.Tensor:
    """[B, vocab] logits predicting each row's deciding answer token (the one after the shared prefix).

    Rows are left-padded, so the answer starts at the first supervised position `a`; the deciding token sits at
    `a + len(prefix)` and is predicted by the logits one position earlier. The prompt and prefix before it are
    those scoring sees, so (causal attention) these logits equal the scoring forward pass's.
    """
    first_answer = (labels != IGNORE_INDEX).int().argmax(dim=1)
    rows = torch.arange(len(labels), device=labels.device)
    return logits[rows, first_answer + len(choice.prefix_ids) - 1]


class ScoreMetrics:
    """compute_metrics for the Trainer: val metrics from P(yes); keeps the per-sample scores of the last call."""

    def __init__(self, sample_ids: list[str], threshold: float):
        self.sample_ids, self.threshold = sample_ids, threshold
        self.last_scores: dict[str, float] = {}

    def __call__(self, prediction) -> dict[str, float]:
        p_yes = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1)
        targets = np.asarray(prediction.label_ids).reshape(-1, 2)
        order = np.argsort(targets[:, 1], kind="stable")
        labels, indices, p_yes = targets[order, 0].astype(bool), targets[order, 1], p_yes[order]
        self.last_scores = {self.sample_ids[i]: float(p) for i, p in zip(indices, p_yes, strict=True)}
        metrics = classification_metrics(labels, p_yes, threshold=self.threshold)
        return {name: float(metrics[name]) for name in VAL_METRICS}


class VideoLlamaTrainer(Trainer):
    """Trainer with scoring-based validation, class-balanced sampling, throughput logs and LoRA+trainables saving.

    Extra args: `choice` (the prompt's scoring tokens), `train_sampler` (e.g. `BalancedSampler`, or None for
    shuffling), `flops_per_sample` and `peak_flops` (for MFU), `checkpoint_info` (written into every checkpoint).
    Three private Trainer methods are overridden, having no public hook; tests/test_trainer_hooks.py checks them
    against the transformers versions pyproject.toml pins.
    """

    def __init__(
        self,
        *args,
        choice: AnswerChoice,
        train_sampler=None,
        flops_per_sample: float = 0.0,
        peak_flops: float = 0.0,
        checkpoint_info: dict | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.choice, self.train_sampler = choice, train_sampler
        self.flops_per_sample, self.peak_flops = flops_per_sample, peak_flops
        self.checkpoint_info = checkpoint_info or {"format": "full"}
        self._window = None  # (time, samples, tokens) at the previous training log
        self._samples_seen = 0  # clips trained on by all ranks (counted per batch: an epoch's last one is short)
        self._paused_s = 0.0  # evaluation and checkpoint time inside the current window

    # ---- data ---------------------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        return self.train_sampler if self.train_sampler is not None else super()._get_train_sampler(train_dataset)

    # ---- loss and validation ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {k: v for k, v in inputs.items() if k != "targets"}
        if model.training:  # every rank gets a batch of the same size (DistributedSampler pads the shards)
            self._samples_seen += len(inputs["input_ids"]) * self.args.world_size
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        targets = inputs.pop("targets")
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs, use_cache=False)
        p_yes = yes_probability_from_logits(decision_logits(outputs.logits, inputs["labels"], self.choice), self.choice)
        return outputs.loss.detach(), p_yes, targets

    # ---- logging ------------------------------------------------------------------------------------------
    def evaluate(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._paused_s += time.perf_counter() - started

    def _save_checkpoint(self, model, trial):
        started = time.perf_counter()
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._paused_s += time.perf_counter() - started

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add throughput over the steps since the previous one
            now, seen, tokens = time.perf_counter(), self._samples_seen, self.state.num_input_tokens_seen
            if self._window is not None:
                seconds = now - self._window[0] - self._paused_s
                samples = seen - self._window[1]
                if seconds > 0 and samples > 0:
                    logs["samples_per_s"] = samples / seconds
                    logs["tokens_per_s"] = (tokens - self._window[2]) / seconds
                    if self.peak_flops:
                        logs["mfu"] = (
                            samples * self.flops_per_sample / seconds / (self.peak_flops * self.args.world_size)
                        )
            logs["peak_memory_gib"] = peak_memory_gib()
            self._window, self._paused_s = (now, seen, tokens), 0.0
        super().log(logs, start_time)

    # ---- saving -------------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            write_checkpoint_extras(
                Path(output_dir or self.args.output_dir),
                self.model,
                state_dict,
                dict(self.checkpoint_info, step=self.state.global_step),
            )
