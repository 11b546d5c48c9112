"""Intervals for counts: a proportion of clips (accuracy, FPR, recall) and a rate of events per hour.

Proportions use scipy's `binomtest(...).proportion_ci`: "exact" (Clopper-Pearson, the default here: its coverage is
at least the nominal level for every n, so a green light is never given by an interval that is too short) or
"wilson" (closer to nominal on average, shorter). Rates use the exact Poisson interval (Garwood) from the chi-square
quantiles. `clips_needed` answers "how many clips would settle it": the smallest n at which the interval around the
observed accuracy clears a line.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, binomtest, chi2, norm

PROPORTION_METHODS = ("exact", "wilson")
# The search for clips_needed stops here: beyond a million clips the answer is "not with any labelling budget".
MAX_CLIPS_NEEDED = 1_000_000


def proportion_interval(successes: int, n: int, confidence: float = 0.95, method: str = "exact") -> dict:
    """{"estimate", "low", "high", "successes", "n", "method", "confidence"} for `successes` of `n`.

    n = 0 gives NaN bounds (nothing was measured). `method`: "exact" (Clopper-Pearson) or "wilson" (no continuity
    correction), both computed by scipy.stats.binomtest.
    """
    if method not in PROPORTION_METHODS:
        raise ValueError(f"unknown interval method {method!r}; choose from {PROPORTION_METHODS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    successes, n = int(successes), int(n)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n, got {successes} of {n}")
    if n == 0:
        low = high = estimate = math.nan
    else:
        ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method=method)
        low, high, estimate = float(ci.low), float(ci.high), successes / n
    return {
        "estimate": estimate,
        "low": low,
        "high": high,
        "successes": successes,
        "n": n,
        "method": method,
        "confidence": confidence,
    }


def _bounds(successes: np.ndarray, n: np.ndarray, confidence: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised lower and upper bounds, equal to `proportion_interval`'s (tests check it against binomtest);
    used where thousands of hypothetical n are tried at once."""
    k, n = successes.astype(np.float64), n.astype(np.float64)
    alpha = 1 - confidence
    if method == "exact":
        with np.errstate(invalid="ignore"):
            low = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
            high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
        return low, high
    z = norm.ppf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def clips_needed(
    observed: float, line: float, confidence: float = 0.95, method: str = "exact", max_n: int = MAX_CLIPS_NEEDED
) -> int | None:
    """The smallest number of clips n at which the interval around `observed` accuracy (round(observed * n) clips
    right) lies wholly on one side of `line`: above it when observed > line, below it when observed < line.

    None when `observed` sits on the line (no n separates them) or more than `max_n` clips would be needed.
    Monotone: an accuracy further from the line never needs more clips (more clips right at the same n can only
    move the interval away from the line).
    """
    if not (0 <= observed <= 1 and 0 < line < 1):
        raise ValueError(f"observed must be in [0, 1] and line in (0, 1), got {observed}, {line}")
    if math.isclose(observed, line, abs_tol=1e-12):
        return None
    above = observed > line
    start = 1
    chunk = 1024
    while start <= max_n:
        n = np.arange(start, min(start + chunk, max_n + 1))
        k = np.rint(observed * n)
        low, high = _bounds(k, n, confidence, method)
        cleared = low > line if above else high < line
        hits = np.flatnonzero(cleared)
        if len(hits):
            return int(n[hits[0]])
        start += chunk
        chunk *= 2
    return None


def poisson_rate_interval(count: int, exposure: float, confidence: float = 0.95) -> dict:
    """An exact (Garwood) interval for a rate: `count` events over `exposure` (e.g. hours of video).

    {"estimate", "low", "high", "count", "exposure", "confidence"}; NaN when exposure is 0. With 0 events the
    estimate is 0 and the upper bound is still positive (about 3.7 per exposure unit at 95%), which is the point:
    "0 false alerts per hour" from 6 minutes of video says little.
    """
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if exposure <= 0:
        return {
            "estimate": math.nan,
            "low": math.nan,
            "high": math.nan,
            "count": count,
            "exposure": exposure,
            "confidence": confidence,
        }
    alpha = 1 - confidence
    low = chi2.ppf(alpha / 2, 2 * count) / 2 if count else 0.0
    high = chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return {
        "estimate": count / exposure,
        "low": float(low) / exposure,
        "high": float(high) / exposure,
        "count": count,
        "exposure": exposure,
        "confidence": confidence,
    }
