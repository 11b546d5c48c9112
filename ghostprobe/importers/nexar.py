"""Nexar collision prediction: the challenge's `train.csv` or the published copy's `metadata.csv`.

`train.csv`: `id,time_of_event,time_of_alert,target`, videos `train/<id>.mp4`; ids are text ("00822" stays
"00822", never the number 822). `metadata.csv` (the published copy, one per split folder): `file_name,
time_of_event,time_of_alert,light_conditions,weather,scene`, `file_name` relative to the csv's folder
(`positive/00822.mp4`), the label given by the folder (positive/negative). Times are in seconds; a negative has
none.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ghostprobe.importers.common import AnnotationFileError, Candidate, RowProblem, event_times, fill

LAYOUTS = {
    "train_csv": ("id", "time_of_event", "time_of_alert", "target"),
    "metadata_csv": ("file_name", "time_of_event", "time_of_alert"),
}


def read_nexar(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per row of train.csv or metadata.csv (told apart by their headers)."""
    try:
        with open(annotations, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))  # every cell stays text: an id is never turned into a number
    except FileNotFoundError:
        raise AnnotationFileError(f"{annotations}: annotation file not found") from None
    if not rows:
        raise AnnotationFileError(f"{annotations}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    layout = next((name for name, needed in LAYOUTS.items() if set(needed) <= set(header)), None)
    if layout is None:
        raise AnnotationFileError(
            f"{annotations}: headers {rows[0]} are neither the challenge's train.csv "
            f"({','.join(LAYOUTS['train_csv'])}) nor the published metadata.csv "
            f"({','.join(LAYOUTS['metadata_csv'])},...)"
        )
    prefix = _relative_folder(annotations, root) if layout == "metadata_csv" else ""
    for line_number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        row = {name: (cells[k].strip() if k < len(cells) else "") for k, name in enumerate(header)}
        where = f"{annotations.name} line {line_number}"
        try:
            yield _candidate(row, layout, prefix, where, cfg)
        except ValueError as err:
            yield RowProblem(where, str(err))


def _relative_folder(annotations: Path, root: Path) -> str:
    """metadata.csv names files relative to its own folder; the label file's paths are relative to root."""
    folder = annotations.resolve().parent
    try:
        relative = folder.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise AnnotationFileError(
            f"{annotations}: metadata.csv names videos relative to its own folder, which is "
            f"not inside root={root}: set root to that folder or one above it"
        ) from None
    return "" if relative == "." else relative + "/"


def _candidate(row: dict, layout: str, prefix: str, where: str, cfg: dict) -> Candidate:
    event_s, alert_s = _seconds(row, "time_of_event"), _seconds(row, "time_of_alert")
    if layout == "train_csv":
        clip = row["id"]
        if not clip:
            raise ValueError("id is empty")
        positive = {"1": True, "0": False, "1.0": True, "0.0": False}.get(row["target"])
        if positive is None:
            raise ValueError(f"target {row['target']!r} is neither 1 nor 0")
        videos = [fill(p, {"id": clip}) for p in cfg["videos"]]
    else:
        file_name = row["file_name"]
        if not file_name:
            raise ValueError("file_name is empty")
        parts = Path(file_name).parts
        clip = Path(file_name).stem
        positive = "positive" in parts if ("positive" in parts or "negative" in parts) else event_s is not None
        videos = [prefix + file_name]
    if positive and event_s is None:
        raise ValueError(f"clip {clip}: a positive without time_of_event")
    if not positive and event_s is not None:
        raise ValueError(f"clip {clip}: a negative with time_of_event {event_s}")
    label = cfg["positive_label"] if positive else cfg["negative_label"]
    event, _ = event_times({"time_of_event": event_s, "time_of_alert": alert_s}, cfg)
    category = "positive (collision or near-miss)" if positive else "negative"
    context = {
        k: row[c].lower()
        for k, c in (("light", "light_conditions"), ("weather", "weather"), ("scene", "scene"))
        if row.get(c)
    }
    if context.get("light") not in (None, "day", "night", "dusk"):
        context.pop("light")  # the schema's three words; anything else stays out rather than failing the clip
    return Candidate(
        clip_id=fill(cfg["clip_id"], {"id": clip}),
        videos=videos,
        label=label,
        where=where,
        category=category,
        event=event if positive else None,
        context=context,
        source={"dataset": cfg["dataset"], "original_id": clip, "category_name": category},
    )


def _seconds(row: dict, name: str) -> float | None:
    text = row.get(name, "")
    if text == "" or text.lower() in ("nan", "none", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {text!r} is not a time in the clip")
    return value
