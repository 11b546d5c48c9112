"""Paired comparisons of two models on the same clips: McNemar on decisions, paired bootstrap on AUROC.

With 50-100 clips two models a few points apart cannot be told apart by comparing their separate CIs; pairing on
the same clips removes the clip-difficulty variance both share. Inputs are mappings clip_id -> value, aligned by
clip id; a clip missing from one side is an error that names it (silently dropping it would compare different
sets). A clip where either model gave no answer (None/NaN) is left out of the paired test and listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.stats import binom, chi2

from ghostprobe.metrics.classification import auroc_rows
from ghostprobe.metrics.common import as_labels, format_ids

# Below this many discordant clips the chi-square approximation is poor; the exact binomial test is the one to read.
EXACT_BELOW = 25


Aligned = tuple[list, np.ndarray, np.ndarray, np.ndarray]


def align(labels: Mapping, a: Mapping, b: Mapping, names: tuple[str, str] = ("a", "b")) -> Aligned:
    """Clip ids (sorted), labels, and the two models' values in that order; ValueError naming any mismatch."""
    label_ids = set(map(str, labels))
    problems = []
    for name, values in zip(names, (a, b), strict=True):
        ids = set(map(str, values))
        if len(ids) != len(values):
            problems.append(f"model {name!r} has clip ids that collide once turned into strings")
        if label_ids - ids:
            problems.append(
                f"model {name!r} has no entry for {len(label_ids - ids)} labelled clips: {format_ids(label_ids - ids)}"
            )
        if ids - label_ids:
            problems.append(
                f"model {name!r} has {len(ids - label_ids)} clips that are not labelled: {format_ids(ids - label_ids)}"
            )
    if problems:
        raise ValueError("paired comparison needs the same clips on both sides; " + "; ".join(problems))
    ids = sorted(label_ids)
    lab, va, vb = ({str(k): v for k, v in m.items()} for m in (labels, a, b))

    def column(m):
        return np.array([np.nan if m[i] is None else float(m[i]) for i in ids], dtype=np.float64)

    return ids, as_labels([lab[i] for i in ids], "labels"), column(va), column(vb)


def mcnemar_test(b: int, c: int) -> dict:
    """McNemar's test from the discordant counts: b = clips only model A gets right, c = only model B.

    Exact: two-sided binomial p = min(1, 2 * P(X <= min(b, c))) with X ~ Bin(b + c, 1/2).
    Chi-square with continuity correction: (|b - c| - 1)^2 / (b + c) on 1 degree of freedom.
    `recommended` is "exact" when b + c < 25 (the approximation's usual rule), else "chi2_cc"; `p_value` is its p.
    """
    n = b + c
    p_exact = min(1.0, 2 * float(binom.cdf(min(b, c), n, 0.5))) if n else 1.0
    stat = (abs(b - c) - 1) ** 2 / n if n else math.nan
    p_chi2 = float(chi2.sf(stat, 1)) if n else math.nan
    recommended = "exact" if n < EXACT_BELOW else "chi2_cc"
    return {
        "b": int(b),
        "c": int(c),
        "n_discordant": int(n),
        "p_exact": p_exact,
        "chi2_cc": stat,
        "p_chi2_cc": p_chi2,
        "recommended": recommended,
        "p_value": p_exact if recommended == "exact" else p_chi2,
    }


def compare_decisions(labels: Mapping, pred_a: Mapping, pred_b: Mapping, names: tuple[str, str] = ("a", "b")) -> dict:
    """McNemar comparison of two models' yes/no decisions (bool, or None for no answer) on the same clips.

    Returns counts (both right, only A right = b, only B right = c, both wrong), each model's accuracy on the
    compared clips, `excluded_clip_ids` (either model without an answer) and `mcnemar` from `mcnemar_test`.
    """
    ids, y, a, b = align(labels, pred_a, pred_b, names)
    both = ~np.isnan(a) & ~np.isnan(b)
    y, right_a, right_b = y[both], (a[both] > 0.5) == y[both], (b[both] > 0.5) == y[both]
    n = int(both.sum())
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    return {
        "names": list(names),
        "n": n,
        "excluded_clip_ids": [ids[i] for i in np.flatnonzero(~both)],
        f"accuracy_{names[0]}": float(right_a.mean()) if n else math.nan,
        f"accuracy_{names[1]}": float(right_b.mean()) if n else math.nan,
        "both_right": int((right_a & right_b).sum()),
        f"only_{names[0]}_right": only_a,
        f"only_{names[1]}_right": only_b,
        "both_wrong": int((~right_a & ~right_b).sum()),
        "mcnemar": mcnemar_test(only_a, only_b),
    }


def paired_bootstrap_auroc(
    labels: Mapping,
    scores_a: Mapping,
    scores_b: Mapping,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    names: tuple[str, str] = ("a", "b"),
) -> dict:
    """AUROC(A) - AUROC(B) with a paired percentile bootstrap CI and a two-sided bootstrap p-value.

    Each resample draws clips with replacement and scores both models on the same draw. The p-value is
    2 * min(P*(diff <= 0), P*(diff >= 0)) over resamples, with (k + 1) / (B + 1) so it is never exactly 0; it
    agrees with the CI: p < 1 - confidence roughly when the interval excludes 0. Resamples with one class only
    are dropped and counted in `n_undefined`. Seeded: same inputs and seed, same numbers.
    """
    ids, y, a, b = align(labels, scores_a, scores_b, names)
    both = ~np.isnan(a) & ~np.isnan(b)
    y, a, b = y[both], a[both], b[both]
    result = {
        "names": list(names),
        "n": int(both.sum()),
        "excluded_clip_ids": [ids[i] for i in np.flatnonzero(~both)],
        f"auroc_{names[0]}": math.nan,
        f"auroc_{names[1]}": math.nan,
        "difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "n_resamples": n_resamples,
        "n_undefined": 0,
        "seed": seed,
        "confidence": confidence,
        "notes": [],
    }
    if y.all() or not y.any():
        result["notes"].append(
            f"{int(y.sum())} positives and {int((~y).sum())} negatives among compared clips: AUROC is undefined"
        )
        return result
    ones = np.ones((1, len(y)), dtype=bool)
    auc_a, auc_b = auroc_rows(y[None], a[None], ones)[0], auroc_rows(y[None], b[None], ones)[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_resamples, len(y)))
    scored = np.ones(idx.shape, dtype=bool)
    diff = auroc_rows(y[idx], a[idx], scored) - auroc_rows(y[idx], b[idx], scored)
    diff = diff[~np.isnan(diff)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha])
    tail = min((diff <= 0).sum(), (diff >= 0).sum())
    result.update(
        {
            f"auroc_{names[0]}": float(auc_a),
            f"auroc_{names[1]}": float(auc_b),
            "difference": float(auc_a - auc_b),
            "ci_low": float(low),
            "ci_high": float(high),
            "p_value": min(1.0, 2 * (tail + 1) / (len(diff) + 1)),
            "n_undefined": int(n_resamples - len(diff)),
        }
    )
    return result
