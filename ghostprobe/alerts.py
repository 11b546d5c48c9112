"""From a timeline of window scores to alerts: hysteresis, then merging of alerts closer than a minimum gap.

A window's score is known when its last frame has been seen, so an alert is timed by window *end* times: an alert
starts at the end of the first window whose p_ghost_probing reaches `on_threshold` (the moment a deployed system
could sound it) and lasts while later windows stay at or above `off_threshold`. Alerts separated by less than
`min_gap_s` become one (a flickering score is one event to a driver, not three). A window without a score (NaN: the
model gave no answer) neither opens nor extends an alert.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class Alert:
    start_s: float  # end time of the window that opened it
    end_s: float  # end time of the last window at or above the off threshold
    peak_s: float  # end time of the highest-scoring window
    peak_p: float
    num_windows: int
    # the highest-scoring window itself, as its timeline row gives it: the report shows its frames without probing
    # the recording again or rebuilding its windows
    peak_window: int | None = None
    peak_frame_indices: list[int] | None = None

    def to_json(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def set_peak(self, row: dict) -> None:
        self.peak_s, self.peak_p = float(row["end_s"]), float(row["p_ghost_probing"])
        self.peak_window, self.peak_frame_indices = row.get("window"), row.get("frame_indices")


def off_threshold(on_threshold: float, hysteresis: float) -> float:
    """The score an alert must stay at or above once on: `on_threshold * (1 - hysteresis)`. Relative, so that it
    stays above 0 for any threshold: an absolute gap would make a low threshold (0.004, as a val split can choose)
    an alert that never ends."""
    if not 0.0 <= hysteresis < 1.0:
        raise ValueError(f"alerts.hysteresis must be in [0, 1), a fraction of the threshold, got {hysteresis}")
    return on_threshold * (1.0 - hysteresis)


def alerts_from_timeline(
    rows: list[dict], on_threshold: float, off_threshold: float | None = None, min_gap_s: float = 0.0
) -> list[Alert]:
    """Alerts of one video. `rows`: timeline rows with `end_s` and `p_ghost_probing` (None/NaN: no score), any order.
    `off_threshold` defaults to `on_threshold` (no hysteresis) and must not exceed it."""
    off = on_threshold if off_threshold is None else off_threshold
    if off > on_threshold:
        raise ValueError(f"off threshold {off} is above the on threshold {on_threshold}: alerts could never end")
    alerts: list[Alert] = []
    current: Alert | None = None
    for row in sorted(rows, key=lambda r: r["end_s"]):
        p, t = row.get("p_ghost_probing"), float(row["end_s"])
        scored = p is not None and not math.isnan(p)
        if current is not None:
            if scored and p >= off:
                current.end_s, current.num_windows = t, current.num_windows + 1
                if p > current.peak_p:
                    current.set_peak(row)
                continue
            alerts.append(current)
            current = None
        if scored and p >= on_threshold:
            current = Alert(start_s=t, end_s=t, peak_s=t, peak_p=float(p), num_windows=1)
            current.set_peak(row)
    if current is not None:
        alerts.append(current)
    return merge_alerts(alerts, min_gap_s)


def merge_alerts(alerts: list[Alert], min_gap_s: float) -> list[Alert]:
    """Join alerts whose gap (next start minus previous end) is below `min_gap_s`; keeps the higher peak."""
    merged: list[Alert] = []
    for alert in sorted(alerts, key=lambda a: a.start_s):
        last = merged[-1] if merged else None
        if last is not None and alert.start_s - last.end_s < min_gap_s:
            last.end_s = max(last.end_s, alert.end_s)
            last.num_windows += alert.num_windows
            if alert.peak_p > last.peak_p:
                last.peak_s, last.peak_p = alert.peak_s, alert.peak_p
                last.peak_window, last.peak_frame_indices = alert.peak_window, alert.peak_frame_indices
        else:
            merged.append(Alert(**asdict(alert)))
    return merged
