"""The scan-wide outputs, written once by rank 0 from every video's files: scan.json (what was scanned or skipped
and why, alerts per video), metrics.json (event-level metrics when labels= is given), exported/labels.json (the
label stub of every exported alert) and scan.html."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from eval.scanning import read_timeline, write_json_atomic
from ghostprobe.labels import ClipLabel, LabelFileError, RecordingEvent, events_beyond_video, load_labels
from ghostprobe.metrics.events import event_metrics, recall_false_alert_curve


def write_outputs(out_dir: Path, inputs: list[tuple[str, Path]], world_size: int, cfg, thresholds: dict,
                  model_name: str, prompt_name: str) -> dict:
    """Merge the ranks' statuses and the videos' alerts into scan.json (+ metrics.json, scan.html); the summary."""
    statuses = [_read(out_dir / f"scan_status.rank{r}.json") or {} for r in range(world_size)]
    skipped = {s["video_id"]: s for st in statuses for s in st.get("skipped", [])}
    videos = []
    for video_id, path in inputs:
        doc = _read(out_dir / "videos" / video_id / "alerts.json")
        if video_id in skipped or doc is None:
            continue
        rows = sorted(read_timeline(out_dir / "videos" / video_id / "timeline.jsonl", doc["identity"]).values(),
                      key=lambda r: r["window"])
        videos.append({**doc, "timeline": rows})
    hours = sum(v["duration_s"] for v in videos) / 3600
    n_alerts = sum(len(v["alerts"]) for v in videos)
    summary = {
        "model": model_name, "prompt": prompt_name, "threshold": thresholds,
        # a recording without one answered window (every call failed, or a budget stop before it) is not scanned
        "videos_total": len(inputs), "videos_scanned": sum(1 for v in videos if v["windows_answered"]),
        "videos_skipped": len(skipped),
        "hours_scanned": hours, "alerts": n_alerts, "alerts_per_hour": n_alerts / hours if hours else None,
        "skipped": list(skipped.values()),
        "stopped": next((st["stopped"] for st in statuses if st.get("stopped")), None),
        "videos": [{"video_id": v["video_id"], "path": v["path"], "duration_s": v["duration_s"],
                    "windows": v["num_windows"], "windows_answered": v["windows_answered"],
                    "complete": v["complete"], "alerts": len(v["alerts"])} for v in videos],
        "wall_s": max((st.get("wall_s", 0.0) for st in statuses), default=0.0),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    metrics = None
    if cfg.labels:
        metrics = _event_metrics(videos, cfg, thresholds)
        write_json_atomic(out_dir / "metrics.json", metrics)
        summary["metrics"] = {k: metrics[k] for k in ("recall", "false_alerts_per_hour", "events", "hits",
                                                      "false_alerts", "hours")}
    write_json_atomic(out_dir / "scan.json", summary)
    if cfg.export_alerts:
        _merge_exports(out_dir, [v["video_id"] for v in videos])
    from eval.scan_report import write_scan_html

    html_path = write_scan_html(out_dir, summary, videos, metrics, cfg)
    _print(summary, metrics, out_dir, html_path)
    return summary


def recording_events(clip: ClipLabel) -> list[RecordingEvent]:
    """A label's events: `events` of a long recording, or a one-event clip's `event` under the clip's label."""
    if clip.events is not None:
        return list(clip.events)
    if clip.event is None:
        return []
    return [RecordingEvent(label=clip.label, **clip.event.model_dump(exclude_none=True))]


def _event_metrics(videos: list[dict], cfg, thresholds: dict) -> dict:
    try:
        labels = load_labels(cfg.labels)
    except LabelFileError as err:
        raise SystemExit(f"scan: labels={cfg.labels}: {err}") from None
    by_path = {(labels.path.parent / clip.video).resolve(): clip for clip in labels.clips}
    problems = [str(p) for p in labels.problems]
    labelled, unlabelled = [], []
    for video in videos:
        clip = by_path.get(Path(video["path"]).resolve())
        if clip is None:
            unlabelled.append(video["video_id"])
            continue
        info = video["info"]
        beyond = events_beyond_video(clip, video["duration_s"], info["fps"])
        if beyond:
            problems.append(f"{cfg.labels}, clip {clip.clip_id!r}: {beyond}")
            continue
        labelled.append({"video_id": video["video_id"], "duration_s": video["duration_s"], "alerts": video["alerts"],
                         "events": recording_events(clip), "timeline": video["timeline"]})
    margin_s = float(cfg.metrics.margin_s)
    metrics = event_metrics(labelled, margin_s)
    spans = {v["video_id"]: [[e.label, e.span_s[0], e.span_s[1] if e.span_s[1] is not None else e.span_s[0]]
                             for e in v["events"]] for v in labelled}
    for entry in metrics["per_video"]:
        entry["label_events"] = spans[entry["video_id"]]
    curve = recall_false_alert_curve(labelled, [*cfg.metrics.curve_thresholds, thresholds["on"]],
                                     float(cfg.alerts.hysteresis),
                                     thresholds["min_gap_s"], margin_s)
    return {"labels": str(cfg.labels), "threshold": thresholds,
            "operating_point": {"threshold": thresholds["on"], "recall": metrics["recall"],
                                "false_alerts_per_hour": metrics["false_alerts_per_hour"]},
            **metrics, "curve": curve, "videos_without_labels": unlabelled, "label_problems": problems}


def _merge_exports(out_dir: Path, video_ids: list[str]) -> None:
    from ghostprobe.labels import SCHEMA_VERSION

    clips = []
    for video_id in video_ids:
        doc = _read(out_dir / "videos" / video_id / "exported.json")
        clips += doc["clips"] if doc else []
    if clips:
        (out_dir / "exported").mkdir(exist_ok=True)
        write_json_atomic(out_dir / "exported" / "labels.json", {"schema_version": SCHEMA_VERSION, "clips": clips})


def _print(summary: dict, metrics: dict | None, out_dir: Path, html_path: Path) -> None:
    per_hour = summary["alerts_per_hour"]
    print(f"scan: {summary['videos_scanned']} of {summary['videos_total']} videos scanned "
          f"({summary['hours_scanned'] * 60:.1f} min), {summary['videos_skipped']} skipped; {summary['alerts']} "
          f"alerts" + (f" ({per_hour:.1f} per hour)" if per_hour is not None else "")
          + f" at threshold {summary['threshold']['on']:.3g}")
    if metrics:
        recall = "n/a" if metrics["recall"] is None else f"{metrics['recall']:.3f}"
        fph = metrics["false_alerts_per_hour"]
        lead = metrics["lead_time_s"]["p50"]
        print(f"  events: recall {recall} ({metrics['hits']}/{metrics['events']}), false alerts per hour "
              f"{'n/a' if fph is None else f'{fph:.1f}'}, median lead time "
              f"{'n/a' if lead is None else f'{lead:+.2f} s'}  -> {out_dir / 'metrics.json'}")
    print(f"  -> {out_dir / 'scan.json'}\n  report: {html_path}")


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
