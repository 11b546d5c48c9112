"""The training recipe, top to bottom: model, data, Trainer, resume, train, test, summary.

Called by train/main.py on every rank after the process group and the shared run directory exist.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from transformers import EarlyStoppingCallback, set_seed

from ghostprobe.metrics import to_jsonable
from ghostprobe.models.video_llama.finetuned import best_checkpoint, checkpoint_step, complete_checkpoints
from ghostprobe.models.video_llama.processing import VideoLlamaProcessor
from ghostprobe.prompts import load_prompt

from train.callbacks import (CheckpointCallback, JsonlMetrics, StopAtStep, ValScores, WandbLogger,
                             drop_metrics_after)
from train.checkpointing import discard_after, find_resume_checkpoint
from train.data import AnswerCollator, BalancedSampler, PreparedClips
from train.model_setup import apply_training_policy, choose_precision, load_base_model, parameter_counts
from train.throughput import flops_per_sample, peak_tflops
from train.trainer import ScoreMetrics, VideoLlamaTrainer, training_arguments

log = logging.getLogger("train")


def _resume_point(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from; refuses to start afresh over an earlier run's checkpoints. Newer
    checkpoints and metrics rows of later steps, left by the attempt that stopped, are removed."""
    resume = find_resume_checkpoint(cfg.resume, run_dir)
    if resume is None and cfg.resume is None and complete_checkpoints(run_dir):
        raise SystemExit(f"{run_dir} already holds checkpoints of an earlier run: pass resume=auto to continue it, "
                         "or another output_dir to start afresh")
    if dist.get_rank() == 0:
        if resume is not None or cfg.resume == "auto":
            discard_after(run_dir, resume)
        drop_metrics_after(run_dir, checkpoint_step(resume) if resume is not None else 0)
    dist.barrier()
    return resume


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train per `cfg` into `run_dir`; returns (and rank 0 writes) the summary: best/last checkpoint, metrics."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    resume = _resume_point(cfg, run_dir)
    if rank == 0:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    precision = choose_precision(cfg.train.precision)
    args = training_arguments(cfg, run_dir, precision, world_size)  # before loading: ZeRO-3 partitions on load
    set_seed(cfg.train.seed)  # LoRA's initial weights come from the seed
    model, base_dir = load_base_model(cfg.model.path, precision)
    # The prompt layout trained on (the original Chat path unless conf/model says otherwise) is saved with every
    # checkpoint's processor, so eval scores the fine-tune with what it learned.
    processor = VideoLlamaProcessor.from_pretrained(base_dir, prompt_format=cfg.model.get("prompt_format"))
    model = apply_training_policy(model, cfg.train.llm, list(cfg.train.modules), cfg.train.lora)
    counts = parameter_counts(model)
    log.info("precision %s; parameters %.1fM, trained %.2fM (%.2f%%)", precision, counts["total"] / 1e6,
             counts["trainable"] / 1e6, 100 * counts["trainable"] / max(counts["total"], 1))

    prompt = load_prompt(cfg.prompt)
    collator = AnswerCollator(processor, prompt, cfg.train.answers.positive, cfg.train.answers.negative)
    train_data = PreparedClips(cfg.data.path, cfg.data.train_split, cfg.data.max_train_samples)
    val_data = PreparedClips(cfg.data.path, cfg.data.val_split, cfg.data.max_eval_samples)
    score_metrics = ScoreMetrics(val_data.sample_ids, cfg.eval.threshold)

    example = collator([train_data[0]])
    flops = flops_per_sample(model, example["pixel_values"].shape[1], float(example["attention_mask"].sum()))
    peak = peak_tflops(cfg.train.peak_tflops) * 1e12
    info = {"format": "lora" if cfg.train.llm == "lora" else "full", "base_model": str(base_dir.resolve()),
            "llm": cfg.train.llm, "modules": list(cfg.train.modules), "prompt": prompt.name,
            "prompt_format": processor.prompt_format,
            "answers": dict(cfg.train.answers)}
    callbacks = [JsonlMetrics(run_dir), ValScores(run_dir, score_metrics),
                 CheckpointCallback(run_dir, cfg.checkpoint.keep_last)]
    wandb = None
    if cfg.logger.name == "wandb" and cfg.logger.get("mode") != "disabled":
        wandb = WandbLogger(run_dir, OmegaConf.to_container(cfg.logger, resolve=True),
                            OmegaConf.to_container(cfg, resolve=True))
        callbacks.append(wandb)
    if cfg.eval.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.eval.early_stopping_patience))
    if cfg.train.stop_at_step:
        callbacks.append(StopAtStep(cfg.train.stop_at_step))

    trainer = VideoLlamaTrainer(
        model=model, args=args, train_dataset=train_data, eval_dataset=val_data, data_collator=collator,
        processing_class=processor, compute_metrics=score_metrics, callbacks=callbacks, choice=collator.choice,
        train_sampler=BalancedSampler(train_data.labels, cfg.train.seed) if cfg.data.balance_classes else None,
        flops_per_sample=flops, peak_flops=peak, checkpoint_info=info)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    summary = {"run_dir": str(run_dir), "global_step": trainer.state.global_step,
               "best_metric": trainer.state.best_metric, "metric": cfg.eval.metric}
    if cfg.eval.test_at_end:
        test_data = PreparedClips(cfg.data.path, cfg.data.test_split, cfg.data.max_eval_samples)
        test_scores = ScoreMetrics(test_data.sample_ids, cfg.eval.threshold)
        trainer.compute_metrics = test_scores
        summary["test"] = trainer.evaluate(test_data, metric_key_prefix="test")
        if rank == 0:
            (run_dir / "test_scores.json").write_text(json.dumps(test_scores.last_scores, indent=1) + "\n")
    if wandb is not None:
        wandb.finish()
    if rank == 0:
        best = best_checkpoint(run_dir)
        complete = complete_checkpoints(run_dir)
        summary.update(best_checkpoint=best.name if best else None,
                       last_checkpoint=complete[-1].name if complete else None)
        (run_dir / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
        log.info("done: %s", json.dumps(to_jsonable(summary)))
    dist.barrier()
    return summary
