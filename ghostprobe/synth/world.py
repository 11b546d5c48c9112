"""What a synthetic clip contains, in world units, and how things move: the spec that the renderer draws.

Coordinates: X lateral metres (positive right, 0 = centre of the ego lane), Z forward metres along the straight road,
Y metres above the road. The camera sits at X=0, height CAMERA_HEIGHT_M, at Z = ego.position_m(t). Everything here is
plain data plus closed-form motion, so the renderer and the labels read the same positions at the same frame times.
"""

from __future__ import annotations

from dataclasses import dataclass

CAMERA_HEIGHT_M = 1.3
EGO_NOSE_M = 1.8  # camera to front bumper: where a collision happens
EGO_HALF_WIDTH_M = 0.9
PATH_HALF_WIDTH_M = 1.5  # the ego path corridor: an actor is "in the path" when its footprint overlaps |X| < this


@dataclass(frozen=True)
class Road:
    """Cross-section of a straight road; every width in metres."""

    kind: str  # context.road: residential | urban_two_lane | rural_two_way
    lane_w_m: float
    left_lane: str | None  # None, "same" (same direction, cut-ins come from here) or "oncoming"
    right_lane: str | None
    left_strip_m: float  # parking strip (urban) or shoulder (rural) outside the driven lanes
    right_strip_m: float
    sidewalk_m: float  # beyond the strip; rural roads have a grass verge instead
    facade_gap_m: float  # from the end of the sidewalk to building fronts / the tree line

    def lanes_edge_m(self, side: str) -> float:
        """|X| of the outer edge of the driven lanes on `side`."""
        extra = self.left_lane if side == "left" else self.right_lane
        return self.lane_w_m / 2 + (self.lane_w_m if extra else 0.0)

    def edge_m(self, side: str) -> float:
        """|X| of the kerb on `side` (lanes plus parking strip or shoulder)."""
        return self.lanes_edge_m(side) + (self.left_strip_m if side == "left" else self.right_strip_m)

    def facade_m(self, side: str) -> float:
        return self.edge_m(side) + self.sidewalk_m + self.facade_gap_m


@dataclass(frozen=True)
class Box:
    """A static roadside solid: parked vehicle, wall or hedge. x0 < x1, z0 < z1 (world)."""

    kind: str  # parked_car | van | bus | truck | wall | vegetation
    x0: float
    x1: float
    z0: float
    z1: float
    height_m: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Prop:
    """A thin roadside thing that shows ego motion: lamp post or tree."""

    kind: str  # pole | tree
    x: float
    z: float
    height_m: float
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Mover:
    """A pedestrian, rider or vehicle. Lateral motion is one straight move from x_wait to x_stop at speed_x_mps,
    starting at t_go_s (which may be negative: already moving when the clip starts); forward motion is constant
    speed_z_mps. After t_freeze_s (a collision) it stays where it is."""

    kind: str  # pedestrian | child | cyclist | scooter | motorcycle | car | van | truck
    width_m: float  # footprint along X
    depth_m: float  # footprint along Z
    height_m: float
    x_wait: float
    x_stop: float
    speed_x_mps: float
    t_go_s: float
    z0: float
    speed_z_mps: float
    colours: tuple[tuple[int, int, int], ...]
    facing: str = "away"  # vehicles: "away" shows tail lights, "towards" (oncoming) shows headlights
    t_freeze_s: float | None = None

    def _t(self, t: float) -> float:
        return t if self.t_freeze_s is None else min(t, self.t_freeze_s)

    def x_at(self, t: float) -> float:
        t = self._t(t)
        span = abs(self.x_stop - self.x_wait)
        moved = min(max(self.speed_x_mps * (t - self.t_go_s), 0.0), span)
        return self.x_wait + (moved if self.x_stop >= self.x_wait else -moved)

    def z_at(self, t: float) -> float:
        return self.z0 + self.speed_z_mps * self._t(t)

    def moving_x(self, t: float) -> bool:
        return self.t_go_s <= self._t(t) and self.x_at(t) != self.x_stop

    def t_arrive_s(self) -> float:
        """When the lateral move ends."""
        return self.t_go_s + abs(self.x_stop - self.x_wait) / self.speed_x_mps

    def in_path(self, t: float) -> bool:
        x = self.x_at(t)
        return x - self.width_m / 2 < PATH_HALF_WIDTH_M and x + self.width_m / 2 > -PATH_HALF_WIDTH_M


@dataclass(frozen=True)
class EgoMotion:
    """Ego speed: constant, or braking from t_brake_s at decel_mps2 down to v_end_mps; stopped dead at t_impact_s."""

    v0_mps: float
    t_brake_s: float | None = None
    decel_mps2: float = 0.0
    v_end_mps: float = 0.0
    t_impact_s: float | None = None

    def position_m(self, t: float) -> float:
        if self.t_impact_s is not None:
            t = min(t, self.t_impact_s)
        if self.t_brake_s is None or t <= self.t_brake_s:
            return self.v0_mps * t
        s = self.v0_mps * self.t_brake_s
        dt = t - self.t_brake_s
        t_slow = (self.v0_mps - self.v_end_mps) / self.decel_mps2 if self.decel_mps2 > 0 else 0.0
        if dt <= t_slow:
            return s + self.v0_mps * dt - 0.5 * self.decel_mps2 * dt * dt
        s += self.v0_mps * t_slow - 0.5 * self.decel_mps2 * t_slow * t_slow
        return s + self.v_end_mps * (dt - t_slow)


@dataclass(frozen=True)
class Route:
    """What clips of one route share: place, light, weather, road and the look of the background."""

    route_id: str
    background_seed: int
    light: str  # day | dusk | night
    weather: str  # clear | rain | fog
    scene: str  # urban | rural
    road: Road
    fog_m: float | None  # visibility scale of the fog (rain adds a light haze too)
    hood_colour: tuple[int, int, int]


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip deterministically; `actor` is the key actor of the scenario (the one
    whose visibility and path entry make the label), None for scenarios without one."""

    clip_id: str
    index: int
    scenario: str
    route: Route
    width: int
    height: int
    fps: float
    duration_s: float
    ego: EgoMotion
    boxes: tuple[Box, ...]
    props: tuple[Prop, ...]
    walkers: tuple[Mover, ...]  # people on the pavement, never the key actor
    traffic: tuple[Mover, ...]  # vehicles in the other lanes, never the key actor
    actor: Mover | None
    key_box: int | None  # index in boxes of the occluder the key actor starts behind
    side: str | None  # where the key actor comes from
    outcome: str | None  # collision | near_miss | none, from the same motion the renderer draws

    @property
    def num_frames(self) -> int:
        return max(1, round(self.duration_s * self.fps))

    def frame_time_s(self, index: int) -> float:
        return index / self.fps
