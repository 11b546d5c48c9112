"""Rendering a ClipSpec into frames, and the clip's label read off the render itself.

The label's times are frame times (index / fps) of what was drawn: t_first_visible_s is the first frame where any
pixel of the key actor survives the depth test, t_event_s the first frame where its footprint overlaps the ego path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostprobe.labels import ClipLabel, Context, Event
from ghostprobe.synth.backdrop import Backdrop, Bonnet, Rain
from ghostprobe.synth.draw import PACKED, Camera, Canvas, Lighting, unpack_view
from ghostprobe.synth.objects import draw_box, draw_prop
from ghostprobe.synth.people import draw_mover
from ghostprobe.synth.scenarios import SCENARIO_LABELS, UnusableSpec
from ghostprobe.synth.world import ClipSpec


@dataclass
class RenderedClip:
    """Frames before encoding and the per-frame truth about the key actor."""

    frames: np.ndarray  # uint8 [T, H, W, 3] RGB, a view into 4-byte pixels (np.ascontiguousarray to pack)
    actor_visible_px: np.ndarray  # int [T]: key-actor pixels the camera sees (0: hidden or absent)
    actor_in_path: np.ndarray  # bool [T]: key actor's footprint overlaps the ego path corridor
    label: ClipLabel | None  # None when rendered without the actor a scenario needs
    spec: ClipSpec


def render_clip(spec: ClipSpec, with_actor: bool = True) -> RenderedClip:
    """Render `spec` deterministically, all frames in memory. with_actor=False draws the same clip without its key
    actor (everything else identical), to check that the actor changes no pixel before it is first visible."""
    renderer = ClipRenderer(spec, with_actor)
    packed = np.empty((spec.num_frames, spec.height, spec.width), PACKED)
    for _ in renderer.frames(packed):
        pass
    return RenderedClip(unpack_view(packed), renderer.visible_px, renderer.in_path, renderer.label(), spec)


class ClipRenderer:
    """Draws a clip frame by frame and records the per-frame truth, so that a long or large clip can go to the
    encoder one frame at a time (`generate` does that); `label()` is ready once `frames` is exhausted."""

    def __init__(self, spec: ClipSpec, with_actor: bool = True):
        self.spec = spec
        route = spec.route
        self.cam = Camera(spec.width, spec.height)
        background_rng = np.random.default_rng([route.background_seed])
        self.light = Lighting(route, background_rng)
        self.backdrop = Backdrop(route, self.cam, self.light, background_rng)
        self.bonnet = Bonnet(self.cam, route, self.light)
        self.rain = (
            Rain(self.cam, np.random.default_rng([route.background_seed, spec.index]))
            if route.weather == "rain"
            else None
        )
        self.actor = spec.actor if with_actor else None
        self.visible_px = np.zeros(spec.num_frames, np.int64)
        self.in_path = np.zeros(spec.num_frames, bool)
        self.done = False

    def frames(self, out: np.ndarray | None = None):
        """Yield each frame as uint8 [H, W, 3] RGB. Frames are drawn into out[i] (packed uint32 [T, H, W]) when
        given, else into one buffer that the next frame overwrites."""
        spec, cam, light = self.spec, self.cam, self.light
        canvas = Canvas(spec.width, spec.height)
        for i in range(spec.num_frames):
            t = spec.frame_time_s(i)
            ego_z = spec.ego.position_m(t)
            if out is not None:
                canvas.frame = out[i]
            canvas.reset(self.backdrop.image)
            self.backdrop.paint_moving(canvas.frame, ego_z)
            for box in spec.boxes:
                draw_box(
                    canvas,
                    cam,
                    light,
                    box.kind,
                    box.x0,
                    box.x1,
                    box.z0 - ego_z,
                    box.z1 - ego_z,
                    box.height_m,
                    box.colour,
                    world_z0=box.z0,
                )
            for prop in spec.props:
                draw_prop(canvas, cam, light, prop.kind, prop.x, prop.z - ego_z, prop.height_m, prop.colour)
            for mover in spec.walkers + spec.traffic:
                draw_mover(canvas, cam, light, mover, t, ego_z, owner=False)
            if self.actor is not None:
                draw_mover(canvas, cam, light, self.actor, t, ego_z, owner=True)
                self.in_path[i] = self.actor.in_path(t)
            self.bonnet.apply(canvas.frame, canvas.owner)
            self.visible_px[i] = np.count_nonzero(canvas.owner)
            if self.rain is not None:
                self.rain.apply(canvas.rgb(), i)
            yield canvas.rgb()
        self.done = True

    def label(self) -> ClipLabel | None:
        """The clip's label from what was drawn; None when drawn without the key actor its scenario needs."""
        if not self.done:
            raise RuntimeError(f"{self.spec.clip_id}: label() before all frames were drawn")
        if self.spec.actor is not None and self.actor is None:
            return None
        return clip_label(self.spec, self.visible_px, self.in_path)


def clip_label(spec: ClipSpec, visible_px: np.ndarray, in_path: np.ndarray) -> ClipLabel:
    """The ClipLabel of a rendered clip, its event times taken from the per-frame truth."""
    context = Context(
        light=spec.route.light, weather=spec.route.weather, scene=spec.route.scene, road=spec.route.road.kind
    )
    common = dict(
        clip_id=spec.clip_id,
        video=f"videos/{spec.clip_id}.mp4",
        label=SCENARIO_LABELS[spec.scenario],
        context=context,
        group=spec.route.route_id,
        notes=spec.scenario,
    )
    if spec.actor is None:
        return ClipLabel(**common)
    fps, a = spec.fps, spec.actor
    seen = np.flatnonzero(visible_px > 0)
    if len(seen) == 0:
        raise UnusableSpec(f"{spec.clip_id} ({spec.scenario}): the key actor is never visible")
    t_visible = int(seen[0]) / fps
    occluder = spec.boxes[spec.key_box].kind if spec.key_box is not None else None
    actor = {"car": "car", "van": "van", "truck": "truck"}.get(a.kind, a.kind)
    if spec.scenario == "emerge_no_path":
        event = Event(t_first_visible_s=t_visible, actor=actor, occluder=occluder, side=spec.side, outcome="none")
        return ClipLabel(**common, event=event)
    entered = np.flatnonzero(in_path)
    if len(entered) == 0:
        raise UnusableSpec(f"{spec.clip_id} ({spec.scenario}): the key actor never enters the ego path")
    first = int(entered[0])
    if spec.scenario == "cut_in":
        # A cut-in is over when the vehicle has settled in the ego lane.
        done = [i for i in range(first, spec.num_frames) if spec.frame_time_s(i) >= a.t_arrive_s()]
        end = done[0] / fps if done else spec.duration_s
    else:
        left = np.flatnonzero(~in_path[first:])
        end = (first + int(left[0])) / fps if len(left) else spec.duration_s
    event = Event(
        t_first_visible_s=t_visible,
        t_event_s=first / fps,
        t_end_s=end,
        actor=actor,
        occluder=occluder if spec.scenario == "ghost_probing" else None,
        side=spec.side,
        outcome=spec.outcome,
    )
    return ClipLabel(**common, event=event)
