"""Clip-level classification metrics from a score, with the NaN policy, bootstrap CIs and threshold choice.

NaN policy (a clip whose score is NaN gave no usable answer):
- the metrics (accuracy, precision, ..., AUROC, ECE) are computed on *scored clips only*;
- `coverage` = scored / all clips and `n_missing` say how many were left out, and never silently;
- `accuracy_nan_as_wrong` counts every unscored clip as an error over *all* clips: what a deployment would see,
  since a detector that does not answer misses the event (positives) or needs a human anyway (negatives).
A NaN is never read as "no": that would credit a silent model with every negative clip.

A clip is predicted positive when `p >= threshold`. Undefined values (a ratio with a zero denominator, AUROC with one
class) are NaN and come with a line in `notes` saying why; nothing crashes on degenerate inputs.

Every metric is computed by one vectorised function over a (resamples x clips) matrix, so the point estimate and the
bootstrap resamples share a single implementation (1000 resamples of 100 clips take a few milliseconds).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ghostprobe.metrics.common import as_labels, as_scores

SCALAR_METRICS = (
    "coverage",
    "accuracy",
    "accuracy_nan_as_wrong",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "fpr",
    "fnr",
    "mcc",
    "auroc",
    "auprc",
    "ece",
)
THRESHOLD_CRITERIA = ("balanced_accuracy", "youden", "f1", "accuracy")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def auroc_rows(y: np.ndarray, p: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """AUROC of each row of (rows x clips) label/score/scored matrices (Mann-Whitney: ties count one half, as in
    sklearn's roc_auc_score); NaN for a row without both classes among its scored clips."""
    # Unscored clips get -inf so they rank below every real score; subtracting their count per row gives ranks
    # among scored clips only (how the unscored ones tie among themselves does not matter).
    ranks = rankdata(np.where(scored, p, -np.inf), axis=1)
    n_unscored = (~scored).sum(axis=1, keepdims=True)
    pos, neg = y & scored, ~y & scored
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    rank_sum = np.where(pos, ranks - n_unscored, 0.0).sum(axis=1)
    return _ratio(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg)


def _average_precision(y: np.ndarray, p: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """AP = sum over thresholds of (R_k - R_{k-1}) * P_k, thresholds at the distinct scores (sklearn's definition).

    Equivalently each positive contributes 1/n_pos times the precision at the lowest threshold that still includes
    it, and tied scores share that precision: the last position of each tie group in descending order.
    """
    filled = np.where(scored, p, -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    p_sorted = np.take_along_axis(filled, order, axis=1)
    y_sorted = np.take_along_axis(y & scored, order, axis=1)
    tp_cum = np.cumsum(y_sorted, axis=1)
    k_cum = np.cumsum(np.take_along_axis(scored, order, axis=1), axis=1)
    precision = _ratio(tp_cum, k_cum)
    n = p.shape[1]
    if n == 0:
        return np.full(p.shape[0], np.nan)
    group_end = np.ones_like(p_sorted, dtype=bool)
    group_end[:, :-1] = p_sorted[:, :-1] != p_sorted[:, 1:]
    # For each position, the index of the end of its tie group: a reversed running minimum of the end indices.
    end_index = np.where(group_end, np.arange(n), n - 1)
    end_index = np.minimum.accumulate(end_index[:, ::-1], axis=1)[:, ::-1]
    precision_at_group_end = np.take_along_axis(precision, end_index, axis=1)
    contributions = np.where(y_sorted, precision_at_group_end, 0.0).sum(axis=1)
    return _ratio(contributions, y_sorted.sum(axis=1))


def _ece(y: np.ndarray, p: np.ndarray, scored: np.ndarray, n_bins: int) -> np.ndarray:
    """Positive-class ECE: sum over equal-width bins of (n_bin / n) * |mean(y) - mean(p)| in the bin.

    Bin i holds scores in [i/n_bins, (i+1)/n_bins); a score of exactly 1.0 goes in the last bin.
    """
    rows = p.shape[0]
    bins = np.clip(np.floor(np.where(scored, p, 0.0) * n_bins).astype(np.int64), 0, n_bins - 1)
    flat = (np.arange(rows)[:, None] * n_bins + bins).ravel()
    w = scored.ravel().astype(np.float64)

    def per_bin(values):
        return np.bincount(flat, weights=values, minlength=rows * n_bins).reshape(rows, n_bins)

    gap = np.abs(per_bin(w * (y.ravel() & scored.ravel())) - per_bin(w * np.where(scored, p, 0.0).ravel()))
    return _ratio(gap.sum(axis=1), scored.sum(axis=1))


def _batch_metrics(y: np.ndarray, p: np.ndarray, threshold: float, n_bins: int, with_ece: bool = True) -> dict:
    """All scalar metrics (and confusion counts) for each row of a (rows x clips) label/score matrix."""
    scored = ~np.isnan(p)
    predicted = scored & (p >= threshold)
    tp = (y & predicted).sum(axis=1)
    fp = (~y & predicted).sum(axis=1)
    fn = (y & scored & ~predicted).sum(axis=1)
    tn = (~y & scored & ~predicted).sum(axis=1)
    n_scored = scored.sum(axis=1)
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    # MCC in floats: its product of four counts overflows int64 from about 55k clips.
    tpf, tnf, fpf, fnf = (x.astype(np.float64) for x in (tp, tn, fp, fn))
    mcc_den = np.sqrt((tpf + fpf) * (tpf + fnf) * (tnf + fpf) * (tnf + fnf))
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n_scored": n_scored,
        "coverage": _ratio(n_scored, np.full(len(y), p.shape[1])),
        "accuracy": _ratio(tp + tn, n_scored),
        "accuracy_nan_as_wrong": _ratio(tp + tn, np.full(len(y), p.shape[1])),
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
        "mcc": _ratio(tpf * tnf - fpf * fnf, mcc_den),
        "auroc": auroc_rows(y, p, scored),
        "auprc": _average_precision(y, p, scored),
        "ece": _ece(y, p, scored, n_bins) if with_ece else np.full(len(y), np.nan),
    }


def _notes(row: dict, n_pos: int, n_neg: int, ece_in_range: bool) -> list[str]:
    notes = []
    if row["n_scored"] == 0:
        return ["no clip has a score: every metric except coverage and accuracy_nan_as_wrong is undefined"]
    if n_pos == 0 or n_neg == 0:
        present, measure = ("positives", "recall") if n_neg == 0 else ("negatives", "FPR / specificity")
        undefined = "AUROC, balanced accuracy, MCC" + (", AUPRC, recall" if n_pos == 0 else ", FPR")
        notes.append(
            f"only {present} among the scored clips ({n_pos} positive, {n_neg} negative): {undefined} are "
            f"undefined (NaN); {measure} is what this set measures"
        )
    if row["tp"] + row["fp"] == 0:
        notes.append("no scored clip is predicted positive at this threshold: precision is undefined (NaN)")
    elif n_pos and n_neg and np.isnan(row["mcc"]):
        notes.append("every scored clip is predicted positive: MCC is undefined (NaN)")
    if not ece_in_range:
        notes.append("scores outside [0, 1] are not probabilities: ECE is undefined (NaN)")
    return notes


def classification_metrics(y_true, p, threshold: float = 0.5, n_bins: int = 10, clip_ids=None) -> dict:
    """Clip-level metrics of scores `p` (P(ghost probing), NaN = no answer) against bool labels at `threshold`.

    Returns a JSON-ready dict: counts (n, n_scored, n_missing, coverage, n_positive, n_negative on scored clips),
    every name in `SCALAR_METRICS`, `confusion` {tn, fp, fn, tp}, `calibration_bins` (reliability diagram rows)
    and `notes` explaining any NaN. `clip_ids`, when given, names the unscored clips in `missing_clip_ids`.
    Parsed yes/no answers without scores can be passed through `answers_to_scores` (AUROC is then the AUROC of a
    binary score, i.e. the balanced accuracy).
    """
    y = as_labels(y_true)
    scores = as_scores(p, len(y))
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    scored = ~np.isnan(scores)
    in_range = bool(((scores[scored] >= 0) & (scores[scored] <= 1)).all())
    batch = _batch_metrics(y[None], scores[None], threshold, n_bins, with_ece=in_range)
    row = {k: v[0].item() for k, v in batch.items()}
    n_pos, n_neg = int((y & scored).sum()), int((~y & scored).sum())
    result = {
        "n": len(y),
        "n_scored": int(scored.sum()),
        "n_missing": int((~scored).sum()),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "threshold": float(threshold),
        **{k: row[k] for k in SCALAR_METRICS},
        "confusion": {k: int(row[k]) for k in ("tn", "fp", "fn", "tp")},
        "calibration_bins": calibration_bins(y[scored], scores[scored], n_bins) if in_range else [],
        "notes": _notes(row, n_pos, n_neg, in_range),
    }
    if clip_ids is not None:
        ids = list(clip_ids)
        if len(ids) != len(y):
            raise ValueError(f"clip_ids has {len(ids)} entries for {len(y)} labels")
        result["missing_clip_ids"] = [str(ids[i]) for i in np.flatnonzero(~scored)]
    return result


def calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Reliability-diagram rows for scored clips: per non-empty equal-width bin, its range, count, mean score and
    fraction of positives."""
    bins = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    rows = []
    for b in np.unique(bins):
        inside = bins == b
        rows.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "n": int(inside.sum()),
                "mean_score": float(p[inside].mean()),
                "fraction_positive": float(y[inside].mean()),
            }
        )
    return rows


def answers_to_scores(answers) -> np.ndarray:
    """Parsed yes/no answers (True/False/None) as scores 1.0/0.0/NaN, for models that give no probability.

    With such scores `choose_threshold` returns 0.5 and every metric reads the answers directly.
    """
    return np.array([np.nan if a is None else float(bool(a)) for a in answers], dtype=np.float64)


def bootstrap_ci(
    y_true,
    p,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    n_bins: int = 10,
    metrics=SCALAR_METRICS,
) -> dict:
    """Percentile bootstrap CIs of clip-level metrics: clips (scored or not) are resampled with replacement.

    Unscored clips are resampled too, so coverage and accuracy_nan_as_wrong get intervals and every other metric
    keeps the scored-clips-only policy inside each resample. A resample where a metric is undefined (e.g. no
    negative drawn for AUROC) is left out of that metric's percentiles and counted in `n_undefined`.
    Returns {"method", "n_resamples", "seed", "confidence", "intervals": {metric: {estimate, low, high,
    n_undefined}}}. Seeded: the same inputs and seed give the same intervals.
    """
    y = as_labels(y_true)
    scores = as_scores(p, len(y))
    unknown = set(metrics) - set(SCALAR_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {SCALAR_METRICS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    scored = ~np.isnan(scores)
    with_ece = bool(((scores[scored] >= 0) & (scores[scored] <= 1)).all())
    point = _batch_metrics(y[None], scores[None], threshold, n_bins, with_ece)
    rng = np.random.default_rng(seed)
    n = len(y)
    samples = {m: [] for m in metrics}
    # Chunks keep the (resamples x clips) matrices near 4M entries, so thousands of clips still fit in memory.
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n_resamples if n else 0, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        batch = _batch_metrics(y[idx], scores[idx], threshold, n_bins, with_ece)
        for m in metrics:
            samples[m].append(batch[m])
    alpha = (1 - confidence) / 2
    intervals = {}
    for m in metrics:
        values = np.concatenate(samples[m]) if samples[m] else np.empty(0)
        defined = values[~np.isnan(values)]
        low, high = np.quantile(defined, [alpha, 1 - alpha]) if len(defined) else (np.nan, np.nan)
        intervals[m] = {
            "estimate": point[m][0].item(),
            "low": float(low),
            "high": float(high),
            "n_undefined": int(len(values) - len(defined)),
        }
    return {
        "method": "percentile",
        "n_resamples": n_resamples,
        "seed": seed,
        "confidence": confidence,
        "intervals": intervals,
    }


def choose_threshold(y_val, p_val, criterion: str = "balanced_accuracy", default: float = 0.5) -> dict:
    """Pick the decision threshold on a validation set; fall back to `default` when the val set cannot say.

    Candidates are the distinct scored values (predict yes when p >= candidate); the returned threshold is the
    midpoint between the best candidate and the next lower score, so test clips falling between two val scores are
    not decided by an accident of which side the boundary sits. `criterion` is one of THRESHOLD_CRITERIA; note that
    Youden's J = TPR - FPR = 2 * balanced accuracy - 1, so "youden" and "balanced_accuracy" pick the same threshold.
    Ties go to the threshold nearest 0.5 (the natural cut for calibrated probabilities). The fallback applies when
    the val set has no scored clip or only one class. Parsed answers (1.0/0.0) give 0.5.
    Returns {"threshold", "criterion", "value" (criterion on val), "source": "val" | "default", "n_val", "note"}.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"unknown threshold criterion {criterion!r}; choose from {THRESHOLD_CRITERIA}")
    y = as_labels(y_val, "y_val")
    scores = as_scores(p_val, len(y), "p_val")
    scored = ~np.isnan(scores)
    y, scores = y[scored], scores[scored]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return {
            "threshold": float(default),
            "criterion": criterion,
            "value": float("nan"),
            "source": "default",
            "n_val": len(y),
            "note": f"val set has {n_pos} scored positives and {n_neg} scored negatives: "
            f"kept the default threshold {default}",
        }
    candidates = np.unique(scores)[::-1]  # descending
    # Counts of predicted positives among positives / negatives when the threshold is each candidate.
    tp = (n_pos - np.searchsorted(np.sort(scores[y]), candidates, side="left")).astype(np.float64)
    fp = (n_neg - np.searchsorted(np.sort(scores[~y]), candidates, side="left")).astype(np.float64)
    tpr, fpr = tp / n_pos, fp / n_neg
    value = {
        "balanced_accuracy": (tpr + 1 - fpr) / 2,
        "youden": tpr - fpr,
        "f1": 2 * tp / (2 * tp + fp + (n_pos - tp)),
        "accuracy": (tp + n_neg - fp) / len(y),
    }[criterion]
    lower = np.append(candidates[1:], candidates[-1])
    thresholds = np.where(np.arange(len(candidates)) < len(candidates) - 1, (candidates + lower) / 2, candidates)
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    pick = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return {
        "threshold": float(thresholds[pick]),
        "criterion": criterion,
        "value": float(value[pick]),
        "source": "val",
        "n_val": len(y),
        "note": "",
    }
