"""Writing a labelled synthetic set: videos/synth_NNNNN.mp4 and labels.json (schema v1) under one folder."""

from __future__ import annotations

import logging
from pathlib import Path

from ghostprobe.labels import ClipLabel, write_labels
from ghostprobe.synth.encode import write_video
from ghostprobe.synth.scenarios import UnusableSpec, resample_spec, sample_specs
from ghostprobe.synth.scene import ClipRenderer

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 4


def generate(out_dir: str | Path, num_clips: int, seed: int, width: int = 320, height: int = 180, fps: float = 15,
             duration_s: float = 5.0, scenario_weights: dict[str, float] | None = None, crf: int = 23,
             preset: str = "veryfast") -> list[ClipLabel]:
    """Render and encode `num_clips` clips into `out_dir`/videos/ (H.264 mp4) and write `out_dir`/labels.json.

    Deterministic: the same arguments give byte-identical labels.json and identical decoded frames. Frames go to
    the encoder one at a time, so memory does not grow with resolution x duration. labels.json is written last:
    its presence means the set is complete. Returns the labels in clip order.
    """
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    options = {"crf": crf, "preset": preset}
    labels = []
    for spec in sample_specs(num_clips, seed, width, height, fps, duration_s, scenario_weights):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            renderer = ClipRenderer(spec)
            path = out_dir / "videos" / f"{spec.clip_id}.mp4"
            write_video(path, renderer.frames(), fps, options=options)
            try:
                labels.append(renderer.label())
                break
            except UnusableSpec as err:
                # Rare (none seen in thousands of clips), but one odd draw should not sink a long run.
                if attempt == MAX_ATTEMPTS:
                    raise
                log.warning("%s; drawing clip %s again (attempt %d)", err, spec.clip_id, attempt + 1)
                spec = resample_spec(spec, seed, attempt)
    write_labels(out_dir / "labels.json", labels)
    return labels
