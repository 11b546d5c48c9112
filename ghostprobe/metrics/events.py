"""Event-level metrics for long recordings: what teams shipping driver-assistance alerts measure.

- event recall: a ghost-probing event is hit when an alert overlaps [t_first_visible_s - margin_s, t_end_s]
  (t_event_s when it has no end);
- false alerts: alerts that hit no ghost-probing event, plus every look-alike event (an event with another label)
  that an alert overlaps, even when the same alert also hits a ghost-probing event: one long alert covering a whole
  drive hits everything and must not score as perfect. Per hour of driving, with an exact Poisson interval;
- time under alert: the fraction of driving time inside an alert, and the alert time outside every hit window
  (seconds, and per hour): an always-on alert has recall 1.0 and fraction 1.0;
- lead time: the first hitting alert's start minus t_event_s (negative = the alert came before the actor entered
  the path), as a distribution;
- per class of negative: the look-alike (by its `kind` or label) a false alert overlaps, or `no_event` when it
  overlaps none;
- the curve of recall against false alerts per hour over thresholds, with the operating point.
Inputs are plain: per video its duration, alerts ({start_s, end_s}) and events (`ghostprobe.labels.RecordingEvent`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ghostprobe.alerts import alerts_from_timeline, off_threshold
from ghostprobe.metrics.intervals import poisson_rate_interval

NO_EVENT = "no_event"


def _overlaps(a_start: float, a_end: float, lo: float, hi: float) -> bool:
    return a_start <= hi and a_end >= lo


def hit_window(event, margin_s: float) -> tuple[float, float]:
    """[t_first_visible_s - margin_s, t_end_s (or t_event_s)]: where an alert counts as finding the event."""
    end = event.t_end_s if event.t_end_s is not None else event.t_event_s
    return event.t_first_visible_s - margin_s, end


def negative_class(event) -> str:
    return event.kind or event.label


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _length_outside(spans: list[tuple[float, float]], covered: list[tuple[float, float]]) -> float:
    """Total length of `spans` (already disjoint) not inside any of `covered`."""
    total = sum(hi - lo for lo, hi in spans)
    inside = sum(max(0.0, min(hi, c_hi) - max(lo, c_lo)) for lo, hi in spans for c_lo, c_hi in _union(covered))
    return total - inside


def match_video(alerts: list[dict], events: list, margin_s: float, duration_s: float | None = None) -> dict:
    """One video: per ghost-probing event whether it was hit and the lead time; the false alerts (alerts that hit
    no ghost-probing event, and look-alikes alerted on) with the class each is blamed on; alert time in total and
    outside every hit window (alerts clipped to [0, duration_s] when it is given)."""
    positives = [e for e in events if e.label == "ghost_probing"]
    negatives = [e for e in events if e.label != "ghost_probing"]
    windows = [hit_window(e, margin_s) for e in positives]
    hits = []
    for event, (lo, hi) in zip(positives, windows, strict=True):
        found = [a for a in alerts if _overlaps(a["start_s"], a["end_s"], lo, hi)]
        first = min(found, key=lambda a: a["start_s"]) if found else None
        hits.append(
            {
                "t_event_s": event.t_event_s,
                "hit": first is not None,
                "lead_time_s": None if first is None else first["start_s"] - event.t_event_s,
                "actor": event.actor,
            }
        )
    false_alerts = []
    for event in negatives:  # a look-alike alerted on is a false alert of its class, whatever else the alert hit
        start, end = event.span_s
        end = end if end is not None else start
        found = [a for a in alerts if _overlaps(a["start_s"], a["end_s"], start, end)]
        if found:
            first = min(found, key=lambda a: a["start_s"])
            false_alerts.append(
                {"start_s": first["start_s"], "end_s": first["end_s"], "blamed_on": negative_class(event)}
            )
    for alert in alerts:
        near_event = any(_overlaps(alert["start_s"], alert["end_s"], lo, hi) for lo, hi in windows) or any(
            _overlaps(
                alert["start_s"], alert["end_s"], e.span_s[0], e.span_s[1] if e.span_s[1] is not None else e.span_s[0]
            )
            for e in negatives
        )
        if not near_event:
            false_alerts.append({"start_s": alert["start_s"], "end_s": alert["end_s"], "blamed_on": NO_EVENT})
    limit = duration_s if duration_s is not None else float("inf")
    spans = _union([(max(0.0, a["start_s"]), min(limit, a["end_s"])) for a in alerts if a["end_s"] >= 0])
    return {
        "events": hits,
        "false_alerts": sorted(false_alerts, key=lambda a: a["start_s"]),
        "negatives": Counter(negative_class(e) for e in negatives),
        "alert_s": sum(hi - lo for lo, hi in spans),
        "alert_outside_hits_s": _length_outside(spans, windows),
    }


def _distribution(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "p10": None, "p50": None, "p90": None, "min": None, "max": None, "values": []}
    arr = np.asarray(values, float)
    p10, p50, p90 = (float(v) for v in np.percentile(arr, [10, 50, 90]))
    return {
        "n": len(values),
        "mean": float(arr.mean()),
        "p10": p10,
        "p50": p50,
        "p90": p90,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "values": [round(v, 4) for v in values],
    }


def event_metrics(videos: list[dict], margin_s: float, confidence: float = 0.95) -> dict:
    """Metrics over videos, each {"video_id", "duration_s", "alerts": [{start_s, end_s}, ...], "events": [...]}
    and optionally "scanned_s": the driving time actually judged when a stretch could not be (default: duration_s),
    which rates and time fractions are taken over.

    Rates per hour come with an exact Poisson interval (`false_alerts_per_hour_interval`): from minutes of video a
    rate is mostly interval, and `rate_note` says so when less than an hour was scanned."""
    duration_s = sum(v.get("scanned_s", v["duration_s"]) for v in videos)
    hours = duration_s / 3600.0
    n_events = n_hits = 0
    leads: list[float] = []
    blamed: Counter = Counter()
    negatives: Counter = Counter()
    alert_s = outside_s = 0.0
    per_video = []
    for video in videos:
        matched = match_video(video["alerts"], video["events"], margin_s, video["duration_s"])
        n_events += len(matched["events"])
        hit = [e for e in matched["events"] if e["hit"]]
        n_hits += len(hit)
        leads += [e["lead_time_s"] for e in hit]
        blamed.update(a["blamed_on"] for a in matched["false_alerts"])
        negatives.update(matched["negatives"])
        alert_s += matched["alert_s"]
        outside_s += matched["alert_outside_hits_s"]
        scanned_s = video.get("scanned_s", video["duration_s"])
        per_video.append(
            {
                "video_id": video["video_id"],
                "events": len(matched["events"]),
                "hits": len(hit),
                "false_alerts": len(matched["false_alerts"]),
                "alerts": len(video["alerts"]),
                "duration_s": video["duration_s"],
                "alert_time_fraction": matched["alert_s"] / scanned_s if scanned_s else None,
                "event_details": matched["events"],
                "false_alert_details": matched["false_alerts"],
            }
        )
    n_false = sum(blamed.values())
    per_class = {
        name: {
            "events": negatives.get(name, 0),
            "false_alerts": blamed.get(name, 0),
            "false_alerts_per_hour": blamed.get(name, 0) / hours if hours else None,
        }
        for name in sorted(set(negatives) | set(blamed))
    }
    rate = poisson_rate_interval(n_false, hours, confidence)
    return {
        "margin_s": margin_s,
        "hours": hours,
        "events": n_events,
        "hits": n_hits,
        "recall": n_hits / n_events if n_events else None,
        "false_alerts": n_false,
        "false_alerts_per_hour": n_false / hours if hours else None,
        "false_alerts_per_hour_interval": {
            "low": rate["low"],
            "high": rate["high"],
            "confidence": confidence,
            "method": "exact Poisson",
        }
        if hours
        else None,
        "rate_note": (
            f"from {hours * 60:.1f} minutes of video: a rate per hour from less than an hour is mostly interval"
        )
        if 0 < hours < 1
        else None,
        "alert_time_fraction": alert_s / duration_s if duration_s else None,
        "alert_time_outside_hits_s": outside_s,
        "alert_minutes_outside_hits_per_hour": outside_s / 60 / hours if hours else None,
        "lead_time_s": _distribution(leads),
        "per_negative_class": per_class,
        "per_video": per_video,
    }


def recall_false_alert_curve(
    videos: list[dict], thresholds, hysteresis: float, min_gap_s: float, margin_s: float
) -> list[dict]:
    """Recall and false alerts per hour at each on-threshold (off = `off_threshold(on, hysteresis)`), alerts
    recomputed from each video's `timeline` rows with the same hysteresis and gap."""
    points = []
    for threshold in sorted(set(float(t) for t in thresholds)):
        runs = [
            {
                **v,
                "alerts": [
                    a.to_json()
                    for a in alerts_from_timeline(
                        v["timeline"], threshold, off_threshold(threshold, hysteresis), min_gap_s
                    )
                ],
            }
            for v in videos
        ]
        m = event_metrics(runs, margin_s)
        points.append(
            {
                "threshold": threshold,
                "recall": m["recall"],
                "false_alerts_per_hour": m["false_alerts_per_hour"],
                "alert_time_fraction": m["alert_time_fraction"],
            }
        )
    return points
