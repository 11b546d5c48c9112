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
    for row, p in zip(rows, scores, strict=True):
        if row["error"]:
            causes[re.sub(r" \(after \d+ attempt\(s\)\)$", "", row["error"])] += 1
        elif math.isnan(p):
            causes["no usable answer (NaN score)"] += 1
    return dict(causes)


def summarize(
    test_rows: list[dict],
    val_rows: list[dict],
    earliness_rows: list[dict],
    cfg: dict,
    wall_s: float | None,
    model_stage: str = "zero-shot",
) -> dict:
    """Everything metrics.json holds except the identity fields, which run.py adds. `model_stage`: "zero-shot",
    or "fine-tuned" for a checkpoint trained here (the decision's next steps differ).

    The headline figures and the decision read the model's own answer (threshold 0.5); a tuned threshold is a second
    result beside them (`tuned_threshold`), never in their place.
    """
    mcfg = cfg["metrics"]
    rule = M.DecisionRule.from_config(cfg["decision"])
    threshold = M.OWN_ANSWER_THRESHOLD
    y = np.array([bool(r["is_ghost_probing"]) for r in test_rows], dtype=bool)
    p, score_source = effective_scores(test_rows)
    groups = {
        column: [r.get(column) for r in test_rows]
        for column in mcfg["group_by"]
        if any(r.get(column) not in (None, "", "unknown") for r in test_rows)
    }  # all-unknown columns say nothing
    classification = M.classification_report(
        y,
        p,
        threshold,
        clip_ids=[r["sample_id"] for r in test_rows],
        groups=groups,
        n_bins=mcfg["ece_bins"],
        n_resamples=mcfg["bootstrap_resamples"],
        seed=mcfg["seed"],
    )
    timing = M.timing_stats(
        [r["latency_s"] if r["error"] is None else None for r in test_rows],
        wall_s=wall_s,
        n_gpus=mcfg["n_gpus"],
        price_per_gpu_hour=mcfg["price_per_gpu_hour"],
        api_cost_usd=[r.get("cost_usd") or 0.0 for r in test_rows],
    )
    decided_on = _decision_clips(test_rows)
    decision = M.decide(
        y[decided_on["mask"]],
        p[decided_on["mask"]],
        threshold,
        timing,
        rule=rule,
        model_stage=model_stage,
        failure_causes=failure_causes(test_rows, p),
    )
    if decided_on["note"]:
        decision.reason = f"{decided_on['note']} {decision.reason}"
    tuned = _tuned(test_rows, val_rows, y, p, score_source, mcfg, rule)
    summary = {
        "threshold": {
            "value": threshold,
            "source": "the model's own answer: yes when P(yes) >= P(no)",
            "scores": score_source,
        },
        "tuned_threshold": tuned,
        "classification": classification,
        "timing": timing,
        "decision": {
            **decision.to_dict(),
            "label_quality": decided_on["quality"],
            "n_decided_on": int(decided_on["mask"].sum()),
        },
        "errors": [{"sample_id": r["sample_id"], "error": r["error"]} for r in test_rows if r["error"]],
        "earliness": _earliness(earliness_rows) if earliness_rows else None,
        "localisation": _localisation(test_rows) if any("event_time_answer" in r for r in test_rows) else None,
    }
    return M.to_jsonable(summary)


def _decision_clips(rows: list[dict]) -> dict:
    """Which clips the decision is taken on: the gold-labelled ones when there are any beside weak labels (weak
    labels come from a dataset's categories and are about half right for ghost probing), else all."""
    quality = np.array([(r.get("label_quality") or "gold") == "gold" for r in rows], dtype=bool)
    if quality.all():
        return {"mask": quality, "quality": "gold", "note": ""}
    if not quality.any():
        return {
            "mask": ~quality,
            "quality": "weak",
            "note": f"Every one of the {len(rows)} labels is weak (from a dataset's categories, not reviewed): "
            "the decision below rests on weak labels.",
        }
    return {
        "mask": quality,
        "quality": "gold",
        "note": f"Decided on the {int(quality.sum())} gold-labelled clips; the {int((~quality).sum())} weak labels "
        "are reported apart (by label_quality).",
    }


def _tuned(
    test_rows: list[dict], val_rows: list[dict], y: np.ndarray, p: np.ndarray, score_source: str, mcfg: dict, rule
) -> dict:
    """The tuned-threshold result (a second, labelled figure), or why there is none."""
    if score_source == "parsed answers":
        return {
            "available": False,
            "refused": [],
            "reason": "the scores are parsed yes/no answers: there is no threshold to tune",
        }
    y_val = p_val = None
    if val_rows:
        y_val = [bool(r["is_ghost_probing"]) for r in val_rows]
        p_val = effective_scores(val_rows)[0]
    result = M.tuned_threshold(
        y,
        p,
        [r["clip_id"] for r in test_rows],
        y_val,
        p_val,
        policy=mcfg["tuned_threshold"],
        criterion=mcfg["threshold_criterion"],
        min_val_clips=mcfg["min_val_clips"],
        min_val_per_class=mcfg["min_val_per_class"],
        crossfit_folds=mcfg["crossfit_folds"],
        seed=mcfg["seed"],
        confidence=rule.confidence,
        interval=rule.interval,
    )
    return result


def _earliness(rows: list[dict]) -> dict:
    windows = [{"clip_id": r["clip_id"], "window_end_s": r["window_end_s"], "p": r["p_ghost_probing"]} for r in rows]
    clips = {r["clip_id"]: (bool(r["is_ghost_probing"]), r["t_event_s"]) for r in rows}
    return M.earliness_metrics(windows, clips)


def _localisation(rows: list[dict]) -> dict:
    positives = [r for r in rows if r["is_ghost_probing"] and r.get("t_event_s") is not None]
    return M.localisation_metrics(
        [r.get("event_time_s") for r in positives],
        [r["t_event_s"] for r in positives],
        clip_ids=[r["clip_id"] for r in positives],
    )


def metrics_document(
    *,
    run_identity: str,
    model: str,
    prompt: str,
    data: dict,
    summary: dict,
    config: dict,
    prompt_format: str | None = None,
    model_stage: str = "zero-shot",
    model_random_init: bool = False,
    **extra,
) -> dict:
    """metrics.json, the one layout every run directory has (eval/run.py, eval/import_predictions.py, the tests'
    run folders): who answered (identity, model, prompt), on what (`data`: path, split, fingerprint, num_samples),
    `summarize`'s figures, anything the writer adds (`imported`: where an imported run came from), and the config."""
    return M.to_jsonable(
        {
            "run_identity": run_identity,
            "model": model,
            "prompt": prompt,
            "prompt_format": prompt_format,
            "model_stage": model_stage,
            "model_random_init": model_random_init,
            "data": data,
            **summary,
            **extra,
            "config": config,
        }
    )
