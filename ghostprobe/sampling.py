"""Frame sampling policies: which frames of a clip a model sees.

Every policy returns a list of `Window`s (one for whole-clip policies, several for event-centred training windows
and sliding earliness windows). A window that cannot be filled is a `SamplingError`, which data prep reports as the
clip's rejection reason.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

POLICIES = ("uniform", "fps", "event_windows", "sliding")


class SamplingError(ValueError):
    """The clip cannot provide the frames the policy asks for (too short, no window before the event, ...)."""


@dataclass(frozen=True)
class FrameClock:
    """When each frame of a video is shown: index / fps at a constant frame rate (what the original Video-LLaMA
    computes), the decoder's presentation times (`frame_times_s`, seconds from the first frame) at a variable one."""

    fps: float
    num_frames: int
    frame_times_s: tuple[float, ...] | None = None

    @property
    def duration_s(self) -> float:
        """How long the clip plays: num_frames / fps, or the last frame's time plus the interval before it."""
        times = self.frame_times_s
        if times is None or len(times) < 2:
            return self.num_frames / self.fps
        return times[-1] + (times[-1] - times[-2])

    def time_of(self, index: int) -> float:
        return self.frame_times_s[index] if self.frame_times_s is not None else index / self.fps

    def index_at(self, t_s: float) -> int:
        """The frame on screen at t_s: the last one shown at or before it (1 us of slack for float error)."""
        if self.frame_times_s is None:
            index = int(math.floor(t_s * self.fps + 1e-6))
        else:
            index = int(np.searchsorted(self.frame_times_s, t_s + 1e-6, side="right")) - 1
        return min(max(index, 0), self.num_frames - 1)


@dataclass(frozen=True)
class Window:
    frame_indices: tuple[int, ...]
    start_s: float
    end_s: float

    def timestamps_s(self, clock: FrameClock) -> list[float]:
        return [clock.time_of(i) for i in self.frame_indices]


def uniform_indices(num_frames: int, n: int) -> list[int]:
    """The original Video-LLaMA sampling (`load_video(sampling="uniform")`), expression for expression.

    `np.arange(0, num_frames, num_frames / n).astype(int)` with n capped at num_frames: a clip shorter than n frames
    gives all its frames. As in the original, the float step gives one index more than asked for some pairs
    (15 frames, n=13 -> 14 indices); never for n = 8, 16 or 32 below 20,000 frames.
    """
    if num_frames < 1 or n < 1:
        raise SamplingError(f"cannot sample {n} frames from a clip of {num_frames} frames")
    n = min(n, num_frames)
    return np.arange(0, num_frames, num_frames / n).astype(int).tolist()


def span_indices(start_s: float, end_s: float, clock: FrameClock, n: int) -> tuple[int, ...]:
    """n frames spread uniformly over the frames shown in [start_s, end_s), as `uniform_indices` over a clip."""
    first = clock.index_at(start_s)
    span = max(clock.index_at(end_s) - first, 1)
    if span < n:
        raise SamplingError(f"window {start_s:.2f}-{end_s:.2f} s holds {span} frames, fewer than the {n} requested")
    return tuple(min(first + int(math.floor(k * span / n)), clock.num_frames - 1) for k in range(n))


def sample_windows(policy: dict, *, fps: float, num_frames: int, t_event_s: float | None, is_positive: bool,
                   seed_key: str, frame_times_s: tuple[float, ...] | None = None) -> list[Window]:
    """Apply the sampling policy `policy` (a `conf/sampling/*.yaml` mapping) to one clip.

    `t_event_s` is the labelled event time (None when the clip has none); `seed_key` makes random choices (jitter)
    deterministic per clip and seed; `frame_times_s`: presentation times of a variable-frame-rate video (None:
    constant rate), which time-based policies (fps, event_windows, sliding) sample by. `uniform` samples by index
    whatever the rate, as the original.
    """
    name = policy["policy"]
    clock = FrameClock(fps, num_frames, frame_times_s)
    duration_s = clock.duration_s
    if name == "uniform":
        return [Window(tuple(uniform_indices(num_frames, policy["num_frames"])), 0.0, duration_s)]
    if name == "fps":
        n = min(int(math.floor(duration_s * policy["target_fps"])), policy["max_frames"])
        if n < policy.get("min_frames", 1):
            raise SamplingError(f"clip of {duration_s:.2f} s gives {n} frames at {policy['target_fps']} fps, "
                                f"fewer than min_frames {policy.get('min_frames', 1)}")
        if frame_times_s is None:
            return [Window(tuple(uniform_indices(num_frames, n)), 0.0, duration_s)]
        return [Window(tuple(clock.index_at(k * duration_s / n) for k in range(n)), 0.0, duration_s)]
    if name == "event_windows":
        return _event_windows(policy, clock, t_event_s if is_positive else None, seed_key)
    if name == "sliding":
        return _sliding_windows(policy, clock, t_event_s if is_positive else None)
    raise ValueError(f"unknown sampling policy {name!r}; choose one of {', '.join(POLICIES)}")


def _event_windows(policy: dict, clock: FrameClock, t_event_s: float | None, seed_key: str) -> list[Window]:
    """Training windows of `window_s` seconds: for positives the event sits at `event_position` of the window,
    shifted by up to +-`jitter_s`; for negatives the windows are placed at random. Each is clipped to the clip."""
    duration_s = clock.duration_s
    window_s = policy["window_s"]
    if duration_s < window_s:
        raise SamplingError(f"clip is {duration_s:.2f} s, shorter than window_s {window_s}")
    rng = np.random.default_rng(_seed_from(seed_key))
    windows = []
    for _ in range(policy["windows_per_clip"]):
        if t_event_s is not None:
            jitter = rng.uniform(-policy["jitter_s"], policy["jitter_s"])
            start = t_event_s - policy["event_position"] * window_s + jitter
        else:
            start = rng.uniform(0.0, duration_s - window_s)
        start = min(max(start, 0.0), duration_s - window_s)
        windows.append(Window(span_indices(start, start + window_s, clock, policy["num_frames"]),
                              start, start + window_s))
    return windows


def _sliding_windows(policy: dict, clock: FrameClock, t_event_s: float | None) -> list[Window]:
    """Earliness windows: `window_s` long, ending every `stride_s`; for positives only those ending before the
    event (the model must not see the emergence into the path), for negatives over the whole clip."""
    duration_s = clock.duration_s
    window_s, stride_s = policy["window_s"], policy["stride_s"]
    limit = duration_s if t_event_s is None else t_event_s
    windows = []
    end = window_s
    while end <= limit + 1e-9:
        windows.append(Window(span_indices(end - window_s, end, clock, policy["num_frames"]),
                              end - window_s, end))
        end += stride_s
    if not windows:
        what = f"the event at {t_event_s:.2f} s" if t_event_s is not None else f"the clip end ({duration_s:.2f} s)"
        raise SamplingError(f"no {window_s} s window ends before {what}")
    return windows


def _seed_from(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
