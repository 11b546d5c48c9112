"""A3D (AnAn Accident Detection): `A3D_labels.pkl`, read without letting the pickle run code.

The file is a pickled dict of 1500 clips, `{key: {video_name, idx, clip_start, clip_end, ego_envolve, ego_only,
target}}`, `target` a numpy array of per-frame 0/1 (1: the accident is under way), frames at 10 Hz in
`frames/<key>/images/000001.jpg`. Loading a pickle calls whatever functions it names, so it is read with an
unpickler that resolves only numpy's array reconstruction and refuses every other name before anything is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ghostprobe.importers.common import AnnotationFileError, Candidate, RowProblem, event_times, fill

FIELDS = ("video_name", "ego_envolve", "ego_only", "target")


class UnsafePickleError(AnnotationFileError):
    """The pickle names a function or class other than numpy's array reconstruction: refused, nothing was run."""


def _allowed() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray

    reconstruct = multiarray._reconstruct
    # numpy 1.x pickles name numpy.core, numpy 2 names numpy._core: the same function either way.
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves numpy.ndarray, numpy.dtype and numpy's _reconstruct, nothing else (os.system, builtins.eval, ...
    raise UnsafePickleError naming them, before they could be called)."""

    def find_class(self, module: str, name: str):
        allowed = _allowed()
        if (module, name) not in allowed:
            raise UnsafePickleError(f"{module}.{name}")
        return allowed[(module, name)]

    def persistent_load(self, pid):
        raise UnsafePickleError(f"persistent id {pid!r}")


def load_numpy_pickle(path: Path):
    """The object pickled in `path`, allowing numpy arrays and plain Python values only."""
    try:
        with open(path, "rb") as f:
            return NumpyOnlyUnpickler(f).load()
    except FileNotFoundError:
        raise AnnotationFileError(f"{path}: annotation file not found") from None
    except UnsafePickleError as err:
        raise UnsafePickleError(
            f"{path}: refused: the pickle names {err}, which is not numpy's array "
            "reconstruction; nothing in it was run. Only the A3D labels file as published "
            "(numpy arrays in dicts) is read"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise AnnotationFileError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None


def read_a3d(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per clip of A3D_labels.pkl."""
    clips = load_numpy_pickle(annotations)
    if not isinstance(clips, dict):
        raise AnnotationFileError(f"{annotations}: expected a dict of clips, found {type(clips).__name__}")
    for key, meta in clips.items():
        where = f"{annotations.name} key {key}"
        missing = [name for name in FIELDS if not isinstance(meta, dict) or name not in meta]
        if missing:
            yield RowProblem(where, f"missing {', '.join(missing)}")
            continue
        target = np.asarray(meta["target"])
        if target.ndim != 1 or not np.isin(target, (0, 1)).all():
            yield RowProblem(where, f"target must be a list of per-frame 0/1, got shape {target.shape}")
            continue
        yield _candidate(str(key), meta, target, where, cfg)


def _candidate(key: str, meta: dict, target: np.ndarray, where: str, cfg: dict) -> Candidate:
    positive = np.flatnonzero(target)
    involved = "ego-car involved" if meta["ego_envolve"] else "ego-car not involved"
    category = f"accident, {involved}" + (", ego-car only" if meta["ego_only"] else "")
    moments = {"accident_start": None, "accident_end": None}
    if len(positive):
        # Frame numbers as the images (000001.jpg); the accident ends with its last positive frame's end.
        moments = {
            "accident_start": int(positive[0]) + cfg["first_frame"],
            "accident_end": int(positive[-1]) + 1 + cfg["first_frame"],
        }
    event, _ = event_times(moments, cfg, len(target))
    fields = {"key": key, "video_name": meta["video_name"]}
    return Candidate(
        clip_id=fill(cfg["clip_id"], fields),
        videos=[fill(p, fields) for p in cfg["videos"]],
        label=cfg["accident_label"],
        where=where,
        category=category,
        event=event or None,
        fps=cfg["fps"],
        group=fill(cfg["group"], fields),
        warning=None if len(positive) else "no positive frame in target: imported without event times",
        source={"dataset": cfg["dataset"], "original_id": key, "category_name": category},
    )
