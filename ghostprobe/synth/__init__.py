"""Synthetic dashcam clips with exact labels: ghost probing and its look-alikes, rendered with numpy, encoded with
PyAV. `generate` writes a labelled set; `sample_specs` + `render_clip` give the frames and per-frame truth."""

from ghostprobe.synth.generate import generate
from ghostprobe.synth.scenarios import DEFAULT_SCENARIO_WEIGHTS, SCENARIO_LABELS, sample_specs
from ghostprobe.synth.scene import ClipRenderer, RenderedClip, clip_label, render_clip
from ghostprobe.synth.world import ClipSpec

__all__ = [
    "generate",
    "sample_specs",
    "render_clip",
    "ClipRenderer",
    "clip_label",
    "RenderedClip",
    "ClipSpec",
    "SCENARIO_LABELS",
    "DEFAULT_SCENARIO_WEIGHTS",
]
