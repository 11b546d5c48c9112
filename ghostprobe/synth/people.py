"""Drawing movers: pedestrians and children (walking legs), cyclists, e-scooter and motorcycle riders seen side-on
while they cross, and vehicles in the other lanes. Each is a handful of flat parts at the mover's near depth."""

from __future__ import annotations

from ghostprobe.synth.draw import FAR_M, NEAR_M, Camera, Canvas, Lighting
from ghostprobe.synth.objects import TYRE, draw_box, walk_phase
from ghostprobe.synth.world import Mover

HAIR = (45, 32, 22)
SPOKES = (150, 150, 150)


def draw_mover(cv: Canvas, cam: Camera, light: Lighting, m: Mover, t: float, ego_z: float, owner: bool) -> None:
    """Draw `m` at time t for an ego at ego_z; `owner` marks its pixels as the key actor's."""
    x, z = m.x_at(t), m.z_at(t)
    zr = z - m.depth_m / 2 - ego_z
    if m.kind in ("car", "van", "truck"):
        draw_box(
            cv,
            cam,
            light,
            m.kind,
            x - m.width_m / 2,
            x + m.width_m / 2,
            zr,
            zr + m.depth_m,
            m.height_m,
            m.colours[0],
            facing=m.facing,
            owner=owner,
        )
        return
    if zr <= NEAR_M or zr >= FAR_M:
        return
    xs = cam.x(x, zr)
    if xs < -cam.width * 0.5 or xs > cam.width * 1.5:
        return
    direction = 1.0 if m.x_stop >= m.x_wait else -1.0
    moved = abs(x - m.x_wait) + abs(z - m.z0)
    parts = _Parts(cv, cam, light, x, zr, owner)
    top, bottom, skin, ride = m.colours
    if m.kind in ("pedestrian", "child"):
        swing = walk_phase(moved) if moved > 0 and (m.moving_x(t) or m.speed_z_mps) else 0.0
        _person(parts, m.height_m, top, bottom, skin, swing, child=m.kind == "child")
    elif m.kind == "cyclist":
        _cyclist(parts, m.height_m, top, bottom, skin, ride, direction, walk_phase(moved, 2.0))
    elif m.kind == "scooter":
        _scooter(parts, m.height_m, top, bottom, skin, direction)
    elif m.kind == "motorcycle":
        _motorcycle(parts, m.height_m, top, bottom, ride, direction)
    else:
        raise ValueError(f"cannot draw mover kind {m.kind!r}")


class _Parts:
    """Rectangles and discs in metres relative to the mover's position, all at (almost) its depth."""

    def __init__(self, cv, cam, light, x, zr, owner):
        self.cv, self.cam, self.light, self.x, self.zr, self.owner = cv, cam, light, x, zr, owner

    def rect(self, dx0, dx1, y0, y1, colour, bias=0.0):
        c, z = self.cam, self.zr
        self.cv.rect(
            c.x(self.x + dx0, z),
            c.x(self.x + dx1, z),
            c.y(y1, z),
            c.y(y0, z),
            z - bias,
            self.light.shade(colour, z, self.x),
            self.owner,
        )

    def disc(self, dx, y, r, colour, bias=0.0, emissive=False):
        c, z = self.cam, self.zr
        self.cv.disc(
            c.x(self.x + dx, z),
            c.y(y, z),
            c.f * r / z,
            z - bias,
            self.light.shade(colour, z, self.x, emissive=emissive),
            self.owner,
        )


def _person(p: _Parts, h: float, top, bottom, skin, swing: float, child: bool, dx: float = 0.0, y0: float = 0.0):
    s = h / 1.75
    head_r = (0.1 if child else 0.075) * h
    hip = y0 + (0.42 if child else 0.47) * h
    shoulder = y0 + h - 2.1 * head_r
    for sign in (-1.0, 1.0):
        centre = dx + sign * (0.07 * s + 0.13 * s * swing)
        p.rect(centre - 0.065 * s, centre + 0.065 * s, y0, hip + 0.02, bottom)
        p.rect(
            dx + sign * 0.19 * s - 0.045 * s,
            dx + sign * 0.19 * s + 0.045 * s,
            shoulder - 0.3 * s,
            shoulder,
            tuple(int(c * 0.8) for c in top),
            bias=0.01,
        )
    p.rect(dx - 0.17 * s, dx + 0.17 * s, hip - 0.02, shoulder + 0.02, top, bias=0.02)
    p.disc(dx, y0 + h - head_r, head_r, skin, bias=0.02)
    p.rect(dx - 0.8 * head_r, dx + 0.8 * head_r, y0 + h - 0.6 * head_r, y0 + h, HAIR, bias=0.03)


def _wheel(p: _Parts, dx: float, r: float):
    p.disc(dx, r, r, TYRE)
    p.disc(dx, r, 0.72 * r, SPOKES, bias=0.01)


def _cyclist(p: _Parts, h, top, bottom, skin, bike, d, pedal):
    s = h / 1.75
    _wheel(p, -0.52 * d, 0.34)
    _wheel(p, 0.52 * d, 0.34)
    p.rect(min(-0.5 * d, 0.45 * d), max(-0.5 * d, 0.45 * d), 0.55, 0.63, bike, bias=0.02)
    p.rect(-0.16 * d - 0.03, -0.16 * d + 0.03, 0.4, 0.92, bike, bias=0.02)
    p.rect(0.42 * d - 0.03, 0.42 * d + 0.03, 0.55, 1.05, bike, bias=0.02)
    for k in (-1.0, 1.0):  # pedalling legs
        knee = -0.05 * d + 0.12 * d * k * pedal
        p.rect(knee - 0.07, knee + 0.07, 0.3 + 0.12 * k * pedal, 0.95 * s, bottom, bias=0.03)
    p.rect(-0.18 * d - 0.18 * s, -0.18 * d + 0.18 * s + 0.1 * d, 0.92 * s, 1.45 * s, top, bias=0.04)
    p.rect(min(0.05 * d, 0.42 * d), max(0.05 * d, 0.42 * d), 1.2 * s, 1.3 * s, top, bias=0.05)
    p.disc(0.02 * d, h - 0.13 * s, 0.13 * s, skin, bias=0.05)
    p.rect(0.02 * d - 0.13 * s, 0.02 * d + 0.13 * s, h - 0.1 * s, h, bottom, bias=0.06)  # helmet


def _scooter(p: _Parts, h, top, bottom, skin, d):
    p.disc(-0.42 * d, 0.1, 0.1, TYRE)
    p.disc(0.42 * d, 0.1, 0.1, TYRE)
    p.rect(-0.45, 0.45, 0.08, 0.17, (40, 40, 44), bias=0.01)
    p.rect(0.42 * d - 0.03, 0.42 * d + 0.03, 0.17, 1.05, (70, 70, 76), bias=0.01)
    _person(p, h - 0.17, top, bottom, skin, 0.15, child=False, dx=-0.05 * d, y0=0.17)


def _motorcycle(p: _Parts, h, top, helmet, body, d):
    s = h / 1.5
    _wheel(p, -0.7 * d, 0.32)
    _wheel(p, 0.7 * d, 0.32)
    p.rect(min(-0.62 * d, 0.6 * d), max(-0.62 * d, 0.6 * d), 0.35, 0.8, body, bias=0.02)
    p.rect(min(-0.5 * d, 0.1 * d), max(-0.5 * d, 0.1 * d), 0.78, 0.9, (30, 30, 32), bias=0.02)
    lamp = (255, 245, 210) if p.light.emissive_ok else (220, 220, 210)
    p.disc(0.66 * d, 0.75, 0.08, lamp, bias=0.03, emissive=p.light.emissive_ok)
    p.rect(-0.2 * d - 0.08, -0.2 * d + 0.08, 0.45, 0.95 * s, (40, 40, 60), bias=0.03)
    p.rect(-0.12 * d - 0.2 * s, -0.12 * d + 0.2 * s, 0.88 * s, h - 0.3 * s, top, bias=0.04)
    p.disc(-0.05 * d, h - 0.15 * s, 0.15 * s, helmet, bias=0.05)
