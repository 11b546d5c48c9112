"""The scan-wide outputs, written once by rank 0 from every video's files: scan.json (what was scanned or skipped
and why, which inputs were the same file, damaged stretches, alerts per video), metrics.json (event-level metrics
when labels= is given, with which recordings had no label and why), exported/labels.json (the label stub of every
exported alert) and scan.html."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ghostprobe.files import read_json_or_none, write_json_atomic
from ghostprobe.labels import ClipLabel, LabelSet, RecordingEvent, events_beyond_video
from ghostprobe.metrics.events import event_metrics, hit_window, recall_false_alert_curve
from scan.recordings import ScanInputs, file_identity, read_timeline, timeline_with_gaps

NO_MATCH = "no clip of the label file names this file"


def write_outputs(
    out_dir: Path,
    inputs: ScanInputs,
    world_size: int,
    cfg,
    thresholds: dict,
    model_name: str,
    prompt_name: str,
    labels: LabelSet | None,
) -> dict:
    """Merge the ranks' statuses and the videos' alerts into scan.json (+ metrics.json, scan.html); the summary."""
    statuses = [read_json_or_none(out_dir / f"scan_status.rank{r}.json") or {} for r in range(world_size)]
    skipped = {s["video_id"]: s for st in statuses for s in st.get("skipped", [])}
    videos = []
    for recording in inputs.recordings:
        doc = read_json_or_none(out_dir / "videos" / recording.video_id / "alerts.json")
        if recording.video_id in skipped or doc is None:
            continue
        rows = read_timeline(out_dir / "videos" / recording.video_id / "timeline.jsonl", doc["identity"]).values()
        stretches = doc.get("damaged_stretches", [])
        videos.append({**doc, "damaged_stretches": stretches, "timeline": timeline_with_gaps(list(rows), stretches)})
    hours = sum(v.get("scanned_s", v["duration_s"]) for v in videos) / 3600
    n_alerts = sum(len(v["alerts"]) for v in videos)
    summary = {
        "model": model_name,
        "prompt": prompt_name,
        "threshold": thresholds,
        # a recording without one answered window (every call failed, or a budget stop before it) is not scanned
        "videos_total": len(inputs.recordings),
        "videos_scanned": sum(1 for v in videos if v["windows_answered"]),
        "videos_skipped": len(skipped),
        "hours_scanned": hours,
        "alerts": n_alerts,
        "alerts_per_hour": n_alerts / hours if hours else None,
        "skipped": list(skipped.values()),
        "same_file": inputs.same_file,
        "stopped": next((st["stopped"] for st in statuses if st.get("stopped")), None),
        "videos": [
            {
                "video_id": v["video_id"],
                "path": v["path"],
                "duration_s": v["duration_s"],
                "scanned_s": v.get("scanned_s", v["duration_s"]),
                "windows": v["num_windows"],
                "windows_answered": v["windows_answered"],
                "windows_skipped": v.get("windows_skipped", 0),
                "damaged_stretches": v["damaged_stretches"],
                "complete": v["complete"],
                "alerts": len(v["alerts"]),
            }
            for v in videos
        ],
        "wall_s": max((st.get("wall_s", 0.0) for st in statuses), default=0.0),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    metrics = None
    if labels is not None:
        metrics = _event_metrics(videos, cfg, thresholds, labels)
        write_json_atomic(out_dir / "metrics.json", metrics, allow_nan=False)
        summary["metrics"] = {
            k: metrics[k]
            for k in ("recall", "false_alerts_per_hour", "events", "hits", "false_alerts", "hours", "videos_labelled")
        }
    write_json_atomic(out_dir / "scan.json", summary, allow_nan=False)
    if cfg.export_alerts:
        _merge_exports(out_dir, [v["video_id"] for v in videos])
    from scan.report import write_scan_html

    html_path = write_scan_html(out_dir, summary, videos, metrics, cfg)
    _print(summary, metrics, out_dir, html_path)
    return summary


def _event_metrics(videos: list[dict], cfg, thresholds: dict, labels: LabelSet) -> dict:
    """Event metrics over the scanned recordings that have a label: the clip whose `video` (relative to videos_dir=,
    default the label file's folder) is the same file. Recordings without one are listed with why; events inside a
    damaged stretch, which no window judged, are left out and listed."""
    base = Path(cfg.videos_dir) if cfg.videos_dir else labels.path.parent
    by_file: dict[object, ClipLabel] = {}
    for clip in labels.clips:
        by_file.setdefault(file_identity(base / clip.video), clip)
    problems = [str(p) for p in labels.problems]
    labelled, unlabelled, not_scanned = [], [], []
    margin_s = float(cfg.metrics.margin_s)
    for video in videos:
        clip = by_file.get(file_identity(Path(video["path"])))
        if clip is None:
            unlabelled.append({"video_id": video["video_id"], "path": video["path"], "why": NO_MATCH})
            continue
        beyond = events_beyond_video(clip, video["duration_s"], video["info"]["fps"])
        if beyond:
            unlabelled.append(
                {"video_id": video["video_id"], "path": video["path"], "why": f"clip {clip.clip_id!r}: {beyond}"}
            )
            continue
        events = []
        for event in clip.recording_events():
            gap = _inside_a_stretch(event, video["damaged_stretches"], margin_s)
            if gap is None:
                events.append(event)
            else:
                not_scanned.append(
                    {
                        "video_id": video["video_id"],
                        "label": event.label,
                        "span_s": event.span_s,
                        "why": f"inside {gap[0]:.2f}-{gap[1]:.2f} s, a stretch that would not decode",
                    }
                )
        labelled.append(
            {
                "video_id": video["video_id"],
                "duration_s": video["duration_s"],
                "scanned_s": video.get("scanned_s", video["duration_s"]),
                "alerts": video["alerts"],
                "events": events,
                "timeline": video["timeline"],
            }
        )
    metrics = event_metrics(labelled, margin_s)
    spans = {
        v["video_id"]: [
            [e.label, e.span_s[0], e.span_s[1] if e.span_s[1] is not None else e.span_s[0]] for e in v["events"]
        ]
        for v in labelled
    }
    for entry in metrics["per_video"]:
        entry["label_events"] = spans[entry["video_id"]]
    curve = recall_false_alert_curve(
        labelled,
        [*cfg.metrics.curve_thresholds, thresholds["on"]],
        float(cfg.alerts.hysteresis),
        thresholds["min_gap_s"],
        margin_s,
    )
    return {
        "labels": str(cfg.labels),
        "videos_dir": str(base),
        "threshold": thresholds,
        "operating_point": {
            "threshold": thresholds["on"],
            "recall": metrics["recall"],
            "false_alerts_per_hour": metrics["false_alerts_per_hour"],
        },
        **metrics,
        "curve": curve,
        "videos_labelled": len(labelled),
        "videos_without_labels": unlabelled,
        "events_not_scanned": not_scanned,
        "label_problems": problems,
    }


def _inside_a_stretch(event: RecordingEvent, stretches: list[dict], margin_s: float) -> tuple[float, float] | None:
    """The damaged stretch (its not-scanned time) that holds all of the time an alert could count for the event in
    (a ghost probing's hit window, a look-alike's span), or None."""
    if event.label == "ghost_probing":
        lo, hi = hit_window(event, margin_s)
    else:
        lo, hi = event.span_s
        hi = lo if hi is None else hi
    for stretch in stretches:
        start, end = stretch["not_scanned_s"]
        if start <= lo and hi <= end:
            return start, end
    return None


def _merge_exports(out_dir: Path, video_ids: list[str]) -> None:
    from ghostprobe.labels import SCHEMA_VERSION

    clips = []
    for video_id in video_ids:
        doc = read_json_or_none(out_dir / "videos" / video_id / "exported.json")
        clips += doc["clips"] if doc else []
    if clips:
        (out_dir / "exported").mkdir(exist_ok=True)
        write_json_atomic(out_dir / "exported" / "labels.json", {"schema_version": SCHEMA_VERSION, "clips": clips})


def _print(summary: dict, metrics: dict | None, out_dir: Path, html_path: Path) -> None:
    per_hour = summary["alerts_per_hour"]
    print(
        f"scan: {summary['videos_scanned']} of {summary['videos_total']} videos scanned "
        f"({summary['hours_scanned'] * 60:.1f} min), {summary['videos_skipped']} skipped; {summary['alerts']} "
        f"alerts"
        + (f" ({per_hour:.1f} per hour)" if per_hour is not None else "")
        + f" at threshold {summary['threshold']['on']:.3g}"
    )
    damaged = [v for v in summary["videos"] if v["damaged_stretches"]]
    if damaged:
        lost_s = sum(v["duration_s"] - v["scanned_s"] for v in damaged)
        print(
            f"  {len(damaged)} recordings had stretches that would not decode: {lost_s:.1f} s not scanned "
            "(damaged_stretches in scan.json)"
        )
    if summary["same_file"]:
        print(
            f"  {len(summary['same_file'])} inputs named a file already listed: each file scanned once "
            "(same_file in scan.json)"
        )
    if metrics:
        recall = "n/a" if metrics["recall"] is None else f"{metrics['recall']:.3f}"
        fph = metrics["false_alerts_per_hour"]
        lead = metrics["lead_time_s"]["p50"]
        print(
            f"  events: recall {recall} ({metrics['hits']}/{metrics['events']}), false alerts per hour "
            f"{'n/a' if fph is None else f'{fph:.1f}'}, median lead time "
            f"{'n/a' if lead is None else f'{lead:+.2f} s'}  -> {out_dir / 'metrics.json'}"
        )
        print("  " + label_coverage(metrics, len(summary["videos"])))
    print(f"  -> {out_dir / 'scan.json'}\n  report: {html_path}")


def label_coverage(metrics: dict, scanned: int) -> str:
    """How many scanned recordings the metrics count, and why the others are not counted."""
    line = f"labels: {metrics['videos_labelled']} of {scanned} scanned recordings have a label"
    missing = metrics["videos_without_labels"]
    if missing:
        no_match = sum(1 for v in missing if v["why"] == NO_MATCH)
        beyond = len(missing) - no_match
        reasons = []
        if no_match:
            reasons.append(
                f"{no_match} match no clip of {metrics['labels']} (its `video` paths are read from "
                f"{metrics['videos_dir']}; set videos_dir= if they start elsewhere)"
            )
        if beyond:
            reasons.append(f"{beyond} with an event beyond the recording's end")
        line += f"; not counted: {', '.join(reasons)}"
    if metrics["events_not_scanned"]:
        line += f"; {len(metrics['events_not_scanned'])} events inside stretches that would not decode not counted"
    if metrics["label_problems"]:
        line += f"; {len(metrics['label_problems'])} label entries refused (label_problems in metrics.json)"
    return line
