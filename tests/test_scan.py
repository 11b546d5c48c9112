"""scan/main.py: long recordings scanned window by window, alerts with hysteresis, event-level metrics, resume, bad
files, export, the drive generator and the `events` label schema. Recordings are made here: a dark video in which
a white square shows during known spans, scored by a double that sees the square (the times are the point, not the
model), and a short synthetic drive scored by the tiny random Video-LLaMA (the real model path)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ghostprobe.alerts import Alert, alerts_from_timeline, merge_alerts, off_threshold
from ghostprobe.labels import RecordingEvent, events_beyond_video, load_labels
from ghostprobe.metrics.events import event_metrics, recall_false_alert_curve
from ghostprobe.models.base import ModelOutput
from small_disk import on_small_disk, small_disk_available

FPS, SECONDS, SIZE = 10, 40, (48, 64)
GHOST_SPANS = [(10.0, 12.0), (25.0, 27.0)]  # white square top-left: what the double calls ghost probing
LOOKALIKE_SPAN = (30.0, 33.0)  # white square bottom-right: a look-alike the double is fooled by


def _timeline(points):
    return [{"end_s": t, "p_ghost_probing": p} for t, p in points]


# --- alerts -----------------------------------------------------------------------------------------------------


def test_hysteresis_keeps_an_alert_on_until_the_off_threshold_and_merges_close_alerts():
    rows = _timeline(
        [
            (1, 0.2),
            (2, 0.75),
            (3, 0.65),
            (4, 0.62),
            (5, 0.5),
            (6, 0.9),
            (7, 0.1),
            (7.5, 0.8),
            (9, 0.1),
            (12, 0.95),
            (13, float("nan")),
            (14, 0.9),
        ]
    )
    got = [a.to_json() for a in alerts_from_timeline(rows, on_threshold=0.7, off_threshold=0.6, min_gap_s=0.0)]
    # 2-4 on (0.65 and 0.62 stay above off 0.6), 5 drops below off; 6 opens a new one; 7.5; 12; NaN closes; 14
    assert [(a["start_s"], a["end_s"], a["peak_s"], a["peak_p"], a["num_windows"]) for a in got] == [
        (2, 4, 2, 0.75, 3),
        (6, 6, 6, 0.9, 1),
        (7.5, 7.5, 7.5, 0.8, 1),
        (12, 12, 12, 0.95, 1),
        (14, 14, 14, 0.9, 1),
    ]
    merged = alerts_from_timeline(rows, 0.7, 0.6, min_gap_s=2.0)
    # gaps 2 (4->6, not < 2), 1.5 (6->7.5), 4.5, 2: only 6 and 7.5 join
    assert [(a.start_s, a.end_s, a.peak_p, a.num_windows) for a in merged] == [
        (2, 4, 0.75, 3),
        (6, 7.5, 0.9, 2),
        (12, 12, 0.95, 1),
        (14, 14, 0.9, 1),
    ]
    assert alerts_from_timeline(rows, 0.7) == alerts_from_timeline(rows, 0.7, 0.7)  # no hysteresis by default
    with pytest.raises(ValueError, match="off threshold 0.8 is above the on threshold 0.7"):
        alerts_from_timeline(rows, 0.7, 0.8)
    assert merge_alerts([Alert(5, 6, 5, 0.8, 1), Alert(1, 2, 1, 0.9, 1)], 10) == [Alert(1, 6, 1, 0.9, 2)]


def test_a_low_threshold_still_lets_alerts_end():
    # The demo's val split chose 0.004: an absolute gap of 0.1 made the off threshold 0, and one alert covered a
    # whole 2-minute drive (12 "hits", lead times of -105 s). The off threshold is relative to the on threshold.
    assert off_threshold(0.7, 0.15) == pytest.approx(0.595) and off_threshold(0.004, 0.15) == pytest.approx(0.0034)
    rows = _timeline([(1, 0.002), (2, 0.998), (3, 0.997), (4, 0.002), (5, 0.003), (6, 0.998)])
    alerts = alerts_from_timeline(rows, 0.004, off_threshold(0.004, 0.15))
    assert [(a.start_s, a.end_s) for a in alerts] == [(2, 3), (6, 6)]
    with pytest.raises(ValueError, match="fraction of the threshold"):
        off_threshold(0.5, 1.0)


# --- event metrics ----------------------------------------------------------------------------------------------


def _gp(tfv, te, tend):
    return RecordingEvent(label="ghost_probing", t_first_visible_s=tfv, t_event_s=te, t_end_s=tend)


def test_event_metrics_on_a_hand_computed_case():
    events_a = [
        _gp(10, 11, 12),
        _gp(50, 52, 53),
        RecordingEvent(label="normal", kind="occluder_only", t_start_s=20, t_end_s=25),
        RecordingEvent(label="cut_in", kind="cut_in", t_start_s=30, t_first_visible_s=30, t_event_s=33, t_end_s=35),
    ]
    alerts_a = [
        {"start_s": 9.5, "end_s": 10.5},  # hits event 1 within the 1 s margin: lead 9.5 - 11 = -1.5
        {"start_s": 11.5, "end_s": 12.5},  # a second alert on event 1: neither a hit nor false
        {"start_s": 22, "end_s": 23},  # false, blamed on occluder_only
        {"start_s": 34, "end_s": 34},  # false, blamed on cut_in
        {"start_s": 40, "end_s": 41},
    ]  # false, no labelled event there
    # event 2 (50-53) is missed: 48.9 ends before 50 - 1
    alerts_a.append({"start_s": 48.0, "end_s": 48.9})
    events_b = [_gp(5, 6, None)]  # no end: the hit window ends at t_event_s
    alerts_b = [{"start_s": 6.5, "end_s": 7}]  # after t_event_s with no t_end_s: a miss, and false
    videos = [
        {"video_id": "a", "duration_s": 1800.0, "alerts": alerts_a, "events": events_a},
        {"video_id": "b", "duration_s": 1800.0, "alerts": alerts_b, "events": events_b},
    ]
    m = event_metrics(videos, margin_s=1.0)
    assert (m["events"], m["hits"], m["recall"]) == (3, 1, pytest.approx(1 / 3))
    assert m["hours"] == 1.0 and m["false_alerts"] == 5 and m["false_alerts_per_hour"] == 5.0
    assert m["lead_time_s"]["values"] == [-1.5] and m["lead_time_s"]["p50"] == -1.5
    assert m["per_negative_class"] == {
        "occluder_only": {"events": 1, "false_alerts": 1, "false_alerts_per_hour": 1.0},
        "cut_in": {"events": 1, "false_alerts": 1, "false_alerts_per_hour": 1.0},
        "no_event": {"events": 0, "false_alerts": 3, "false_alerts_per_hour": 3.0},
    }
    assert m["per_video"][0]["hits"] == 1 and m["per_video"][1]["false_alerts"] == 1
    with_margin = event_metrics(videos, margin_s=2.0)  # now 48.0-48.9 overlaps [48, 53]: a hit, lead 48 - 52 = -4
    assert with_margin["hits"] == 2 and sorted(with_margin["lead_time_s"]["values"]) == [-4.0, -1.5]


def test_recall_false_alert_curve_recomputes_alerts_per_threshold():
    timeline = _timeline([(1, 0.3), (2, 0.9), (3, 0.3), (10, 0.6), (11, 0.3)])
    videos = [{"video_id": "v", "duration_s": 3600.0, "timeline": timeline, "events": [_gp(1, 2, 3)]}]
    curve = recall_false_alert_curve(videos, [0.5, 0.95, 0.2], hysteresis=0.0, min_gap_s=0.0, margin_s=0.0)
    hour = 3600.0
    assert curve == [
        {
            "threshold": 0.2,
            "recall": 1.0,
            "false_alerts_per_hour": 0.0,  # one alert 1-11: a hit
            "alert_time_fraction": pytest.approx(10 / hour),
        },
        {
            "threshold": 0.5,
            "recall": 1.0,
            "false_alerts_per_hour": 1.0,  # 2 hit, 10 false
            "alert_time_fraction": 0.0,
        },  # alerts of one window each: no duration
        {"threshold": 0.95, "recall": 0.0, "false_alerts_per_hour": 0.0, "alert_time_fraction": 0.0},
    ]


def test_an_always_on_alert_does_not_score_perfectly():
    """One alert over a whole 12 s drive hits the ghost probing; every look-alike it covers is a false alert of its
    class, the whole drive is under alert, and the alert time outside the hit window is counted."""
    events = [
        RecordingEvent(label="normal", kind="occluder_only", t_start_s=1, t_end_s=3),
        _gp(5, 6, 7),
        RecordingEvent(label="cut_in", kind="cut_in", t_start_s=8, t_first_visible_s=8, t_event_s=9, t_end_s=10),
    ]
    m = event_metrics(
        [{"video_id": "d", "duration_s": 12.0, "alerts": [{"start_s": 0.0, "end_s": 12.0}], "events": events}],
        margin_s=1.0,
    )
    assert m["recall"] == 1.0 and m["false_alerts"] == 2
    assert m["per_negative_class"]["occluder_only"]["false_alerts"] == 1
    assert m["per_negative_class"]["cut_in"]["false_alerts"] == 1 and "no_event" not in m["per_negative_class"]
    assert m["alert_time_fraction"] == 1.0 and m["alert_time_outside_hits_s"] == pytest.approx(12.0 - 3.0)  # [4, 7]
    assert m["false_alerts_per_hour"] == pytest.approx(2 / (12 / 3600))
    # 12 s of video: the rate is mostly interval, and says so
    interval = m["false_alerts_per_hour_interval"]  # exact Poisson for 2 events in 12 s (1/300 h): 0.242-7.22 x 300
    assert (interval["low"], interval["high"]) == (pytest.approx(72.663, rel=1e-4), pytest.approx(2167.41, rel=1e-4))
    assert m["rate_note"] == "from 0.2 minutes of video: a rate per hour from less than an hour is mostly interval"


# --- the label schema's `events` -----------------------------------------------------------------------------------


def _label_file(tmp_path, clips):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"schema_version": 1, "clips": clips}))
    return load_labels(path)


def test_events_schema_validates_like_event_and_one_event_clips_stay_valid(tmp_path):
    good = {
        "clip_id": "drive",
        "video": "d.mp4",
        "label": "ghost_probing",
        "events": [
            {"label": "normal", "kind": "occluder_only", "t_start_s": 0.0, "t_end_s": 5.0},
            {
                "label": "ghost_probing",
                "t_start_s": 5.0,
                "t_first_visible_s": 6.0,
                "t_event_s": 7.0,
                "t_end_s": 8.0,
                "actor": "child",
                "occluder": "van",
            },
        ],
    }
    clip = {
        "clip_id": "c1",
        "video": "c.mp4",
        "label": "ghost_probing",
        "event": {"t_first_visible_s": 1.0, "t_event_s": 2.0},
    }
    normal_drive = {"clip_id": "quiet", "video": "q.mp4", "label": "normal", "events": []}
    bad = [
        {**good, "clip_id": "order", "events": list(reversed(good["events"]))},
        {
            **good,
            "clip_id": "inverted",
            "events": [{"label": "ghost_probing", "t_first_visible_s": 3.0, "t_event_s": 2.0}],
        },
        {
            **good,
            "clip_id": "string",
            "events": [{"label": "ghost_probing", "t_first_visible_s": "3.0", "t_event_s": 4.0}],
        },
        {**good, "clip_id": "missing", "events": [{"label": "ghost_probing", "t_first_visible_s": 3.0}]},
        {**good, "clip_id": "wrong_label", "label": "normal"},
        {**good, "clip_id": "both", "event": clip["event"]},
        {**good, "clip_id": "start_late", "events": [{"label": "cut_in", "t_start_s": 4.0, "t_first_visible_s": 3.0}]},
    ]
    labels = _label_file(tmp_path, [good, clip, normal_drive, *bad])
    assert [c.clip_id for c in labels.clips] == ["drive", "c1", "quiet"]
    problems = {p.clip_id: (p.field, p.message) for p in labels.problems}
    assert "not in time order: events.1 starts at 0.0 s, before events.0 at 5.0 s" in problems["order"][1]
    assert problems["inverted"] == ("events.0", "times are inverted: t_first_visible_s=3.0 > t_event_s=2.0")
    assert problems["string"][0] == "events.0.t_first_visible_s"
    assert problems["missing"] == ("events.0.t_event_s", "required for label 'ghost_probing' but missing")
    assert "exactly when one of its events is" in problems["wrong_label"][1]
    assert "either `event`" in problems["both"][1]
    assert "t_start_s=4.0 > t_first_visible_s=3.0" in problems["start_late"][1]
    drive = labels.clips[0]
    from data_prep.clip_worker import EventTimeError, _check_event_times

    with pytest.raises(EventTimeError, match="scan it with `python scan/main.py labels=...`"):
        _check_event_times(drive, 60.0, 10)  # data prep cuts one-event clips; a recording is rejected by name
    assert events_beyond_video(drive, duration_s=8.0, fps=10) is None
    assert (
        events_beyond_video(drive, duration_s=7.0, fps=10)
        == "events.1.t_end_s=8 s is beyond the video's real duration 7.00 s"
    )


# --- the generator's drive mode -----------------------------------------------------------------------------------


def test_drive_mode_writes_one_recording_with_events_at_known_times(tmp_path):
    from ghostprobe.synth.drive import generate_drives
    from ghostprobe.video import probe_video

    weights = {"ghost_probing": 0.5, "occluder_only": 0.25, "empty_road": 0.25}
    labels = generate_drives(
        tmp_path,
        1,
        seed=3,
        lights=["night"],
        num_segments=4,
        segment_s=3.0,
        width=64,
        height=48,
        fps=5,
        scenario_weights=weights,
    )
    loaded = load_labels(tmp_path / "labels.json")
    assert loaded.problems == [] and [c.to_json() for c in loaded.clips] == [c.to_json() for c in labels]
    drive = loaded.clips[0]
    info = probe_video(tmp_path / drive.video)
    assert info.num_frames == 4 * 15 and drive.context.light == "night"
    assert events_beyond_video(drive, info.duration_s, info.fps) is None
    kinds = [e.kind for e in drive.events]
    assert sorted(kinds) == ["ghost_probing", "ghost_probing", "occluder_only"]  # empty road is background
    for event in drive.events:
        start, end = event.span_s
        assert start % 3.0 == 0 and start < end <= start + 3.0  # inside its own segment
        if event.label == "ghost_probing":
            assert start <= event.t_first_visible_s <= event.t_event_s <= end


# --- scanning -----------------------------------------------------------------------------------------------------


def _square_video(path: Path) -> Path:
    from ghostprobe.video import write_video

    h, w = SIZE
    frames = np.full((FPS * SECONDS, h, w, 3), 30, np.uint8)
    for start, end in GHOST_SPANS:
        frames[round(start * FPS) : round(end * FPS), :16, :16] = 255
    frames[round(LOOKALIKE_SPAN[0] * FPS) : round(LOOKALIKE_SPAN[1] * FPS), -16:, -16:] = 255
    return write_video(path, frames, FPS)


class SquareSeer:
    """Scores a window by the share of its frames showing a white square in a corner; records what it was given."""

    name = "square_seer"

    def __init__(self, fail_after_calls: int | None = None):
        self.calls, self.windows, self.fail_after_calls = 0, [], fail_after_calls

    def score(self, clips, prompt):
        if self.fail_after_calls is not None and self.calls == self.fail_after_calls:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        out = []
        for clip in clips:
            self.windows.append(clip)
            quarter = clip.frames.shape[1] // 4
            seen = [max(f[:quarter, :quarter].mean(), f[-quarter:, -quarter:].mean()) > 200 for f in clip.frames]
            out.append(ModelOutput(clip.clip_id, p_ghost_probing=float(np.mean(seen)), cost_usd=0.01))
        return out


@pytest.fixture(scope="module")
def square_recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("square")
    video = _square_video(root / "videos" / "route 1.mp4")
    events = [
        {"label": "ghost_probing", "t_first_visible_s": s, "t_event_s": s + 0.5, "t_end_s": e} for s, e in GHOST_SPANS
    ]
    events.append(
        {"label": "normal", "kind": "occluder_only", "t_start_s": LOOKALIKE_SPAN[0], "t_end_s": LOOKALIKE_SPAN[1]}
    )
    (root / "labels.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "clips": [
                    {"clip_id": "route1", "video": "videos/route 1.mp4", "label": "ghost_probing", "events": events}
                ],
            }
        )
    )
    return root, video


def _cfg(input_path, out_dir, *overrides):
    from ghostprobe.config import compose

    return compose(
        "scan",
        [
            f"input={input_path}",
            f"output_dir={out_dir}",
            "progress=false",
            "frame_size=32",
            "threshold=0.5",
            "alerts.hysteresis=0.1",
            "alerts.min_gap_s=1.0",
            "chunk_windows=16",
            *overrides,
        ],
    )


def _scan(cfg, model, **model_cfg):
    from scan.main import scan

    # the double stands in for a local model (its kind decides the pacing keys and that it is not a paid API)
    return scan(cfg, model=model, model_cfg={"kind": "video_llama", "name": model.name, "batch_size": 4, **model_cfg})


def _timeline_rows(out_dir, video_id="route_1"):
    lines = (Path(out_dir) / "videos" / video_id / "timeline.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_scan_finds_the_events_at_the_right_times(square_recording, tmp_path, capsys):
    root, _ = square_recording
    seer = SquareSeer()
    assert _scan(_cfg(root / "videos", tmp_path / "out", f"labels={root / 'labels.json'}"), seer) == 0
    # 40 s, 2 s windows every 0.5 s: 77 windows, the original's uniform choice of 8 of each window's 20 frames,
    # stamped from the window's start as in a clip cut there
    assert len(seer.windows) == 77
    assert all(tuple(w.timestamps_s) == (0.0, 0.2, 0.5, 0.7, 1.0, 1.2, 1.5, 1.7) for w in seer.windows)
    assert seer.windows[0].frames.shape == (8, 32, 32, 3) and seer.windows[0].frames.dtype == np.uint8
    alerts = json.loads((tmp_path / "out" / "videos" / "route_1" / "alerts.json").read_text())["alerts"]
    # square frames 100-119: window 18 (frames 90..107) holds 4 of 8 -> on at its end 11.0 s; window 22 is the last
    # with 4 (end 13.0 s); window 20 sees 8 of 8 (end 12.0 s). Likewise 26-28 s, and the look-alike's 30 frames
    # 300-329: 31-34 s, first 8 of 8 in window 60 (frames 300..317, end 32.0 s).
    assert [(a["start_s"], a["end_s"], a["peak_s"], a["peak_p"]) for a in alerts] == [
        (11.0, 13.0, 12.0, 1.0),
        (26.0, 28.0, 27.0, 1.0),
        (31.0, 34.0, 32.0, 1.0),
    ]
    # each alert carries its peak window (the report decodes those frames; it never rebuilds the windows)
    assert [a["peak_window"] for a in alerts] == [20, 50, 60]
    assert alerts[2]["peak_frame_indices"] == [300, 302, 305, 307, 310, 312, 315, 317]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["recall"], metrics["hits"], metrics["false_alerts"]) == (1.0, 2, 1)
    assert metrics["false_alerts_per_hour"] == pytest.approx(3600 / 40)
    assert metrics["lead_time_s"]["values"] == [0.5, 0.5]  # alert start 11.0 vs t_event_s 10.5
    assert metrics["per_negative_class"]["occluder_only"]["false_alerts"] == 1
    assert metrics["operating_point"]["threshold"] == 0.5 and len(metrics["curve"]) >= 10
    html = (tmp_path / "out" / "scan.html").read_text()
    assert "route_1" in html and html.count("<img") == 1 + 1 + 1 + 3  # curve, lead times, timeline, a strip per alert
    assert "scan: 1 of 1 videos scanned" in capsys.readouterr().out


def test_kill_and_resume_gives_the_uninterrupted_timeline(square_recording, tmp_path):
    root, _ = square_recording
    assert _scan(_cfg(root / "videos", tmp_path / "whole"), SquareSeer()) == 0
    with pytest.raises(KeyboardInterrupt):
        _scan(_cfg(root / "videos", tmp_path / "killed"), SquareSeer(fail_after_calls=7))
    timeline = tmp_path / "killed" / "videos" / "route_1" / "timeline.jsonl"
    assert len(timeline.read_text().splitlines()) == 28 and not (timeline.parent / "alerts.json").exists()
    with open(timeline, "a") as f:
        f.write('{"window": 28, "start_s": 14.0, "end_')  # a row cut by the kill
    resumed = SquareSeer()
    assert _scan(_cfg(root / "videos", tmp_path / "killed"), resumed) == 0
    assert len(resumed.windows) == 77 - 28  # only what was missing
    strip = [
        {k: r[k] for k in ("window", "start_s", "end_s", "p_ghost_probing")}
        for r in _timeline_rows(tmp_path / "killed")
    ]
    whole = [
        {k: r[k] for k in ("window", "start_s", "end_s", "p_ghost_probing")} for r in _timeline_rows(tmp_path / "whole")
    ]
    assert strip == whole
    alerts = {
        d: json.loads((tmp_path / d / "videos" / "route_1" / "alerts.json").read_text())["alerts"]
        for d in ("whole", "killed")
    }
    assert alerts["killed"] == alerts["whole"]
    again = SquareSeer()  # a finished video is not decoded or scored again; a new threshold only re-draws alerts
    assert _scan(_cfg(root / "videos", tmp_path / "killed", "threshold=0.9"), again) == 0
    assert again.windows == [] and len(json.loads((timeline.parent / "alerts.json").read_text())["alerts"]) == 3


def test_a_file_changed_since_a_partial_scan_is_scanned_again(square_recording, tmp_path, capsys):
    root, video = square_recording
    (tmp_path / "in").mkdir()
    copy = tmp_path / "in" / "route 1.mp4"
    copy.write_bytes(video.read_bytes())
    with pytest.raises(KeyboardInterrupt):
        _scan(_cfg(tmp_path / "in", tmp_path / "out"), SquareSeer(fail_after_calls=3))
    copy.write_bytes(video.read_bytes() + b"\0")  # new bytes under the same name
    again = SquareSeer()
    assert _scan(_cfg(tmp_path / "in", tmp_path / "out"), again) == 0
    assert len(again.windows) == 77 and "changed since it was partly scanned" in capsys.readouterr().err


def test_bad_files_are_skipped_by_name_and_only_nothing_scanned_fails(square_recording, tmp_path, capsys):
    root, video = square_recording
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(video.read_bytes())
    (folder / "notes.mp4").write_text("not a video")
    (folder / "empty.avi").write_bytes(b"")
    (folder / "stream.mp4").write_text("#EXTM3U\n#EXTINF:10,\nhttp://example.invalid/a.ts\n")
    (folder / "<img src=x onerror=alert(1)>.mp4").write_text("markup in a file name")
    assert _scan(_cfg(folder, tmp_path / "out"), SquareSeer()) == 0
    summary = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert summary["videos_scanned"] == 1 and summary["videos_skipped"] == 4
    html = (tmp_path / "out" / "scan.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in html and "<img src=x" not in html  # escaped
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert "empty file" in reasons["empty.avi"] and "playlist (#EXTM3U)" in reasons["stream.mp4"]
    assert "not a video file" in reasons["notes.mp4"] or "cannot decode" in reasons["notes.mp4"]
    err = capsys.readouterr().err
    assert f"scan: skipped {folder / 'notes.mp4'}" in err
    assert "stream.mp4" in html
    (folder / "good.mp4").unlink()
    assert _scan(_cfg(folder, tmp_path / "out2"), SquareSeer()) == 1
    assert "nothing could be scanned: 4 of 4 files were skipped (reasons above)\n" in capsys.readouterr().err


class Mute(SquareSeer):
    """A model that answers nothing (NaN with an error, as a backend's NaN guard gives)."""

    def score(self, clips, prompt):
        return [ModelOutput(c.clip_id, extra={"error": "non-finite logits"}) for c in clips]


def test_a_model_that_answers_no_window_scans_nothing(square_recording, tmp_path, capsys):
    root, _ = square_recording
    assert _scan(_cfg(root / "videos", tmp_path / "out"), Mute()) == 1
    assert "the model answered no window of the other 1" in capsys.readouterr().err
    rows = _timeline_rows(tmp_path / "out")
    assert len(rows) == 77 and {r["error"] for r in rows} == {"non-finite logits"}
    assert {r["p_ghost_probing"] for r in rows} == {None}  # no score is null, never 0
    assert _scan(_cfg(root / "videos", tmp_path / "out"), SquareSeer()) == 0  # failed windows are asked again


def test_api_models_need_a_budget_and_stop_before_passing_it(square_recording, tmp_path, capsys):
    from scan.main import ScanSetupError

    root, _ = square_recording
    api = {
        "kind": "openai",
        "max_frames": 8,
        "max_tokens_score": 5,
        "price_per_1m_input_usd": 2.5,
        "price_per_1m_output_usd": 10.0,
    }
    with pytest.raises(
        ScanSetupError,
        match=r"77 calls, about 1030 input tokens each, estimated \$0.20 "
        r"\(\$0.0026 a window\); set api_budget_usd=",
    ):
        _scan(_cfg(root / "videos", tmp_path / "out"), SquareSeer(), **api)
    # the double charges $0.01 a window; batches of 4: the scan stops before the batch that would pass $0.10
    assert _scan(_cfg(root / "videos", tmp_path / "out", "api_budget_usd=0.1"), SquareSeer(), **api) == 1
    assert len(_timeline_rows(tmp_path / "out")) == 8
    assert "api_budget_usd=0.1 reached ($0.08 spent). Windows scored so far are kept" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "scan.json").read_text())["stopped"].startswith("api_budget_usd=0.1")


def test_gpt4o_through_its_real_client_stops_within_the_budget(square_recording, tmp_path, monkeypatch, capsys):
    """The API path end to end against the local OpenAI stand-in: frames go out as images, cost comes from the
    reply's usage, and the first batch is already held to the estimate."""
    from fake_api_servers import FakeOpenAIServer, Scripted
    from scan.main import scan

    root, _ = square_recording
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-scan")
    with FakeOpenAIServer() as server:
        # 1200 prompt tokens + 1 answer token at $2.50 / $10 per 1M: $0.00301 a window (the estimate says $0.0026)
        server.default = Scripted(text="Yes", top_logprobs=[[("Yes", -0.2), ("No", -1.8)]], prompt_tokens=1200)
        cfg = _cfg(
            root / "videos",
            tmp_path / "out",
            "model=gpt4o",
            f"model.base_url={server.base_url}",
            "model.requests_per_minute=null",
            "prompt=en",
            "window_s=2",
            "stride_s=2",
            "api_budget_usd=0.05",
        )
        assert scan(cfg) == 1
        # batch 1 (16 windows, estimated $0.042) goes; batch 2 (4 more at $0.00301) would pass $0.05
        assert len(server.requests) == 16
    rows = _timeline_rows(tmp_path / "out")
    p_yes = 1 / (1 + np.exp(-1.8 + 0.2))  # P(Yes) / (P(Yes) + P(No)) from the top logprobs
    assert len(rows) == 16 and all(r["p_ghost_probing"] == pytest.approx(p_yes) for r in rows)
    err = capsys.readouterr().err
    assert "scan: gpt4o: 20 calls, about 1030 input tokens each, estimated $0.05" in err
    assert "api_budget_usd=0.05 reached ($0.05 spent)" in err


def test_threshold_from_an_eval_run(square_recording, tmp_path):
    root, _ = square_recording
    run = tmp_path / "eval_run"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "threshold": {"value": 0.5, "source": "the model's own answer"},
                "tuned_threshold": {
                    "available": True,
                    "source": "val",
                    "threshold": 0.95,
                    "note": "chosen on 40 val clips",
                },
            }
        )
    )
    assert _scan(_cfg(root / "videos", tmp_path / "out", f"threshold_from={run}"), SquareSeer()) == 0
    doc = json.loads((tmp_path / "out" / "videos" / "route_1" / "alerts.json").read_text())
    assert doc["threshold"]["on"] == 0.95
    assert doc["threshold"]["source"] == f"threshold_from={run}: its threshold tuned on val (chosen on 40 val clips)"
    assert [a["start_s"] for a in doc["alerts"]] == [12.0, 27.0, 32.0]  # only all-8-frames windows
    # a run without a val-tuned threshold (none, or cross-fitted per fold) gives its own answer's 0.5
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "threshold": {"value": 0.5, "source": "the model's own answer"},
                "tuned_threshold": {"available": True, "source": "crossfit", "folds": [{"fold": 0, "threshold": 0.9}]},
            }
        )
    )
    assert _scan(_cfg(root / "videos", tmp_path / "out2", f"threshold_from={run}"), SquareSeer()) == 0
    doc = json.loads((tmp_path / "out2" / "videos" / "route_1" / "alerts.json").read_text())
    assert doc["threshold"]["on"] == 0.5 and doc["threshold"]["source"].endswith("(no val-tuned threshold)")


def test_tiny_video_llama_scans_a_drive_and_exports_alerts(tiny_checkpoint, tmp_path):
    """The real path: build_model from the config, decord resizing in the decoder, the tiny model's scores, and
    export_alerts cutting clips with label stubs a person completes."""
    from ghostprobe.config import compose
    from ghostprobe.synth.drive import generate_drives
    from ghostprobe.video import probe_video
    from scan.main import scan

    generate_drives(tmp_path / "drive", 1, seed=1, num_segments=3, segment_s=4.0, width=64, height=48, fps=4)
    cfg = compose(
        "scan",
        [
            f"model.path={tiny_checkpoint}",
            f"input={tmp_path / 'drive' / 'videos'}",
            f"output_dir={tmp_path / 'out'}",
            f"labels={tmp_path / 'drive' / 'labels.json'}",
            "window_s=4",
            "stride_s=2",
            "frame_size=28",
            "threshold=0.0",
            "export_alerts=true",
            "export.pad_s=0.5",
            "progress=false",
        ],
    )
    assert scan(cfg) == 0
    rows = _timeline_rows(tmp_path / "out", "drive_000")
    assert [r["end_s"] for r in rows] == [4.0, 6.0, 8.0, 10.0, 12.0]
    assert all(0.0 <= r["p_ghost_probing"] <= 1.0 for r in rows)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["recall"] in (None, 1.0) and metrics["hours"] == pytest.approx(12 / 3600)
    # threshold 0: one alert over the whole drive (4-12 s), cut with its first window and the pad: 0-12 s
    stubs = load_labels(tmp_path / "out" / "exported" / "labels.json")
    assert [p.field for p in stubs.problems] == ["label"]  # left for a person to fill
    doc = json.loads((tmp_path / "out" / "exported" / "labels.json").read_text())
    clip = doc["clips"][0]
    assert clip["clip_id"] == "drive_000_a000" and clip["group"] == "drive_000" and "TO LABEL" in clip["notes"]
    info = probe_video(tmp_path / "out" / "exported" / clip["video"])
    assert (info.num_frames, info.width, info.height, info.fps) == (48, 64, 48, 4.0)
    clip["label"] = "normal"
    (tmp_path / "out" / "exported" / "labels.json").write_text(json.dumps(doc))
    assert load_labels(tmp_path / "out" / "exported" / "labels.json").problems == []


def test_input_list_and_video_ids(tmp_path):
    from scan.recordings import list_inputs

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.mp4", "a/b/x.mp4", "a/b/y.txt", "a/b/z z.MOV"):
        (tmp_path / name).write_bytes(b"1")
    inputs = list_inputs(str(tmp_path / "a"), [".mp4", ".mov"])
    assert [(r.video_id, r.path) for r in inputs.recordings] == [
        ("b_x", tmp_path / "a/b/x.mp4"),
        ("b_z_z", tmp_path / "a/b/z z.MOV"),
        ("x", tmp_path / "a/x.mp4"),
    ]
    assert inputs.same_file == []  # two files of equal bytes are two recordings
    (tmp_path / "list.txt").write_text("# two files\na/x.mp4\n\na/b/x.mp4\n")
    assert [r.video_id for r in list_inputs(str(tmp_path / "list.txt"), [".mp4"]).recordings] == ["a_x", "a_b_x"]
    with pytest.raises(FileNotFoundError):
        list_inputs(str(tmp_path / "missing"), [".mp4"])


def test_windows_follow_the_original_sampling():
    from ghostprobe.sampling import FrameClock, uniform_indices
    from scan.recordings import VideoJob, plan_chunks, scan_windows

    clock = FrameClock(10.0, 100)
    windows = scan_windows(clock, 2.0, 0.5, 8)
    assert len(windows) == 17 and windows[-1].end_s == 10.0
    assert windows[3].frame_indices == tuple(15 + i for i in uniform_indices(20, 8))
    assert scan_windows(FrameClock(10.0, 12), 2.0, 0.5, 8) == []  # 1.2 s: no whole window (the scan says so)
    vfr = FrameClock(10.0, 30, tuple([k * 0.1 for k in range(10)] + [1.0 + k / 30 for k in range(20)]))
    assert scan_windows(vfr, 1.0, 1.0, 4)[0].timestamps_s == pytest.approx((0.0, 0.2, 0.5, 0.7))
    job = VideoJob("v", Path("v.mp4"), windows=windows)
    job.done = {0: {}, 1: {}}
    chunks = plan_chunks(job, 4)
    decoded = [i for c in chunks for i in c.new_indices]
    assert len(decoded) == len(set(decoded))  # every frame decoded once
    assert set(decoded) == {i for w in windows[2:] for i in w.frame_indices}
    assert chunks[-1].last_of_video and sum(len(c.windows) for c in chunks) == 15


# --- issue 17: one file by two paths, damaged stretches, data prep's labels, window settings, the library --------


def test_one_file_reached_by_two_paths_is_scanned_once(square_recording, tmp_path, capsys):
    """`in/route.mp4` and `./in/route.mp4` in a list, and a link beside its target: one recording, its events
    counted once and its minutes once; the scan says which inputs were the same file."""
    root, video = square_recording
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "route.mp4").write_bytes(video.read_bytes())
    (tmp_path / "in" / "a_link.mp4").symlink_to("route.mp4")  # sorts first: the recording keeps its own name
    labels = json.loads((root / "labels.json").read_text())
    labels["clips"][0]["video"] = "in/route.mp4"
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "list.txt").write_text("in/route.mp4\n./in/route.mp4\nin/a_link.mp4\n")
    seer = SquareSeer()
    assert _scan(_cfg(tmp_path / "list.txt", tmp_path / "out", f"labels={tmp_path / 'labels.json'}"), seer) == 0
    assert len(seer.windows) == 77  # once, not three times
    summary = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert summary["videos_total"] == 1 and summary["hours_scanned"] == pytest.approx(40 / 3600)
    assert [v["video_id"] for v in summary["videos"]] == ["in_route"]
    resolved = str((tmp_path / "in" / "route.mp4").resolve())
    assert summary["same_file"] == [
        {"path": str(tmp_path / "./in/route.mp4"), "same_as": str(tmp_path / "in/route.mp4"), "file": resolved},
        {"path": str(tmp_path / "in/a_link.mp4"), "same_as": str(tmp_path / "in/route.mp4"), "file": resolved},
    ]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["hits"], metrics["events"], metrics["hours"]) == (2, 2, pytest.approx(40 / 3600))
    captured = capsys.readouterr()
    assert (
        f"scan: {tmp_path / 'in/a_link.mp4'} is the same file as {tmp_path / 'in/route.mp4'} ({resolved}): "
        "scanned once" in captured.err
    )
    assert "2 inputs named a file already listed: each file scanned once" in captured.out
    assert "Inputs that were the same file" in (tmp_path / "out" / "scan.html").read_text()
    seer = SquareSeer()  # the folder: the link beside its target is the same recording, named after the target
    assert _scan(_cfg(tmp_path / "in", tmp_path / "out_folder"), seer) == 0 and len(seer.windows) == 77
    assert [v["video_id"] for v in json.loads((tmp_path / "out_folder" / "scan.json").read_text())["videos"]] == [
        "route"
    ]


def _damaged_recording(path: Path) -> Path:
    """The square recording over a noise background (so each frame is ~1.7 kB and the file ~680 kB), with 8 kB of
    noise written over its middle: x264's 25 s key-frame interval makes the frames from the damage to the next key
    frame (20.0-24.7 s) undecodable, the rest decode."""
    from ghostprobe.video import write_video

    h, w = SIZE
    frames = np.random.default_rng(1).integers(0, 100, (FPS * SECONDS, h, w, 3), dtype=np.uint8)
    for start, end in GHOST_SPANS:
        frames[round(start * FPS) : round(end * FPS), :16, :16] = 255
    frames[round(LOOKALIKE_SPAN[0] * FPS) : round(LOOKALIKE_SPAN[1] * FPS), -16:, -16:] = 255
    data = bytearray(write_video(path, frames, FPS).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = np.random.default_rng(2).integers(0, 255, 8192, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_a_stretch_that_will_not_decode_is_skipped_and_the_rest_scored(square_recording, tmp_path, capsys):
    root, _ = square_recording
    video = _damaged_recording(tmp_path / "in" / "route 1.mp4")
    labels = json.loads((root / "labels.json").read_text())
    labels["clips"][0]["video"] = "in/route 1.mp4"
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    seer = SquareSeer()
    cfg = _cfg(tmp_path / "in", tmp_path / "out", f"labels={tmp_path / 'labels.json'}")
    assert _scan(cfg, seer) == 0
    assert len(seer.windows) == 64  # 77 windows, 13 of which need a frame of 20.0-24.7 s
    summary = json.loads((tmp_path / "out" / "scan.json").read_text())
    (entry,) = summary["videos"]
    assert (entry["windows_answered"], entry["windows_skipped"], entry["complete"]) == (64, 13, True)
    (stretch,) = entry["damaged_stretches"]
    assert (stretch["damaged_frames"], stretch["damaged_s"], stretch["window_ends_s"], stretch["not_scanned_s"]) == (
        [200, 247],
        [20.0, 24.7],
        [20.5, 26.5],
        [20.0, 26.5],
    )
    assert "decoding frames 200..200 failed" in stretch["reason"]
    assert entry["scanned_s"] == 40.0 - 6.5 and summary["hours_scanned"] == pytest.approx(33.5 / 3600)
    alerts = json.loads((tmp_path / "out" / "videos" / "route_1" / "alerts.json").read_text())["alerts"]
    # the first event (before the damage) as undamaged; the second alert starts at the first window scored after it
    assert [(a["start_s"], a["end_s"]) for a in alerts] == [(11.0, 13.0), (27.0, 28.0), (31.0, 34.0)]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["hits"], metrics["events"], metrics["hours"]) == (2, 2, pytest.approx(33.5 / 3600))
    err = capsys.readouterr().err
    assert (
        f"scan: {video}: frames 200-247 (20.00-24.70 s) would not decode: 13 windows ending 20.50-26.50 s not "
        "scored, the rest was"
    ) in err
    html = (tmp_path / "out" / "scan.html").read_text()
    assert "Stretches that would not decode" in html and "20.00-24.70" in html
    again = SquareSeer()  # a re-run keeps the result: nothing scored or decoded again
    assert _scan(cfg, again) == 0 and again.windows == []
    assert json.loads((tmp_path / "out" / "scan.json").read_text())["videos"][0]["damaged_stretches"] == [stretch]


def test_read_around_damage_reads_every_frame_that_decodes():
    from ghostprobe.video import VideoReadError
    from scan.recordings import read_around_damage

    bad, tries = {30, 31}, []

    def read(indices):
        tries.append(indices)
        if bad & set(indices):
            raise VideoReadError(f"v.mp4: decoding frames {indices[0]}..{indices[-1]} failed")
        return np.asarray(indices)

    frames, undecodable = read_around_damage(read, list(range(64)))
    assert sorted(frames) == sorted(set(range(64)) - bad) and all(frames[i] == i for i in frames)
    assert undecodable == {i: f"v.mp4: decoding frames {i}..{i} failed" for i in sorted(bad)}
    # halves around the damage: 64, 0-31, 0-15, 16-31, 16-23, 24-31, 24-27, 28-31, 28-29, 30-31, 30, 31, 32-63
    assert len(tries) == 13


def test_the_scan_reads_data_preps_label_file_with_videos_dir(square_recording, tmp_path, capsys):
    """Data prep's label file names videos relative to videos_dir= and holds one-event clips: the scan matches
    them with videos_dir= too, and says how many recordings had no label and why."""
    from scan.main import ScanSetupError

    root, video = square_recording
    (tmp_path / "footage").mkdir()
    for name in ("route 1.mp4", "route 2.mp4", "short.mp4"):
        (tmp_path / "footage" / name).write_bytes(video.read_bytes())
    (tmp_path / "labels").mkdir()
    labels = tmp_path / "labels" / "labels.json"  # not beside the videos: paths are relative to videos_dir
    labels.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "clips": [
                    {
                        "clip_id": "r1",
                        "video": "route 1.mp4",
                        "label": "ghost_probing",
                        "event": {"t_first_visible_s": 10.0, "t_event_s": 10.5, "t_end_s": 12.0},
                    },
                    {
                        "clip_id": "late",
                        "video": "short.mp4",
                        "label": "ghost_probing",
                        "event": {"t_first_visible_s": 50.0, "t_event_s": 50.5},
                    },
                ],
            }
        )
    )
    args = (tmp_path / "footage", tmp_path / "out", f"labels={labels}")
    assert _scan(_cfg(*args), SquareSeer()) == 0
    out = capsys.readouterr().out
    assert "events: recall n/a (0/0)" in out
    assert (
        f"labels: 0 of 3 scanned recordings have a label; not counted: 3 match no clip of {labels} (its `video` "
        f"paths are read from {tmp_path / 'labels'}; set videos_dir= if they start elsewhere)"
    ) in out
    assert _scan(_cfg(*args, f"videos_dir={tmp_path / 'footage'}"), SquareSeer()) == 0
    out = capsys.readouterr().out
    assert "events: recall 1.000 (1/1)" in out
    assert (
        "labels: 1 of 3 scanned recordings have a label; not counted: 1 match no clip of "
        f"{labels} (its `video` paths are read from {tmp_path / 'footage'}; set videos_dir= if they start "
        "elsewhere), 1 with an event beyond the recording's end"
    ) in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {v["video_id"]: v["why"] for v in metrics["videos_without_labels"]} == {
        "route_2": "no clip of the label file names this file",
        "short": "clip 'late': event.t_first_visible_s=50 s is beyond the video's real duration 40.00 s",
    }
    assert (
        "route 2.mp4: no label (no clip of the label file names this file)"
        in (tmp_path / "out" / "scan.html").read_text()
    )
    with pytest.raises(ScanSetupError, match=f"scan: videos_dir {tmp_path / 'nowhere'} does not exist"):
        _scan(_cfg(*args, f"videos_dir={tmp_path / 'nowhere'}"), SquareSeer())


def test_windows_longer_than_a_recording_or_strides_past_a_window_are_said(square_recording, tmp_path, capsys):
    from scan.main import ScanSetupError

    root, _ = square_recording
    with pytest.raises(
        ScanSetupError,
        match=r"stride_s=3 is longer than window_s=2: 1 s of every 3 s would be seen "
        r"by no window; set stride_s <= window_s",
    ):
        _scan(_cfg(root / "videos", tmp_path / "out", "stride_s=3"), SquareSeer())
    seer = SquareSeer()
    assert _scan(_cfg(root / "videos", tmp_path / "out", "window_s=50", "stride_s=1"), seer) == 1
    assert seer.windows == []  # not one shorter window presented as a scan
    err = capsys.readouterr().err
    assert (
        "route 1.mp4: 40.00 s long, shorter than window_s=50: no whole window to score (lower window_s to scan "
        "it)" in err
    )
    assert "nothing could be scanned: 1 of 1 files were skipped" in err
    summary = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert summary["videos_scanned"] == 0 and summary["hours_scanned"] == 0 and summary["alerts"] == 0


def test_the_scan_uses_the_library_and_its_identity_is_the_answer_settings():
    """No import from eval/run.py; the identity changes with what changes an answer (frames sent to gpt-4o, an HF
    model's num_frames) and not with pacing (batch size, rate limits)."""
    import ast

    from ghostprobe.prompts import Prompt
    from scan.recordings import scan_identity

    eval_dir = Path(__file__).resolve().parents[1] / "eval"
    for path in eval_dir.glob("scan*.py"):
        imported = {node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
        assert "eval.run" not in imported, path
    prompt = Prompt("en", "en", "system", "question?", "when?", "Yes", "No")
    windows = {"window_s": 2.0, "stride_s": 0.5, "num_frames": 8, "frame_size": 224}
    gpt4o = {"kind": "openai", "name": "gpt4o", "model": "gpt-4o", "max_frames": 8, "requests_per_minute": 60}
    same = scan_identity(gpt4o, prompt, windows)
    assert scan_identity({**gpt4o, "requests_per_minute": 5}, prompt, windows) == same
    assert scan_identity({**gpt4o, "max_frames": 16}, prompt, windows) != same
    assert scan_identity(gpt4o, prompt, {**windows, "stride_s": 1.0}) != same
    hf = {"kind": "hf_native", "name": "qwen", "path": "/m", "num_frames": 8, "batch_size": 2}
    assert scan_identity({**hf, "batch_size": 8}, prompt, windows) == scan_identity(hf, prompt, windows)
    assert scan_identity({**hf, "num_frames": 16}, prompt, windows) != scan_identity(hf, prompt, windows)


@pytest.mark.skipif(not small_disk_available(), reason="needs unprivileged user namespaces (unshare) for a tmpfs")
def test_a_full_disk_is_one_line(square_recording, tmp_path):
    import shlex
    import subprocess
    import sys

    root, _ = square_recording
    out = tmp_path / "small"
    out.mkdir()
    tests = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path[:0] = [{str(tests.parent)!r}, {str(tests)!r}]\n"
        "from test_scan import SquareSeer, _cfg, _scan\n"
        f"sys.exit(_scan(_cfg({str(root / 'videos')!r}, {str(out)!r}), SquareSeer()))"
    )
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; echo exit=$?"
    done = subprocess.run(on_small_disk(out, "24k", ["sh", "-c", script]), capture_output=True, text=True, timeout=600)
    assert "exit=1" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"scan: disk full: no space left to write in {out} (")


@pytest.mark.slow
def test_torchrun_ranks_split_the_files_and_rank_0_merges(tiny_checkpoint, tmp_path):
    import subprocess
    import sys

    from ghostprobe.synth.drive import generate_drives

    generate_drives(tmp_path / "drives", 3, seed=2, num_segments=2, segment_s=3.0, width=64, height=48, fps=4)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(repo / "scan" / "main.py"),
            f"model.path={tiny_checkpoint}",
            f"input={tmp_path / 'drives' / 'videos'}",
            f"labels={tmp_path / 'drives' / 'labels.json'}",
            f"output_dir={tmp_path / 'out'}",
            "window_s=3",
            "stride_s=1",
            "frame_size=28",
            "progress=false",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"scan_status.rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["scanned"] for r in ranks] == [["drive_000", "drive_002"], ["drive_001"]]
    summary = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert summary["videos_scanned"] == 3 and [v["windows"] for v in summary["videos"]] == [4, 4, 4]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["hours"] == pytest.approx(3 * 6 / 3600) and len(metrics["per_video"]) == 3
    assert out.stdout.count("scan: 3 of 3 videos scanned") == 1  # rank 0 alone writes and reports


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    from browser import Chromium, require_chromium

    with Chromium(require_chromium(), tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.mark.slow
def test_scan_html_renders_in_headless_chromium(square_recording, tmp_path, chromium):
    from browser import serve_directory

    root, _ = square_recording
    assert _scan(_cfg(root / "videos", tmp_path / "out", f"labels={root / 'labels.json'}"), SquareSeer()) == 0
    with serve_directory(tmp_path / "out") as base_url:
        page = chromium.load(f"{base_url}/scan.html")
        assert page.evaluate("document.querySelector('h1').textContent") == "Scan: square_seer (zh prompt)"
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 6 and all(done and width > 0 for _, done, width in images), images
        assert page.console_errors == []
        assert [u for u in page.requested_urls if not u.startswith("data:")] == [f"{base_url}/scan.html"]


def test_bench_scan_decodes_the_frames_the_scan_needs(tmp_path):
    """scripts/bench_scan.py's two measurements on a 6-second recording: the bare decode reads each needed frame
    once, the scan (constant scorer) scores every window of the same recording."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_scan", Path(__file__).resolve().parents[1] / "scripts" / "bench_scan.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    video = bench.make_recording(tmp_path / "rec.mp4", 0.1, 64, 48, 10)
    decode = bench.child_decode(video, 32, 4)
    assert (decode["windows"], decode["video_s"]) == (9, 6.0)
    assert decode["frames_decoded"] == 24  # frames 0, 2 (mod 5) of 60: what 8-of-20 windows every 5 frames need
    scanned = bench.child_scan(video, tmp_path / "out", "null", tmp_path / "unused", 32, 4)
    assert (scanned["exit"], scanned["windows"], scanned["video_s"]) == (0, 9, 6.0)
