"""Rendering a ClipSpec into frames, and the clip's label read off the render itself.

The label's times are frame times (index / fps) of what was drawn: t_first_visible_s is the first frame where any
pixel of the key actor survives the depth test, t_event_s the first frame where its footprint overlaps the ego path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostprobe.labels import ClipLabel, Context, Event
from ghostprobe.synth.backdrop import Backdrop, Bonnet, Rain
from ghostprobe.synth.draw import Camera, Canvas, Lighting
from ghostprobe.synth.objects import draw_box, draw_prop
from ghostprobe.synth.people import draw_mover
from ghostprobe.synth.scenarios import SCENARIO_LABELS
from ghostprobe.synth.world import ClipSpec


@dataclass
class RenderedClip:
    """Frames before encoding and the per-frame truth about the key actor."""

    frames: np.ndarray            # uint8 [T, H, W, 3] RGB
    actor_visible_px: np.ndarray  # int [T]: key-actor pixels the camera sees (0: hidden or absent)
    actor_in_path: np.ndarray     # bool [T]: key actor's footprint overlaps the ego path corridor
    label: ClipLabel | None       # None when rendered without the actor a scenario needs
    spec: ClipSpec


def render_clip(spec: ClipSpec, with_actor: bool = True) -> RenderedClip:
    """Render `spec` deterministically. with_actor=False draws the same clip without its key actor (everything
    else identical), to check that the actor changes no pixel before it is first visible."""
    route = spec.route
    cam = Camera(spec.width, spec.height)
    background_rng = np.random.default_rng([route.background_seed])
    light = Lighting(route, background_rng)
    backdrop = Backdrop(route, cam, light, background_rng)
    bonnet = Bonnet(cam, route, light)
    rain = Rain(cam, np.random.default_rng([route.background_seed, spec.index])) if route.weather == "rain" else None
    actor = spec.actor if with_actor else None
    canvas = Canvas(spec.width, spec.height)
    n = spec.num_frames
    frames = np.empty((n, spec.height, spec.width, 3), np.uint8)
    visible = np.zeros(n, np.int64)
    in_path = np.zeros(n, bool)
    for i in range(n):
        t = spec.frame_time_s(i)
        ego_z = spec.ego.position_m(t)
        canvas.reset(backdrop.image)
        backdrop.paint_moving(canvas.frame, ego_z)
        for box in spec.boxes:
            draw_box(canvas, cam, light, box.kind, box.x0, box.x1, box.z0 - ego_z, box.z1 - ego_z, box.height_m,
                     box.colour, world_z0=box.z0)
        for prop in spec.props:
            draw_prop(canvas, cam, light, prop.kind, prop.x, prop.z - ego_z, prop.height_m, prop.colour)
        for mover in spec.walkers + spec.traffic:
            draw_mover(canvas, cam, light, mover, t, ego_z, owner=False)
        if actor is not None:
            draw_mover(canvas, cam, light, actor, t, ego_z, owner=True)
            in_path[i] = actor.in_path(t)
        bonnet.apply(canvas.frame, canvas.owner)
        visible[i] = np.count_nonzero(canvas.owner)
        frames[i] = canvas.rgb()
        if rain is not None:
            rain.apply(frames[i], i)
    label = None if (spec.actor is not None and actor is None) else clip_label(spec, visible, in_path)
    return RenderedClip(frames, visible, in_path, label, spec)


def clip_label(spec: ClipSpec, visible_px: np.ndarray, in_path: np.ndarray) -> ClipLabel:
    """The ClipLabel of a rendered clip, its event times taken from the per-frame truth."""
    context = Context(light=spec.route.light, weather=spec.route.weather, scene=spec.route.scene,
                      road=spec.route.road.kind)
    common = dict(clip_id=spec.clip_id, video=f"videos/{spec.clip_id}.mp4", label=SCENARIO_LABELS[spec.scenario],
                  context=context, group=spec.route.route_id, notes=spec.scenario)
    if spec.actor is None:
        return ClipLabel(**common)
    fps, a = spec.fps, spec.actor
    seen = np.flatnonzero(visible_px > 0)
    if len(seen) == 0:
        raise RuntimeError(f"{spec.clip_id} ({spec.scenario}): the key actor is never visible; the scenario "
                           "sampler placed it badly (please report the seed)")
    t_visible = int(seen[0]) / fps
    occluder = spec.boxes[spec.key_box].kind if spec.key_box is not None else None
    actor = {"car": "car", "van": "van", "truck": "truck"}.get(a.kind, a.kind)
    if spec.scenario == "emerge_no_path":
        event = Event(t_first_visible_s=t_visible, actor=actor, occluder=occluder, side=spec.side, outcome="none")
        return ClipLabel(**common, event=event)
    entered = np.flatnonzero(in_path)
    if len(entered) == 0:
        raise RuntimeError(f"{spec.clip_id} ({spec.scenario}): the key actor never enters the ego path")
    first = int(entered[0])
    if spec.scenario == "cut_in":
        # A cut-in is over when the vehicle has settled in the ego lane.
        done = [i for i in range(first, spec.num_frames) if spec.frame_time_s(i) >= a.t_arrive_s()]
        end = done[0] / fps if done else spec.duration_s
    else:
        left = np.flatnonzero(~in_path[first:])
        end = (first + int(left[0])) / fps if len(left) else spec.duration_s
    event = Event(t_first_visible_s=t_visible, t_event_s=first / fps, t_end_s=end, actor=actor,
                  occluder=occluder if spec.scenario == "ghost_probing" else None, side=spec.side,
                  outcome=spec.outcome)
    return ClipLabel(**common, event=event)
