"""The accident-anticipation protocols the field reports, on per-frame scores, each saying where it comes from.

Input form (what every protocol here takes): per clip one score per frame at the video's frame rate, NaN where there
is no score (before the first window ends, or where the model gave no answer); `ghostprobe.sampling.frame_scores`
makes it from window scores. Per clip also its label and, for positives, the event frame: the index of the first
frame shown at or after the event (`FrameClock.frames_before(t_event_s)`), so frames [0, event) are "before it".

- `ustring_ap_mtta`: the evaluation DAD, CCD and A3D papers report, reproduced exactly with its quirks.
- `corrected_ap_mtta`: the project's own AP and mTTA on the same frames, in seconds to the event (reported beside it).
- `far_gated_anticipation`: AUC and mTTA over the thresholds whose frame-level false-alarm rate is at most lambda
  (TOP, NeurIPS 2025).
- `nexar_map`: mean AP of the scores 0.5, 1.0 and 1.5 s before the event (the Nexar collision-prediction challenge).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ghostprobe.metrics.common import format_ids
from ghostprobe.metrics.earliness import earliness_from_alert_times

NEXAR_HORIZONS_S = (0.5, 1.0, 1.5)


def ustring_ap_mtta(all_pred, all_labels, time_of_accidents, fps: float = 20.0) -> dict:
    """AP, mTTA and TTA@R80 exactly as UString's `evaluation(all_pred, all_labels, time_of_accidents, fps)`
    computes them: Cogito2012/UString `src/eval_tools.py` (MIT; commit 0ef5e9c), the function behind the DAD, CCD
    and A3D tables of UString and of the methods compared with it (DSTA, GSC and others). Returns {"AP", "mTTA",
    "TTA_R80"}, AP in [0, 1] (papers print it x100), the times in seconds.

    `all_pred` [N videos, T frames]; `all_labels` [N] 0/1; `time_of_accidents` [N] frame index of the accident
    (anything, e.g. T + 1, for negatives); `fps` the frame rate. Reproduced, not fixed (`corrected_ap_mtta` gives
    the figures this should have been):
    - positives count frames [0, int(toa)), negatives every frame; thresholds `np.arange(max(min counted score, 0),
      1.0, 0.001)`;
    - per threshold, precision and recall over videos (flagged when any counted frame >= threshold) and the
      relative time 1 - first_flagged_frame / toa averaged over flagged positives; at a threshold of exactly 0 every
      negative video counts as a hit too (its score x label is 0 >= 0), so recall can pass 1;
    - the points live in arrays of one slot per counted frame, the unused slots left at 0; they are sorted by recall
      with numpy's default (unstable) argsort, called here on the same array so that ties resolve as in the
      original; per distinct recall the largest precision and time of its run, except the highest recall, which
      takes the first point of its run; the lowest recall (normally the empty slots' 0) is dropped;
    - AP: a rectangle from recall 0 to the first level, then trapezoids; mTTA: the mean time over levels x T / fps
      (the clip length, not the time to the accident); TTA@R80: the time at the level closest to recall 0.8.
    Where the original fails, a ValueError says so: no positive video, a positive with no frame before its
    accident, one recall level only, or more usable thresholds than counted frames (its IndexError).
    Extension: a NaN score (no score yet at that frame) never reaches a threshold and is left out of the minimum;
    the original cannot take NaN at all (every figure on NaN-free input is the original's).
    """
    pred = np.asarray(all_pred, dtype=np.float64)
    labels = np.asarray(all_labels)
    toa = np.asarray(time_of_accidents, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"all_pred must be [videos, frames], got shape {pred.shape}")
    n_videos, n_columns = pred.shape
    if labels.shape != (n_videos,) or toa.shape != (n_videos,):
        raise ValueError(
            f"all_labels {labels.shape} and time_of_accidents {toa.shape} must have one value per video ({n_videos})"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"all_labels must be 0/1, got {sorted(set(labels.tolist()))}")
    if np.isinf(pred).any():
        raise ValueError("all_pred holds infinite scores")
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("no positive video: UString's evaluation cannot compute AP without one (it fails)")
    counted = []
    for i in range(n_videos):
        frames = pred[i, : int(toa[i])] if labels[i] > 0 else pred[i]
        if len(frames) == 0:
            raise ValueError(f"video {i}: positive with time_of_accidents {toa[i]:g}: no frame before the accident")
        counted.append(frames)
    n_counted = sum(len(frames) for frames in counted)
    scored = np.concatenate(counted)
    scored = scored[~np.isnan(scored)]
    if not len(scored):
        raise ValueError("no counted frame has a score")
    lowest = scored.min()
    thresholds = np.arange(0 if lowest < 0 else lowest, 1.0, 0.001)  # the original's max(min_pred, 0)

    hits = np.zeros(len(thresholds))
    flagged = np.zeros(len(thresholds))
    relative_time = np.zeros(len(thresholds))
    for i, frames in enumerate(counted):  # videos in order: `relative_time` sums as the original's loop does
        # A video counts as a true positive where score x label reaches the threshold (negatives only at 0).
        hit_first = _first_reaching(frames * labels[i], thresholds)
        hit = hit_first < len(frames)
        hits += hit
        flagged += _first_reaching(frames, thresholds) < len(frames)
        relative_time += np.where(hit, hit_first / toa[i], 0.0)

    precision, recall, time = np.zeros(n_counted), np.zeros(n_counted), np.zeros(n_counted)
    used = 0
    for k in range(len(thresholds)):
        if flagged[k] == 0:
            continue
        if used == n_counted:
            raise ValueError(
                f"more usable thresholds than the {n_counted} counted frames: UString's evaluation fails "
                "here (IndexError); it needs about 1000 counted frames or more"
            )
        precision[used] = hits[k] / flagged[k]
        recall[used] = hits[k] / n_pos
        if hits[k] == 0:
            continue
        time[used] = 1 - relative_time[k] / hits[k]
        used += 1

    order = np.argsort(recall)  # default kind on the same array as the original: same tie order
    precision, recall, time = precision[order], recall[order], time[order]
    starts = np.flatnonzero(np.r_[True, recall[1:] != recall[:-1]])[1:]  # the lowest level is dropped
    if not len(starts):
        raise ValueError("every threshold gives the same recall: UString's evaluation fails here (IndexError)")
    level_time = np.maximum.reduceat(time, starts)
    level_precision = np.maximum.reduceat(precision, starts)
    level_time[-1], level_precision[-1] = time[starts[-1]], precision[starts[-1]]
    level_recall = recall[starts]

    ap = 0.0
    if level_recall[0] != 0:
        ap += level_precision[0] * (level_recall[0] - 0)
    for i in range(1, len(level_precision)):
        ap += (level_precision[i - 1] + level_precision[i]) * (level_recall[i] - level_recall[i - 1]) / 2
    clip_s = n_columns / fps
    by_recall = np.argsort(level_recall)
    tta_r80 = level_time[by_recall][np.argmin(np.abs(np.sort(level_recall) - 0.8))] * clip_s
    return {"AP": float(ap), "mTTA": float(np.mean(level_time) * clip_s), "TTA_R80": float(tta_r80)}


def _first_reaching(frames: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold the first frame whose score reaches it (len(frames): none). NaN never reaches one."""
    running_max = np.maximum.accumulate(np.where(np.isnan(frames), -np.inf, frames))
    return np.searchsorted(running_max, thresholds, side="left")


def corrected_ap_mtta(
    frame_scores: Sequence,
    labels: Sequence,
    event_frames: Sequence,
    fps,
    clip_ids: Sequence[str] | None = None,
    recall_target: float = 0.8,
) -> dict:
    """The project's own AP, mTTA and TTA at `recall_target`, on the frames UString's evaluation counts, reported
    beside `ustring_ap_mtta` (ghostprobe.metrics.earliness states the rules; this is them with one frame = one
    window ending when the frame is shown).

    What it corrects: every distinct score is a threshold (not a 0.001 grid from the minimum); AP is sklearn's
    step-wise average precision on each clip's highest counted score, with the lowest recall level kept and recall
    never above 1; mTTA is in seconds before the event ((event - first alert frame) / fps), averaged over recall at
    AP's operating points, not a fraction of the clip length; it never fails on small inputs.
    `frame_scores`: per clip a 1-D array (lengths may differ; NaN = no score); `event_frames`: per clip the event
    frame (ignored for negatives); `fps`: one rate or one per clip. Clips with no scored frame before their event
    are excluded and listed (`excluded`), never counted as misses. Returns earliness_metrics' dict without its
    curve.
    """
    ids = _clip_ids(clip_ids, len(frame_scores))
    rates = _per_clip(fps, len(frame_scores), "fps")
    kept, excluded, is_positive, t_event = {}, {}, {}, {}
    for clip_id, scores, label, event, rate in zip(ids, frame_scores, labels, event_frames, rates, strict=True):
        scores = np.asarray(scores, dtype=np.float64)
        is_positive[clip_id] = bool(label)
        frames = np.arange(len(scores))
        if label:
            frames = frames[: max(int(event), 0)]
            t_event[clip_id] = int(event) / rate
        frames = frames[~np.isnan(scores[frames])]
        if not len(frames):
            excluded[clip_id] = "no scored frame before the event" if label else "no scored frame"
            continue
        kept[clip_id] = (frames / rate, scores[frames])
    result = earliness_from_alert_times(kept, is_positive, t_event, excluded, recall_target, max_thresholds=None)
    result.pop("curve")
    return result


def far_gated_anticipation(
    frame_scores: Sequence,
    labels: Sequence,
    event_frames: Sequence,
    anomaly_start_frames: Sequence,
    fps,
    max_far: float = 0.1,
    clip_ids: Sequence[str] | None = None,
) -> dict:
    """AUC and mTTA over the thresholds that keep the frame-level false-alarm rate at or below `max_far`.

    From TOP (Zhao et al., "Accident Anticipation via Temporal Occurrence Prediction", NeurIPS 2025, arXiv
    2510.22260), which reports anticipation only at operating points a driver would accept. The thresholds and the
    mTTA follow its repository's `compute_tta` (happytianhao/TOP, accident_anticipation/evaluate.py; read, not run
    here): the candidate thresholds are the negative clips' frame scores, with their multiplicity; at each, the
    false-alarm rate FAR is the share of negative frames scoring >= it; the thresholds with FAR <= max_far are kept.
    Rules (tests/test_protocols.py checks them on hand-computed cases):
    - a positive clip is anticipated at a threshold when a frame in [anomaly start, event) reaches it (an alert
      before the anomaly starts is not anticipation); TTA = (event - first such frame) / fps; a clip not anticipated
      counts TTA 0 and recall 0, as in TOP;
    - mtta_s = TTA averaged over positives, then over the kept thresholds; auc = recall averaged the same way: the
      area under recall vs frame-level FAR for FAR <= max_far, normalised to 1 (each negative frame is one step of
      FAR). TOP's paper also prints a clip-level partial ROC AUC; this is not that one;
    - frames without a score (NaN) never alert and are not negative frames; a positive clip with no scored frame in
      [anomaly start, event) is excluded and listed, never counted as a miss.
    `anomaly_start_frames`: per clip the first frame of the anomaly (None: the clip's start); for ghost probing,
    the frame at `t_first_visible_s`. Returns {max_far, auc, mtta_s, n_thresholds, threshold, recall_at_threshold,
    mean_tta_at_threshold_s (the lowest kept threshold, the operating point at max_far), counts, excluded, notes}.
    """
    ids = _clip_ids(clip_ids, len(frame_scores))
    rates = _per_clip(fps, len(frame_scores), "fps")
    nan = float("nan")
    negatives, positives, excluded = [], [], {}
    for clip_id, scores, label, event, start, rate in zip(
        ids, frame_scores, labels, event_frames, anomaly_start_frames, rates, strict=True
    ):
        scores = np.asarray(scores, dtype=np.float64)
        if not label:
            negatives.append(scores[~np.isnan(scores)])
            continue
        first = max(int(start or 0), 0)
        window = scores[first : max(int(event), first)]
        if np.isnan(window).all():
            excluded[clip_id] = "no scored frame between the anomaly start and the event"
            continue
        positives.append((window, first, int(event), rate))
    result = {
        "max_far": max_far,
        "auc": nan,
        "mtta_s": nan,
        "n_thresholds": 0,
        "threshold": nan,
        "recall_at_threshold": nan,
        "mean_tta_at_threshold_s": nan,
        "n_positive": len(positives),
        "n_negative": len(negatives),
        "n_negative_frames": int(sum(len(n) for n in negatives)),
        "excluded": excluded,
        "notes": [],
    }
    if excluded:
        result["notes"].append(f"{len(excluded)} positive clips excluded (see `excluded`): {format_ids(excluded)}")
    negative_frames = np.sort(np.concatenate(negatives)) if negatives else np.zeros(0)
    if not positives or not len(negative_frames):
        result["notes"].append("needs scored positive and negative clips: undefined")
        return result
    thresholds = negative_frames[::-1]
    far = (len(negative_frames) - np.searchsorted(negative_frames, thresholds, side="left")) / len(negative_frames)
    thresholds = thresholds[far <= max_far]
    if not len(thresholds):
        result["notes"].append(
            f"no threshold keeps the negative frames' false-alarm rate at or below {max_far:g} "
            "(too many negative frames share the top score): undefined"
        )
        return result
    recall = np.zeros(len(thresholds))
    tta_s = np.zeros(len(thresholds))
    for window, first, event, rate in positives:
        alert = _first_reaching(window, thresholds)
        anticipated = alert < len(window)
        recall += anticipated
        tta_s += np.where(anticipated, (event - first - alert) / rate, 0.0)
    recall /= len(positives)
    tta_s /= len(positives)
    result.update(
        auc=float(recall.mean()),
        mtta_s=float(tta_s.mean()),
        n_thresholds=len(thresholds),
        threshold=float(thresholds[-1]),
        recall_at_threshold=float(recall[-1]),
        mean_tta_at_threshold_s=float(tta_s[-1]),
    )
    return result


def nexar_map(
    scores_by_horizon: Mapping[float, Sequence[float | None]], labels: Sequence, clip_ids: Sequence[str] | None = None
) -> dict:
    """Mean average precision over the horizons before the event, as the Nexar Dashcam Collision Prediction
    Challenge scores entries (Moura et al., arXiv 2503.03848: AP at 500, 1000 and 1500 ms before the event, their
    mean). `scores_by_horizon`: horizon in seconds -> one score per clip, the score a causal system shows that long
    before the positive's event (for negatives: that long before the clip's end, the matching point of a clip with
    no event; the challenge cuts its test videos the same way). AP per horizon is sklearn's average_precision_score.
    A clip without a score at a horizon (None/NaN: before its first window, or no answer) is left out of that
    horizon and listed, never read as a "no". Returns {ap_by_horizon (str(h) -> AP), map, n_by_horizon,
    excluded_by_horizon, notes}.
    """
    from sklearn.metrics import average_precision_score

    y = np.asarray(labels, dtype=bool)
    ids = _clip_ids(clip_ids, len(y))
    result = {"ap_by_horizon": {}, "map": float("nan"), "n_by_horizon": {}, "excluded_by_horizon": {}, "notes": []}
    for horizon, scores in scores_by_horizon.items():
        key = f"{float(horizon):g}"
        scores = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
        if scores.shape != y.shape:
            raise ValueError(f"horizon {key} s: {len(scores)} scores for {len(y)} clips")
        has = ~np.isnan(scores)
        result["n_by_horizon"][key] = int(has.sum())
        if (~has).any():
            result["excluded_by_horizon"][key] = [i for i, ok in zip(ids, has, strict=True) if not ok]
        if y[has].all() or not y[has].any():
            result["ap_by_horizon"][key] = float("nan")
            result["notes"].append(f"{key} s before the event: needs scored positive and negative clips")
            continue
        result["ap_by_horizon"][key] = float(average_precision_score(y[has], scores[has]))
    if result["excluded_by_horizon"]:
        result["notes"].append(
            "clips without a score at a horizon are left out of it: "
            + "; ".join(f"{h} s: {format_ids(c)}" for h, c in result["excluded_by_horizon"].items())
        )
    values = list(result["ap_by_horizon"].values())
    if values and not np.isnan(values).any():
        result["map"] = float(np.mean(values))
    return result


def _clip_ids(clip_ids, n: int) -> list[str]:
    if clip_ids is None:
        return [str(i) for i in range(n)]
    if len(clip_ids) != n:
        raise ValueError(f"{len(clip_ids)} clip ids for {n} clips")
    return [str(c) for c in clip_ids]


def _per_clip(value, n: int, name: str) -> list[float]:
    if np.ndim(value) == 0:
        return [float(value)] * n
    if len(value) != n:
        raise ValueError(f"{len(value)} values of {name} for {n} clips")
    return [float(v) for v in value]
