"""scan.html: a summary table, the event metrics when labelled (and which recordings had no label and why), skipped
files, inputs that were the same file, stretches that would not decode, and per video a timeline chart with its alert
spans and a frame strip per alert. Built from ghostprobe/reports/document.py blocks (every string escaped, images as
data: URIs, no script) with the charts of ghostprobe/reports/charts.py."""

from __future__ import annotations

from pathlib import Path

from ghostprobe.files import write_text_atomic
from ghostprobe.reports.charts import frame_strip_jpeg, lead_time_png, recall_false_alerts_png, scan_timeline_png
from ghostprobe.reports.document import Bullets, Heading, Image, Para, Table, data_uri, interval, num, to_html
from ghostprobe.video import VideoInfo, VideoReadError, read_frames
from scan.summary import label_coverage


def write_scan_html(out_dir: Path, summary: dict, videos: list[dict], metrics: dict | None, cfg) -> Path:
    title = f"Scan: {summary['model']} ({summary['prompt']} prompt)"
    blocks = _overview(summary) + (_metrics_section(metrics) if metrics else [])
    blocks += _skipped(summary) + _same_file(summary) + _damaged(summary)
    per_video = {v["video_id"]: v for v in (metrics or {}).get("per_video", [])}
    events_by_video = _labelled_events(metrics)
    for video in videos:
        blocks += _video_section(
            video,
            per_video.get(video["video_id"]),
            events_by_video.get(video["video_id"]),
            int(cfg.report.strip_frames),
            int(cfg.report.max_alerts_shown),
        )
    return write_text_atomic(out_dir / "scan.html", to_html(title, blocks))


def _overview(summary: dict) -> list:
    t = summary["threshold"]
    blocks = [
        Para(
            f"{summary['videos_scanned']} of {summary['videos_total']} recordings scanned "
            f"({summary['hours_scanned'] * 60:.1f} minutes), {summary['videos_skipped']} skipped. "
            f"{summary['alerts']} alerts at on threshold {t['on']:.3g} / off {t['off']:.3g} "
            f"(from {t['source']}), alerts closer than {t['min_gap_s']:g} s merged."
        )
    ]
    if summary.get("stopped"):
        blocks.append(Para(f"The scan stopped early: {summary['stopped']}.", "warning"))
    rows = [
        [
            v["video_id"],
            f"{v['duration_s']:.1f}",
            f"{v['windows_answered']}/{v['windows']}",
            v["alerts"],
            "yes" if v["complete"] else "no",
        ]
        for v in summary["videos"]
    ]
    blocks += [
        Heading("Recordings"),
        Table(["recording", "duration (s)", "windows scored", "alerts", "complete"], rows),
    ]
    return blocks


def _metrics_section(m: dict) -> list:
    lead = m["lead_time_s"]
    rate_ci = m.get("false_alerts_per_hour_interval") or {}
    rows = [
        ["event recall", f"{num(m['recall'])} ({m['hits']} of {m['events']} ghost-probing events)"],
        [
            "false alerts per hour",
            f"{num(m['false_alerts_per_hour'], 2)} "
            f"{interval([rate_ci.get('low'), rate_ci.get('high')])} "
            f"({m['false_alerts']} in {m['hours'] * 60:.1f} minutes scanned; look-alikes "
            "under an alert count, even when the alert also hits an event)",
        ],
        [
            "driving time under alert",
            f"{num(m.get('alert_time_fraction'))} of the time; "
            f"{num(m.get('alert_time_outside_hits_s'), 1)} s outside every hit window",
        ],
        [
            "lead time (alert start - t_event_s)",
            f"median {num(lead['p50'], 2)} s, p10 {num(lead['p10'], 2)} s, "
            f"p90 {num(lead['p90'], 2)} s (n = {lead['n']}); negative = "
            "before the actor enters the path",
        ],
        ["hit", f"an alert overlapping [t_first_visible_s - {m['margin_s']:g} s, t_end_s]"],
    ]
    blocks = [Heading("Events"), Table(["metric", "value"], rows, css="keyvalue")]
    if m.get("rate_note"):
        blocks.append(
            Para(
                f"Note: rates per hour are {rate_ci.get('confidence', 0.95):.0%} exact Poisson intervals "
                f"in brackets; {m['rate_note']}.",
                "note",
            )
        )
    blocks.append(
        Image(
            data_uri(recall_false_alerts_png(m["curve"], m["operating_point"]), "image/png"),
            "event recall against false alerts per hour over thresholds",
        )
    )
    if lead["values"]:
        blocks.append(
            Image(
                data_uri(lead_time_png(lead["values"]), "image/png"), "distribution of lead times of the events found"
            )
        )
    if m["per_negative_class"]:
        blocks += [
            Heading("False alerts by look-alike", 3),
            Table(
                ["class", "labelled events", "false alerts", "per hour"],
                [
                    [name, c["events"], c["false_alerts"], num(c["false_alerts_per_hour"], 2)]
                    for name, c in m["per_negative_class"].items()
                ],
            ),
        ]
    blocks.append(Para(label_coverage(m, m["videos_labelled"] + len(m["videos_without_labels"])) + ".", "note"))
    if m["label_problems"] or m["videos_without_labels"] or m["events_not_scanned"]:
        items = (
            list(m["label_problems"])
            + [f"{v['path']}: no label ({v['why']}): counted in no metric" for v in m["videos_without_labels"]]
            + [
                f"{e['video_id']}: {e['label']} event at {e['span_s'][0]:.2f} s not counted: {e['why']}"
                for e in m["events_not_scanned"]
            ]
        )
        blocks += [Heading("Label problems", 3), Bullets(items)]
    return blocks


def _skipped(summary: dict) -> list:
    if not summary["skipped"]:
        return []
    return [Heading("Skipped files"), Table(["file", "reason"], [[s["path"], s["reason"]] for s in summary["skipped"]])]


def _same_file(summary: dict) -> list:
    if not summary["same_file"]:
        return []
    return [
        Heading("Inputs that were the same file"),
        Para("Each file is scanned once, under the first name it was listed by.", "note"),
        Table(["input", "same file as", "file"], [[s["path"], s["same_as"], s["file"]] for s in summary["same_file"]]),
    ]


def _damaged(summary: dict) -> list:
    rows = [
        [
            v["path"],
            f"{s['damaged_s'][0]:.2f}-{s['damaged_s'][1]:.2f}",
            f"{s['damaged_frames'][0]}-{s['damaged_frames'][1]}",
            s["windows_skipped"],
            f"{s['window_ends_s'][0]:.2f}-{s['window_ends_s'][1]:.2f}",
            s["reason"],
        ]
        for v in summary["videos"]
        for s in v["damaged_stretches"]
    ]
    if not rows:
        return []
    return [
        Heading("Stretches that would not decode"),
        Para(
            "These windows were not scored (the rest of each recording was); their time is left out of the "
            "hours and rates, and an alert never spans them.",
            "note",
        ),
        Table(
            [
                "file",
                "frames that would not decode (s)",
                "frames",
                "windows skipped",
                "window ends (s)",
                "decoder's error",
            ],
            rows,
        ),
    ]


def _labelled_events(metrics: dict | None) -> dict:
    return {v["video_id"]: v.get("label_events", []) for v in (metrics or {}).get("per_video", [])}


def _video_section(video: dict, matched: dict | None, events: list | None, strip_frames: int, max_alerts: int) -> list:
    rows = video["timeline"]
    lost = "".join(
        f"; {s['not_scanned_s'][0]:.1f}-{s['not_scanned_s'][1]:.1f} s not scanned (would not decode)"
        for s in video["damaged_stretches"]
    )
    blocks = [
        Heading(video["video_id"], 3),
        Para(f"{video['path']}: {video['duration_s']:.1f} s, {len(video['alerts'])} alerts{lost}", "note"),
    ]
    if matched:
        blocks.append(
            Para(
                f"{matched['hits']} of {matched['events']} ghost-probing events hit, "
                f"{matched['false_alerts']} false alerts",
                "note",
            )
        )
    t = video["threshold"]
    chart = scan_timeline_png(
        [r["end_s"] for r in rows],
        [r["p_ghost_probing"] for r in rows],
        t["on"],
        t["off"],
        video["alerts"],
        [tuple(e) for e in events or []],
    )
    blocks.append(Image(data_uri(chart, "image/png"), f"P(ghost probing) over time in {video['video_id']}"))
    alerts = sorted(video["alerts"], key=lambda a: -a["peak_p"])[:max_alerts]
    if alerts:
        strips = _strips(video, alerts, strip_frames)
        table_rows = [
            [
                k + 1,
                f"{a['start_s']:.2f}",
                f"{a['peak_s']:.2f}",
                f"{a['peak_p']:.3f}",
                f"{a['end_s']:.2f}",
                strips.get(k, "frames unavailable"),
            ]
            for k, a in enumerate(alerts)
        ]
        blocks.append(
            Table(
                ["#", "start (s)", "peak (s)", "peak p", "end (s)", "frames of the peak window"],
                table_rows,
                css="gallery",
            )
        )
    return blocks


def _strips(video: dict, alerts: list[dict], strip_frames: int) -> dict:
    """A frame strip of each alert's peak window (the frames the alert carries), decoded from the recording at full
    size and shrunk for the page. An alert of a scan made before alerts carried their frames has no strip."""
    info_doc = {k: v for k, v in video["info"].items() if k != "duration_s"}
    try:
        info = VideoInfo(**info_doc)
        out = {}
        for k, alert in enumerate(alerts):
            if not alert.get("peak_frame_indices"):
                continue
            frames = read_frames(video["path"], list(alert["peak_frame_indices"]), info)
            jpeg = frame_strip_jpeg(frames, max_frames=strip_frames)
            out[k] = Image(
                data_uri(jpeg, "image/jpeg"),
                f"frames of the window ending at {alert['peak_s']:.2f} s of {video['video_id']}",
            )
        return out
    except (VideoReadError, OSError, TypeError):
        return {}
