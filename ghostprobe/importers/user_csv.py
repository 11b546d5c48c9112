"""A user's own spreadsheet of labels: `clip, label[, time]`, comma or tab separated, a header row or not.

The label cell may carry the time itself: `5s: ghost probing`, `13: cut-in`, `none`. Words are mapped to labels by
`label_words:` in the YAML; a ghost probing needs a time. Every row that cannot be read is listed with its line and
why; these labels are a person's, so `gold`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ghostprobe.importers.common import AnnotationFileError, Candidate, ImporterConfigError, RowProblem, fill

_TIME_PREFIX = re.compile(r"^\s*(?P<time>\d+(?:\.\d+)?\s*(?:s|sec|secs|seconds)?)\s*:\s*(?P<label>.+)$", re.I)
_SECONDS = re.compile(r"^(?P<value>\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)?$", re.I)
_MINUTES = re.compile(r"^(?P<minutes>\d+):(?P<seconds>[0-5]\d(?:\.\d+)?)$")


def read_user_csv(annotations: Path, root: Path, cfg: dict):
    """Yield a Candidate or a RowProblem per non-empty row."""
    try:
        text = annotations.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationFileError(f"{annotations}: annotation file not found") from None
    except UnicodeDecodeError as err:
        raise AnnotationFileError(f"{annotations}: not UTF-8 text ({err}); save the sheet as CSV UTF-8") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if "\t" in first else ","
    words = _label_words(cfg)
    header_words = {w.lower() for w in cfg["header_words"]}
    first_line = next((k for k, line in enumerate(lines, start=1) if line.strip()), 0)
    for line_number, cells in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        cells = [cell.strip() for cell in cells]
        while cells and cells[-1] == "":
            cells.pop()  # trailing empty cells: a spreadsheet exporting more columns than were filled
        if not cells or cells[0].startswith("#"):
            continue
        where = f"{annotations.name} line {line_number}"
        if line_number == first_line and cells[0].lower() in header_words:
            continue
        yield _row(cells, where, words, cfg)


def _label_words(cfg: dict) -> dict[str, str]:
    words = {}
    for label, members in cfg["label_words"].items():
        for word in members:
            key = _squeeze(str(word))
            if key in words and words[key] != label:
                raise ImporterConfigError(f"label_words: {word!r} is listed under both {words[key]} and {label}")
            words[key] = label
    return words


def _squeeze(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def _row(cells: list[str], where: str, words: dict, cfg: dict):
    if len(cells) > 3:
        return RowProblem(where, f"{len(cells)} values; expected clip, label[, time]")
    if len(cells) < 2 or not cells[1]:
        return RowProblem(where, f"no label for clip {cells[0]!r}; expected clip, label[, time]")
    clip, written = cells[0], cells[1]
    if not clip:
        return RowProblem(where, "the clip cell is empty")
    time_text, label_text = None, written
    prefixed = _TIME_PREFIX.match(written)
    if prefixed:
        time_text, label_text = prefixed["time"], prefixed["label"]
    if len(cells) == 3 and cells[2]:
        if time_text is not None:
            return RowProblem(where, f"two times: {time_text!r} in the label and {cells[2]!r} in the time column")
        time_text = cells[2]
    label = words.get(_squeeze(label_text))
    if label is None:
        return RowProblem(
            where,
            f"label {label_text!r} is not a known word; known: "
            f"{', '.join(sorted(set(words)))} (label_words in conf/importer/csv.yaml)",
        )
    seconds = None
    if time_text is not None:
        seconds = _seconds(time_text)
        if seconds is None:
            return RowProblem(where, f"time {time_text!r} is not seconds (5, 5s, 5.2 s) or minutes:seconds (1:05)")
    if label == "ghost_probing" and seconds is None:
        return RowProblem(
            where, f"clip {clip!r}: a ghost probing needs its time (e.g. '5s: ghost probing', or a time column)"
        )
    event = {name: seconds for name in cfg["time_fields"]} if seconds is not None and label != "normal" else None
    stem = clip.rsplit(".", 1)[0] if Path(clip).suffix else clip
    videos = [clip] if Path(clip).suffix else [fill(p, {"clip": clip}) for p in cfg["videos"]]
    return Candidate(
        clip_id=stem,
        videos=videos,
        label=label,
        where=where,
        category=_squeeze(label_text),
        quality=cfg["quality"],
        event=event,
        fps=cfg.get("fps"),
        source={"dataset": cfg["dataset"], "original_id": clip, "category_name": label_text},
    )


def _seconds(text: str) -> float | None:
    text = text.strip()
    match = _SECONDS.match(text)
    if match:
        return float(match["value"])
    match = _MINUTES.match(text)
    if match:
        return int(match["minutes"]) * 60 + float(match["seconds"])
    return None
