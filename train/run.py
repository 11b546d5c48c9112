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

from ghostprobe.files import write_json_atomic, write_text_atomic
from ghostprobe.metrics import to_jsonable
from ghostprobe.models.video_llama.processing import VideoLlamaProcessor
from ghostprobe.models.video_llama.run_dir import best_checkpoint, complete_checkpoints
from ghostprobe.prompts import load_prompt
from train.callbacks import JsonlMetrics, StopAtStep, ValScores, WandbLogger
from train.checkpoints import CheckpointCallback, resume_point
from train.data import AnswerCollator, BalancedSampler, MissingSplit, PreparedClips
from train.launch import refuse
from train.model_setup import apply_training_policy, choose_precision, load_base_model, parameter_counts
from train.throughput import flops_per_sample, peak_tflops
from train.trainer import ScoreMetrics, VideoLlamaTrainer, training_arguments

log = logging.getLogger("train")


def _load_splits(cfg: DictConfig) -> dict[str, PreparedClips]:
    """The train and val splits, and test with eval.test_at_end: all read at start-up, so a missing split stops the
    run before training rather than after it."""
    wanted = {
        "train": (cfg.data.train_split, cfg.data.max_train_samples),
        "val": (cfg.data.val_split, cfg.data.max_eval_samples),
    }
    if cfg.eval.test_at_end:
        wanted["test"] = (cfg.data.test_split, cfg.data.max_eval_samples)
    splits = {}
    for role, (name, max_samples) in wanted.items():
        try:
            splits[role] = PreparedClips(cfg.data.path, name, max_samples)
        except MissingSplit as missing:
            needed_by = "eval.test_at_end=true needs a test split, but " if role == "test" else ""
            alternative = " or eval.test_at_end=false" if role == "test" else ""
            refuse(
                f"train: {needed_by}{missing.path} has no split {missing.split!r} (it has "
                f"{', '.join(missing.available)}): set data.{role}_split to one of them{alternative}"
            )
        except FileNotFoundError as error:
            refuse(f"train: {error}")
    return splits


def _one_class_warning(cfg: DictConfig, train_data: PreparedClips) -> list[str]:
    """A warning (logged, and kept for summary.json) when the train split holds one class only: the model can then
    only learn to give that class's answer to every clip."""
    positives = int(train_data.labels.sum())
    if 0 < positives < len(train_data):
        return []
    only, answer = (
        ("ghost-probing", cfg.train.answers.positive)
        if positives
        else ("non-ghost-probing", cfg.train.answers.negative)
    )
    limit = f" (data.max_train_samples={cfg.data.max_train_samples})" if cfg.data.max_train_samples is not None else ""
    message = (
        f"the train split of {cfg.data.path} holds only {only} clips ({len(train_data)}{limit}): the model "
        f"can only learn to answer {answer!r} to every clip; add clips of the other class to the labels"
    )
    if dist.get_rank() == 0:
        log.warning("train: WARNING: %s", message)
    return [message]


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train per `cfg` into `run_dir`; returns (and rank 0 writes) the summary: best/last checkpoint, metrics."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    splits = _load_splits(cfg)
    train_data, val_data = splits["train"], splits["val"]
    warnings = _one_class_warning(cfg, train_data)
    resume = resume_point(cfg, run_dir)
    if rank == 0:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    precision = choose_precision(cfg.train.precision)
    args = training_arguments(cfg, run_dir, precision, world_size)  # before loading: ZeRO-3 partitions on load
    set_seed(cfg.train.seed)  # LoRA's initial weights come from the seed
    model, base_dir = load_base_model(cfg.model.path, precision)
    # The prompt layout trained on (the original Chat path unless conf/model says otherwise) is saved with every
    # checkpoint's processor, so eval scores the fine-tune with what it learned.
    processor = VideoLlamaProcessor.from_pretrained(base_dir, prompt_format=cfg.model.get("prompt_format"))
    model = apply_training_policy(model, cfg.train.llm, list(cfg.train.modules), cfg.train.lora)
    counts = parameter_counts(model)
    log.info(
        "precision %s; parameters %.1fM, trained %.2fM (%.2f%%)",
        precision,
        counts["total"] / 1e6,
        counts["trainable"] / 1e6,
        100 * counts["trainable"] / max(counts["total"], 1),
    )

    prompt = load_prompt(cfg.prompt)
    collator = AnswerCollator(processor, prompt, cfg.train.answers.positive, cfg.train.answers.negative)
    score_metrics = ScoreMetrics(val_data.sample_ids, cfg.eval.threshold)

    example = collator([train_data[0]])
    flops = flops_per_sample(model, example["pixel_values"].shape[1], float(example["attention_mask"].sum()))
    peak = peak_tflops(cfg.train.peak_tflops) * 1e12
    info = {
        "format": "lora" if cfg.train.llm == "lora" else "full",
        "base_model": str(base_dir.resolve()),
        "llm": cfg.train.llm,
        "modules": list(cfg.train.modules),
        "prompt": prompt.name,
        "prompt_format": processor.prompt_format,
        "answers": dict(cfg.train.answers),
    }
    callbacks = [
        JsonlMetrics(run_dir),
        ValScores(run_dir, score_metrics),
        CheckpointCallback(run_dir, cfg.checkpoint.keep_last),
    ]
    wandb = None
    if cfg.logger.name == "wandb" and cfg.logger.get("mode") != "disabled":
        wandb = WandbLogger(
            run_dir, OmegaConf.to_container(cfg.logger, resolve=True), OmegaConf.to_container(cfg, resolve=True)
        )
        callbacks.append(wandb)
    if cfg.eval.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.eval.early_stopping_patience))
    if cfg.train.stop_at_step:
        callbacks.append(StopAtStep(cfg.train.stop_at_step))

    trainer = VideoLlamaTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=val_data,
        data_collator=collator,
        processing_class=processor,
        compute_metrics=score_metrics,
        callbacks=callbacks,
        choice=collator.choice,
        train_sampler=BalancedSampler(train_data.labels, cfg.train.seed) if cfg.data.balance_classes else None,
        flops_per_sample=flops,
        peak_flops=peak,
        checkpoint_info=info,
    )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    summary = {
        "run_dir": str(run_dir),
        "global_step": trainer.state.global_step,
        "best_metric": trainer.state.best_metric,
        "metric": cfg.eval.metric,
        "warnings": warnings,
    }
    if "test" in splits:
        test_scores = ScoreMetrics(splits["test"].sample_ids, cfg.eval.threshold)
        trainer.compute_metrics = test_scores
        summary["test"] = trainer.evaluate(splits["test"], metric_key_prefix="test")
        # The model in memory: the last step's, while eval/run.py on this run directory scores best_checkpoint.
        summary["test_model"] = f"step {trainer.state.global_step} (the last)"
        if rank == 0:
            write_json_atomic(run_dir / "test_scores.json", test_scores.last_scores, indent=1)
    if wandb is not None:
        wandb.finish()
    if rank == 0:
        best = best_checkpoint(run_dir)
        complete = complete_checkpoints(run_dir)
        summary.update(
            best_checkpoint=best.name if best else None, last_checkpoint=complete[-1].name if complete else None
        )
        write_json_atomic(run_dir / "summary.json", to_jsonable(summary))
        log.info("done: %s", json.dumps(to_jsonable(summary)))
    dist.barrier()
    return summary
