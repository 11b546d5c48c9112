"""Small helpers every metrics module shares: input checking and turning results into strict JSON."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np


def as_labels(y_true, name: str = "y_true") -> np.ndarray:
    """Labels as a bool array; refuses None/NaN so that a missing label is never silently read as "negative"."""
    arr = np.asarray(y_true)
    if arr.dtype == object:
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr.ravel()):
            raise ValueError(f"{name} has missing labels (None/NaN); drop those clips before scoring")
        arr = np.array(arr.tolist())
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} has missing labels (NaN); drop those clips before scoring")
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        bad = [v for v in arr.tolist() if v not in (0, 1)][:5]
        raise ValueError(f"{name} must be bool or 0/1, found {bad} (dtype {arr.dtype})")
    return arr.astype(bool)


def as_scores(p, n: int, name: str = "p") -> np.ndarray:
    """Scores as float64 with None -> NaN (NaN = no usable answer); infinities are rejected as a scoring bug."""
    arr = np.asarray(p)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    arr = arr.astype(np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) to match the labels")
    if np.isinf(arr).any():
        raise ValueError(
            f"{name} has infinite scores at positions {np.flatnonzero(np.isinf(arr))[:5].tolist()}; "
            "pass probabilities (or NaN for clips without an answer)"
        )
    return arr


def nan_to_none(x):
    """None for a float NaN or infinity (strict JSON has neither: null says "undefined"), anything else as is."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def to_jsonable(obj):
    """Recursively turn a metrics result into strict-JSON types: NaN/inf -> None, numpy -> Python, tuples -> lists.

    `json.dumps(to_jsonable(result), allow_nan=False)` then always works, so metrics.json parses in any language.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return nan_to_none(float(obj))
    return obj


def format_ids(ids: Sequence, limit: int = 10) -> str:
    """A readable list of clip ids for error messages: the first few and how many more."""
    ids = sorted(map(str, ids))
    head = ", ".join(ids[:limit])
    return head + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")
