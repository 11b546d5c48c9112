"""Merge label files into one: `python data_prep/merge_labels.py labels=[A.json,B.json] out=MERGED.json`.

For each clip_id: a gold label (a person's) beats a weak one (a dataset's category); among labels of the best quality
present, agreeing ones keep the later file's clip (a newer review of the same clip), disagreeing ones are listed and
the clip is left out until someone settles it. One clip_id naming two different videos is a collision: listed, left
out. `video` paths are rewritten relative to the merged file's folder. A clip whose fields did not change keeps the
same data-prep cache entry, and one that only turned gold (label_quality, source) too: its video is not decoded again.

Exit code 1 when a clip was left out or a file had a bad label (the merged file is still written).
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

# A stage script runs as `python data_prep/merge_labels.py`: put the repository root on the path for `ghostprobe`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig

from ghostprobe.cli import entry_point
from ghostprobe.labels import (
    ClipLabel,
    LabelFileError,
    LabelProblem,
    load_labels,
    write_labels,
)


@dataclass
class Merge:
    clips: list[ClipLabel] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)  # bad labels of the inputs
    left_out: list[str] = field(default_factory=list)  # disagreements and collisions, one line per clip
    weak_replaced: int = 0  # clips whose weak label gave way to a gold one


def merge_label_files(paths: list[Path], out_dir: Path) -> Merge:
    """Merge the label files at `paths` for a label file written into `out_dir` (see the module's docstring)."""
    merge = Merge()
    candidates: dict[str, list[tuple[Path, ClipLabel, Path]]] = {}
    for path in paths:
        label_set = load_labels(path)
        merge.problems += label_set.problems
        for clip in label_set.clips:
            video = (path.parent / clip.video).resolve()
            candidates.setdefault(clip.clip_id, []).append((path, clip, video))
    for clip_id, found in candidates.items():
        videos = dict.fromkeys(video for _, _, video in found)
        if len(videos) > 1:
            merge.left_out.append(
                f"clip {clip_id!r}: one clip_id names different videos: "
                + "; ".join(f"{video} ({path})" for path, _, video in found)
            )
            continue
        gold = [entry for entry in found if entry[1].quality == "gold"]
        best = gold or found
        labels = dict.fromkeys(clip.label for _, clip, _ in best)
        if len(labels) > 1:
            merge.left_out.append(
                f"clip {clip_id!r}: {best[0][1].quality} labels disagree: "
                + "; ".join(f"{clip.label} ({path})" for path, clip, _ in best)
            )
            continue
        path, clip, video = best[-1]
        relative = Path(os.path.relpath(video, out_dir.resolve()))
        if relative.parts and relative.parts[0] == "..":
            merge.problems.append(
                LabelProblem(
                    str(path),
                    None,
                    clip_id,
                    "video",
                    f"{video} is outside the merged file's folder {out_dir.resolve()}: "
                    "write out= higher up, into a folder holding every video",
                    clip.video,
                )
            )
            continue
        merge.weak_replaced += bool(gold) and len(gold) < len(found)
        merge.clips.append(clip.model_copy(update={"video": relative.as_posix()}))
    return merge


@entry_point("merge_labels")
def main(cfg: DictConfig) -> None:
    paths = [Path(p) for p in cfg.labels]
    out = Path(cfg.out)
    try:
        merge = merge_label_files(paths, out.parent)
    except LabelFileError as err:
        raise SystemExit(f"merge_labels: {err}") from None
    write_labels(out, merge.clips)
    gold = sum(clip.quality == "gold" for clip in merge.clips)
    print(
        f"{len(merge.clips)} clips ({gold} gold, {len(merge.clips) - gold} weak; {merge.weak_replaced} weak labels "
        f"replaced by gold) from {len(paths)} files -> {out}"
    )
    for line in [str(p) for p in merge.problems] + merge.left_out:
        print(f"  left out: {line}")
    if merge.problems or merge.left_out:
        sys.exit(1)


if __name__ == "__main__":
    main()
