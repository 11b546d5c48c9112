"""What every importer shares: a clip as read from an annotation file (`Candidate`), the YAML-driven pieces (frames
to seconds, category -> label, actors, context words, clip ids), finding the clip's video under `root`, and the
result with its summary.

A reader yields `Candidate`s and `RowProblem`s; `finish` turns them into validated `ClipLabel`s, lists the clips
whose video is not under `root` (kept when `keep_missing`), and counts per category which label each clip got.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ghostprobe.labels import LABEL_NAMES, ClipLabel


class ImporterConfigError(ValueError):
    """The importer's YAML (conf/importer/NAME.yaml) or the command line is wrong: a clear message, nothing read."""


class AnnotationFileError(ValueError):
    """The annotation file as a whole cannot be read (missing, wrong format, a column that is not there)."""


@dataclass
class Candidate:
    """One clip as an annotation file describes it, before its video is looked up."""

    clip_id: str
    videos: list[str]  # paths under root to try, in order: a video file or a frame folder (may hold one * level)
    label: str
    where: str  # the row in the annotation file, for messages: "Sheet1 row 17", "line 3", "key 0RJPQ_97dcs_000199"
    category: str  # the summary's category: what the label was decided from
    quality: str = "weak"
    event: dict | None = None
    context: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    split: str | None = None
    group: str | None = None
    notes: str | None = None
    fps: float | None = None  # the rate the frame numbers were converted at; set on the label for frame folders
    warning: str | None = None  # something the import changed (a clamped frame), reported in the summary


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot become a clip, with where and why."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ImportResult:
    clips: list[ClipLabel] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "clip_id (tried: a.avi, 1/001)" for videos not under root
    kept_missing: bool = False
    warnings: list[str] = field(default_factory=list)
    by_category: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # category -> label -> n

    def summary(self, show: int = 10) -> str:
        """What the import did, for the terminal: per category how many clips became which label, then the missing
        videos and unreadable rows (count and the first `show`)."""
        quality = Counter(clip.quality for clip in self.clips)
        lines = [
            f"imported {len(self.clips)} clips ({', '.join(f'{q} {n}' for q, n in sorted(quality.items()))}); "
            f"{len(self.problems)} rows unreadable; {len(self.missing)} videos missing under root"
            + (" (kept: keep_missing=true)" if self.kept_missing and self.missing else "")
        ]
        width = max((len(c) for c in self.by_category), default=8)
        for category in sorted(self.by_category, key=_natural):
            counts = self.by_category[category]
            labels = ", ".join(f"{label} {counts[label]}" for label in LABEL_NAMES if counts[label])
            lines.append(f"  {category:{width}s}  {sum(counts.values()):5d} -> {labels}")
        lines += _listed("videos missing under root", self.missing, show)
        lines += _listed("unreadable rows", [str(p) for p in self.problems], show)
        lines += _listed("warnings", self.warnings, show)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "clips": len(self.clips),
            "missing": self.missing,
            "problems": [str(p) for p in self.problems],
            "warnings": self.warnings,
            "kept_missing": self.kept_missing,
            "by_category": {c: dict(n) for c, n in sorted(self.by_category.items(), key=lambda kv: _natural(kv[0]))},
        }


def _listed(title: str, items: list[str], show: int) -> list[str]:
    if not items:
        return []
    more = f" (first {show}; all in the import report)" if len(items) > show else ""
    return [f"  {title}: {len(items)}{more}"] + [f"    {item}" for item in items[:show]]


def _natural(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# --- YAML-driven pieces -------------------------------------------------------------------------------------------


def frames_to_seconds(frame: float, cfg: dict) -> float:
    """A frame number of the annotation file as seconds from the clip's first frame: (frame - first_frame) / fps."""
    return round((frame - cfg["first_frame"]) / cfg["fps"], 4)


def event_times(moments: dict[str, float | None], cfg: dict, num_frames: int | None = None) -> tuple[dict, list]:
    """The label's event times from the dataset's annotated moments, as `cfg["times"]` maps them
    ({t_first_visible_s: abnormal_start, ...}): moments are frame numbers (seconds when cfg["time_unit"] is s).
    A frame beyond the clip's `num_frames` is clamped to the clip's end; returns (event, [clamped moment notes])."""
    event, clamped = {}, []
    for field_name, moment in (cfg.get("times") or {}).items():
        if moment is None:
            continue
        if moment not in moments:
            raise ImporterConfigError(
                f"times.{field_name}: {moment!r} is not a moment this dataset annotates; "
                f"choose one of {', '.join(sorted(moments))}"
            )
        value = moments[moment]
        if value is None:
            continue
        if cfg.get("time_unit") == "s":
            event[field_name] = round(float(value), 4)
            continue
        end = cfg["first_frame"] + num_frames if num_frames else None  # the end of the last frame
        if end is not None and value > end:
            clamped.append(f"{moment} {value:g} > {num_frames} frames")
            value = end
        event[field_name] = frames_to_seconds(value, cfg)
    return event, clamped


class CategoryMap:
    """category -> label, from the YAML's `categories: {label: [category, ...]}` and `default_label`."""

    def __init__(self, cfg: dict, name: str = "categories"):
        self.labels: dict[str, str] = {}
        for label, members in (cfg.get(name) or {}).items():
            if label not in LABEL_NAMES:
                raise ImporterConfigError(f"{name}: {label!r} is not a label; use {', '.join(LABEL_NAMES)}")
            for member in members or []:
                key = _key(member)
                if key in self.labels and self.labels[key] != label:
                    raise ImporterConfigError(f"{name}: {member!r} is listed under both {self.labels[key]} and {label}")
                self.labels[key] = label
        self.default = cfg.get("default_label")
        if self.default is not None and self.default not in LABEL_NAMES:
            raise ImporterConfigError(
                f"default_label: {self.default!r} is not a label; use {', '.join(LABEL_NAMES)} "
                "or null (unmapped categories are then listed as unreadable rows)"
            )

    def label(self, category) -> str | None:
        """The label of `category` (None: unmapped and no default_label)."""
        return self.labels.get(_key(category), self.default)


class ActorMap:
    """category -> the event's actor word, from `actors: {pedestrian: [...], ...}`."""

    def __init__(self, cfg: dict):
        self.actor_of = {
            _key(member): actor for actor, members in (cfg.get("actors") or {}).items() for member in members or []
        }

    def actor(self, category) -> str | None:
        return self.actor_of.get(_key(category))


def _key(value) -> str:
    """Categories compare as text with spaces squeezed ("1", 1 and " 1" are one category; "ego: pedestrian" too)."""
    return " ".join(str(value).split()).lower()


def cause_match(cause: str | None, cfg: dict) -> str | None:
    """The first of `cause_patterns` (regular expressions, case-insensitive) found in the cause text."""
    for pattern in cfg.get("cause_patterns") or []:
        if cause and re.search(pattern, cause, re.IGNORECASE):
            return pattern
    return None


def context_words(values: dict, cfg: dict) -> dict:
    """The label's context from coded columns, e.g. weather 2 -> rainy, as `context_values: {weather: {2: rainy}}`;
    codes not listed are left out."""
    context = {}
    for name, codes in (cfg.get("context_values") or {}).items():
        raw = values.get(name)
        if raw is None:
            continue
        word = {_key(k): v for k, v in codes.items()}.get(_key(_plain_number(raw)))
        if word is not None:
            context[name] = word
    return context


def _plain_number(value):
    """2.0 (a spreadsheet's number) -> 2; anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def fill(template: str, fields: dict) -> str:
    """A YAML template such as "dada2000_{type}_{video}" filled with a row's fields."""
    try:
        return template.format(**fields)
    except KeyError as err:
        raise ImporterConfigError(
            f"template {template!r} names {{{err.args[0]}}}, which this dataset does not have; "
            f"fields: {', '.join(sorted(fields))}"
        ) from None


def ghost_probing_reason(category_label: str | None, cause_pattern: str | None) -> str | None:
    """Why a weak label is a ghost-probing candidate ("category", "cause text match", or both)."""
    reasons = (["category"] if category_label == "ghost_probing" else []) + (
        [f"cause text match ({cause_pattern})"] if cause_pattern else []
    )
    return ", ".join(reasons) or None


# --- from candidates to labels ------------------------------------------------------------------------------------


def finish(rows, root: Path, keep_missing: bool) -> ImportResult:
    """Validate every candidate as a label, count its label under its category, find its video under `root`."""
    result = ImportResult(kept_missing=keep_missing)
    seen: dict[str, str] = {}
    for row in rows:
        if isinstance(row, RowProblem):
            result.problems.append(row)
            continue
        if row.clip_id in seen:
            result.problems.append(RowProblem(row.where, f"clip {row.clip_id!r} again (first at {seen[row.clip_id]})"))
            continue
        video, is_folder = _find_video(root, row.videos)
        found = video is not None
        if not found:  # planned where the first layout without a wildcard would put it
            video = next((v for v in row.videos if "*" not in v), row.videos[0])
            is_folder = not Path(video).suffix
        clip = _validated(row, video, is_folder, result)
        if clip is None:
            continue
        seen[row.clip_id] = row.where
        result.by_category[row.category][row.label] += 1
        if row.warning:
            result.warnings.append(f"{row.where}: {row.warning}")
        if not found:
            result.missing.append(f"{row.clip_id} (tried: {', '.join(row.videos)})")
            if not keep_missing:
                continue
        result.clips.append(clip)
    return result


def _validated(row: Candidate, video: str, is_folder: bool, result: ImportResult) -> ClipLabel | None:
    entry = {
        "clip_id": row.clip_id,
        "video": video,
        "label": row.label,
        "label_quality": row.quality,
        "source": {k: v for k, v in row.source.items() if v not in (None, "")},
        "context": row.context or None,
        "split": row.split,
        "group": row.group,
        "notes": row.notes,
        "fps": row.fps if is_folder else None,
        "event": row.event or None,
    }
    try:
        clip = ClipLabel.model_validate({k: v for k, v in entry.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        result.problems.append(RowProblem(row.where, f"clip {row.clip_id!r}: {loc}: {message}"))
        return None
    missing = clip.missing_for_label()
    if missing:
        result.problems.append(
            RowProblem(
                row.where,
                f"clip {row.clip_id!r}: label {row.label} needs {missing}, which the annotation does not give",
            )
        )
        return None
    return clip


def _find_video(root: Path, candidates: list[str]) -> tuple[str | None, bool]:
    """The first candidate path that exists under root (relative, with / separators), and whether it is a folder."""
    for candidate in candidates:
        if "*" in candidate:
            matches = sorted(p.relative_to(root).as_posix() for p in root.glob(candidate))
            if matches:
                return matches[0], (root / matches[0]).is_dir()
        elif (root / candidate).exists():
            return candidate, (root / candidate).is_dir()
    return None, False
