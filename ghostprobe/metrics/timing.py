"""Response time, throughput and cost: the planning document's third headline number (< 2 min per video)."""

from __future__ import annotations

import numpy as np


def timing_stats(
    latency_s, wall_s: float | None = None, n_gpus: int = 1, price_per_gpu_hour: float | None = None, api_cost_usd=None
) -> dict:
    """Per-clip response time percentiles, throughput and GPU cost.

    `latency_s`: seconds per clip (NaN/None for a clip that failed before answering: counted in `n_failed`, left out
    of the percentiles). `wall_s`: wall-clock seconds of the whole run; when absent the clips are assumed to have
    run one after another, so wall = sum of latencies. GPU-seconds = wall * n_gpus (a GPU held is paid whether busy
    or not); cost = GPU-hours * `price_per_gpu_hour` (None -> cost not reported). `api_cost_usd`, per clip, is summed
    for API models that bill per token instead.
    """
    lat = np.array([np.nan if v is None else v for v in latency_s], dtype=np.float64)
    ok = lat[~np.isnan(lat)]
    if (ok < 0).any():
        raise ValueError(f"negative latencies at positions {np.flatnonzero(lat < 0)[:5].tolist()}")
    wall = float(ok.sum()) if wall_s is None else float(wall_s)
    gpu_seconds = wall * n_gpus
    nan = float("nan")
    stats = {
        "n": len(lat),
        "n_failed": int(np.isnan(lat).sum()),
        "latency_p50_s": float(np.percentile(ok, 50)) if len(ok) else nan,
        "latency_p95_s": float(np.percentile(ok, 95)) if len(ok) else nan,
        "latency_max_s": float(ok.max()) if len(ok) else nan,
        "latency_mean_s": float(ok.mean()) if len(ok) else nan,
        "wall_s": wall,
        "wall_source": "measured" if wall_s is not None else "sum of latencies",
        "clips_per_s": len(lat) / wall if wall > 0 else nan,
        "n_gpus": n_gpus,
        "gpu_seconds": gpu_seconds,
        "price_per_gpu_hour": price_per_gpu_hour,
        "gpu_cost_usd": gpu_seconds / 3600 * price_per_gpu_hour if price_per_gpu_hour is not None else nan,
    }
    if api_cost_usd is not None:
        stats["api_cost_usd"] = float(np.nansum(np.asarray(api_cost_usd, dtype=np.float64)))
    return stats
