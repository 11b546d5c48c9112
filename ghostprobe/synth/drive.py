"""Synthetic long recordings ("drives") with exact event times, for scan/main.py and its event-level metrics.

A drive is one video of one route (same place, light, weather and background throughout) made of consecutive
segments of `segment_s` seconds joined by a cut, each segment one scenario of the clip generator: ghost probing or a
look-alike (visible crossing, emergence that stops at the kerb, occluders with nobody behind, empty road, cut-in).
Its label is one clip of the label schema with `events: [...]`: one entry per segment that is not an empty road
(empty road segments are the background), times in seconds from the start of the drive, read off the render as for
clips (docs/labels.md). Frames go to the encoder one at a time: memory does not grow with the drive's length.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ghostprobe.labels import ClipLabel, Context, RecordingEvent, write_labels
from ghostprobe.synth.scenarios import (
    DEFAULT_WEATHER_WEIGHTS,
    SCENARIO_LABELS,
    UnusableSpec,
    _check_weights,
    _sample_clip,
    _sample_route,
    _scenario_plan,
    _shares,
)
from ghostprobe.synth.scene import ClipRenderer
from ghostprobe.synth.world import ClipSpec
from ghostprobe.video import write_video

LIGHTS = ("day", "dusk", "night")


def drive_specs(
    drive_id: str,
    seed: int,
    num_segments: int,
    segment_s: float,
    width: int,
    height: int,
    fps: float,
    light: str,
    scenario_weights: dict[str, float] | None = None,
    weather_weights: dict[str, float] | None = None,
) -> list[ClipSpec]:
    """The segments of one drive: scenarios in proportion to `scenario_weights` (shuffled), all on one route."""
    if light not in LIGHTS:
        raise ValueError(f"light must be one of {', '.join(LIGHTS)}, got {light!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    plan = _scenario_plan(num_segments, _check_weights(scenario_weights), np.random.default_rng([seed, 10]))
    light_p = [1.0 if name == light else 0.0 for name in LIGHTS]
    weather_p = _shares(weather_weights, DEFAULT_WEATHER_WEIGHTS, "weather_weights")
    route = _sample_route(np.random.default_rng([seed, 11]), f"{drive_id}_route", "cut_in" in plan, light_p, weather_p)
    specs = []
    for index, scenario in enumerate(plan):
        spec = _sample_clip(
            np.random.default_rng([seed, 12, index]),
            index,
            scenario,
            route,
            width,
            height,
            float(fps),
            float(segment_s),
        )
        specs.append(replace(spec, clip_id=f"{drive_id}_seg{index:03d}"))
    return specs


def generate_drive(
    out_dir: str | Path,
    drive_id: str,
    seed: int,
    num_segments: int = 24,
    segment_s: float = 5.0,
    width: int = 320,
    height: int = 180,
    fps: float = 15,
    light: str = "day",
    scenario_weights: dict[str, float] | None = None,
    weather_weights: dict[str, float] | None = None,
    crf: int = 23,
    preset: str = "veryfast",
) -> ClipLabel:
    """Render and encode one drive to `out_dir`/videos/`drive_id`.mp4; returns its label (with `events`)."""
    specs = drive_specs(
        drive_id, seed, num_segments, segment_s, width, height, fps, light, scenario_weights, weather_weights
    )
    renderers = [ClipRenderer(spec) for spec in specs]

    def frames():
        for renderer in renderers:
            yield from renderer.frames()

    path = Path(out_dir) / "videos" / f"{drive_id}.mp4"
    write_video(path, frames(), fps, options={"crf": crf, "preset": preset})
    events, offset_s = [], 0.0
    for renderer, spec in zip(renderers, specs, strict=True):
        try:
            segment = renderer.label()
        except UnusableSpec as err:
            raise UnusableSpec(f"drive {drive_id} (seed {seed}): {err}; try another seed") from None
        if spec.scenario != "empty_road":
            events.append(_shifted(segment, spec, offset_s))
        offset_s += spec.num_frames / fps
    route = specs[0].route
    label = "ghost_probing" if any(e.label == "ghost_probing" for e in events) else "normal"
    return ClipLabel(
        clip_id=drive_id,
        video=f"videos/{drive_id}.mp4",
        label=label,
        events=events,
        context=Context(light=route.light, weather=route.weather, scene=route.scene, road=route.road.kind),
        group=drive_id,
        notes=f"synthetic drive: {len(specs)} segments of {segment_s:g} s",
    )


def _shifted(segment: ClipLabel, spec: ClipSpec, offset_s: float) -> RecordingEvent:
    """A segment's label as an event of the drive: its times moved by the segment's start."""
    fields = segment.event.model_dump(exclude_none=True) if segment.event else {}
    for name in ("t_first_visible_s", "t_event_s", "t_end_s"):
        if name in fields:
            fields[name] = round(fields[name] + offset_s, 6)
    end_s = round(offset_s + spec.num_frames / spec.fps, 6)
    if spec.scenario != "ghost_probing" or "t_end_s" not in fields:
        fields["t_end_s"] = max(end_s, fields.get("t_event_s", 0.0))
    return RecordingEvent(
        label=SCENARIO_LABELS[spec.scenario], kind=spec.scenario, t_start_s=round(offset_s, 6), **fields
    )


def generate_drives(
    out_dir: str | Path, num_drives: int, seed: int, lights: list[str] | None = None, **options
) -> list[ClipLabel]:
    """`num_drives` drives (lights taken in turn from `lights`, default day, dusk, night) and `out_dir`/labels.json
    (written last: its presence means the set is complete)."""
    lights = list(lights or LIGHTS)
    labels = [
        generate_drive(out_dir, f"drive_{k:03d}", seed * 1000 + k, light=lights[k % len(lights)], **options)
        for k in range(num_drives)
    ]
    write_labels(Path(out_dir) / "labels.json", labels)
    return labels
