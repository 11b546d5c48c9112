"""The labelling loop's data (docs/labels.md, "Labelling your clips"): clips to review as Label Studio tasks, and the
reviewers' answers back as gold labels.

A task shows one clip's video with a frame timeline, the clip's label to choose (every label of the schema), two
timeline marks (`actor visible`: when the actor first shows; `in path`: when it enters the ego vehicle's path, to
when it leaves it) and the optional event words; the label already in the file (a dataset's weak label) and its
provenance come pre-filled as a prediction, so a reviewer confirms or corrects it. Label Studio numbers a video's
frames from 1 at the task's `frameRate`: frame n is at (n - 1) / fps seconds.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote
from xml.sax.saxutils import quoteattr

from ghostprobe.labels import LABEL_NAMES, ClipLabel, Event, LabelProblem, validate_clip
from ghostprobe.runs import load_run
from ghostprobe.video import VideoInfo, VideoReadError, probe_video, read_frames

TOOL = "label_studio"
# All predictions carry one model version, the one the project pre-fills reviewers' answers from.
PREDICTIONS_VERSION = "label in the file"
# Timeline marks -> the event times they give (a mark's first frame; `in path` also its last, when it spans frames).
VISIBLE_MARK, PATH_MARK = "actor visible", "in path"
LOCAL_FILES_URL = "/data/local-files/?d="
# What a browser's <video> plays: anything else is shown through an H.264 preview with the same frames.
BROWSER_CODECS = {"h264", "vp8", "vp9", "av1"}
BROWSER_SUFFIXES = {".mp4", ".m4v", ".webm", ".mov"}
_FRAMES_PER_READ = 64  # frames decoded at a time while encoding a preview


def label_config(words: dict[str, list[str]]) -> str:
    """The labelling interface (Label Studio XML). `words` lists the choices offered for the free-word event fields
    (actor, occluder); side and outcome offer the schema's values."""
    choices = {
        "actor": words["actor"],
        "occluder": words["occluder"],
        **{name: _schema_values(Event, name) for name in ("side", "outcome")},
    }
    lines = [
        "<View>",
        '  <Header value="$clip_id"/>',
        '  <Text name="about" value="$about"/>',
        '  <Video name="video" value="$video" frameRate="$fps" timelineHeight="80"/>',
        '  <TimelineLabels name="marks" toName="video">',
        f'    <Label value={quoteattr(VISIBLE_MARK)} background="#f5a623" hotkey="v"/>',
        f'    <Label value={quoteattr(PATH_MARK)} background="#d0021b" hotkey="p"/>',
        "  </TimelineLabels>",
        '  <Header value="Label (ghost_probing needs both marks: actor visible, in path)" size="5"/>',
        '  <Choices name="label" toName="video" choice="single-radio" required="true" showInline="true">',
        *[f"    <Choice value={quoteattr(name)}/>" for name in LABEL_NAMES],
        "  </Choices>",
    ]
    for name, values in choices.items():
        lines += [
            f'  <Header value="{name} (optional)" size="6"/>',
            f'  <Choices name="{name}" toName="video" choice="single" showInline="true">',
            *[f"    <Choice value={quoteattr(value)}/>" for value in values],
            "  </Choices>",
        ]
    lines += ['  <TextArea name="notes" toName="video" placeholder="notes (optional)" maxSubmissions="1"/>', "</View>"]
    return "\n".join(lines) + "\n"


def _schema_values(model, name: str) -> list[str]:
    optional = model.model_fields[name].annotation  # Literal[...] | None
    literal = next(arg for arg in typing.get_args(optional) if arg is not type(None))
    return list(typing.get_args(literal))


@dataclass
class TaskBatch:
    """Tasks made from a label file, and the clips that could not become one (with why)."""

    tasks: list[dict] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)
    previews: int = 0


def make_tasks(
    clips: list[ClipLabel],
    label_file: str,
    videos_root: Path,
    document_root: Path,
    previews_dir: Path,
    decode_threads: int = 1,
) -> TaskBatch:
    """One Label Studio task per clip, in the given order. A video is served from under `document_root` (Label
    Studio's LOCAL_FILES_DOCUMENT_ROOT); one a browser cannot play (an avi, MPEG-4 Part 2) is shown through an
    H.264 preview with the same frames, written once into `previews_dir`. A clip whose video is missing, unreadable
    or outside the document root is a problem, and the other clips go on."""
    batch = TaskBatch()
    root = document_root.resolve()

    def problem(clip, message, field="video"):
        batch.problems.append(LabelProblem(label_file, None, clip.clip_id, field, message, clip.video))

    for rank, clip in enumerate(clips, start=1):
        path = (videos_root / clip.video).resolve()
        try:
            info = probe_video(path, decode_threads)
        except VideoReadError as err:
            problem(clip, str(err))
            continue
        shown = path
        if path.suffix.lower() not in BROWSER_SUFFIXES or info.codec not in BROWSER_CODECS:
            shown = previews_dir.resolve() / f"{clip.clip_id}.mp4"
            if not shown.exists() or shown.stat().st_mtime < path.stat().st_mtime:  # none yet, or the video changed
                try:
                    _write_preview(path, info, shown, decode_threads)
                except Exception as err:  # one odd file must not stop the other clips
                    problem(clip, f"cannot encode a browser preview of {path}: {type(err).__name__}: {err}")
                    continue
                batch.previews += 1
        if not shown.is_relative_to(root):
            problem(
                clip,
                f"{shown} is outside Label Studio's document root {root}: start Label Studio with "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder holding the videos (and previews), and "
                "give the same folder as document_root=",
            )
            continue
        served = shown.relative_to(root).as_posix()
        if "/" not in served:
            problem(
                clip,
                f"{shown} lies directly in Label Studio's document root {root}, which Label Studio does not "
                "serve (only its subfolders): move the clips into a subfolder, or give a parent folder as "
                "document_root= (and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)",
            )
            continue
        original = clip.to_json() | {
            "video": path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        }
        task = {
            "data": {
                "clip_id": clip.clip_id,
                "video": LOCAL_FILES_URL + quote(served, safe="/"),
                "fps": info.fps,
                "about": _about(clip),
                "review_rank": rank,
                "clip": original,
            }
        }
        if clip.label is not None:
            task["predictions"] = [_prediction(clip, info.fps)]
        batch.tasks.append(task)
    return batch


def served_folders(batch: TaskBatch, document_root: Path) -> list[Path]:
    """The folders holding the served videos (none inside another): the local-files storages Label Studio needs,
    since it serves /data/local-files/?d=... only to projects holding a storage that covers the file's folder, and a
    storage may not be the document root itself."""
    folders = sorted({os.path.dirname(unquote(task["data"]["video"][len(LOCAL_FILES_URL) :])) for task in batch.tasks})
    outermost = [f for f in folders if not any(f.startswith(other + "/") for other in folders)]
    return [document_root.resolve() / folder for folder in outermost]


def uncertainty_order(clips: list[ClipLabel], run_dir: str | Path) -> tuple[list[ClipLabel], dict[str, float]]:
    """Clips the eval run at `run_dir` was least sure of first: by |p - threshold| (the run's metrics.json threshold;
    a clip of several windows counts by its window nearest the threshold). Clips the run did not score follow, in
    the given order. Returns the clips and clip_id -> distance."""
    metrics, rows = load_run(run_dir)
    threshold = metrics["threshold"]["value"]
    distance: dict[str, float] = {}
    for row in rows:
        if row.get("p_ghost_probing") is not None:
            d = abs(row["p_ghost_probing"] - threshold)
            distance[row["clip_id"]] = min(d, distance.get(row["clip_id"], d))
    position = {clip.clip_id: k for k, clip in enumerate(clips)}
    ordered = sorted(
        clips, key=lambda c: (c.clip_id not in distance, distance.get(c.clip_id, 0.0), position[c.clip_id])
    )
    return ordered, distance


def _about(clip: ClipLabel) -> str:
    parts = []
    if clip.label is None:
        parts.append("not labelled yet")
    else:
        parts.append(f"label in the file: {clip.label} ({clip.quality})")
    source = clip.source
    if source is not None:
        category = source.category_name or source.category_id
        said = [
            f"{source.dataset} {source.original_id or ''}".strip() if source.dataset else None,
            f"category {category}" if category is not None else None,
            f"cause: {source.cause}" if source.cause else None,
            f"candidate because: {source.candidate_reason}" if source.candidate_reason else None,
        ]
        parts += [s for s in said if s]
    if clip.notes:
        parts.append(f"notes: {clip.notes}")
    return " | ".join(parts)


def _prediction(clip: ClipLabel, fps: float) -> dict:
    result = [_choice("label", clip.label)]
    event = clip.event
    if event is not None:
        if event.t_first_visible_s is not None:
            result.append(_mark(VISIBLE_MARK, event.t_first_visible_s, event.t_first_visible_s, fps))
        if event.t_event_s is not None:
            result.append(_mark(PATH_MARK, event.t_event_s, event.t_end_s or event.t_event_s, fps))
        result += [
            _choice(name, getattr(event, name))
            for name in ("actor", "occluder", "side", "outcome")
            if getattr(event, name) is not None
        ]
    return {"model_version": PREDICTIONS_VERSION, "result": result}


def _choice(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "video", "type": "choices", "value": {"choices": [value]}}


def _mark(label: str, start_s: float, end_s: float, fps: float) -> dict:
    return {
        "from_name": "marks",
        "to_name": "video",
        "type": "timelinelabels",
        "value": {
            "ranges": [{"start": round(start_s * fps) + 1, "end": round(end_s * fps) + 1}],
            "timelinelabels": [label],
        },
    }


def _write_preview(path: Path, info: VideoInfo, out: Path, decode_threads: int) -> None:
    from ghostprobe.video import write_video

    # 4:2:0 H.264 needs even sizes: an odd last row or column is cut, which moves no frame in time.
    height, width = info.height - info.height % 2, info.width - info.width % 2

    def frames():
        for start in range(0, info.num_frames, _FRAMES_PER_READ):
            indices = list(range(start, min(start + _FRAMES_PER_READ, info.num_frames)))
            for frame in read_frames(path, indices, info, decode_threads):
                yield frame[:height, :width]

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}")
    write_video(temporary, frames(), info.fps)
    os.replace(temporary, out)


@dataclass
class ReviewOutcome:
    """What a Label Studio project's answers give: gold clips, and the tasks that gave none (each with why)."""

    clips: list[ClipLabel] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    multi_reviewed: int = 0  # tasks with two or more answers
    agreed: int = 0  # of those, the ones whose answers give the same label

    @property
    def agreement(self) -> float | None:
        """Share of multi-reviewed tasks whose reviewers gave the same label (None with one reviewer per task)."""
        return self.agreed / self.multi_reviewed if self.multi_reviewed else None


def gold_labels(
    tasks: list[dict], source: str, out_dir: Path, document_root: Path, users: dict[int, str] | None = None
) -> ReviewOutcome:
    """Gold clips from Label Studio tasks (its JSON export): each task's answers (annotations not skipped) become
    one clip with `label_quality: gold` and the reviewer and time in `source`; `video` is written relative to
    `out_dir`, the folder of the label file to write. A task with no answer is unresolved, one whose answers were all
    skipped is skipped, one whose reviewers chose different labels is a disagreement; a clip the schema rejects is a
    problem named by `source`, like any bad label."""
    outcome = ReviewOutcome()
    for task in tasks:
        data = task.get("data") or {}
        name = f"task {task.get('id')} (clip {data.get('clip_id', '?')})"
        answers = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if task.get("annotations") and not answers:
            outcome.skipped.append(f"{name}: skipped by {_reviewers(task['annotations'], users)}")
            continue
        if not answers:
            outcome.unresolved.append(f"{name}: not reviewed yet")
            continue
        readings = [_reading(a, data.get("fps"), users) for a in answers]
        labels = {r["label"] for r in readings}
        if len(readings) > 1:
            outcome.multi_reviewed += 1
            outcome.agreed += len(labels) == 1
        if len(labels) > 1:
            said = ", ".join(f"{r['reviewer']}: {r['label'] or 'no label'}" for r in readings)
            outcome.disagreements.append(f"{name}: reviewers disagree ({said})")
            continue
        if None in labels:
            outcome.unresolved.append(f"{name}: answered without a label by {_reviewers(answers, users)}")
            continue
        raw = _gold_clip(data, readings, out_dir, document_root)
        if isinstance(raw, str):
            outcome.problems.append(LabelProblem(source, None, data.get("clip_id"), "video", f"{raw} ({name})"))
            continue
        clip, problems, _ = validate_clip(source, raw)
        outcome.problems += [
            dataclasses.replace(p, message=f"{p.message} ({name}, reviewed by {raw['source']['reviewer']})")
            for p in problems
        ]
        if clip is not None:
            outcome.clips.append(clip)
    return outcome


def _reading(annotation: dict, fps: float | None, users: dict[int, str] | None) -> dict:
    """One reviewer's answer: label, event fields, notes, reviewer and time."""
    reading: dict = {
        "label": None,
        "event": {},
        "notes": None,
        "reviewer": _reviewer(annotation, users),
        "reviewed_at": annotation.get("updated_at") or annotation.get("created_at"),
    }
    for item in annotation.get("result") or []:
        value, name = item.get("value") or {}, item.get("from_name")
        if item.get("type") == "choices" and value.get("choices"):
            if name == "label":
                reading["label"] = value["choices"][0]
            else:
                reading["event"][name] = value["choices"][0]
        elif item.get("type") == "textarea" and value.get("text"):
            reading["notes"] = "\n".join(value["text"])
        elif item.get("type") == "timelinelabels" and fps:
            frames = [(r["start"], r["end"]) for r in value.get("ranges") or []]
            if not frames:
                continue
            first, last = min(s for s, _ in frames), max(e for _, e in frames)
            if VISIBLE_MARK in value.get("timelinelabels", []):
                reading["event"]["t_first_visible_s"] = round((first - 1) / fps, 3)
            if PATH_MARK in value.get("timelinelabels", []):
                reading["event"]["t_event_s"] = round((first - 1) / fps, 3)
                if last > first:
                    reading["event"]["t_end_s"] = round((last - 1) / fps, 3)
    return reading


def _gold_clip(data: dict, readings: list[dict], out_dir: Path, document_root: Path) -> dict | str:
    """The gold clip object of agreeing readings (times: their mean; words: the first given), or why there is none."""
    original = dict(data.get("clip") or {})
    if not original.get("clip_id") or not original.get("video"):
        return "the task holds no clip (it was not made by `review.py to_label_studio`)"
    video = (document_root.resolve() / original["video"]).resolve()
    relative = Path(os.path.relpath(video, out_dir.resolve()))
    if relative.parts and relative.parts[0] == "..":
        return (
            f"video {video} is outside the output's folder {out_dir.resolve()}: write out= into a folder "
            "holding the videos (data prep reads videos relative to the label file)"
        )
    event: dict = {}
    for name in ("t_first_visible_s", "t_event_s", "t_end_s"):
        times = [r["event"][name] for r in readings if name in r["event"]]
        if times:
            event[name] = round(statistics.fmean(times), 3)
    for name in ("actor", "occluder", "side", "outcome"):
        event[name] = next((r["event"][name] for r in readings if name in r["event"]), None)
    event = {k: v for k, v in event.items() if v is not None}
    source = dict(original.get("source") or {})
    source.update(
        reviewer=", ".join(dict.fromkeys(r["reviewer"] for r in readings)),
        reviewed_at=max((r["reviewed_at"] for r in readings if r["reviewed_at"]), default=None),
        tool=TOOL,
    )
    notes = next((r["notes"] for r in readings if r["notes"]), original.get("notes"))
    clip = original | {
        "video": relative.as_posix(),
        "label": readings[0]["label"],
        "label_quality": "gold",
        "source": source,
        "notes": notes,
    }
    clip.pop("event", None)
    if event:
        clip["event"] = event
    return {k: v for k, v in clip.items() if v is not None}


def _reviewer(annotation: dict, users: dict[int, str] | None) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or f"user {who.get('id')}"
    return (users or {}).get(who) or f"user {who}"


def _reviewers(annotations: list[dict], users: dict[int, str] | None) -> str:
    return ", ".join(dict.fromkeys(_reviewer(a, users) for a in annotations))
