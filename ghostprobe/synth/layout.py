"""Street furniture for a clip: parked rows, walls and hedges, poles and trees, pedestrians on the pavement, other
traffic; sizes and colours of actors; and the line-of-sight geometry that decides who is hidden behind what."""

from __future__ import annotations

import numpy as np

from ghostprobe.synth.world import CAMERA_HEIGHT_M, Box, Mover, Prop, Route

VEHICLE_COLOURS = [
    (235, 235, 232),
    (180, 182, 186),
    (40, 42, 46),
    (150, 28, 30),
    (30, 60, 140),
    (25, 70, 45),
    (110, 112, 118),
    (230, 190, 40),
    (120, 80, 50),
    (200, 90, 30),
]
# Clothing is saturated on purpose: actors have to stand out from grey streets at 224x224.
CLOTHES = [
    (220, 40, 40),
    (240, 200, 30),
    (30, 110, 220),
    (250, 130, 20),
    (40, 180, 90),
    (200, 60, 190),
    (240, 240, 240),
    (30, 200, 210),
    (120, 60, 200),
    (250, 90, 130),
]
SKIN = [(235, 195, 160), (205, 160, 120), (160, 110, 75), (110, 75, 50)]
WALL_COLOURS = [(170, 166, 156), (150, 82, 62), (205, 195, 165), (120, 118, 112)]
HEDGE_COLOURS = [(52, 110, 48), (70, 125, 55), (40, 90, 45), (85, 110, 50)]

# kind: (footprint width along X, depth, height range, lateral speed range m/s)
ACTORS = {
    "pedestrian": (0.5, 0.35, (1.55, 1.85), (1.2, 2.0)),
    "child": (0.4, 0.3, (1.0, 1.3), (1.4, 2.4)),
    "cyclist": (1.7, 0.5, (1.65, 1.85), (3.0, 5.0)),
    "scooter": (1.1, 0.5, (1.6, 1.85), (2.5, 4.5)),
    "motorcycle": (2.0, 0.7, (1.35, 1.6), (4.0, 7.0)),
}
ACTOR_WEIGHTS = {"pedestrian": 0.38, "child": 0.2, "cyclist": 0.16, "scooter": 0.1, "motorcycle": 0.16}
# kind: (width, length, height) ranges
BOXES = {
    "parked_car": ((1.75, 1.9), (4.2, 4.9), (1.42, 1.9)),
    "van": ((1.9, 2.1), (4.8, 5.8), (1.95, 2.5)),
    "bus": ((2.5, 2.55), (10.0, 12.0), (3.0, 3.3)),
    "truck": ((2.3, 2.5), (6.5, 9.0), (3.0, 3.6)),
    "wall": ((0.25, 0.4), (8.0, 25.0), (1.9, 2.6)),
    "vegetation": ((0.8, 1.6), (6.0, 20.0), (1.8, 2.6)),
}
KEY_OCCLUDERS = {
    "urban": {"parked_car": 0.32, "van": 0.24, "bus": 0.1, "truck": 0.12, "wall": 0.12, "vegetation": 0.1},
    "rural": {"parked_car": 0.15, "van": 0.15, "truck": 0.15, "wall": 0.2, "vegetation": 0.35},
}
PARKED = {
    "urban": {"parked_car": 0.74, "van": 0.15, "truck": 0.07, "bus": 0.04},
    "rural": {"parked_car": 0.5, "van": 0.25, "truck": 0.25},
}


def _pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.array([table[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _colour(rng, palette) -> tuple[int, int, int]:
    return tuple(int(c) for c in palette[int(rng.integers(len(palette)))])


def sample_actor(rng: np.random.Generator):
    """(kind, width_m, depth_m, height_m, lateral speed m/s, colours) of a pedestrian, child or rider."""
    kind = _pick(rng, ACTOR_WEIGHTS)
    w, dep, heights, speeds = ACTORS[kind]
    top, bottom = rng.choice(len(CLOTHES), size=2, replace=False)
    colours = (CLOTHES[top], CLOTHES[bottom], _colour(rng, SKIN), _colour(rng, VEHICLE_COLOURS))
    return kind, w, dep, rng.uniform(*heights), rng.uniform(*speeds), colours


def sample_vehicle(rng: np.random.Generator):
    """(kind, width_m, depth_m, height_m, colours) of a moving vehicle."""
    kind = _pick(rng, {"car": 0.75, "van": 0.2, "truck": 0.05})
    size_kind = {"car": "parked_car", "van": "van", "truck": "truck"}[kind]
    w, length, h = sample_box_size(rng, size_kind)
    return kind, w, length, h, (_colour(rng, VEHICLE_COLOURS),)


def sample_occluder_kind(rng: np.random.Generator, scene: str) -> str:
    return _pick(rng, KEY_OCCLUDERS[scene])


def sample_box_size(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    return tuple(float(rng.uniform(*r)) for r in BOXES[kind])


def make_box(rng, kind: str, sign: float, x_in: float, width: float, z0: float, z1: float, height: float) -> Box:
    """A box whose inner face (towards the road centre) is at |X| = x_in on the side given by sign."""
    palette = {"wall": WALL_COLOURS, "vegetation": HEDGE_COLOURS}.get(kind, VEHICLE_COLOURS)
    x0, x1 = (x_in, x_in + width) if sign > 0 else (-(x_in + width), -x_in)
    return Box(kind, x0, x1, z0, z1, height, _colour(rng, palette))


def parked_rows(rng: np.random.Generator, route: Route, z_from: float, z_to: float) -> list[Box]:
    """Walls/hedges along the kerb in stretches, and vehicles parked in the strip (urban) or on the shoulder."""
    road, boxes = route.road, []
    fences = {"urban": 0.25, "rural": 0.6}[route.scene]
    fill = rng.uniform(0.3, 0.9) if route.scene == "urban" else rng.uniform(0.05, 0.3)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        if rng.random() < fences:
            kind = "wall" if rng.random() < 0.5 else "vegetation"
            z = z_from + rng.uniform(0, 20)
            while z < z_to:
                w, length, h = sample_box_size(rng, kind)
                boxes.append(make_box(rng, kind, sign, road.edge_m(side) + rng.uniform(0.1, 0.6), w, z, z + length, h))
                z += length + rng.uniform(3.0, 25.0)
        strip = road.edge_m(side) - road.lanes_edge_m(side)
        z = z_from + rng.uniform(0, 8)
        while z < z_to:
            if rng.random() >= fill:
                z += rng.uniform(3.0, 12.0)
                continue
            kind = _pick(rng, PARKED[route.scene])
            w, length, h = sample_box_size(rng, kind)
            x_in = road.lanes_edge_m(side) + rng.uniform(0.1, max(0.12, strip - w - 0.05))
            box = make_box(rng, kind, sign, x_in, w, z, z + length, h)
            if not any(_overlap(box, other) for other in boxes):
                boxes.append(box)
            z += length + rng.uniform(0.6, 3.0)
    return boxes


def _overlap(a: Box, b: Box) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.z0 < b.z1 and b.z0 < a.z1


def clear_around(boxes: list[Box], side: str, z_from: float, z_to: float, actor: Mover) -> list[Box]:
    """Drop boxes where the key occluder and the actor's gap go, and any box across the actor's crossing line."""
    sign = -1.0 if side == "left" else 1.0
    z_lo, z_hi = actor.z0 - actor.depth_m / 2 - 0.5, actor.z0 + actor.depth_m / 2 + 0.5
    kept = []
    for b in boxes:
        same_side = (b.x0 + b.x1) * sign > 0
        if same_side and b.z0 < z_to and b.z1 > z_from:
            continue
        if b.z0 < z_hi and b.z1 > z_lo:
            continue
        kept.append(b)
    return kept


def clear_sightline(boxes: list[Box], side: str, actor: Mover, v0: float, t_event: float) -> list[Box]:
    """Drop every box that would hide any part of a crossing actor before it reaches the path: it is seen coming."""
    kept = clear_around(boxes, side, actor.z0, actor.z0, actor)
    times = np.linspace(0.0, t_event, 16)
    return [b for b in kept if not any(blocks(b, actor, t, v0 * t) for t in times)]


def _relative(box: Box, actor: Mover, t: float, ego_z: float):
    sign = 1.0 if actor.x_wait > 0 else -1.0
    a, b = sorted((sign * box.x0, sign * box.x1))
    x = sign * actor.x_at(t)
    zn = actor.z_at(t) - actor.depth_m / 2 - ego_z
    z0r, z1r = box.z0 - ego_z, min(box.z1 - ego_z, zn)
    return a, b, x - actor.width_m / 2, x + actor.width_m / 2, zn, z0r, z1r


def hidden(box: Box, actor: Mover, t: float, ego_z: float, margin_m: float = 0.1) -> bool:
    """True if `box` hides all of `actor` from the camera at time t (camera at Z=ego_z). Top view: every ray to the
    actor's footprint must pass through the box; side view: the box is taller than both the camera and the actor,
    so no ray can pass over it."""
    a, b, p, q, zn, z0r, z1r = _relative(box, actor, t, ego_z)
    if z0r < 0.5 or zn <= z0r or p <= 0:
        return False
    for e in (p, q):
        if not (e * z1r / zn >= a + margin_m and e * z0r / zn <= b - margin_m):
            return False
    return box.height_m >= max(CAMERA_HEIGHT_M, actor.height_m) + 0.05


def blocks(box: Box, actor: Mover, t: float, ego_z: float) -> bool:
    """True if `box` might hide any part of `actor` at time t (conservative: ignores heights)."""
    a, b, p, q, zn, z0r, z1r = _relative(box, actor, t, ego_z)
    if zn <= 0 or z0r >= zn or z1r <= 0:
        return False
    z0r = max(z0r, 0.1)
    lo, hi = min(p, 0.0) * z1r / zn + max(p, 0.0) * z0r / zn, q * z1r / zn
    return lo < b + 0.1 and hi > a - 0.1


def near_in_z(other: Mover, actor: Mover, duration_s: float, margin_m: float) -> bool:
    return any(abs(other.z_at(t) - actor.z_at(t)) < margin_m for t in np.linspace(0.0, duration_s, 11))


def props(rng: np.random.Generator, route: Route, z_from: float, z_to: float) -> list[Prop]:
    """Lamp posts and trees on the pavement or verge: they stream past and show the ego speed."""
    road, out = route.road, []
    for side, sign in (("left", -1.0), ("right", 1.0)):
        x_kerb = road.edge_m(side)
        if route.scene == "urban":
            for z in np.arange(z_from + rng.uniform(0, 30), z_to, rng.uniform(22, 35)):
                out.append(Prop("pole", sign * (x_kerb + 0.4), float(z), rng.uniform(6.0, 8.0), (95, 98, 104)))
            if rng.random() < 0.6:
                for z in np.arange(z_from + rng.uniform(0, 10), z_to, rng.uniform(8, 15)):
                    out.append(
                        Prop(
                            "tree",
                            sign * (x_kerb + rng.uniform(1.0, road.sidewalk_m)),
                            float(z),
                            rng.uniform(4.5, 7.0),
                            _colour(rng, HEDGE_COLOURS),
                        )
                    )
        else:
            z = z_from + rng.uniform(0, 10)
            while z < z_to:
                out.append(
                    Prop(
                        "tree",
                        sign * (x_kerb + rng.uniform(1.5, 6.0)),
                        z,
                        rng.uniform(5.0, 10.0),
                        _colour(rng, HEDGE_COLOURS),
                    )
                )
                z += rng.uniform(4.0, 30.0)
            for z in np.arange(z_from + rng.uniform(0, 40), z_to, 40.0):
                out.append(Prop("pole", sign * (x_kerb + 1.0), float(z), 7.5, (110, 90, 70)))
    return out


def walkers(rng: np.random.Generator, route: Route, duration_s: float, v0: float) -> list[Mover]:
    """People walking along the pavement: pedestrians are everywhere, not only in positive clips."""
    road, out = route.road, []
    for _ in range(int(rng.integers(0, 4 if route.scene == "urban" else 2))):
        side = "left" if rng.random() < 0.5 else "right"
        sign = -1.0 if side == "left" else 1.0
        kind = "child" if rng.random() < 0.2 else "pedestrian"
        w, dep, heights, _ = ACTORS[kind]
        top, bottom = rng.choice(len(CLOTHES), size=2, replace=False)
        x = sign * (road.edge_m(side) + rng.uniform(0.5, max(0.6, road.sidewalk_m - 0.4)))
        out.append(
            Mover(
                kind,
                w,
                dep,
                rng.uniform(*heights),
                x,
                x,
                1.0,
                0.0,
                rng.uniform(8.0, v0 * duration_s + 60),
                rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6),
                (CLOTHES[top], CLOTHES[bottom], _colour(rng, SKIN), (0, 0, 0)),
            )
        )
    return out


def traffic(rng: np.random.Generator, route: Route, v0: float, duration_s: float, skip_sides=()) -> list[Mover]:
    """Vehicles keeping to the other lanes: the look-alikes of a cut-in (same direction) and oncoming cars."""
    road, out = route.road, []
    for side, lane in (("left", road.left_lane), ("right", road.right_lane)):
        if lane is None or side in skip_sides:
            continue
        sign = -1.0 if side == "left" else 1.0
        lane_cars: list[Mover] = []
        for _ in range(int(rng.integers(0, 3))):
            kind, w, dep, h, colours = sample_vehicle(rng)
            if lane == "same":
                speed, z0, facing = v0 + rng.uniform(-3.0, 3.0), rng.uniform(8.0, 70.0), "away"
            else:
                speed, z0, facing = -rng.uniform(8.0, 14.0), rng.uniform(30.0, 160.0), "towards"
            x = sign * road.lane_w_m + rng.uniform(-0.3, 0.3)
            car = Mover(kind, w, dep, h, x, x, 1.0, 0.0, z0, speed, colours, facing)
            if not any(near_in_z(car, other, duration_s, 9.0) for other in lane_cars):
                lane_cars.append(car)
        out += lane_cars
    return out
