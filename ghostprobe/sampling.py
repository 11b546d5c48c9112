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
class Window:
    frame_indices: tuple[int, ...]
    start_s: float
    end_s: float

    def timestamps_s(self, fps: float) -> list[float]:
        return [i / fps for i in self.frame_indices]


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


def span_indices(start_s: float, end_s: float, fps: float, num_frames: int, n: int) -> tuple[int, ...]:
    """n frames spread uniformly over [start_s, end_s), as `uniform_indices` does over a whole clip."""
    first = int(math.floor(start_s * fps + 1e-6))
    span = max(int(math.floor(end_s * fps + 1e-6)) - first, 1)
    if span < n:
        raise SamplingError(f"window {start_s:.2f}-{end_s:.2f} s holds {span} frames, fewer than the {n} requested")
    indices = tuple(min(first + int(math.floor(k * span / n)), num_frames - 1) for k in range(n))
    return indices


def sample_windows(policy: dict, *, fps: float, num_frames: int, t_event_s: float | None, is_positive: bool,
                   seed_key: str) -> list[Window]:
    """Apply the sampling policy `policy` (a `conf/sampling/*.yaml` mapping) to one clip.

    `t_event_s` is the labelled event time (None when the clip has none); `seed_key` makes random choices (jitter)
    deterministic per clip and seed.
    """
    name = policy["policy"]
    duration_s = num_frames / fps
    if name == "uniform":
        return [Window(tuple(uniform_indices(num_frames, policy["num_frames"])), 0.0, duration_s)]
    if name == "fps":
        n = min(int(math.floor(duration_s * policy["target_fps"])), policy["max_frames"])
        if n < policy.get("min_frames", 1):
            raise SamplingError(f"clip of {duration_s:.2f} s gives {n} frames at {policy['target_fps']} fps, "
                                f"fewer than min_frames {policy.get('min_frames', 1)}")
        return [Window(tuple(uniform_indices(num_frames, n)), 0.0, duration_s)]
    if name == "event_windows":
        return _event_windows(policy, fps, num_frames, t_event_s if is_positive else None, seed_key)
    if name == "sliding":
        return _sliding_windows(policy, fps, num_frames, t_event_s if is_positive else None)
    raise ValueError(f"unknown sampling policy {name!r}; choose one of {', '.join(POLICIES)}")


def _event_windows(policy: dict, fps: float, num_frames: int, t_event_s: float | None, seed_key: str) -> list[Window]:
    """Training windows of `window_s` seconds: for positives the event sits at `event_position` of the window,
    shifted by up to +-`jitter_s`; for negatives the windows are placed at random. Each is clipped to the clip."""
    duration_s = num_frames / fps
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
        windows.append(Window(span_indices(start, start + window_s, fps, num_frames, policy["num_frames"]),
                              start, start + window_s))
    return windows


def _sliding_windows(policy: dict, fps: float, num_frames: int, t_event_s: float | None) -> list[Window]:
    """Earliness windows: `window_s` long, ending every `stride_s`; for positives only those ending before the
    event (the model must not see the emergence into the path), for negatives over the whole clip."""
    duration_s = num_frames / fps
    window_s, stride_s = policy["window_s"], policy["stride_s"]
    limit = duration_s if t_event_s is None else t_event_s
    windows = []
    end = window_s
    while end <= limit + 1e-9:
        windows.append(Window(span_indices(end - window_s, end, fps, num_frames, policy["num_frames"]),
                              end - window_s, end))
        end += stride_s
    if not windows:
        what = f"the event at {t_event_s:.2f} s" if t_event_s is not None else f"the clip end ({duration_s:.2f} s)"
        raise SamplingError(f"no {window_s} s window ends before {what}")
    return windows


def _seed_from(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
