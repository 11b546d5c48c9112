"""Drawing solid roadside things and vehicles: a box seen from behind (rear face) and from the road (inner side face),
with windows, lights and wheels where the box is a vehicle; walls, hedges, lamp posts and trees."""

from __future__ import annotations

import math

import numpy as np

from ghostprobe.synth.draw import FAR_M, NEAR_M, Camera, Canvas, Lighting, pack_array, plane_columns

GLASS = (38, 46, 58)
TYRE = (22, 22, 24)
# Level of detail by height on screen: a plain box below DETAIL_PX, windows and tyres from there, lamps and number
# plate from FULL_DETAIL_PX. Far vehicles are most of the boxes and only a few pixels tall.
DETAIL_PX = 7
FULL_DETAIL_PX = 16
PROP_FAR_M = 55.0  # poles and trees further away are a few pixels: the backdrop stands in for them


def draw_box(
    cv: Canvas,
    cam: Camera,
    light: Lighting,
    kind: str,
    x0: float,
    x1: float,
    z0r: float,
    z1r: float,
    height: float,
    colour,
    facing: str = "away",
    owner: bool = False,
    world_z0: float = 0.0,
) -> None:
    """A box from x0..x1 (lateral), z0r..z1r (depth from the camera), 0..height; `kind` picks the decoration."""
    if z1r <= NEAR_M or z0r >= FAR_M:
        return
    side_x = x1 if x1 < 0 else (x0 if x0 > 0 else None)
    if side_x is not None:
        edge = cam.x(side_x, z1r)
        if edge < -1 or edge > cam.width + 1:
            return  # the whole box is outside the field of view
    z_near = max(z0r, NEAR_M)
    x_mid = 0.5 * (x0 + x1)
    base = light.shade(colour, z_near, x_mid)
    px_high = cam.f * height / z_near
    detailed, full = px_high >= DETAIL_PX, px_high >= FULL_DETAIL_PX
    vehicle = kind not in ("wall", "vegetation")
    bottom = 0.3 if vehicle and detailed else 0.0
    if side_x is not None:
        cols = plane_columns(cam, side_x, z_near, z1r)
        if cols is not None:
            c0, depth = cols
            side_colour = light.shade(colour, 0.5 * (z_near + z1r), side_x, dim=0.78)
            _side_face(cv, cam, light, kind, c0, depth, height, side_colour, detailed, owner, world_z0 - z0r)
    if z0r < NEAR_M:
        return
    ya, yb = cam.y(height, z0r), cam.y(bottom, z0r)
    xa, xb = cam.x(x0, z0r), cam.x(x1, z0r)
    cv.rect(xa, xb, ya, yb, z0r, base, owner)
    if vehicle and detailed:
        # Tyres and the shadow under the bumper, edge to edge: nothing behind shows through below the body.
        cv.rect(xa, xb, yb, cam.y(0.0, z0r), z0r, light.shade(TYRE, z0r), owner)
        _vehicle_back(cv, cam, light, kind, x0, x1, z0r, height, facing, owner, full)


def _vehicle_back(cv, cam, light, kind, x0, x1, z, h, facing, owner, full):
    d = z - 0.01
    glass = light.shade(GLASS, z, 0.5 * (x0 + x1))
    if kind == "truck":
        cv.rect(
            cam.x(0.5 * (x0 + x1) - 0.02, z),
            cam.x(0.5 * (x0 + x1) + 0.02, z),
            cam.y(h - 0.1, z),
            cam.y(0.5, z),
            d,
            light.shade((60, 60, 60), z),
            owner,
        )
    else:
        low = {"parked_car": 0.62, "car": 0.62, "van": 0.6, "bus": 0.55}.get(kind, 0.6)
        cv.rect(cam.x(x0 + 0.18, z), cam.x(x1 - 0.18, z), cam.y(h * 0.94, z), cam.y(h * low, z), d, glass, owner)
    if not full:
        return
    lit = light.emissive_ok
    if facing == "towards":
        lamp = light.shade((250, 245, 220), z, emissive=lit) if lit else light.shade((210, 210, 200), z)
    else:
        lamp = light.shade((255, 40, 30), z, emissive=True) if lit else light.shade((190, 25, 25), z)
    for xa in (x0 + 0.08, x1 - 0.38):
        cv.rect(
            cam.x(xa, z),
            cam.x(xa + 0.3, z),
            cam.y(min(1.05, 0.6 * h), z),
            cam.y(min(0.85, 0.48 * h), z),
            d,
            lamp,
            owner,
        )
    mid = 0.5 * (x0 + x1)
    cv.rect(
        cam.x(mid - 0.25, z),
        cam.x(mid + 0.25, z),
        cam.y(0.55, z),
        cam.y(0.42, z),
        d,
        light.shade((225, 225, 215), z),
        owner,
    )


def _side_face(cv, cam, light, kind, c0, depth, h, colour, detailed, owner, z_offset):
    """The face of a box that looks onto the road, as bands: body, windows, sill (vehicles), a coping and pillars
    (walls), a ragged top (hedges). z_offset turns a column's depth into its world Z, so texture stays put."""
    ground = cam.y(0.0, depth)
    if kind == "vegetation":
        zw = depth + z_offset
        wobble = 0.18 * (np.sin(zw * 2.3) + np.sin(zw * 5.1 + 1.0))
        cv.bands(c0, [cam.y(h + wobble, depth), ground], depth, [colour], owner)
    elif kind == "wall":
        if not detailed:
            cv.bands(c0, [cam.y(h, depth), ground], depth, [colour], owner)
            return
        pillar = ((depth + z_offset) % 3.0) < 0.3
        body = np.where(pillar[:, None], 0.7, 1.0) * np.asarray(colour, np.float32)[None, :]
        cv.bands(
            c0,
            [cam.y(h, depth), cam.y(h - 0.15, depth), ground],
            depth,
            [pack_array(np.clip(body * 1.15, 0, 255)), pack_array(body)],
            owner,
        )
    elif not detailed:
        cv.bands(c0, [cam.y(h, depth), ground], depth, [colour], owner)
    else:
        sill = cam.y(0.3, depth)
        tyre = light.shade(TYRE, float(depth[0]))
        lo, hi = {"bus": (0.5, 0.8), "van": (0.58, 0.85), "truck": (None, None)}.get(kind, (0.6, 0.92))
        if lo is None:
            cv.bands(c0, [cam.y(h, depth), sill, ground], depth, [colour, tyre], owner)
        else:
            glass = light.shade(GLASS, float(depth[0]))
            cv.bands(
                c0,
                [cam.y(h, depth), cam.y(h * hi, depth), cam.y(h * lo, depth), sill, ground],
                depth,
                [colour, glass, colour, tyre],
                owner,
            )


def draw_prop(cv: Canvas, cam: Camera, light: Lighting, kind: str, x: float, zr: float, height: float, colour) -> None:
    """A lamp post (with a lamp that glows after dark) or a tree (trunk and canopy)."""
    if zr <= NEAR_M or zr >= PROP_FAR_M:
        return
    xs = cam.x(x, zr)
    if xs < -cam.width * 0.3 or xs > cam.width * 1.3:
        return
    if kind == "pole":
        cv.rect(
            cam.x(x - 0.08, zr), cam.x(x + 0.08, zr), cam.y(height, zr), cam.y(0, zr), zr, light.shade(colour, zr, x)
        )
        arm = -1.4 if x > 0 else 1.4
        cv.rect(
            cam.x(x, zr),
            cam.x(x + arm, zr),
            cam.y(height, zr),
            cam.y(height - 0.12, zr),
            zr,
            light.shade(colour, zr, x),
        )
        lamp = (255, 230, 170) if light.emissive_ok else (200, 200, 190)
        cv.rect(
            cam.x(x + arm * 0.8, zr),
            cam.x(x + arm * 1.05, zr),
            cam.y(height - 0.1, zr),
            cam.y(height - 0.25, zr),
            zr - 0.01,
            light.shade(lamp, zr, x, emissive=light.emissive_ok),
        )
    else:
        trunk = light.shade((85, 65, 45), zr, x)
        cv.rect(cam.x(x - 0.13, zr), cam.x(x + 0.13, zr), cam.y(height * 0.55, zr), cam.y(0, zr), zr, trunk)
        r = 0.3 * height
        leaves = light.shade(colour, zr, x)
        cv.disc(cam.x(x, zr), cam.y(height - r, zr), cam.f * r / zr, zr - 0.3, leaves)


def walk_phase(distance_m: float, stride_m: float = 1.4) -> float:
    return math.sin(2 * math.pi * distance_m / stride_m)
