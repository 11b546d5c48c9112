"""What goes next to a model's numbers: trivial baselines, per-group breakdowns, the combined report and its table.

A headline F1 without baselines misleads: on 101 DADA clips with 54 positives "always yes" scores F1 0.70, exactly
what one published GPT-4o evaluation reported. So every report carries "always yes", "always no" and class-prior
random, computed on the same clips as the model's `accuracy_nan_as_wrong` (all labelled clips: a baseline always
answers). When coverage < 1 the model's scored-clips-only metrics use fewer clips than the baselines; the table
shows `n` and `coverage` so that this is visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ghostprobe.metrics.classification import SCALAR_METRICS, bootstrap_ci, classification_metrics
from ghostprobe.metrics.common import as_labels, as_scores

# Per-group metrics by class composition: a negative-only group (e.g. label=cut_in) has no recall, only FPR.
_GROUP_KEYS = {
    "both": ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "fpr", "auroc"),
    "negatives_only": ("accuracy", "fpr", "specificity"),
    "positives_only": ("accuracy", "recall", "fnr"),
}
TABLE_COLUMNS = (
    "n",
    "coverage",
    "accuracy",
    "accuracy_nan_as_wrong",
    "fpr",
    "recall",
    "precision",
    "f1",
    "balanced_accuracy",
    "mcc",
    "auroc",
    "auprc",
)


def prior_baseline(y_true) -> dict:
    """Expected metrics of a random predictor that says yes with probability pi = the positive fraction here.

    Analytic expectations, no sampling: accuracy = pi^2 + (1 - pi)^2, recall = FPR = pi, balanced accuracy 0.5,
    MCC 0, AUROC 0.5; precision = F1 = pi as ratios of expected counts (the expectation of the ratio differs by
    O(1/n)). Its score is the constant pi, so AUPRC = pi and ECE = 0 (a constant prior is perfectly calibrated on
    these clips, a reminder that ECE alone says nothing about discrimination).
    """
    y = as_labels(y_true)
    n, n_pos = len(y), int(y.sum())
    n_neg = n - n_pos
    nan = float("nan")
    if n == 0:
        return {"n": 0, "notes": ["no clips"]} | {m: nan for m in SCALAR_METRICS}
    pi = n_pos / n
    both = n_pos > 0 and n_neg > 0
    accuracy = pi**2 + (1 - pi) ** 2
    return {
        "n": n,
        "n_scored": n,
        "n_missing": 0,
        "n_positive": n_pos,
        "n_negative": n_neg,
        "coverage": 1.0,
        "accuracy": accuracy,
        "accuracy_nan_as_wrong": accuracy,
        "balanced_accuracy": 0.5 if both else nan,
        "precision": pi if n_pos else nan,
        "recall": pi if n_pos else nan,
        "specificity": 1 - pi if n_neg else nan,
        "f1": pi if n_pos else nan,
        "fpr": pi if n_neg else nan,
        "fnr": 1 - pi if n_pos else nan,
        "mcc": 0.0 if both else nan,
        "auroc": 0.5 if both else nan,
        "auprc": pi if n_pos else nan,
        "ece": 0.0,
        "confusion": {"tn": (1 - pi) * n_neg, "fp": pi * n_neg, "fn": (1 - pi) * n_pos, "tp": pi * n_pos},
        "notes": [
            "expected values of a random yes with probability pi = positive fraction; confusion holds "
            "expected (fractional) counts"
        ],
    }


def trivial_baselines(y_true, n_bins: int = 10) -> dict:
    """{"always_yes", "always_no", "prior"} metric dicts on these clips (always yes/no scored as constant 1.0/0.0
    through `classification_metrics`, so they go through the very same code as the model)."""
    y = as_labels(y_true)
    return {
        "always_yes": classification_metrics(y, np.ones(len(y)), 0.5, n_bins),
        "always_no": classification_metrics(y, np.zeros(len(y)), 0.5, n_bins),
        "prior": prior_baseline(y),
    }


def group_metrics(
    y_true, p, groups: Sequence, threshold: float = 0.5, n_resamples: int = 0, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Metrics per value of one column (actor, occluder, light, weather, label class, ...), keyed by str(value).

    Each group reports the metrics its labels make meaningful: negative-only groups (hard negatives such as
    label=cut_in) report FPR / specificity, positive-only groups recall / FNR, mixed groups the full set. A value of
    None is reported as "unknown". With `n_resamples` > 0 each reported metric gets a bootstrap CI under "ci"
    (small groups have wide intervals, which is the point of showing them).
    """
    y = as_labels(y_true)
    scores = as_scores(p, len(y))
    # None and NaN (how pandas spells a missing value) are both "unknown".
    values = ["unknown" if g is None or (isinstance(g, float) and np.isnan(g)) else str(g) for g in groups]
    if len(values) != len(y):
        raise ValueError(f"groups has {len(values)} entries for {len(y)} clips")
    out = {}
    for value in sorted(set(values)):
        inside = np.array([v == value for v in values])
        yg, pg = y[inside], scores[inside]
        n_pos, n_neg = int(yg.sum()), int((~yg).sum())
        kind = "both" if n_pos and n_neg else ("positives_only" if n_pos else "negatives_only")
        full = classification_metrics(yg, pg, threshold)
        entry = {
            "n": len(yg),
            "n_positive": n_pos,
            "n_negative": n_neg,
            "kind": kind,
            "coverage": full["coverage"],
            **{k: full[k] for k in _GROUP_KEYS[kind]},
        }
        if n_resamples:
            ci = bootstrap_ci(yg, pg, threshold, n_resamples, seed, confidence, metrics=_GROUP_KEYS[kind])
            entry["ci"] = {k: [v["low"], v["high"]] for k, v in ci["intervals"].items()}
        out[value] = entry
    return out


def classification_report(
    y_true,
    p,
    threshold: float = 0.5,
    *,
    clip_ids=None,
    groups: Mapping[str, Sequence] | None = None,
    n_bins: int = 10,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Everything clip-level in one JSON-ready dict: {"model", "ci", "baselines", "by_group"}.

    `groups` maps a column name ("actor", "light", "label", ...) to one value per clip. `n_resamples=0` skips CIs.
    """
    report = {
        "model": classification_metrics(y_true, p, threshold, n_bins, clip_ids),
        "ci": bootstrap_ci(y_true, p, threshold, n_resamples, seed, confidence, n_bins) if n_resamples else None,
        "baselines": trivial_baselines(y_true, n_bins),
        "by_group": {},
    }
    for column, values in (groups or {}).items():
        report["by_group"][column] = group_metrics(y_true, p, values, threshold, n_resamples, seed, confidence)
    return report


def format_table(rows: Mapping[str, Mapping], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """A Markdown table, one row per model/baseline (e.g. {"model": ..., **report["baselines"]}); NaN prints "-"."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)
