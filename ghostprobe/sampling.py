"""Frame sampling: which frames of a clip a model sees, as one kind of window everywhere.

A `Window` is causal: it holds frames shown in [start_s, end_s), its score is known at `end_s`, and its timestamps
count from its own first frame, as if it were a clip cut from the video there (the original Video-LLaMA never saw
times such as 1796.6 s). Data prep's `event_windows` and `sliding` policies, eval's earliness metrics and the scan of
long recordings all use `make_window` / `sliding_windows`, so the windows measured are the windows deployed.
Whole-clip policies (`uniform`, `fps`) are one window from 0 to the clip's end.

`frame_scores` turns window scores back into one score per frame at the video's frame rate, the form every
accident-anticipation protocol takes (ghostprobe/metrics/anticipation.py). A window that cannot be filled is a
`SamplingError`, which data prep reports as the clip's rejection reason.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POLICIES = ("uniform", "fps", "event_windows", "sliding")
# Policies that cut several windows from one clip: each sample id is then `clip_id#wK` (see `window_sample_id`).
WINDOW_POLICIES = ("event_windows", "sliding")
# Bumped whenever the frames a window holds change, so stored window scores of the old rule are not reused.
WINDOW_RULE = 2  # 2: frames shown in [start, end) (the last window of a clip holds its last frame)


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
        """When frame `index` is shown, in seconds from the first frame."""
        return self.frame_times_s[index] if self.frame_times_s is not None else index / self.fps

    def index_at(self, t_s: float) -> int:
        """The frame on screen at t_s: the last one shown at or before it (1 us of slack for float error)."""
        if self.frame_times_s is None:
            index = int(math.floor(t_s * self.fps + 1e-6))
        else:
            index = int(np.searchsorted(self.frame_times_s, t_s + 1e-6, side="right")) - 1
        return min(max(index, 0), self.num_frames - 1)

    def frames_before(self, t_s: float) -> int:
        """How many frames are shown before t_s (0 .. num_frames): the index of the first frame shown at or after
        it. A frame shown exactly at t_s (within 1 us) is not before it."""
        if self.frame_times_s is None:
            count = int(math.ceil(t_s * self.fps - 1e-6))
        else:
            count = int(np.searchsorted(self.frame_times_s, t_s - 1e-6, side="left"))
        return min(max(count, 0), self.num_frames)

    def seconds_after(self, first: int, index: int) -> float:
        """Seconds from frame `first` to frame `index`: (index - first) / fps at a constant rate, which is how a clip
        cut at `first` is stamped (and exactly index / fps when first is 0, as the original computes)."""
        if self.frame_times_s is None:
            return (index - first) / self.fps
        return self.frame_times_s[index] - self.frame_times_s[first]


@dataclass(frozen=True)
class Window:
    """Frames a model sees at once. `frame_indices` index the video; `timestamps_s` are seconds from the window's
    first frame; the window's score is known at `end_s` (seconds from the video's start), never earlier."""

    index: int
    start_s: float
    end_s: float
    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]


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


def _window(clock: FrameClock, index: int, start_s: float, end_s: float, indices: Sequence[int]) -> Window:
    first = indices[0]
    return Window(
        index, start_s, end_s, tuple(int(i) for i in indices), tuple(clock.seconds_after(first, i) for i in indices)
    )


def make_window(clock: FrameClock, start_s: float, end_s: float, num_frames: int, index: int = 0) -> Window:
    """The window [start_s, end_s): the frames shown in it (from the one on screen at start_s to the last shown
    before end_s), `num_frames` of them picked with the original's uniform rule as if the window were a clip
    (all of them when it holds fewer)."""
    first = clock.index_at(start_s)
    span = clock.frames_before(end_s) - first
    if span < 1:
        raise SamplingError(f"window {start_s:.2f}-{end_s:.2f} s holds no frame")
    return _window(clock, index, start_s, end_s, [first + i for i in uniform_indices(span, num_frames)])


def sliding_windows(
    clock: FrameClock, window_s: float, stride_s: float, num_frames: int, until_s: float | None = None
) -> list[Window]:
    """Windows of `window_s` seconds ending at window_s, window_s + stride_s, ... up to `until_s` (default: the
    clip's end), window k over [k * stride_s, k * stride_s + window_s) (times rounded to 1 us). Empty when even the
    first one would end after `until_s`."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be positive, got {window_s} and {stride_s}")
    until_s = clock.duration_s if until_s is None else until_s
    windows, k = [], 0
    while round(k * stride_s + window_s, 6) <= until_s + 1e-9:
        windows.append(make_window(clock, round(k * stride_s, 6), round(k * stride_s + window_s, 6), num_frames, k))
        k += 1
    return windows


def window_sample_id(clip_id: str, window_index: int | None) -> str:
    """The dataset's sample id: the clip id for a whole-clip policy, `clip_id#wK` for every window of a windowed
    one (even a clip's only window). Within one dataset the ids are then unique whatever the clip ids: `x#w1#w0` (a
    clip named `x#w1`) never meets `x#w1` (window 1 of clip `x`)."""
    return clip_id if window_index is None else f"{clip_id}#w{window_index}"


def sample_windows(
    policy: dict,
    *,
    fps: float,
    num_frames: int,
    t_event_s: float | None,
    is_positive: bool,
    seed_key: str,
    frame_times_s: tuple[float, ...] | None = None,
) -> list[Window]:
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
        return [_window(clock, 0, 0.0, duration_s, uniform_indices(num_frames, policy["num_frames"]))]
    if name == "fps":
        n = min(int(math.floor(duration_s * policy["target_fps"])), policy["max_frames"])
        if n < policy.get("min_frames", 1):
            raise SamplingError(
                f"clip of {duration_s:.2f} s gives {n} frames at {policy['target_fps']} fps, "
                f"fewer than min_frames {policy.get('min_frames', 1)}"
            )
        if frame_times_s is None:
            return [_window(clock, 0, 0.0, duration_s, uniform_indices(num_frames, n))]
        return [_window(clock, 0, 0.0, duration_s, [clock.index_at(k * duration_s / n) for k in range(n)])]
    if name == "event_windows":
        windows = _event_windows(policy, clock, t_event_s if is_positive else None, seed_key)
    elif name == "sliding":
        windows = _sliding_windows(policy, clock, t_event_s if is_positive else None)
    else:
        raise ValueError(f"unknown sampling policy {name!r}; choose one of {', '.join(POLICIES)}")
    for window in windows:  # a training or earliness sample always carries the frames its config asks for
        if len(window.frame_indices) < policy["num_frames"]:
            raise SamplingError(
                f"window {window.start_s:.2f}-{window.end_s:.2f} s holds "
                f"{len(window.frame_indices)} frames, fewer than the {policy['num_frames']} requested"
            )
    return windows


def _event_windows(policy: dict, clock: FrameClock, t_event_s: float | None, seed_key: str) -> list[Window]:
    """Training windows of `window_s` seconds: for positives the event sits at `event_position` of the window,
    shifted by up to +-`jitter_s`; for negatives the windows are placed at random. Each is clipped to the clip."""
    duration_s = clock.duration_s
    window_s = policy["window_s"]
    if duration_s < window_s:
        raise SamplingError(f"clip is {duration_s:.2f} s, shorter than window_s {window_s}")
    rng = np.random.default_rng(_seed_from(seed_key))
    windows = []
    for k in range(policy["windows_per_clip"]):
        if t_event_s is not None:
            jitter = rng.uniform(-policy["jitter_s"], policy["jitter_s"])
            start = t_event_s - policy["event_position"] * window_s + jitter
        else:
            start = rng.uniform(0.0, duration_s - window_s)
        start = min(max(start, 0.0), duration_s - window_s)
        windows.append(make_window(clock, start, start + window_s, policy["num_frames"], k))
    return windows


def _sliding_windows(policy: dict, clock: FrameClock, t_event_s: float | None) -> list[Window]:
    """Earliness windows: `window_s` long, ending every `stride_s`; for positives only those ending at or before
    the event (the model must not see the emergence into the path), for negatives over the whole clip."""
    windows = sliding_windows(clock, policy["window_s"], policy["stride_s"], policy["num_frames"], until_s=t_event_s)
    if not windows:
        what = (
            f"the event at {t_event_s:.2f} s" if t_event_s is not None else f"the clip end ({clock.duration_s:.2f} s)"
        )
        raise SamplingError(f"no {policy['window_s']} s window ends before {what}")
    return windows


def scores_at(
    window_ends_s: Sequence[float], window_scores: Sequence[float | None], times_s: Sequence[float]
) -> np.ndarray:
    """The score a deployed system shows at each of `times_s`: that of the latest window ending at or before it
    (1 us of slack). A window without a score (None/NaN: the model gave no answer) leaves the previous score
    standing; before the first scored window there is no score (NaN)."""
    ends = np.asarray(window_ends_s, dtype=np.float64)
    scores = np.array([np.nan if s is None else s for s in window_scores], dtype=np.float64)
    if ends.shape != scores.shape:
        raise ValueError(f"{len(ends)} window end times for {len(scores)} window scores")
    scored = ~np.isnan(scores)
    order = np.argsort(ends[scored], kind="stable")
    ends, scores = ends[scored][order], scores[scored][order]
    latest = np.searchsorted(ends, np.asarray(times_s, dtype=np.float64) + 1e-6, side="right") - 1
    return np.where(latest >= 0, scores[np.maximum(latest, 0)] if len(scores) else np.nan, np.nan)


def frame_scores(
    window_ends_s: Sequence[float], window_scores: Sequence[float | None], clock: FrameClock
) -> np.ndarray:
    """One score per frame of the video (float64 [num_frames]): frame i gets the score of the latest window that
    ends at or before frame i is shown (`scores_at`), NaN for the frames before the first scored window ends."""
    return scores_at(window_ends_s, window_scores, [clock.time_of(i) for i in range(clock.num_frames)])


def _seed_from(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
