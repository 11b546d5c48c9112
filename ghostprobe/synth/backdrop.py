"""The parts of a frame behind every object: sky, distant skyline, the road surface with its markings, building
fronts or a tree line along the road, the ego car's bonnet, and rain streaks.

Most of it is computed once per clip; what moves with the ego (dashes, bay lines, patches, facades) is a cheap
per-frame lookup from the distance each row or column shows, plus how far the ego has driven.
"""

from __future__ import annotations

import numpy as np

from ghostprobe.synth.draw import FAR_M, NEAR_M, Camera, Lighting, pack_array
from ghostprobe.synth.world import CAMERA_HEIGHT_M, Route

SKY = {
    "day": ((95, 145, 215), (190, 210, 230)),
    "dusk": ((60, 55, 110), (235, 140, 85)),
    "night": ((6, 8, 18), (24, 28, 44)),
}
FACADES = [(200, 190, 170), (170, 165, 160), (150, 90, 70), (215, 215, 210), (110, 130, 150), (185, 160, 120)]
TREES = [(40, 80, 40), (55, 95, 45), (35, 70, 45), (70, 90, 40)]
_TABLE = 1024  # building and tree segments repeat after this many: far longer than any clip drives


class Backdrop:
    """Static background image plus the moving road and roadside textures of one route."""

    def __init__(self, route: Route, cam: Camera, light: Lighting, rng: np.random.Generator):
        self.cam, self.light, self.route = cam, light, route
        h, w = cam.height, cam.width
        self.rgb = np.empty((h, w, 3), np.uint8)
        self._sky(rng)
        self.row0 = int(np.floor(cam.horizon)) + 1
        rows = np.arange(self.row0, h, dtype=np.float32) + 0.5
        # Each ground row sees the road between these two distances (row top and bottom edges).
        self.z_row = cam.f * CAMERA_HEIGHT_M / (rows - cam.horizon)
        self.z_far_edge = cam.f * CAMERA_HEIGHT_M / np.maximum(rows - 0.5 - cam.horizon, 1e-3)
        self.z_near_edge = cam.f * CAMERA_HEIGHT_M / (rows + 0.5 - cam.horizon)
        self._ground(rng)
        self._markings(rng)
        self._facades(rng)
        self.image = pack_array(self.rgb)  # what every frame starts from

    def _sky(self, rng):
        cam, light = self.cam, self.light
        top, bottom = (np.array(c, np.float32) for c in SKY[self.route.light])
        rows = np.arange(cam.height, dtype=np.float32) / max(cam.horizon, 1.0)
        sky = top + (bottom - top) * np.clip(rows, 0, 1)[:, None]
        sky = np.broadcast_to(sky[:, None, :], (cam.height, cam.width, 3)).copy()
        if self.route.weather == "rain":
            sky = sky * 0.5 + np.array(light.fog_colour, np.float32) * 0.5
        # A distant skyline (or hills) down the road, hazy like anything kilometres away.
        heights = np.zeros(cam.width, np.float32)
        x = 0
        while x < cam.width:
            span = int(rng.integers(max(2, cam.width // 40), max(3, cam.width // 12)))
            top_frac = rng.uniform(0.02, 0.14) if self.route.scene == "urban" else rng.uniform(0.01, 0.05)
            heights[x : x + span] = top_frac * cam.height
            x += span
        rows_i = np.arange(cam.height)[:, None]
        skyline = (rows_i >= cam.horizon - heights[None, :]) & (rows_i < cam.horizon + 1)
        tone = np.array([120, 125, 135] if self.route.scene == "urban" else [90, 110, 95], np.float32) * (
            1.0 if self.route.light == "day" else 0.4 if self.route.light == "dusk" else 0.15
        )
        sky[skyline] = sky[skyline] * 0.45 + tone * 0.55
        if self.light.fog_m:
            sky = sky * 0.25 + np.array(light.fog_colour, np.float32) * 0.75
        self.rgb[:] = np.clip(sky + 0.5, 0, 255).astype(np.uint8)

    def _ground(self, rng):
        cam, road, light = self.cam, self.route.road, self.light
        z = self.z_row[:, None]
        x = (np.arange(cam.width, dtype=np.float32)[None, :] + 0.5 - cam.cx) * z / cam.f
        self.x_ground = x
        ax = np.abs(x)
        left = x < 0
        lanes = np.where(left, road.lanes_edge_m("left"), road.lanes_edge_m("right"))
        edge = np.where(left, road.edge_m("left"), road.edge_m("right"))
        urban = self.route.scene == "urban"
        asphalt = rng.uniform(70, 100)
        colour = np.empty(x.shape + (3,), np.float32)
        colour[:] = (asphalt, asphalt, asphalt + 4)
        strip = (ax >= lanes) & (ax < edge)
        colour[strip] = (asphalt + 8, asphalt + 6, asphalt + 4) if urban else (128, 118, 100)
        kerb = (ax >= edge) & (ax < edge + 0.2)
        pavement = (ax >= edge + 0.2) & (ax < edge + road.sidewalk_m)
        beyond = ax >= edge + road.sidewalk_m
        colour[kerb] = (185, 185, 180) if urban else (95, 125, 60)
        colour[pavement] = (150, 145, 138) if urban else (90, 128, 62)
        colour[beyond] = (125, 122, 118) if urban else (115, 135, 70)
        colour[(ax >= lanes - 0.15) & (ax < lanes)] = (220, 220, 215)  # solid edge line
        if self.route.weather == "rain":  # wet asphalt is darker and glossier
            colour *= 0.8
        ground = light.shade_array(colour, np.broadcast_to(z, x.shape), x)
        # Atmospheric haze near the horizon hides the aliasing of far-away road detail.
        haze = np.clip((self.z_row - 60.0) / 300.0, 0, 0.85)[:, None, None]
        horizon_colour = self.rgb[self.row0 - 1, :, :].astype(np.float32)[None]
        ground = ground * (1 - haze) + horizon_colour * haze
        self.rgb[self.row0 :] = np.clip(ground + 0.5, 0, 255).astype(np.uint8)
        self.asphalt_mask = ax < lanes

    def _markings(self, rng):
        """Pixel lists of the moving ground textures: patched asphalt, lane dashes, parking bay lines."""
        cam, road, x = self.cam, self.route.road, self.x_ground
        self.layers = []  # (flat pixel index, ground row, packed colour, period_m, mark_len_m, phase_m)
        # Patches first: dashes are painted over them.
        rows, cols = np.nonzero(self.asphalt_mask & (self.z_row[:, None] < 50.0))
        dark = pack_array(self.rgb[rows + self.row0, cols].astype(np.float32) * 0.82)
        self.patch_cells = rng.random(_TABLE) < 0.12
        self.patches = ((rows + self.row0) * cam.width + cols, rows, dark)
        for sign, lane in ((-1, road.left_lane), (1, road.right_lane)):
            if lane is None:
                continue
            cols_mask = np.abs(x - sign * road.lane_w_m / 2) < np.maximum(0.07, 0.55 * self.z_row[:, None] / cam.f)
            paint = (235, 200, 60) if lane == "oncoming" else (230, 230, 225)
            self._add_layer(cols_mask, paint, 9.0 if self.route.scene == "urban" else 12.0, 3.0, rng.uniform(0, 9), 1e9)
        if self.route.scene == "urban":
            for side, sign in (("left", -1), ("right", 1)):
                ax = sign * x
                strip = (ax >= road.lanes_edge_m(side)) & (ax < road.edge_m(side))
                self._add_layer(strip, (215, 215, 210), rng.uniform(5.5, 6.5), 0.15, rng.uniform(0, 6), 40.0)

    def _add_layer(self, mask, paint, period, length, phase, max_z):
        rows, cols = np.nonzero(mask & (self.z_row[:, None] < max_z))
        shaded = self.light.shade_array(
            np.tile(np.array(paint, np.float32), (len(rows), 1)), self.z_row[rows], self.x_ground[rows, cols]
        )
        self.layers.append(
            ((rows + self.row0) * self.cam.width + cols, rows, pack_array(shaded), period, length, phase)
        )

    def _facades(self, rng):
        """Building fronts (urban) or a tree line (rural) along both sides, as vertical planes."""
        cam, road = self.cam, self.route.road
        urban = self.route.scene == "urban"
        self.seg_len = rng.uniform(9.0, 16.0) if urban else rng.uniform(2.5, 4.5)
        gap = rng.random(_TABLE) < (0.1 if urban else 0.3)
        self.seg_height = np.where(gap, 0.0, rng.uniform(6, 24, _TABLE) if urban else rng.uniform(4, 9, _TABLE))
        palette = np.array(FACADES if urban else TREES, np.float32)
        self.seg_colour = palette[rng.integers(len(palette), size=_TABLE)]
        self.sides = []
        for side, sign in (("left", -1), ("right", 1)):
            xf = sign * road.facade_m(side)
            cols = np.arange(cam.width, dtype=np.float32) + 0.5 - cam.cx
            with np.errstate(divide="ignore"):
                z = cam.f * xf / cols
            ok = (z > NEAR_M) & (z < FAR_M * 3)
            if not ok.any():
                continue
            c = np.nonzero(ok)[0]
            c0, c1 = int(c[0]), int(c[-1]) + 1
            z = z[c0:c1].astype(np.float32)
            # Per column: colour = paint * gain + haze, the light and fog Lighting.shade gives at that distance.
            fog = np.broadcast_to(np.asarray(self.light.fog(z), np.float32), z.shape)[:, None]
            light = np.broadcast_to(np.asarray(self.light.factor(z, xf), np.float32), z.shape)[:, None]
            gain = light * np.asarray(self.light.tint, np.float32) * (1 - fog)
            haze = fog * np.asarray(self.light.fog_colour, np.float32)
            rows = np.arange(cam.height, dtype=np.float32)[:, None] + 0.5
            y_world = CAMERA_HEIGHT_M - (rows - cam.horizon) * z[None, :] / cam.f
            # No windows beyond 60 m: there they would only alias into stripes.
            windows = (
                ((y_world % 3.3) > 1.1) & ((y_world % 3.3) < 2.4) & (y_world > 0.8) & (z[None, :] < 60.0)
                if urban
                else None
            )
            floor = np.floor(y_world / 3.3).astype(np.int32)
            self.sides.append((c0, c1, z, (gain, haze, 1 - fog), y_world, y_world >= 0, windows, floor))
        self.window_phase = rng.uniform(0, 3.0)

    def paint_moving(self, frame: np.ndarray, ego_z: float) -> None:
        """Draw the ego-motion-dependent textures (packed frame) for an ego that has driven ego_z metres."""
        if not frame.flags.c_contiguous:
            raise ValueError("paint_moving needs a C-contiguous frame: it writes through a flat view")
        flat = frame.reshape(-1)
        idx, rows, dark = self.patches
        cell = np.floor((self.z_row + ego_z) / 4.0).astype(np.int64) % _TABLE
        sel = self.patch_cells[cell][rows]
        flat[idx[sel]] = dark[sel]
        for idx, rows, paint, period, length, phase in self.layers:
            # A row shows a mark if the stretch of road it covers overlaps one: dashes never alias into gaps.
            u = (self.z_near_edge + ego_z - phase) % period
            on = (u < length) | (u + (self.z_far_edge - self.z_near_edge) >= period)
            sel = on[rows]
            flat[idx[sel]] = paint[sel]
        night = self.route.light == "night"
        for c0, c1, z, (gain, haze, clear), y_world, above_ground, windows, floor in self.sides:
            zw = z + ego_z
            seg = np.floor(zw / self.seg_len).astype(np.int64) % _TABLE
            mask = above_ground & (y_world < self.seg_height[seg][None, :])
            sub = frame[:, c0:c1]
            colour = pack_array(np.clip(self.seg_colour[seg] * gain + haze + 0.5, 0, 255))
            np.copyto(sub, np.broadcast_to(colour[None, :], sub.shape), where=mask)
            if windows is None:
                continue
            win_col = ((zw + self.window_phase) % 3.0) < 1.6
            glass = mask & windows & win_col[None, :]
            glass_colour = pack_array(np.clip(np.array([45, 55, 70], np.float32) * gain + haze + 0.5, 0, 255))
            np.copyto(sub, np.broadcast_to(glass_colour[None, :], sub.shape), where=glass)
            if night:
                idx = np.floor((zw + self.window_phase) / 3.0).astype(np.int64)
                lit_windows = glass & (((floor * 7 + idx[None, :] * 13) % 11) < 3)  # a fixed pattern of lit rooms
                lamp = pack_array(np.clip(np.array([230, 190, 110], np.float32) * clear + haze + 0.5, 0, 255))
                np.copyto(sub, np.broadcast_to(lamp[None, :], sub.shape), where=lit_windows)


class Bonnet:
    """The ego car's bonnet at the bottom of the frame: dashcams see it, and it hides the nearest road."""

    def __init__(self, cam: Camera, route: Route, light: Lighting):
        cols = (np.arange(cam.width, dtype=np.float32) + 0.5 - cam.cx) / (0.8 * cam.width)
        top = cam.height * (1 - 0.075 * np.clip(1 - cols**2, 0, 1))
        rows = np.arange(cam.height, dtype=np.float32)[:, None] + 0.5
        self.mask = rows >= top[None, :]
        k = {"day": 0.85, "dusk": 0.5, "night": 0.18}[route.light]
        base = np.array(route.hood_colour, np.float32) * k
        shine = (rows < top[None, :] + 1.5)[..., None] * np.float32(40 * k)
        colour = np.clip(np.broadcast_to(base, self.mask.shape + (3,)) + shine, 0, 255).astype(np.uint8)
        self.pixels = pack_array(colour[self.mask])

    def apply(self, frame: np.ndarray, owner: np.ndarray) -> None:
        """Paint the bonnet over a packed frame; nothing under it is visible."""
        frame[self.mask] = self.pixels
        owner[self.mask] = False


class Rain:
    """Rain streaks: a few pre-drawn layers cycled frame by frame, blended lighter over everything."""

    def __init__(self, cam: Camera, rng: np.random.Generator, layers: int = 4):
        self.alpha = np.zeros((layers, cam.height, cam.width), np.uint16)
        n = cam.width * cam.height // 250
        length = max(3, cam.height // 25)
        for k in range(layers):
            x = rng.integers(0, cam.width, n)[:, None] + np.arange(length)[None, :] // 3
            y = rng.integers(-length, cam.height, n)[:, None] + np.arange(length)[None, :]
            ok = (x < cam.width) & (y >= 0) & (y < cam.height)
            self.alpha[k, y[ok], x[ok]] = 70

    def apply(self, frame: np.ndarray, index: int) -> None:
        """Blend streaks into an RGB uint8 frame in place."""
        a = self.alpha[index % len(self.alpha)][..., None]
        f = frame.astype(np.uint16)
        frame[:] = (f + (((255 - f) * a) >> 8)).astype(np.uint8)
