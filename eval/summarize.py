"""From prediction rows to metrics.json: threshold on val, clip metrics with CIs and baselines, groups, timing,
earliness, event-time localisation, and the planning document's decision."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from ghostprobe import metrics as M


def _scores(rows: list[dict]) -> np.ndarray:
    return np.array([math.nan if r["p_ghost_probing"] is None else r["p_ghost_probing"] for r in rows], float)


def choose_threshold(val_rows: list[dict], cfg: dict) -> dict:
    """The decision threshold: chosen on val scores when there are any, else the parsed answers' 0.5."""
    if val_rows and not np.isnan(_scores(val_rows)).all():
        chosen = M.choose_threshold([r["is_ghost_probing"] for r in val_rows], _scores(val_rows),
                                    criterion=cfg["threshold_criterion"])
        return {**chosen, "source": f"val split ({len(val_rows)} samples, {cfg['threshold_criterion']})"}
    return {"threshold": 0.5, "source": "default 0.5 (no scored val split)"}


def effective_scores(rows: list[dict]) -> tuple[np.ndarray, str]:
    """Scores from the answer-token probabilities; where a model gave none, its parsed yes/no answer (1/0)."""
    p = _scores(rows)
    if np.isnan(p).all() and any(r.get("parsed_answer") is not None for r in rows):
        return M.answers_to_scores([r.get("parsed_answer") for r in rows]), "parsed answers"
    return p, "answer-token probabilities"


def failure_causes(rows: list[dict], scores: np.ndarray) -> dict[str, int]:
    """Why clips have no score, as cause -> clips: the row's error (its retry count left out, so that one outage
    reads as one cause), else "no usable answer" for a score the model left NaN."""
    causes = Counter()
    for row, p in zip(rows, scores):
        if row["error"]:
            causes[re.sub(r" \(after \d+ attempt\(s\)\)$", "", row["error"])] += 1
        elif math.isnan(p):
            causes["no usable answer (NaN score)"] += 1
    return dict(causes)


def summarize(test_rows: list[dict], val_rows: list[dict], earliness_rows: list[dict], cfg: dict,
              wall_s: float | None, model_stage: str = "zero-shot") -> dict:
    """Everything metrics.json holds except the identity fields, which run.py adds. `model_stage`: "zero-shot",
    or "fine-tuned" for a checkpoint trained here (the decision's next steps differ)."""
    mcfg = cfg["metrics"]
    threshold = choose_threshold(val_rows, mcfg)
    y = [bool(r["is_ghost_probing"]) for r in test_rows]
    p, score_source = effective_scores(test_rows)
    groups = {column: [r.get(column) or "unknown" for r in test_rows] for column in mcfg["group_by"]}
    classification = M.classification_report(
        y, p, threshold["threshold"], clip_ids=[r["sample_id"] for r in test_rows], groups=groups,
        n_bins=mcfg["ece_bins"], n_resamples=mcfg["bootstrap_resamples"], seed=mcfg["seed"])
    timing = M.timing_stats([r["latency_s"] if r["error"] is None else None for r in test_rows], wall_s=wall_s,
                            n_gpus=mcfg["n_gpus"], price_per_gpu_hour=mcfg["price_per_gpu_hour"],
                            api_cost_usd=[r.get("cost_usd") or 0.0 for r in test_rows])
    decision = M.decide(classification["model"], classification["baselines"], timing, classification["ci"],
                        deploy_above=mcfg["accuracy_deploy"], fine_tune_below=mcfg["accuracy_finetune"],
                        target_accuracy=mcfg["target_accuracy"], target_time_s=mcfg["target_seconds_per_video"],
                        model_stage=model_stage, min_answered_fraction=mcfg["min_answered_fraction"],
                        failure_causes=failure_causes(test_rows, p))
    summary = {
        "threshold": {"value": threshold["threshold"], "source": threshold["source"], "scores": score_source},
        "classification": classification, "timing": timing, "decision": decision,
        "errors": [{"sample_id": r["sample_id"], "error": r["error"]} for r in test_rows if r["error"]],
        "earliness": _earliness(earliness_rows) if earliness_rows else None,
        "localisation": _localisation(test_rows) if any("event_time_answer" in r for r in test_rows) else None,
    }
    return M.to_jsonable(summary)


def _earliness(rows: list[dict]) -> dict:
    windows = [{"clip_id": r["clip_id"], "window_end_s": r["window_end_s"], "p": r["p_ghost_probing"]} for r in rows]
    clips = {r["clip_id"]: (bool(r["is_ghost_probing"]), r["t_event_s"]) for r in rows}
    return M.earliness_metrics(windows, clips)


def _localisation(rows: list[dict]) -> dict:
    positives = [r for r in rows if r["is_ghost_probing"] and r.get("t_event_s") is not None]
    return M.localisation_metrics([r.get("event_time_s") for r in positives], [r["t_event_s"] for r in positives],
                                  clip_ids=[r["clip_id"] for r in positives])
