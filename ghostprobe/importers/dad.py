"""DAD (Dashcam Accident Dataset): the folder layout is the annotation.

`videos/{training,testing}/{positive,negative}/*.mp4`, 100 frames at 20 fps each; in a positive the accident
happens at frame 90 (the last ten frames). `annotations=` names the `videos/` folder.
"""

from __future__ import annotations

from pathlib import Path

from ghostprobe.importers.common import AnnotationFileError, Candidate, event_times, fill


def read_dad(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate per video found under annotations/{training,testing}/{positive,negative}/."""
    if not annotations.is_dir():
        raise AnnotationFileError(
            f"{annotations}: DAD's annotation is its folder layout: give the videos/ folder "
            "that holds training/ and testing/"
        )
    try:
        annotations.resolve().relative_to(root.resolve())
    except ValueError:
        raise AnnotationFileError(
            f"{annotations} is not inside root={root}: the label file's paths are relative to root"
        ) from None
    found = 0
    for subset, split in (cfg.get("subsets") or {}).items():
        for kind, label in (("positive", cfg["positive_label"]), ("negative", cfg["negative_label"])):
            for video in sorted((annotations / subset / kind).glob(cfg["video_glob"])):
                found += 1
                yield _candidate(video, subset, split, kind, label, root, cfg)
    if not found:
        raise AnnotationFileError(
            f"{annotations}: no {cfg['video_glob']} under "
            f"{{{','.join(cfg.get('subsets') or {})}}}/{{positive,negative}}/"
        )


def _candidate(video: Path, subset: str, split: str | None, kind: str, label: str, root: Path, cfg: dict):
    fields = {"subset": subset, "kind": kind, "name": video.stem}
    event = None
    if kind == "positive":
        event, _ = event_times({"accident_frame": cfg["accident_frame"]}, cfg, cfg["frames_per_clip"])
    relative = video.resolve().relative_to(root.resolve()).as_posix()
    return Candidate(
        clip_id=fill(cfg["clip_id"], fields),
        videos=[relative],
        label=label,
        where=relative,
        category=kind,
        event=event,
        split=split,
        fps=cfg["fps"],
        source={"dataset": cfg["dataset"], "original_id": f"{subset}/{kind}/{video.stem}", "category_name": kind},
    )
