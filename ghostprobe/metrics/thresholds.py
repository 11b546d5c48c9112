"""A tuned decision threshold, as a second result beside the model's own answer, from clips it is not scored on.

The headline figures read the model's own answer: yes when P(yes) >= P(no), i.e. `p_ghost_probing >= 0.5`
(`OWN_ANSWER_THRESHOLD`), or its parsed free-text answer. A threshold tuned on the very clips it is scored on flatters
the model, and one tuned on 7 clips is noise, so a tuned threshold comes only from
- a val split of at least `min_val_clips` scored clips with `min_val_per_class` of each class ("val"), or
- cross-fitting over the test clips ("crossfit"): the clips are dealt into k folds (stratified by class, clips of one
  clip_id together, a seeded hash decides the order); each fold is scored at the threshold chosen on the other
  folds, so no clip is ever scored at a threshold chosen on itself. Each fold's other folds must meet the same
  minimum as a val split.
Otherwise there is no tuned result, and the reason says why. The criterion is `choose_threshold`'s (balanced
accuracy by default; ties go to the threshold nearest 0.5).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from ghostprobe.metrics.classification import choose_threshold, classification_metrics
from ghostprobe.metrics.common import as_labels, as_scores
from ghostprobe.metrics.intervals import proportion_interval

OWN_ANSWER_THRESHOLD = 0.5  # P(yes) >= P(no): the model's own answer
TUNED_POLICIES = ("auto", "val", "crossfit", "none")
REPORTED = ("accuracy_nan_as_wrong", "balanced_accuracy", "precision", "recall", "fpr", "f1")


def class_counts(y, p) -> tuple[int, int]:
    """(scored positives, scored negatives)."""
    y = as_labels(y)
    scored = ~np.isnan(as_scores(p, len(y)))
    return int((y & scored).sum()), int((~y & scored).sum())


def enough_clips(y, p, min_clips: int, min_per_class: int) -> str | None:
    """None when the scored clips can carry a threshold choice, else why not (counts and the settings)."""
    n_pos, n_neg = class_counts(y, p)
    if n_pos + n_neg >= min_clips and min(n_pos, n_neg) >= min_per_class:
        return None
    return (
        f"{n_pos + n_neg} scored clips ({n_pos} ghost probing, {n_neg} not); a threshold needs at least "
        f"metrics.min_val_clips={min_clips} with metrics.min_val_per_class={min_per_class} of each class"
    )


def fold_of(clip_ids, y, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample: clips of one clip_id share a fold, each class dealt round-robin in a seeded order."""
    y = as_labels(y)
    label_of = {}
    for clip_id, label in zip(map(str, clip_ids), y, strict=True):
        label_of[clip_id] = label_of.get(clip_id, False) or bool(label)  # a clip with a positive window is positive
    by_class = defaultdict(list)
    for clip_id, label in label_of.items():
        by_class[label].append(clip_id)
    fold = {}
    offset = 0
    for label in (True, False):
        ordered = sorted(by_class[label], key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
        for k, clip_id in enumerate(ordered):
            fold[clip_id] = (k + offset) % folds
        offset += len(ordered)  # the negatives continue where the positives stopped: folds stay balanced in size
    return np.array([fold[str(c)] for c in clip_ids], dtype=np.int64)


def metrics_with_intervals(y, predicted, confidence: float, method: str) -> dict:
    """The threshold-dependent metrics of yes/no answers (1/0, NaN = no answer) with their proportion intervals."""
    m = classification_metrics(y, predicted, 0.5)
    c = m["confusion"]
    counts = {
        "accuracy_nan_as_wrong": (c["tp"] + c["tn"], m["n"]),
        "recall": (c["tp"], c["tp"] + c["fn"]),
        "fpr": (c["fp"], c["fp"] + c["tn"]),
        "precision": (c["tp"], c["tp"] + c["fp"]),
    }
    out = {k: m[k] for k in REPORTED}
    out["intervals"] = {k: proportion_interval(s, n, confidence, method) for k, (s, n) in counts.items()}
    out["confusion"] = c
    out["n"] = m["n"]
    return out


def crossfit(y, p, clip_ids, folds: int, criterion: str, min_clips: int, min_per_class: int, seed: int = 0) -> dict:
    """Cross-fitted yes/no answers over the test clips; {"available": False, "reason"} when a fold's other folds
    are too few to choose a threshold on.

    Returns {"available", "predicted" (1/0/NaN per sample), "folds": [{"fold", "threshold", "n_chosen_on",
    "n_applied_to"}], "clip_folds": {clip_id: fold}}.
    """
    y = as_labels(y)
    scores = as_scores(p, len(y))
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got metrics.crossfit_folds={folds}")
    fold = fold_of(clip_ids, y, folds, seed)
    predicted = np.full(len(y), np.nan)
    summary = []
    for f in range(folds):
        inside, others = fold == f, fold != f
        short = enough_clips(y[others], scores[others], min_clips, min_per_class)
        if short:
            return {
                "available": False,
                "reason": f"cross-fitting over the test clips ({folds} folds): fold {f}'s other folds have {short}",
            }
        chosen = choose_threshold(y[others], scores[others], criterion)
        scored = inside & ~np.isnan(scores)
        predicted[scored] = (scores[scored] >= chosen["threshold"]).astype(np.float64)
        summary.append(
            {
                "fold": f,
                "threshold": chosen["threshold"],
                "n_chosen_on": int(others.sum()),
                "n_applied_to": int(inside.sum()),
            }
        )
    return {
        "available": True,
        "predicted": predicted,
        "folds": summary,
        "clip_folds": {str(c): int(k) for c, k in zip(clip_ids, fold, strict=True)},
    }


def tuned_threshold(
    y_test,
    p_test,
    test_clip_ids,
    y_val,
    p_val,
    *,
    policy: str = "auto",
    criterion: str = "balanced_accuracy",
    min_val_clips: int = 30,
    min_val_per_class: int = 5,
    crossfit_folds: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    interval: str = "exact",
) -> dict:
    """The second, labelled result: test metrics at a threshold tuned on val (or cross-fitted), or why there is none.

    `policy`: "auto" (val when it qualifies, else cross-fitting), "val", "crossfit" or "none". Returns
    {"available": True, "source": "val" | "crossfit", "criterion", "threshold" (val) or "folds" (crossfit),
    "metrics": metrics_with_intervals(...), "note"} or {"available": False, "reason"}; "refused" lists what was
    tried and why it could not be used (e.g. a 7-clip val split), for the report's warnings.
    """
    if policy not in TUNED_POLICIES:
        raise ValueError(f"unknown metrics.tuned_threshold={policy!r}; choose from {TUNED_POLICIES}")
    if policy == "none":
        return {"available": False, "reason": "metrics.tuned_threshold=none", "refused": []}
    y = as_labels(y_test)
    scores = as_scores(p_test, len(y))
    refused = []
    if policy in ("auto", "val"):
        if y_val is None or not len(y_val):
            refused.append("no val split")
        else:
            short = enough_clips(y_val, p_val, min_val_clips, min_val_per_class)
            if short is None:
                chosen = choose_threshold(y_val, p_val, criterion)
                predicted = np.where(np.isnan(scores), np.nan, (scores >= chosen["threshold"]).astype(np.float64))
                return {
                    "available": True,
                    "source": "val",
                    "criterion": criterion,
                    "threshold": chosen["threshold"],
                    "n_val": chosen["n_val"],
                    "refused": refused,
                    "metrics": metrics_with_intervals(y, predicted, confidence, interval),
                    "note": f"chosen on the val split ({chosen['n_val']} scored clips, {criterion})",
                }
            refused.append(f"the val split has {short}")
    if policy in ("auto", "crossfit"):
        result = crossfit(y, scores, test_clip_ids, crossfit_folds, criterion, min_val_clips, min_val_per_class, seed)
        if result["available"]:
            thresholds = [f["threshold"] for f in result["folds"]]
            return {
                "available": True,
                "source": "crossfit",
                "criterion": criterion,
                "folds": result["folds"],
                "clip_folds": result["clip_folds"],
                "refused": refused,
                "metrics": metrics_with_intervals(y, result["predicted"], confidence, interval),
                "note": f"cross-fitted over the test clips: {crossfit_folds} folds, each scored at the threshold "
                f"chosen ({criterion}) on the other folds; thresholds {min(thresholds):.3g}-"
                f"{max(thresholds):.3g}",
            }
        refused.append(result["reason"])
    return {"available": False, "reason": "; ".join(refused), "refused": refused}
