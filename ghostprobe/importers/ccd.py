"""CCD (Car Crash Dataset): `Crash-1500.txt` plus the `Normal/` videos as negatives.

One line per crash clip, no header: `vid,[50 per-frame 0/1 labels],startframe,youtube_id,Day|Night,weather,
ego-involved Yes|No`. Copies differ: the labels come in brackets (`[0, 0, ..., 1]`) or bare (`0,0,...,1`); both are
read. 50 frames at 10 fps; the positive frames run from the crash to the end of the clip. No accident type.
"""

from __future__ import annotations

from pathlib import Path

from ghostprobe.importers.common import AnnotationFileError, Candidate, RowProblem, event_times, fill

NUM_LABELS = 50


def read_ccd(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per line of Crash-1500.txt, then one normal clip per video in Normal/."""
    try:
        text = annotations.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationFileError(f"{annotations}: annotation file not found") from None
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield _crash(line, f"{annotations.name} line {line_number}", cfg)
    normal = root / cfg["normal_folder"]
    for video in sorted(normal.glob(cfg["normal_glob"])) if normal.is_dir() else []:
        fields = {"name": video.stem}
        yield Candidate(
            clip_id=fill(cfg["normal_clip_id"], fields),
            videos=[video.relative_to(root).as_posix()],
            label=cfg["normal_label"],
            where=f"{cfg['normal_folder']}/{video.name}",
            category="Normal",
            fps=cfg["fps"],
            source={"dataset": cfg["dataset"], "original_id": video.stem, "category_name": "Normal"},
        )


def _crash(line: str, where: str, cfg: dict):
    # Brackets are decoration around the labels: without them the line is plain comma-separated values.
    cells = [cell.strip() for cell in line.replace("[", "").replace("]", "").split(",")]
    if len(cells) != 1 + NUM_LABELS + 5:
        return RowProblem(
            where,
            f"{len(cells)} values, expected {1 + NUM_LABELS + 5} (vid, {NUM_LABELS} frame "
            "labels, startframe, youtube_id, Day/Night, weather, ego-involved)",
        )
    vid, labels, (_start_frame, youtube_id, light, weather, ego) = cells[0], cells[1 : 1 + NUM_LABELS], cells[-5:]
    if any(value not in ("0", "1") for value in labels):
        return RowProblem(where, f"frame labels must be 0 or 1, got {sorted(set(labels) - {'0', '1'})}")
    if "1" not in labels:
        return RowProblem(where, f"clip {vid}: no positive frame, though Crash-1500 lists crashes only")
    crash_frame = labels.index("1")
    event, _ = event_times({"crash_frame": crash_frame, "clip_end": NUM_LABELS}, cfg, NUM_LABELS)
    fields = {"vid": vid, "youtube_id": youtube_id}
    involved = {"yes": "ego-car involved", "no": "ego-car not involved"}.get(ego.lower(), f"ego-involved {ego!r}")
    return Candidate(
        clip_id=fill(cfg["clip_id"], fields),
        videos=[fill(p, fields) for p in cfg["videos"]],
        label=cfg["crash_label"],
        where=where,
        category=f"crash, {involved}",
        event=event,
        fps=cfg["fps"],
        group=fill(cfg["group"], fields),
        context={
            k: v
            for k, v in {
                "light": (cfg.get("light_words") or {}).get(light),
                "weather": (cfg.get("weather_words") or {}).get(weather),
            }.items()
            if v
        },
        source={"dataset": cfg["dataset"], "original_id": vid, "category_name": f"crash, {involved}"},
    )
