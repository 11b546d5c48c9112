"""DoTA (Detection of Traffic Anomaly): `metadata_train.json` / `metadata_val.json`.

`{clip_id: {video_start, video_end, anomaly_start, anomaly_end, anomaly_class, num_frames, subset}}`; the anomaly
frames are indices within the clip (0-based, as the images 000000.jpg), at 10 fps. `anomaly_end` may equal
`num_frames` (the end of the last frame) and once exceeds it: it is clamped to the clip's end.
"""

from __future__ import annotations

import json
from pathlib import Path

from ghostprobe.importers.common import (
    ActorMap,
    AnnotationFileError,
    Candidate,
    CategoryMap,
    RowProblem,
    event_times,
    fill,
    ghost_probing_reason,
)

FIELDS = ("anomaly_start", "anomaly_end", "anomaly_class", "num_frames", "subset")


def read_dota(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per clip of every metadata file (a file, or a folder holding them)."""
    files = sorted(annotations.glob(cfg["annotation_files"])) if annotations.is_dir() else [annotations]
    if not files:
        raise AnnotationFileError(f"{annotations}: no {cfg['annotation_files']} in this folder")
    categories, actors = CategoryMap(cfg), ActorMap(cfg)
    for path in files:
        for clip_id, meta in _load(path).items():
            where = f"{path.name} clip {clip_id}"
            missing = [name for name in FIELDS if not isinstance(meta, dict) or name not in meta]
            if missing:
                yield RowProblem(where, f"missing {', '.join(missing)}")
                continue
            yield _candidate(clip_id, meta, where, cfg, categories, actors)


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationFileError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as err:
        raise AnnotationFileError(
            f"{path} line {err.lineno} column {err.colno}: JSON syntax error: {err.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise AnnotationFileError(f"{path}: expected an object {{clip_id: {{...}}}}")
    return doc


def _candidate(clip_id: str, meta: dict, where: str, cfg: dict, categories: CategoryMap, actors: ActorMap):
    anomaly = " ".join(str(meta["anomaly_class"]).split())
    label = categories.label(anomaly)
    if label is None:
        return RowProblem(
            where,
            f"anomaly class {anomaly!r} is not mapped: list it under `categories:` in the "
            "importer's YAML, or set default_label",
        )
    num_frames = int(meta["num_frames"])
    event, clamped = event_times(
        {"anomaly_start": meta["anomaly_start"], "anomaly_end": meta["anomaly_end"]}, cfg, num_frames
    )
    actor = actors.actor(anomaly)
    if actor:
        event["actor"] = actor
    fields = {"clip_id": clip_id, "video_id": clip_id.rsplit("_", 1)[0]}
    return Candidate(
        clip_id=fill(cfg["clip_id"], fields),
        videos=[fill(p, fields) for p in cfg["videos"]],
        label=label,
        where=where,
        category=anomaly,
        event=event if label != "normal" else None,
        fps=cfg["fps"],
        split=(cfg.get("splits") or {}).get(meta["subset"]),
        group=fill(cfg["group"], fields),
        warning=f"clamped to the clip's end: {'; '.join(clamped)}" if clamped else None,
        source={
            "dataset": cfg["dataset"],
            "original_id": clip_id,
            "category_name": anomaly,
            "candidate_reason": ghost_probing_reason(label, None) if label == "ghost_probing" else None,
        },
    )
