"""export_alerts=true: each alert cut out of its recording as a clip, plus a label stub per clip in the project's
schema (docs/labels.md) with the label left empty for a person to fill, so that scanned footage feeds the next
fine-tune. Clips are re-encoded at full resolution and the recording's frame rate; the stub's `group` is the
recording, so clips of one recording stay in one split."""

from __future__ import annotations

from pathlib import Path

from ghostprobe.files import write_json_atomic
from ghostprobe.labels import LABEL_NAMES
from ghostprobe.video import read_frames, write_video
from scan.recordings import VideoJob

# Frames decoded per read while cutting, so a long alert never holds more than this many full-size frames.
_FRAMES_PER_READ = 64


def export_video_alerts(job: VideoJob, alerts: list[dict], video_dir: Path, pad_s: float, window_s: float) -> None:
    """Cut [alert start - window_s - pad_s, alert end + pad_s] (the alert's first window and its margin) for each
    alert into OUT/exported/clips/VIDEO_ID_aK.mp4 and write VIDEO_DIR/exported.json with their label stubs."""
    clips_dir = video_dir.parents[1] / "exported" / "clips"
    clock, info = job.clock, job.info
    stubs = []
    for k, alert in enumerate(alerts):
        start_s = max(alert["start_s"] - window_s - pad_s, 0.0)
        end_s = min(alert["end_s"] + pad_s, clock.duration_s)
        first, last = clock.index_at(start_s), clock.index_at(end_s)
        clip_id = f"{job.video_id}_a{k:03d}"
        path = clips_dir / f"{clip_id}.mp4"
        if not path.exists():  # a re-run keeps clips already cut
            tmp = path.with_name(f".{path.name}")
            write_video(tmp, _frames(job, range(first, last + 1)), info.fps)
            tmp.replace(path)
        stubs.append(
            {
                "clip_id": clip_id,
                "video": f"clips/{clip_id}.mp4",
                "label": None,
                "group": job.video_id,
                "notes": (
                    f"TO LABEL: set label to one of {', '.join(LABEL_NAMES)} (and event times in seconds from "
                    f"this clip's start for ghost_probing). Cut from {job.path} at {clock.time_of(first):.2f}-"
                    f"{clock.time_of(last):.2f} s; alert {alert['start_s']:.2f}-{alert['end_s']:.2f} s, peak "
                    f"p={alert['peak_p']:.3f} at {alert['peak_s']:.2f} s"
                ),
            }
        )
    write_json_atomic(video_dir / "exported.json", {"clips": stubs}, allow_nan=False)


def _frames(job: VideoJob, indices: range):
    for start in range(indices.start, indices.stop, _FRAMES_PER_READ):
        part = list(range(start, min(start + _FRAMES_PER_READ, indices.stop)))
        yield from read_frames(job.path, part, job.info)
