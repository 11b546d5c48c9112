"""Event-level metrics for long recordings: what teams shipping driver-assistance alerts measure.

- event recall: a ghost-probing event is hit when an alert overlaps [t_first_visible_s - margin_s, t_end_s]
  (t_event_s when it has no end);
- false alerts per hour of driving: alerts that hit no ghost-probing event, over the hours scanned;
- lead time: the first hitting alert's start minus t_event_s (negative = the alert came before the actor entered
  the path), as a distribution;
- per class of negative: the look-alike (an event with another label, by its `kind` or label) a false alert
  overlaps, or `no_event` when it overlaps none;
- the curve of recall against false alerts per hour over thresholds, with the operating point.
Inputs are plain: per video its duration, alerts ({start_s, end_s}) and events (`ghostprobe.labels.RecordingEvent`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ghostprobe.alerts import alerts_from_timeline, off_threshold

NO_EVENT = "no_event"


def _overlaps(a_start: float, a_end: float, lo: float, hi: float) -> bool:
    return a_start <= hi and a_end >= lo


def hit_window(event, margin_s: float) -> tuple[float, float]:
    """[t_first_visible_s - margin_s, t_end_s (or t_event_s)]: where an alert counts as finding the event."""
    end = event.t_end_s if event.t_end_s is not None else event.t_event_s
    return event.t_first_visible_s - margin_s, end


def negative_class(event) -> str:
    return event.kind or event.label


def match_video(alerts: list[dict], events: list, margin_s: float) -> dict:
    """One video: per ghost-probing event whether it was hit and the lead time; per alert whether it is false and
    the look-alike class it is blamed on."""
    positives = [e for e in events if e.label == "ghost_probing"]
    negatives = [e for e in events if e.label != "ghost_probing"]
    hits = []
    for event in positives:
        lo, hi = hit_window(event, margin_s)
        found = [a for a in alerts if _overlaps(a["start_s"], a["end_s"], lo, hi)]
        first = min(found, key=lambda a: a["start_s"]) if found else None
        hits.append({"t_event_s": event.t_event_s, "hit": first is not None,
                     "lead_time_s": None if first is None else first["start_s"] - event.t_event_s,
                     "actor": event.actor})
    false_alerts = []
    for alert in alerts:
        if any(_overlaps(alert["start_s"], alert["end_s"], *hit_window(e, margin_s)) for e in positives):
            continue
        blamed = NO_EVENT
        for event in negatives:
            start, end = event.span_s
            if _overlaps(alert["start_s"], alert["end_s"], start, end if end is not None else start):
                blamed = negative_class(event)
                break
        false_alerts.append({"start_s": alert["start_s"], "end_s": alert["end_s"], "blamed_on": blamed})
    return {"events": hits, "false_alerts": false_alerts,
            "negatives": Counter(negative_class(e) for e in negatives)}


def _distribution(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "p10": None, "p50": None, "p90": None, "min": None, "max": None, "values": []}
    arr = np.asarray(values, float)
    p10, p50, p90 = (float(v) for v in np.percentile(arr, [10, 50, 90]))
    return {"n": len(values), "mean": float(arr.mean()), "p10": p10, "p50": p50, "p90": p90,
            "min": float(arr.min()), "max": float(arr.max()), "values": [round(v, 4) for v in values]}


def event_metrics(videos: list[dict], margin_s: float) -> dict:
    """Metrics over videos, each {"video_id", "duration_s", "alerts": [{start_s, end_s}, ...], "events": [...]}."""
    hours = sum(v["duration_s"] for v in videos) / 3600.0
    n_events = n_hits = 0
    leads: list[float] = []
    blamed: Counter = Counter()
    negatives: Counter = Counter()
    per_video = []
    for video in videos:
        matched = match_video(video["alerts"], video["events"], margin_s)
        n_events += len(matched["events"])
        hit = [e for e in matched["events"] if e["hit"]]
        n_hits += len(hit)
        leads += [e["lead_time_s"] for e in hit]
        blamed.update(a["blamed_on"] for a in matched["false_alerts"])
        negatives.update(matched["negatives"])
        per_video.append({"video_id": video["video_id"], "events": len(matched["events"]), "hits": len(hit),
                          "false_alerts": len(matched["false_alerts"]), "alerts": len(video["alerts"]),
                          "duration_s": video["duration_s"], "event_details": matched["events"],
                          "false_alert_details": matched["false_alerts"]})
    n_false = sum(blamed.values())
    per_class = {name: {"events": negatives.get(name, 0), "false_alerts": blamed.get(name, 0),
                        "false_alerts_per_hour": blamed.get(name, 0) / hours if hours else None}
                 for name in sorted(set(negatives) | set(blamed))}
    return {"margin_s": margin_s, "hours": hours, "events": n_events, "hits": n_hits,
            "recall": n_hits / n_events if n_events else None, "false_alerts": n_false,
            "false_alerts_per_hour": n_false / hours if hours else None,
            "lead_time_s": _distribution(leads), "per_negative_class": per_class, "per_video": per_video}


def recall_false_alert_curve(videos: list[dict], thresholds, hysteresis: float, min_gap_s: float,
                             margin_s: float) -> list[dict]:
    """Recall and false alerts per hour at each on-threshold (off = `off_threshold(on, hysteresis)`), alerts
    recomputed from each video's `timeline` rows with the same hysteresis and gap."""
    points = []
    for threshold in sorted(set(float(t) for t in thresholds)):
        runs = [{**v, "alerts": [a.to_json() for a in alerts_from_timeline(
            v["timeline"], threshold, off_threshold(threshold, hysteresis), min_gap_s)]} for v in videos]
        m = event_metrics(runs, margin_s)
        points.append({"threshold": threshold, "recall": m["recall"],
                       "false_alerts_per_hour": m["false_alerts_per_hour"]})
    return points
