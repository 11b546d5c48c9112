"""Scenario sampling: which clips to make (the scenario mix), the routes they share, and one ClipSpec per clip.

Every random choice comes from a numpy Generator seeded from (seed, purpose, index), so a clip depends only on the
seed, its index and the scenario plan, never on the order in which clips are rendered.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ghostprobe.synth import layout
from ghostprobe.synth.world import (
    CAMERA_HEIGHT_M,
    EGO_HALF_WIDTH_M,
    EGO_NOSE_M,
    PATH_HALF_WIDTH_M,
    ClipSpec,
    EgoMotion,
    Mover,
    Road,
    Route,
)

SCENARIO_LABELS = {
    "ghost_probing": "ghost_probing",
    "visible_crossing": "other_hazard",
    "emerge_no_path": "normal",
    "occluder_only": "normal",
    "empty_road": "normal",
    "cut_in": "cut_in",
}
# Library default; conf/synth.yaml carries the same numbers for the command line.
DEFAULT_SCENARIO_WEIGHTS = {
    "ghost_probing": 0.4,
    "visible_crossing": 0.12,
    "emerge_no_path": 0.12,
    "occluder_only": 0.12,
    "empty_road": 0.12,
    "cut_in": 0.12,
}
# Shares of routes by light and weather (conf/synth.yaml carries the same numbers).
DEFAULT_LIGHT_WEIGHTS = {"day": 0.6, "dusk": 0.2, "night": 0.2}
DEFAULT_WEATHER_WEIGHTS = {"clear": 0.7, "rain": 0.15, "fog": 0.15}
# Where the path entry (or the stop at the kerb) falls, as a share of the clip: the middle, so that 8 uniformly
# sampled frames show both the hidden approach and the emergence.
EVENT_WINDOW = (0.4, 0.75)
# Distance ahead of the camera when the actor enters the path: near enough to be big, far enough to be seen coming.
EVENT_DISTANCE_M = (7.0, 18.0)


class UnusableSpec(RuntimeError):
    """A sampled clip whose render does not show what its scenario needs (e.g. the actor never gets into view)."""


def sample_specs(
    num_clips: int,
    seed: int,
    width: int = 320,
    height: int = 180,
    fps: float = 15,
    duration_s: float = 5.0,
    scenario_weights: dict[str, float] | None = None,
    light_weights: dict[str, float] | None = None,
    weather_weights: dict[str, float] | None = None,
) -> list[ClipSpec]:
    """Sample `num_clips` clip specs (clip ids synth_00000, ...) for `seed`.

    Scenarios are allotted in proportion to `scenario_weights` (largest remainder, then shuffled), so a run of 40
    clips with the default weights holds every scenario. Consecutive clips share a route (1-3 clips): same place,
    light, weather and background; routes draw light and weather with `light_weights` / `weather_weights`
    (changing them changes nothing else of a route). Raises ValueError for unknown names or unusable sizes.
    """
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 16 (H.264 4:2:0), got {width}x{height}")
    if fps <= 0 or duration_s <= 0 or round(duration_s * fps) < 4:
        raise ValueError(f"need at least 4 frames: fps={fps}, duration_s={duration_s}")
    plan = _scenario_plan(num_clips, _check_weights(scenario_weights), np.random.default_rng([seed, 0]))
    light_p = _shares(light_weights, DEFAULT_LIGHT_WEIGHTS, "light_weights")
    weather_p = _shares(weather_weights, DEFAULT_WEATHER_WEIGHTS, "weather_weights")
    route_lengths = np.random.default_rng([seed, 1])
    specs: list[ClipSpec] = []
    route: Route | None = None
    route_idx, left_in_route = -1, 0
    for index, scenario in enumerate(plan):
        need_lane = scenario == "cut_in"
        if left_in_route == 0 or (need_lane and not _same_lane_sides(route.road)):
            route_idx += 1
            route = _sample_route(
                np.random.default_rng([seed, 2, route_idx]),
                f"synth_s{seed}_r{route_idx:05d}",
                need_lane,
                light_p,
                weather_p,
            )
            left_in_route = int(route_lengths.integers(1, 4))
        left_in_route -= 1
        rng = np.random.default_rng([seed, 3, index])
        specs.append(_sample_clip(rng, index, scenario, route, width, height, float(fps), float(duration_s)))
    return specs


def resample_spec(spec: ClipSpec, seed: int, attempt: int) -> ClipSpec:
    """Another draw of the same clip (index, scenario, route, size), for when `spec` turned out unusable;
    deterministic in (seed, index, attempt)."""
    rng = np.random.default_rng([seed, 3, spec.index, attempt])
    return _sample_clip(rng, spec.index, spec.scenario, spec.route, spec.width, spec.height, spec.fps, spec.duration_s)


def _check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    weights = dict(DEFAULT_SCENARIO_WEIGHTS if weights is None else weights)
    unknown = sorted(set(weights) - set(SCENARIO_LABELS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown} in scenario_weights; known: {sorted(SCENARIO_LABELS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"scenario_weights must be >= 0 with a positive sum, got {weights}")
    return {name: float(weights.get(name, 0.0)) for name in SCENARIO_LABELS}


def _scenario_plan(num_clips: int, weights: dict[str, float], rng: np.random.Generator) -> list[str]:
    names = list(weights)
    share = np.array([weights[n] for n in names]) / sum(weights.values()) * num_clips
    counts = np.floor(share).astype(int)
    # Stable sort keeps ties in declaration order: the plan is reproducible across numpy versions.
    for i in np.argsort(-(share - counts), kind="stable")[: num_clips - counts.sum()]:
        counts[i] += 1
    plan = [name for name, count in zip(names, counts, strict=True) for _ in range(count)]
    return [plan[i] for i in rng.permutation(len(plan))]


def _same_lane_sides(road: Road) -> list[str]:
    return [side for side, lane in (("left", road.left_lane), ("right", road.right_lane)) if lane == "same"]


def _shares(weights: dict[str, float] | None, default: dict[str, float], name: str) -> list[float]:
    """Probabilities in the order of `default`'s keys, from user weights (missing names get 0)."""
    weights = dict(default if weights is None else weights)
    unknown = sorted(set(weights) - set(default))
    if unknown:
        raise ValueError(f"unknown name(s) {unknown} in {name}; known: {sorted(default)}")
    values = np.array([float(weights.get(key, 0.0)) for key in default])
    if (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"{name} must be >= 0 with a positive sum, got {weights}")
    return list(values / values.sum())


def _sample_route(
    rng: np.random.Generator, route_id: str, need_same_lane: bool, light_p: list[float], weather_p: list[float]
) -> Route:
    scene = "urban" if rng.random() < 0.7 else "rural"
    u = rng.uniform
    if scene == "urban":
        kind = "urban_two_lane" if need_same_lane or rng.random() < 0.45 else "residential"
        lane = "same" if kind == "urban_two_lane" else None
        on_left = rng.random() < 0.7
        road = Road(
            kind,
            u(3.2, 3.6),
            lane if on_left else None,
            None if on_left else lane,
            u(2.2, 2.6),
            u(2.2, 2.6),
            u(2.0, 4.0),
            u(0.5, 3.0),
        )
    else:
        kind = "rural_dual_lane" if need_same_lane or rng.random() < 0.3 else "rural_two_way"
        road = Road(
            kind,
            u(3.2, 3.6),
            "same" if kind == "rural_dual_lane" else "oncoming",
            None,
            u(0.5, 1.2),
            u(0.5, 1.2),
            u(2.0, 5.0),
            u(3.0, 15.0),
        )
    light = str(rng.choice(list(DEFAULT_LIGHT_WEIGHTS), p=light_p))
    weather = str(rng.choice(list(DEFAULT_WEATHER_WEIGHTS), p=weather_p))
    fog_m = u(35, 70) if weather == "fog" else (u(110, 180) if weather == "rain" else None)
    hood = tuple(int(c) for c in layout.VEHICLE_COLOURS[rng.integers(len(layout.VEHICLE_COLOURS))])
    return Route(route_id, int(rng.integers(2**31)), light, weather, scene, road, fog_m, hood)


def _sample_clip(
    rng: np.random.Generator,
    index: int,
    scenario: str,
    route: Route,
    width: int,
    height: int,
    fps: float,
    duration_s: float,
) -> ClipSpec:
    v0 = rng.uniform(6.0, 12.0) if route.scene == "urban" else rng.uniform(9.0, 15.0)
    z_to = v0 * duration_s + 110.0
    boxes = [] if scenario == "empty_road" else layout.parked_rows(rng, route, -8.0, z_to)
    props = layout.props(rng, route, -8.0, z_to)
    walkers = layout.walkers(rng, route, duration_s, v0)
    traffic = layout.traffic(
        rng, route, v0, duration_s, skip_sides=_same_lane_sides(route.road) if scenario == "cut_in" else []
    )
    ego = EgoMotion(v0)
    actor, key_box, side, outcome = None, None, None, None
    if scenario in ("ghost_probing", "emerge_no_path", "occluder_only"):
        key, actor, side, t_event = _hidden_actor(rng, route, v0, duration_s, stops=scenario == "emerge_no_path")
        boxes = layout.clear_around(boxes, side, key.z0 - 0.5, actor.z0 + actor.depth_m / 2 + 0.6, actor)
        boxes.append(key)
        if scenario == "ghost_probing":
            ego, actor, outcome = _brake_for(rng, ego, actor, t_event, duration_s)
        else:
            # A cautious driver slows down near parked cars too, so braking alone does not give the label away.
            if rng.random() < 0.4:
                ego = _slow_down(rng, v0, t_event + rng.uniform(0.2, 0.6))
            outcome = "none"
            if scenario == "occluder_only":
                actor, side, outcome = None, None, None
    elif scenario == "empty_road":
        if rng.random() < 0.25:
            ego = _slow_down(rng, v0, rng.uniform(0.3, 0.8) * duration_s)
    elif scenario == "visible_crossing":
        actor, side, t_event = _visible_actor(rng, route, v0, duration_s)
        boxes = layout.clear_sightline(boxes, side, actor, v0, t_event)
        ego, actor, outcome = _brake_for(rng, ego, actor, t_event, duration_s)
    elif scenario == "cut_in":
        ego, actor, side, outcome = _cut_in(rng, route, v0, duration_s)
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    if actor is not None:
        walkers = [w for w in walkers if not layout.near_in_z(w, actor, duration_s, 4.0)]
        traffic = [v for v in traffic if not layout.near_in_z(v, actor, duration_s, 8.0)]
    boxes.sort(key=lambda b: (b.z0, b.x0))
    key_box = None
    if scenario in ("ghost_probing", "emerge_no_path", "occluder_only"):
        key_box = boxes.index(key)
    return ClipSpec(
        f"synth_{index:05d}",
        index,
        scenario,
        route,
        width,
        height,
        fps,
        duration_s,
        ego,
        tuple(boxes),
        tuple(props),
        tuple(walkers),
        tuple(traffic),
        actor,
        key_box,
        side,
        outcome,
    )


def _hidden_actor(rng, route: Route, v0: float, duration_s: float, stops: bool):
    """A key occluder and an actor waiting behind it, out of sight from the camera until it steps out."""
    road = route.road
    for _ in range(40):
        # The actor first, then occluders until one hides it: riders are wide and need long occluders, and
        # rejecting the pair would make them rare.
        kind, w, dep, h, speed, colours = layout.sample_actor(rng)
        for _ in range(30):
            side = _emergence_side(rng, road)
            sign = -1.0 if side == "left" else 1.0
            box_kind = layout.sample_occluder_kind(rng, route.scene)
            bw, bl, bh = layout.sample_box_size(rng, box_kind)
            if bh < max(h, CAMERA_HEIGHT_M) + 0.08:
                continue  # the head would show over the top
            t_event = rng.uniform(*EVENT_WINDOW) * duration_s
            z_actor = v0 * t_event + rng.uniform(*EVENT_DISTANCE_M)
            if box_kind in ("wall", "vegetation"):
                x_in = road.edge_m(side) + rng.uniform(0.0, 0.4)
                x_actor = x_in + bw + w / 2 + rng.uniform(0.2, 1.0)
            else:
                x_in = road.lanes_edge_m(side) + rng.uniform(0.1, 0.3)
                x_actor = x_in + w / 2 + rng.uniform(0.15, max(0.2, bw - w + 0.6))
            z1 = z_actor - dep / 2 - rng.uniform(0.3, 1.0)
            box = layout.make_box(rng, box_kind, sign, x_in, bw, z1 - bl, z1, bh)
            if stops:
                inner = max(PATH_HALF_WIDTH_M + 0.25, x_in - rng.uniform(0.15, 0.7))
                x_stop = sign * (inner + w / 2)
                t_go = t_event - abs(abs(x_stop) - x_actor) / speed
            else:
                x_stop = -sign * (PATH_HALF_WIDTH_M + w / 2 + rng.uniform(0.3, 1.5))
                t_go = t_event - (x_actor - w / 2 - PATH_HALF_WIDTH_M) / speed
            actor = Mover(kind, w, dep, h, sign * x_actor, x_stop, speed, t_go, z_actor, 0.0, colours)
            if box.z0 < 4.0:
                continue  # the occluder must be ahead of the camera when the clip starts
            if all(layout.hidden(box, actor, t, v0 * t) for t in (0.0, max(t_go, 0.0))):
                return box, actor, side, t_event
    raise RuntimeError(f"could not place a hidden actor on route {route.route_id} (road {road})")


def _emergence_side(rng, road: Road) -> str:
    """Mostly the kerb right next to the ego lane: from across another lane the actor is in view for seconds
    before it reaches the ego path, which is closer to a visible crossing than to ghost probing."""
    side = "left" if rng.random() < 0.35 else "right"
    lane = road.left_lane if side == "left" else road.right_lane
    other = road.right_lane if side == "left" else road.left_lane
    if lane and not other and rng.random() < 0.85:
        side = "right" if side == "left" else "left"
    return side


def _visible_actor(rng, route: Route, v0: float, duration_s: float):
    """An actor in plain view on the kerb or in the parking strip who crosses the road mid-clip."""
    road = route.road
    side = _emergence_side(rng, road)
    sign = -1.0 if side == "left" else 1.0
    kind, w, dep, h, speed, colours = layout.sample_actor(rng)
    t_event = rng.uniform(*EVENT_WINDOW) * duration_s
    z_actor = v0 * t_event + rng.uniform(*EVENT_DISTANCE_M)
    x_actor = rng.uniform(road.lanes_edge_m(side) + w / 2 + 0.1, road.edge_m(side) + w / 2 + 1.0)
    x_stop = -sign * (PATH_HALF_WIDTH_M + w / 2 + rng.uniform(0.3, 1.5))
    t_go = t_event - (x_actor - w / 2 - PATH_HALF_WIDTH_M) / speed
    return Mover(kind, w, dep, h, sign * x_actor, x_stop, speed, t_go, z_actor, 0.0, colours), side, t_event


def _slow_down(rng, v0: float, t_brake_s: float) -> EgoMotion:
    return EgoMotion(v0, t_brake_s, rng.uniform(2.0, 4.0), v0 * rng.uniform(0.4, 0.7))


def _brake_for(rng, ego: EgoMotion, actor: Mover, t_event: float, duration_s: float):
    """The driver brakes hard after the actor enters the path; a collision if the bumper reaches it in the path."""
    ego = EgoMotion(ego.v0_mps, t_event + rng.uniform(0.25, 0.6), rng.uniform(5.5, 8.0), 0.0)
    near_face = actor.z0 - actor.depth_m / 2
    for t in np.arange(0.0, duration_s, 0.005):
        x = actor.x_at(t)
        if ego.position_m(t) + EGO_NOSE_M >= near_face and abs(x) < EGO_HALF_WIDTH_M + actor.width_m / 2:
            t = float(t)
            # Both stop where they meet: the renderer shows the impact instead of driving through the actor.
            return replace(ego, t_impact_s=t), replace(actor, t_freeze_s=t), "collision"
    return ego, actor, "near_miss"


def _cut_in(rng, route: Route, v0: float, duration_s: float):
    """A vehicle in the adjacent same-direction lane, visible all along, that moves into the ego lane ahead."""
    road = route.road
    sides = _same_lane_sides(road)
    side = sides[int(rng.integers(len(sides)))]
    sign = -1.0 if side == "left" else 1.0
    for _ in range(200):
        kind, w, dep, h, colours = layout.sample_vehicle(rng)
        t_event = rng.uniform(*EVENT_WINDOW) * duration_s
        speed_x = road.lane_w_m / rng.uniform(1.5, 3.0)
        t_go = t_event - (road.lane_w_m - w / 2 - PATH_HALF_WIDTH_M) / speed_x
        v_other = v0 + rng.uniform(-1.5, 1.0)
        gap_event = rng.uniform(7.0, 18.0)
        z0 = v0 * t_event + gap_event + dep / 2 - v_other * t_event
        vehicle = Mover(kind, w, dep, h, sign * road.lane_w_m, 0.0, speed_x, t_go, z0, v_other, colours)
        ego = EgoMotion(
            v0, t_event + rng.uniform(0.3, 0.8), rng.uniform(1.5, 3.5), min(v0, v_other) * rng.uniform(0.6, 0.9)
        )
        gaps = [vehicle.z_at(t) - dep / 2 - ego.position_m(t) for t in np.linspace(0, duration_s, 50)]
        if min(gaps) >= 4.0:
            return ego, vehicle, side, "near_miss" if gap_event < 10.0 else "none"
    raise RuntimeError(f"could not place a cut-in on route {route.route_id}")
