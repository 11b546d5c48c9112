"""Writing a labelled synthetic set: videos/synth_NNNNN.mp4 and labels.json (schema v1) under one folder."""

from __future__ import annotations

from pathlib import Path

from ghostprobe.labels import ClipLabel, write_labels
from ghostprobe.synth.encode import write_video
from ghostprobe.synth.scenarios import sample_specs
from ghostprobe.synth.scene import render_clip


def generate(out_dir: str | Path, num_clips: int, seed: int, width: int = 320, height: int = 180, fps: float = 15,
             duration_s: float = 5.0, scenario_weights: dict[str, float] | None = None, crf: int = 23,
             preset: str = "veryfast") -> list[ClipLabel]:
    """Render and encode `num_clips` clips into `out_dir`/videos/ (H.264 mp4) and write `out_dir`/labels.json.

    Deterministic: the same arguments give byte-identical labels.json and identical decoded frames. labels.json is
    written last, so its presence means the set is complete. Returns the labels in clip order.
    """
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    labels = []
    for spec in sample_specs(num_clips, seed, width, height, fps, duration_s, scenario_weights):
        clip = render_clip(spec)
        write_video(out_dir / clip.label.video, clip.frames, fps, options={"crf": crf, "preset": preset})
        labels.append(clip.label)
    write_labels(out_dir / "labels.json", labels)
    return labels
