"""Event-time localisation: how close a model's "when" answer is to the labelled t_event_s."""

from __future__ import annotations

import numpy as np

from ghostprobe.metrics.common import as_scores


def localisation_metrics(t_pred_s, t_event_s, tolerances_s=(1.0, 2.0), clip_ids=None) -> dict:
    """Hit rates within each tolerance and absolute errors of predicted vs labelled event times (seconds).

    Clips whose label has no t_event_s (None/NaN: negatives, unlabelled positives) are left out and counted in
    `n_unlabelled`. A missing prediction (None/NaN) is reported in `n_missing_pred` (and `missing_clip_ids` when
    `clip_ids` is given). Two hit rates per tolerance: `hit_rate_within_{tol}s` over clips with a prediction, and
    `..._missing_as_miss` over every labelled clip, the one a user relying on the answer would experience. A hit is
    |t_pred - t_event| <= tolerance (the boundary counts as a hit). MAE and median error are over predicted clips.
    """
    t_event = as_scores(t_event_s, len(t_event_s), "t_event_s")
    t_pred = as_scores(t_pred_s, len(t_event), "t_pred_s")
    labelled = ~np.isnan(t_event)
    predicted = labelled & ~np.isnan(t_pred)
    error = np.abs(t_pred[predicted] - t_event[predicted])
    n_labelled, n_pred = int(labelled.sum()), int(predicted.sum())
    nan = float("nan")
    result = {
        "n_labelled": n_labelled,
        "n_unlabelled": int((~labelled).sum()),
        "n_predicted": n_pred,
        "n_missing_pred": n_labelled - n_pred,
        "mae_s": float(error.mean()) if n_pred else nan,
        "median_abs_error_s": float(np.median(error)) if n_pred else nan,
    }
    for tol in tolerances_s:
        # A small slack so that 4.0 vs 5.0 (a float error of 1.0000000000000004) still counts as within 1 s.
        hits = int((error <= tol + 1e-9).sum())
        result[f"hit_rate_within_{tol:g}s"] = hits / n_pred if n_pred else nan
        result[f"hit_rate_within_{tol:g}s_missing_as_miss"] = hits / n_labelled if n_labelled else nan
    if clip_ids is not None:
        ids = list(clip_ids)
        result["missing_clip_ids"] = [str(ids[i]) for i in np.flatnonzero(labelled & np.isnan(t_pred))]
    return result
