"""The clip label schema (docs/labels.md): loading, validation and messages that name file, line, clip and field.

A label file is JSON (`{"schema_version": 1, "clips": [...]}`) or JSONL (one clip object per line). Validation never
stops at the first bad clip: every clip is checked, good clips are returned, bad ones become `LabelProblem`s that the
data-prep stage reports under `rejected`. Only an unreadable file as a whole raises `LabelFileError`.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

SCHEMA_VERSION = 1
LABEL_NAMES = ("ghost_probing", "cut_in", "other_hazard", "normal")
SPLIT_NAMES = ("train", "val", "test")

Label = Literal["ghost_probing", "cut_in", "other_hazard", "normal"]
# A time is a JSON number: "2.5", true and NaN/Infinity (which Python's json module reads) are errors, not coerced.
Seconds = Annotated[float, Strict(), AllowInfNan(False)]
FramesPerSecond = Annotated[float, Strict(), AllowInfNan(False), Field(gt=0)]
LABEL_QUALITIES = ("gold", "weak")


class _Strict(BaseModel):
    # Unknown fields are kept (so they can be warned about) rather than rejected: label files grow fields over time.
    model_config = ConfigDict(extra="allow", frozen=True)


class Event(_Strict):
    """When and how the event happens; times are seconds from the start of the clip."""

    t_first_visible_s: Seconds | None = None
    t_event_s: Seconds | None = None
    t_end_s: Seconds | None = None
    actor: str | None = None
    occluder: str | None = None
    side: Literal["left", "right"] | None = None
    outcome: Literal["collision", "near_miss", "none"] | None = None

    @model_validator(mode="after")
    def _times_in_order(self) -> Event:
        times = [
            ("t_first_visible_s", self.t_first_visible_s),
            ("t_event_s", self.t_event_s),
            ("t_end_s", self.t_end_s),
        ]
        present = [(name, t) for name, t in times if t is not None]
        for name, t in present:
            if t < 0:
                raise ValueError(f"{name} is negative ({t})")
        for (name_a, a), (name_b, b) in itertools.pairwise(present):
            if a > b:
                raise ValueError(f"times are inverted: {name_a}={a} > {name_b}={b}")
        return self


class RecordingEvent(Event):
    """One event of a long recording (`events: [...]`): a ghost probing or a look-alike, times from the video's start.

    `label` says what it is (look-alikes are labelled too, so that false alerts can be blamed on a class);
    `kind` is a free word for the look-alike (the generator writes its scenario: `occluder_only`, `cut_in`, ...);
    `t_start_s` is when the event's scene begins (optional; `t_first_visible_s` when absent).
    """

    label: Label
    kind: str | None = None
    t_start_s: Seconds | None = None

    @model_validator(mode="after")
    def _start_first(self) -> RecordingEvent:
        if self.t_start_s is not None:
            if self.t_start_s < 0:
                raise ValueError(f"t_start_s is negative ({self.t_start_s})")
            later = [
                (n, getattr(self, n))
                for n in ("t_first_visible_s", "t_event_s", "t_end_s")
                if getattr(self, n) is not None
            ]
            if later and self.t_start_s > later[0][1]:
                raise ValueError(f"times are inverted: t_start_s={self.t_start_s} > {later[0][0]}={later[0][1]}")
        return self

    @property
    def span_s(self) -> tuple[float, float | None]:
        """[start, end] of the event (end None when it has no end time)."""
        start = next(
            t for t in (self.t_start_s, self.t_first_visible_s, self.t_event_s, self.t_end_s, 0.0) if t is not None
        )
        return start, self.t_end_s if self.t_end_s is not None else self.t_event_s


class Context(_Strict):
    light: Literal["day", "night", "dusk"] | None = None
    weather: str | None = None
    scene: str | None = None
    road: str | None = None


class Provenance(_Strict):
    """Where a label came from: a public dataset's annotation (written by an importer) and/or a person's review.

    `candidate_reason` says why a weak `ghost_probing` label was given ("category", "cause text match"): the public
    datasets label accident categories, never occlusion, so such a label is a candidate until a person confirms it.
    """

    dataset: str | None = None  # the importer's name: dada2000, cap, dota, ccd, a3d, nexar, dad, csv
    original_id: str | None = None  # the clip's id in that dataset
    category_id: int | str | None = None
    category_name: str | None = None
    cause: str | None = None  # the dataset's own cause text, when it has one
    candidate_reason: str | None = None
    reviewer: str | None = None  # who gave a gold label (e.g. a Label Studio user)
    reviewed_at: str | None = None  # when, ISO 8601
    tool: str | None = None  # where the review happened (label_studio)


class ClipLabel(_Strict):
    """One annotated clip. `video` is relative to the label file's folder (or `videos_dir`): a video file, or a
    folder of numbered frames with the clip's `fps`."""

    clip_id: str
    video: str
    label: Label
    event: Event | None = None
    events: list[RecordingEvent] | None = None  # a long recording with several events (scan/main.py labels=)
    context: Context = Context()
    group: str | None = None
    split: Literal["train", "val", "test"] | None = None
    notes: str | None = None
    fps: FramesPerSecond | None = None  # frame rate of a frame-folder clip (a video file's own rate is read from it)
    label_quality: Literal["gold", "weak"] | None = None  # absent: gold (a person wrote the label); weak: a category
    source: Provenance | None = None

    @model_validator(mode="after")
    def _events_consistent(self) -> ClipLabel:
        if self.events is None:
            return self
        if self.event is not None:
            raise ValueError("give either `event` (a clip) or `events` (a long recording), not both")
        starts = [e.span_s[0] for e in self.events]
        for k in range(1, len(starts)):
            if starts[k] < starts[k - 1]:
                raise ValueError(
                    f"events are not in time order: events.{k} starts at {starts[k]} s, before "
                    f"events.{k - 1} at {starts[k - 1]} s"
                )
        has_positive = any(e.label == "ghost_probing" for e in self.events)
        if self.label is not None and has_positive != (self.label == "ghost_probing"):
            raise ValueError(
                f"label {self.label!r} does not fit its events: a recording is 'ghost_probing' exactly "
                "when one of its events is"
            )
        return self

    def missing_for_label(self) -> str | None:
        """The first field this clip's label requires but the clip lacks (ghost probing needs its event times)."""
        if self.events is not None:
            for k, event in enumerate(self.events):
                if event.label == "ghost_probing":
                    for name in ("t_first_visible_s", "t_event_s"):
                        if getattr(event, name) is None:
                            return f"events.{k}.{name}"
            return None
        if self.label != "ghost_probing":
            return None
        if self.event is None:
            return "event"
        for name in ("t_first_visible_s", "t_event_s"):
            if getattr(self.event, name) is None:
                return f"event.{name}"
        return None

    @property
    def is_ghost_probing(self) -> bool:
        return self.label == "ghost_probing"

    def recording_events(self) -> list[RecordingEvent]:
        """The clip's events as a long recording's: its `events`, or a one-event clip's `event` under the clip's
        label (what the scan's event metrics compare alerts with)."""
        if self.events is not None:
            return list(self.events)
        if self.event is None:
            return []
        return [RecordingEvent(label=self.label, **self.event.model_dump(exclude_none=True))]

    @property
    def quality(self) -> str:
        """ "gold" (a person's label; the default) or "weak" (from a dataset's category, not reviewed)."""
        return self.label_quality or "gold"

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


class ClipToLabel(ClipLabel):
    """A clip waiting for a person's label (`"label": null`, as the scan's `export_alerts` writes it): every other
    field is checked as in `ClipLabel`. Read only by `load_labels(..., to_label=True)`, never by data prep."""

    label: Label | None = None


@dataclass(frozen=True)
class LabelProblem:
    """A clip (or line) that cannot be used, with where and why."""

    file: str
    line: int | None
    clip_id: str | None
    field: str | None
    message: str
    video: str | None = None

    def __str__(self) -> str:
        where = [self.file + (f" line {self.line}" if self.line else "")]
        if self.clip_id:
            where.append(f"clip {self.clip_id!r}")
        if self.field:
            where.append(f"field {self.field}")
        return ", ".join(where) + f": {self.message}"


@dataclass
class LabelSet:
    path: Path
    clips: list[ClipLabel] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # clip_id -> line in the label file
    problems: list[LabelProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class LabelFileError(ValueError):
    """The label file as a whole cannot be read (missing, not JSON, wrong top-level shape)."""


def load_labels(path: str | Path, to_label: bool = False) -> LabelSet:
    """Read and validate a JSON or JSONL label file.

    Returns the valid clips plus one `LabelProblem` per unusable clip; raises `LabelFileError` only when nothing in the
    file can be read (missing file, JSON syntax error in a `.json` file, wrong top-level shape). A clip whose `label`
    is null or absent is a problem, unless `to_label` (the review loop): then it is a `ClipToLabel` among the clips.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheet exports often start with a byte-order mark
    except FileNotFoundError:
        raise LabelFileError(f"{path}: label file not found") from None
    except UnicodeDecodeError as err:
        raise LabelFileError(f"{path}: not UTF-8 text ({err})") from None
    out = LabelSet(path=path)
    if path.suffix.lower() == ".jsonl":
        entries = list(_jsonl_entries(path, text, out))
    else:
        entries = list(_json_entries(path, text, out))
    seen: dict[str, int | None] = {}
    for line, raw in entries:
        clip = _validate_clip(path, line, raw, out, to_label)
        if clip is None:
            continue
        if clip.clip_id in seen:
            first = seen[clip.clip_id]
            out.problems.append(
                LabelProblem(
                    str(path),
                    line,
                    clip.clip_id,
                    "clip_id",
                    f"duplicate clip_id (first defined at line {first})",
                    clip.video,
                )
            )
            continue
        seen[clip.clip_id] = line
        out.clips.append(clip)
        if line is not None:
            out.lines[clip.clip_id] = line
    return out


def _jsonl_entries(path: Path, text: str, out: LabelSet):
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as err:
            out.problems.append(
                LabelProblem(str(path), line_no, None, None, f"JSON syntax error at column {err.colno}: {err.msg}")
            )


def _json_entries(path: Path, text: str, out: LabelSet):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelFileError(f"{path} line {err.lineno} column {err.colno}: JSON syntax error: {err.msg}") from None
    if isinstance(doc, list):
        clips = doc
    elif isinstance(doc, dict) and isinstance(doc.get("clips"), list):
        version = doc.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise LabelFileError(
                f"{path}: schema_version {version!r} is not supported (this version reads {SCHEMA_VERSION})"
            )
        clips = doc["clips"]
        extra = sorted(set(doc) - {"schema_version", "clips"})
        if extra:
            out.warnings.append(f"{path}: unknown top-level fields ignored: {', '.join(extra)}")
    else:
        raise LabelFileError(f'{path}: expected an object {{"schema_version": 1, "clips": [...]}} or a list of clips')
    lines = _clip_lines(text, clips)
    yield from zip(lines, clips, strict=True)


def _clip_lines(text: str, clips: list) -> list[int | None]:
    """Best-effort line numbers for clips in a JSON document: the line of each clip's `"clip_id"` key, in order."""
    positions = [m.start() for m in re.finditer(r'"clip_id"\s*:', text)]
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    lines: list[int | None] = []
    cursor = 0
    for clip in clips:
        if isinstance(clip, dict) and "clip_id" in clip and cursor < len(positions):
            pos = positions[cursor]
            cursor += 1
            lines.append(bisect.bisect_right(line_starts, pos))
        else:
            lines.append(None)
    return lines


def validate_clip(
    source: str | Path, raw, line: int | None = None
) -> tuple[ClipLabel | None, list[LabelProblem], list[str]]:
    """Check one clip object as `load_labels` checks each clip of a file (for labels built elsewhere, e.g. from a
    Label Studio export named by `source`): the clip or None, its problems and its warnings."""
    out = LabelSet(path=Path(source))
    return _validate_clip(source, line, raw, out), out.problems, out.warnings  # a URL stays a URL in messages


def _validate_clip(path: str | Path, line: int | None, raw, out: LabelSet, to_label: bool = False) -> ClipLabel | None:
    clip_id = raw.get("clip_id") if isinstance(raw, dict) else None
    clip_id = str(clip_id) if clip_id is not None else None
    video = raw.get("video") if isinstance(raw, dict) and isinstance(raw.get("video"), str) else None
    if not isinstance(raw, dict):
        out.problems.append(LabelProblem(str(path), line, None, None, f"a clip must be a JSON object, got {raw!r:.60}"))
        return None
    model = ClipToLabel if to_label and raw.get("label") is None else ClipLabel
    try:
        clip = model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or None
        more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
        misspelt = _misspelt_required(raw, first)
        if misspelt:
            loc, message = misspelt
            out.problems.append(LabelProblem(str(path), line, clip_id, loc, message + more, video))
        else:
            out.problems.append(LabelProblem(str(path), line, clip_id, loc, _pydantic_message(first) + more, video))
        return None
    if not clip.clip_id.strip():
        out.problems.append(LabelProblem(str(path), line, None, "clip_id", "clip_id is empty", video))
        return None
    missing = clip.missing_for_label()
    if missing:
        misspelt = _misspelt_required(raw, {"type": "missing", "loc": tuple(missing.split("."))})
        where, message = misspelt or (missing, "required for label 'ghost_probing' but missing")
        out.problems.append(LabelProblem(str(path), line, clip.clip_id, where, message, video))
        return None
    for name in _unknown_fields(clip):
        parent, _, leaf = name.rpartition(".")
        hint = _did_you_mean(leaf, _known_fields(parent))
        out.warnings.append(str(LabelProblem(str(path), line, clip.clip_id, name, f"unknown field ignored{hint}")))
    return clip


def _known_fields(parent: str) -> list[str]:
    """The field names a clip object (parent "") or one of its parts ("event", "events.0", "context", "source")
    knows."""
    model = {"": ClipLabel, "event": Event, "context": Context, "source": Provenance}.get(
        "events" if parent.startswith("events.") else parent, RecordingEvent
    )
    return list(model.model_fields)


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _misspelt_required(raw: dict, error: dict) -> tuple[str, str] | None:
    """A required field reported missing while an unknown field of nearly the same name is there ("lable" for
    "label"): (the misspelt field's location, "unknown field 'lable' (did you mean 'label'?)")."""
    if error["type"] != "missing" or not error["loc"]:
        return None
    *parents, name = [str(p) for p in error["loc"]]
    node = raw
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else node[int(key)] if isinstance(node, list) else None
    if not isinstance(node, dict):
        return None
    known = set(_known_fields(".".join(parents)))
    close = difflib.get_close_matches(name, [k for k in node if k not in known], n=1, cutoff=0.6)
    if not close:
        return None
    return ".".join([*parents, close[0]]), f"unknown field {close[0]!r} (did you mean {name!r}?)"


def _pydantic_message(error: dict) -> str:
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] != "value_error" and "input" in error and not isinstance(error["input"], dict):
        msg += f" (got {error['input']!r:.60})"
    return msg


def _unknown_fields(clip: ClipLabel) -> list[str]:
    names = [name for name in (clip.model_extra or {})]
    for part in ("event", "context", "source"):
        sub = getattr(clip, part)
        if sub is not None:
            names += [f"{part}.{name}" for name in (sub.model_extra or {})]
    for k, event in enumerate(clip.events or []):
        names += [f"events.{k}.{name}" for name in (event.model_extra or {})]
    return names


def events_beyond_video(clip: ClipLabel, duration_s: float, fps: float) -> str | None:
    """Why a clip's event times do not fit its video (None when they do), with one frame of slack. Data prep and the
    scan both check labels with it."""
    tolerance_s = 1.0 / fps  # a label may name the time of the last frame's end
    named = [
        (f"event.{n}", getattr(clip.event, n))
        for n in ("t_first_visible_s", "t_event_s", "t_end_s")
        if clip.event is not None
    ]
    for k, event in enumerate(clip.events or []):
        named += [
            (f"events.{k}.{n}", getattr(event, n)) for n in ("t_start_s", "t_first_visible_s", "t_event_s", "t_end_s")
        ]
    for name, t in named:
        if t is not None and t > duration_s + tolerance_s:
            return f"{name}={t:g} s is beyond the video's real duration {duration_s:.2f} s"
    return None


def write_labels(path: str | Path, clips: list[ClipLabel]) -> None:
    """Write clips as a schema-v1 JSON label file (one clip per block, stable key order), atomically: a kill never
    leaves a half-written label file in place of the previous one."""
    path = Path(path)
    from ghostprobe.files import write_json_atomic

    write_json_atomic(path, {"schema_version": SCHEMA_VERSION, "clips": [clip.to_json() for clip in clips]})
