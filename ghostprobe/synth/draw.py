"""Rasterising: a pinhole camera, light and fog, and a z-buffered canvas of flat primitives (rectangles, discs, and
vertical faces drawn column by column).

The z-buffer is what keeps the labels honest: a primitive only lands where it is nearer than what is already there,
and `owner` marks the pixels where the key actor is what the camera sees, so hidden parts count as hidden.
"""

from __future__ import annotations

import math

import numpy as np

from ghostprobe.synth.world import CAMERA_HEIGHT_M, Route

NEAR_M = 0.5  # nothing nearer than this is drawn
FAR_M = 90.0  # objects further than this (a car: < 4 px high at 320 wide) are left to the backdrop


class Camera:
    """Pinhole camera at the ego lane centre, CAMERA_HEIGHT_M above the road, looking down the road."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.f = 0.75 * width  # ~67 degrees horizontal field of view, like a dashcam
        self.cx = width / 2
        self.horizon = 0.45 * height  # dashcams tilt slightly down: more road than sky

    def x(self, x_m: float, z_m: float) -> float:
        return self.cx + self.f * x_m / z_m

    def y(self, y_m: float, z_m: float) -> float:
        return self.horizon + self.f * (CAMERA_HEIGHT_M - y_m) / z_m


class Lighting:
    """Light level (ambient, tint, headlights) and fog of a route, applied to colours by distance and position."""

    def __init__(self, route: Route, rng: np.random.Generator):
        base = {"day": rng.uniform(0.9, 1.1), "dusk": 0.6, "night": 0.17 if route.scene == "rural" else 0.24}
        self.ambient = base[route.light] * (0.8 if route.weather == "rain" else 1.0)
        self.tint = {"day": (1.0, 1.0, 1.0), "dusk": (1.05, 0.86, 0.72), "night": (0.92, 0.94, 1.05)}[route.light]
        self.headlights = {"day": 0.0, "dusk": 0.35, "night": 1.15}[route.light]
        self.fog_m = route.fog_m
        fog = {"fog": (196, 199, 204), "rain": (150, 156, 164), "clear": (0, 0, 0)}[route.weather]
        self.fog_colour = tuple(c * min(1.0, self.ambient * (1.0 if route.light == "day" else 1.4)) for c in fog)
        self.emissive_ok = route.light != "day"  # lamps, tail lights and windows glow only when it is dark

    def factor(self, z_m, x_m):
        """Light multiplier at distance z and lateral x (arrays or floats)."""
        if not self.headlights:
            return self.ambient
        z = np.maximum(z_m, 0.5)
        beam = np.exp(-np.square(x_m / (1.0 + 0.22 * z))) * np.minimum(1.0, np.square(9.0 / z))
        return self.ambient + self.headlights * beam

    def fog(self, z_m):
        if self.fog_m is None:
            return 0.0
        return 1.0 - np.exp(-np.asarray(z_m) / self.fog_m)

    def shade(self, colour, z_m: float, x_m: float = 0.0, emissive: bool = False, dim: float = 1.0):
        """One colour as seen at (x, z): lit (unless emissive), fogged, as a uint8 RGB tuple."""
        # Plain scalar arithmetic on purpose: this runs for every part of every object in every frame.
        if emissive:
            kr = kg = kb = 1.0
        else:
            light = self.ambient
            if self.headlights:
                z = z_m if z_m > 0.5 else 0.5
                reach = min(1.0, 9.0 / z)
                light += self.headlights * math.exp(-((x_m / (1.0 + 0.22 * z)) ** 2)) * reach * reach
            light *= dim
            kr, kg, kb = light * self.tint[0], light * self.tint[1], light * self.tint[2]
        if self.fog_m:
            a = 1.0 - math.exp(-z_m / self.fog_m)
            keep = 1.0 - a
            fr, fg, fb = (c * a + 0.5 for c in self.fog_colour)
        else:
            keep, fr, fg, fb = 1.0, 0.5, 0.5, 0.5
        r, g, b = colour
        r, g, b = int(r * kr * keep + fr), int(g * kg * keep + fg), int(b * kb * keep + fb)
        return (r if r < 255 else 255, g if g < 255 else 255, b if b < 255 else 255)

    def shade_array(self, colours: np.ndarray, z_m: np.ndarray, x_m: np.ndarray) -> np.ndarray:
        """Vectorised shade for images: colours [..., 3] float, z and x broadcastable to colours[..., 0]."""
        k = np.asarray(self.factor(z_m, x_m), dtype=np.float32)[..., None]
        out = colours * k * np.asarray(self.tint, dtype=np.float32)
        if self.fog_m:
            a = np.asarray(self.fog(z_m), dtype=np.float32)[..., None]
            out = out * (1 - a) + np.asarray(self.fog_colour, dtype=np.float32) * a
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


PACKED = np.dtype("<u4")


def _px(v: float) -> int:
    return math.floor(v + 0.5)


def pack(colour) -> int:
    """RGB tuple -> one little-endian uint32 (bytes r, g, b, 0): a whole pixel is written in one store."""
    r, g, b = colour
    return int(r) | int(g) << 8 | int(b) << 16


def pack_array(colours: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> uint32 [...] packed as `pack` does."""
    c = np.asarray(colours, np.uint8).astype(PACKED)
    return c[..., 0] | c[..., 1] << 8 | c[..., 2] << 16


def unpack_view(packed: np.ndarray) -> np.ndarray:
    """uint32 [H, W] packed frame -> uint8 [H, W, 3] RGB view of the same memory."""
    return packed.view(np.uint8).reshape(packed.shape + (4,))[..., :3]


class Canvas:
    """Frame (packed RGB), depth and key-actor ownership buffers; every primitive is depth-tested. `frame` may be
    rebound to any packed [H, W] array to draw straight into it."""

    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        self.frame = np.zeros((height, width), PACKED)
        self.depth = np.empty((height, width), np.float32)
        self.owner = np.zeros((height, width), bool)

    def reset(self, background: np.ndarray) -> None:
        np.copyto(self.frame, background)
        self.depth.fill(np.inf)
        self.owner.fill(False)

    def rgb(self) -> np.ndarray:
        return unpack_view(self.frame)

    def _paint(self, r0, r1, c0, c1, mask, depth, colour, owner):
        region = self.depth[r0:r1, c0:c1]
        visible = region > depth
        if mask is not None:
            visible &= mask
        frame = self.frame[r0:r1, c0:c1]
        if isinstance(colour, int) and visible.all():
            # Nothing nearer there yet (the common case): plain slice writes, no fancy indexing.
            region[...] = depth
            frame[...] = colour
            self.owner[r0:r1, c0:c1] = owner
            return
        region[visible] = depth if np.ndim(depth) == 0 else np.broadcast_to(depth, visible.shape)[visible]
        frame[visible] = colour if isinstance(colour, int) else np.broadcast_to(colour, visible.shape)[visible]
        self.owner[r0:r1, c0:c1][visible] = owner

    def rect(self, x0, x1, y0, y1, depth, colour, owner=False) -> None:
        # The hottest call of the renderer (~70 per frame): plain comparisons instead of min/max/floor. int(v + 0.5)
        # rounds like floor(v + 0.5) for v >= -0.5, and anything below that is clipped to 0 either way.
        if x0 > x1:
            x0, x1 = x1, x0
        if y0 > y1:
            y0, y1 = y1, y0
        c0, c1, r0, r1 = int(x0 + 0.5), int(x1 + 0.5), int(y0 + 0.5), int(y1 + 0.5)
        if c0 < 0:
            c0 = 0
        if r0 < 0:
            r0 = 0
        if c1 > self.w:
            c1 = self.w
        if r1 > self.h:
            r1 = self.h
        if c1 > c0 and r1 > r0:
            self._paint(r0, r1, c0, c1, None, depth, pack(colour), owner)

    def disc(self, xc, yc, radius, depth, colour, owner=False) -> None:
        c0, c1 = max(_px(xc - radius), 0), min(_px(xc + radius), self.w)
        r0, r1 = max(_px(yc - radius), 0), min(_px(yc + radius), self.h)
        if c1 <= c0 or r1 <= r0:
            return
        ys = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - yc
        xs = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - xc
        self._paint(r0, r1, c0, c1, ys * ys + xs * xs <= radius * radius, depth, pack(colour), owner)

    def _row_span(self, top: np.ndarray, bottom: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        """The rows [r0, r1) on screen that per-column spans [top, bottom) touch, and their centres as a column;
        None when there are none."""
        if len(top) == 0:
            return None
        r0 = max(_px(float(np.min(top))), 0)
        r1 = min(_px(float(np.max(bottom))), self.h)
        if r1 <= r0:
            return None
        return r0, r1, np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5

    def columns(self, c0: int, top: np.ndarray, bottom: np.ndarray, depth: np.ndarray, colour, owner=False) -> None:
        """A shape given per column from column c0: rows [top, bottom) at the given depth; colour [3] or [n, 3]."""
        span = self._row_span(top, bottom)
        if span is None:
            return
        r0, r1, rows = span
        mask = (rows >= top[None, :]) & (rows < bottom[None, :])
        colour = pack(colour) if np.ndim(colour) == 1 else pack_array(np.clip(colour, 0, 255))[None, :]
        self._paint(r0, r1, c0, c0 + len(top), mask, depth[None, :], colour, owner)

    def bands(self, c0: int, edges: list, depth: np.ndarray, colours: list, owner=False) -> None:
        """Horizontal bands stacked per column from column c0: band j spans rows [edges[j], edges[j+1]) (edges
        top to bottom, arrays per column) in colours[j] (RGB tuple, or packed uint32 per column). One depth test
        for a whole face: cheaper than a primitive per band."""
        top, bottom = edges[0], edges[-1]
        span = self._row_span(top, bottom)
        if span is None:
            return
        r0, r1, rows = span
        band = np.zeros((r1 - r0, len(top)), np.intp)
        for edge in edges:
            band += rows >= edge[None, :]
        mask = (band > 0) & (band < len(edges))
        lut = np.zeros((len(colours) + 2, len(top)), PACKED)
        for j, colour in enumerate(colours):
            lut[j + 1] = pack(colour) if isinstance(colour, tuple) else colour
        self._paint(r0, r1, c0, c0 + len(top), mask, depth[None, :], np.take_along_axis(lut, band, axis=0), owner)


def plane_columns(cam: Camera, plane_x_m: float, z_a: float, z_b: float):
    """Screen columns covered by the vertical plane X = plane_x_m between depths z_a and z_b, with the exact depth
    of each column (for a plane at constant X, 1/depth is linear in screen x). Returns (c0, depths) or None."""
    if plane_x_m == 0:
        return None
    xa, xb = cam.x(plane_x_m, z_a), cam.x(plane_x_m, z_b)
    c0, c1 = max(_px(min(xa, xb)), 0), min(_px(max(xa, xb)), cam.width)
    if c1 <= c0:
        return None
    cols = np.arange(c0, c1, dtype=np.float32) + 0.5
    with np.errstate(divide="ignore"):
        depth = cam.f * plane_x_m / (cols - cam.cx)
    depth = np.clip(depth, min(z_a, z_b), max(z_a, z_b)).astype(np.float32)
    return c0, depth
