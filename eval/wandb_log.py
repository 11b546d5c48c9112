"""W&B for an eval run (offline by default): scalar metrics, a per-clip table with thumbnails, the report artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ghostprobe.runs import run_rows

SCALARS = (
    "accuracy",
    "accuracy_nan_as_wrong",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "fpr",
    "fnr",
    "mcc",
    "auroc",
    "auprc",
    "ece",
    "coverage",
)


def log_eval(cfg: DictConfig, metrics: dict, out_dir: Path) -> None:
    """One W&B run per evaluation, grouped by `wandb.group`, named after model and prompt."""
    import wandb
    from datasets import load_from_disk

    from ghostprobe.frames import frames_from_row

    run = wandb.init(
        project=cfg.wandb.project,
        group=cfg.wandb.group,
        mode=cfg.wandb.mode,
        dir=str(out_dir),
        name=f"{metrics['model']}-{metrics['prompt']}",
        job_type="eval",
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    model = metrics["classification"]["model"]
    summary = {f"test/{k}": model[k] for k in SCALARS if model.get(k) is not None}
    summary.update({f"timing/{k}": v for k, v in metrics["timing"].items() if isinstance(v, (int, float))})
    summary["decision"] = metrics["decision"]["action"] or "no decision"  # too few clips answered to apply the rule
    summary["decision_reason"] = metrics["decision"]["reason"]
    interval = metrics["decision"].get("accuracy_interval") or {}
    if interval.get("low") is not None:  # the decision's own interval, so a dashboard never shows a bare accuracy
        summary.update(
            {
                "decision/accuracy_low": interval["low"],
                "decision/accuracy_high": interval["high"],
                "decision/n": metrics["decision"]["n"],
            }
        )
    if metrics.get("model_random_init"):
        summary["model_random_init"] = True
    if metrics.get("prompt_format"):
        summary["prompt_format"] = metrics["prompt_format"]
    run.summary.update(summary)

    split = load_from_disk(metrics["data"]["path"])[metrics["data"]["split"]]
    index = {sample_id: i for i, sample_id in enumerate(split["sample_id"])}
    threshold = metrics["threshold"]["value"]
    table = wandb.Table(
        columns=["sample_id", "label", "p_ghost_probing", "predicted", "answer", "latency_s", "thumbnail"]
    )
    rows = run_rows(out_dir, metrics)  # this run's rows only: the folder may hold other runs
    for k, row in enumerate(rows):
        thumbnail = None
        if cfg.report.thumbnails and k < cfg.wandb.max_thumbnails and row["sample_id"] in index:
            frames = frames_from_row(split[index[row["sample_id"]]]["frames"])
            thumbnail = wandb.Image(np.concatenate(list(frames[:: max(1, len(frames) // 4)]), axis=1))
        p = row["p_ghost_probing"]
        table.add_data(
            row["sample_id"],
            row["label"],
            p,
            None if p is None else p >= threshold,
            row.get("answer"),
            row["latency_s"],
            thumbnail,
        )
    run.log({"predictions": table})
    artifact = wandb.Artifact(f"eval-report-{run.id}", type="eval-report")
    for name in ("metrics.json", "report.md", "report.html"):
        if (out_dir / name).exists():
            artifact.add_file(str(out_dir / name))
    run.log_artifact(artifact)
    run.finish()
