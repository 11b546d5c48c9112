"""How early a sliding-window detector alerts: AP over thresholds, mTTA and TTA at 80% recall, in the project's own
(corrected) definition. The field's reference evaluation, reproduced with its quirks so that figures can be put
beside published DAD/CCD/A3D tables, is `ghostprobe.metrics.anticipation.ustring_ap_mtta`; this module is what it
reports beside it.

The rules, stated exactly:
- Inputs: per-window rows (clip_id, window_end_s, p) and per clip (is_positive, t_event_s); a window's score is known
  at its end (ghostprobe.sampling.Window).
- Counted windows: for a positive clip only windows with window_end_s <= t_event_s (a window that already shows the
  event is detection, not anticipation); for a negative clip every window. Windows with a NaN score are dropped.
- At threshold th a clip is flagged when any counted window has p >= th; its first alert is the earliest end time of
  such a window, and its time-to-event TTA = t_event_s - t_first_alert (seconds before the event, >= 0).
- Thresholds: every distinct counted window score (capped at `max_thresholds`, always keeping every clip's maximum
  so that AP stays exact). Precision and recall are clip-level; mean TTA at th averages TTA over flagged positives.
- AP = sum_k (R_k - R_{k-1}) * P_k over thresholds in descending order (sklearn's definition on clip max scores).
- mTTA = sum_k (R_k - R_{k-1}) * TTA_k / R_max: TTA averaged uniformly over recall, at the same operating points AP
  uses (for each recall level, the highest threshold reaching it).
- `mtta_max_per_recall_s`: over distinct recall levels, the largest mean TTA any threshold gives at that level,
  averaged. That is the averaging UString's `evaluation` uses, but only that: it keeps the seconds to the event, every
  distinct score as a threshold and the lowest recall level, so it does NOT reproduce published figures (use
  `anticipation.ustring_ap_mtta`). It weighs every recall level alike where mTTA weighs them by the recall they
  add, so neither bounds the other.
- TTA@R80: the mean TTA at the highest threshold whose recall is >= 0.8 (with that threshold and its precision).
Clips that cannot be scored (positive without t_event_s, no window before the event, no scored window, no windows
at all) are excluded and listed with the reason, never counted as misses or as correct negatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ghostprobe.metrics.common import format_ids


def _row(window) -> tuple[str, float, float]:
    if isinstance(window, Mapping):
        clip_id, end, p = window["clip_id"], window["window_end_s"], window["p"]
    else:
        clip_id, end, p = window
    return str(clip_id), float(end), float("nan") if p is None else float(p)


def counted_windows(windows: Iterable, clips: Mapping) -> tuple[dict, dict]:
    """Group window rows by clip and keep the counted ones (see module doc), sorted by end time.

    `clips` maps clip_id -> (is_positive, t_event_s). Returns ({clip_id: (end_s array, p array)}, {clip_id: reason
    for each excluded clip}). Windows of a clip absent from `clips` raise a ValueError naming those ids.
    """
    by_clip: dict[str, list[tuple[float, float]]] = {}
    for window in windows:
        clip_id, end, p = _row(window)
        by_clip.setdefault(clip_id, []).append((end, p))
    clips = {str(k): v for k, v in clips.items()}
    unknown = set(by_clip) - set(clips)
    if unknown:
        raise ValueError(f"windows for clips with no label: {format_ids(unknown)}; pass every clip in `clips`")
    kept, excluded = {}, {}
    for clip_id, (is_positive, t_event_s) in clips.items():
        rows = by_clip.get(clip_id)
        if not rows:
            excluded[clip_id] = "no windows"
            continue
        if is_positive and t_event_s is None:
            excluded[clip_id] = "positive clip without t_event_s"
            continue
        end, p = np.array(rows, dtype=np.float64).T
        keep = ~np.isnan(p)
        if is_positive:
            keep &= end <= t_event_s
        if not keep.any():
            excluded[clip_id] = "no scored window before the event" if is_positive else "no scored window"
            continue
        order = np.argsort(end[keep], kind="stable")
        kept[clip_id] = (end[keep][order], p[keep][order])
    return kept, excluded


def clip_scores_from_windows(windows: Iterable, clips: Mapping) -> dict:
    """Clip-level score = the maximum over counted windows: the score at which the clip first becomes flagged."""
    kept, _ = counted_windows(windows, clips)
    return {clip_id: float(p.max()) for clip_id, (_, p) in kept.items()}


def _thresholds(kept: Mapping, max_thresholds: int | None) -> np.ndarray:
    window_scores = np.unique(np.concatenate([p for _, p in kept.values()]))
    clip_max = np.unique([p.max() for _, p in kept.values()])
    if max_thresholds is not None and len(window_scores) > max_thresholds:
        # Precision/recall only change at clip maxima, so those stay; TTA is then sampled at score quantiles.
        window_scores = np.quantile(window_scores, np.linspace(0, 1, max_thresholds))
    return np.unique(np.concatenate([window_scores, clip_max]))[::-1]


def earliness_metrics(
    windows: Iterable, clips: Mapping, recall_target: float = 0.8, max_thresholds: int | None = 2000
) -> dict:
    """AP, mTTA (two averagings) and TTA at `recall_target` from window scores; see the module doc for the rules.

    `windows`: rows (clip_id, window_end_s, p) as tuples or dicts with those keys; `clips`: clip_id ->
    (is_positive, t_event_s). Returns a JSON-ready dict with the numbers, counts, `excluded` {clip_id: reason},
    `notes`, and `curve`: one point per threshold {threshold, precision, recall, mean_tta_s, n_flagged}.
    """
    kept, excluded = counted_windows(windows, clips)
    labels = {str(k): bool(v[0]) for k, v in clips.items()}
    t_event = {str(k): v[1] for k, v in clips.items()}
    return earliness_from_alert_times(kept, labels, t_event, excluded, recall_target, max_thresholds)


def earliness_from_alert_times(
    kept: Mapping,
    labels: Mapping,
    t_event: Mapping,
    excluded: Mapping | None = None,
    recall_target: float = 0.8,
    max_thresholds: int | None = 2000,
) -> dict:
    """The metrics of `earliness_metrics` from counted scores already grouped per clip.

    `kept`: clip_id -> (alert times in seconds, ascending; scores) of the counted, scored windows or frames (each
    score is known at its time); `labels`: clip_id -> is positive; `t_event`: clip_id -> event time in seconds (for
    positives); `excluded`: clip_id -> reason for clips left out. `max_thresholds=None` uses every distinct score.
    """
    excluded = dict(excluded or {})
    n_pos = sum(bool(labels[c]) for c in kept)
    n_neg = len(kept) - n_pos
    nan = float("nan")
    result = {
        "n_clips": len(kept),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "excluded": excluded,
        "recall_target": recall_target,
        "ap": nan,
        "mtta_s": nan,
        "mtta_max_per_recall_s": nan,
        "tta_at_recall_target_s": nan,
        "threshold_at_recall_target": nan,
        "precision_at_recall_target": nan,
        "notes": [],
        "curve": [],
    }
    if n_pos == 0:
        result["notes"].append("no scorable positive clip: earliness is undefined")
        return result
    thresholds = _thresholds(kept, max_thresholds)
    tp = np.zeros(len(thresholds))
    fp = np.zeros(len(thresholds))
    tta_sum = np.zeros(len(thresholds))
    for clip_id, (end, p) in kept.items():
        running_max = np.maximum.accumulate(p)
        # First window whose running max reaches each threshold = first alert; len(p) means never flagged.
        first = np.searchsorted(running_max, thresholds, side="left")
        flagged = first < len(p)
        if labels[clip_id]:
            tp += flagged
            tta_sum[flagged] += t_event[clip_id] - end[first[flagged]]
        else:
            fp += flagged
    precision = np.divide(tp, tp + fp, out=np.full(len(tp), nan), where=(tp + fp) > 0)
    recall = tp / n_pos
    mean_tta = np.divide(tta_sum, tp, out=np.full(len(tp), nan), where=tp > 0)
    gain = np.diff(recall, prepend=0.0)  # thresholds descend, so recall never decreases
    steps = gain > 0
    result["ap"] = float((gain[steps] * precision[steps]).sum())
    result["mtta_s"] = float((gain[steps] * mean_tta[steps]).sum() / recall[-1])
    levels = np.unique(recall[recall > 0])
    result["mtta_max_per_recall_s"] = float(np.mean([np.nanmax(mean_tta[recall == r]) for r in levels]))
    reached = np.flatnonzero(recall >= recall_target)
    if len(reached):
        k = reached[0]
        result.update(
            tta_at_recall_target_s=float(mean_tta[k]),
            threshold_at_recall_target=float(thresholds[k]),
            precision_at_recall_target=float(precision[k]),
        )
    else:
        result["notes"].append(f"recall never reaches {recall_target}: TTA at that recall is undefined")
    if excluded:
        result["notes"].append(f"{len(excluded)} clips excluded (see `excluded`): {format_ids(excluded)}")
    result["curve"] = [
        {
            "threshold": float(t),
            "precision": float(pr),
            "recall": float(r),
            "mean_tta_s": float(m),
            "n_flagged": int(a + b),
        }
        for t, pr, r, m, a, b in zip(thresholds, precision, recall, mean_tta, tp, fp, strict=True)
    ]
    return result
