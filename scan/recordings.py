"""The scan's machinery: which files, which windows, decoding each needed frame once, scoring, and the per-video
files (timeline.jsonl, alerts.json) that make a scan resumable.

Windows are the library's causal windows (`ghostprobe.sampling.sliding_windows`), the same ones data prep's
`sliding` policy cuts and eval's earliness measures: each is handed to the model as if it were a clip cut from the
recording at the window's start (frames picked with the original's uniform rule over the frames it shows,
timestamps from its first frame). Frames are squeezed to `frame_size` inside the decoder
(`ghostprobe.video.read_frames(size=)`), as the original's `load_video`.

Windows are decoded in chunks of consecutive windows: a chunk's frames that an earlier chunk of the same video
already decoded are taken from a small cache, so a frame shared by overlapping windows is decoded once, and memory
holds only the chunks in flight (flat in the video's length). Chunks are decoded in a thread pool ahead of the
model, so decoding overlaps scoring. A chunk that will not decode (a damaged stretch of the file) is read again in
halves down to single frames: the frames that decode are scored, the windows that need a frame that does not are
skipped and reported as a stretch with its time range (`damaged_stretches`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ghostprobe.files import read_jsonl
from ghostprobe.links import AllowedRoots, PathNotAllowed, resolve_allowed
from ghostprobe.models.base import ClipInput, answer_settings
from ghostprobe.sampling import WINDOW_RULE, FrameClock, Window, sliding_windows, window_sample_id
from ghostprobe.video import VideoInfo, VideoReadError, frame_times_s, probe_video, read_frames


@dataclass
class VideoJob:
    video_id: str
    path: Path
    info: VideoInfo | None = None
    clock: FrameClock | None = None
    windows: list[Window] = field(default_factory=list)
    done: dict[int, dict] = field(default_factory=dict)  # window index -> its timeline row (answered ones)
    error: str | None = None
    undecodable: dict[int, str] = field(default_factory=dict)  # frame index -> why it would not decode
    skipped_windows: list[Window] = field(default_factory=list)  # windows needing such a frame: not scored


@dataclass(frozen=True)
class Recording:
    """One file to scan: its id (the name of its output folder), its path as listed, and why it is refused (a link
    to outside the allowed roots) or None."""

    video_id: str
    path: Path
    refused: str | None = None


@dataclass
class ScanInputs:
    """What `input=` lists: the distinct files to scan, and the entries that named a file already listed."""

    recordings: list[Recording]
    same_file: list[dict]  # {"path": as listed, "same_as": the path kept, "file": the file both name}


# --- inputs ---------------------------------------------------------------------------------------------------


def list_inputs(spec: str, extensions: list[str], allowed_roots: tuple[str, ...] = ()) -> ScanInputs:
    """The recordings `input=` names: one file, a folder (searched recursively for `extensions`) or a .txt list (one
    path a line, relative to the list's folder; `#` comments). A file reached twice (`a.mp4` and `./a.mp4`, a link
    beside its target, a hard link) is scanned once, under its first name (a name that is not a link first);
    `same_file` says which entries were the same file. Links are followed into the folder the file is named in
    (the input folder, the list line's folder) or `allowed_roots` only (ghostprobe/links.py); a link elsewhere is a
    refused recording naming the link and its target. The video id is the path relative to the folder (or as
    listed) with separators and odd characters replaced, so outputs of two files never collide."""
    root = Path(spec)
    if not root.exists():
        raise FileNotFoundError(f"input={spec} does not exist")
    if root.is_dir():
        suffixes = {e.lower() for e in extensions}
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        named = [(str(p.relative_to(root)), p, AllowedRoots.of(root, allowed_roots, "the input folder")) for p in files]
    elif root.suffix.lower() == ".txt":
        named = []
        for line in root.read_text(encoding="utf-8-sig").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line) if Path(line).is_absolute() else root.parent / line
                named.append((line, path, AllowedRoots.of(path.parent, allowed_roots, "the folder it is listed in")))
    else:
        named = [(root.name, root, AllowedRoots.of(root.parent, allowed_roots, "the input file's folder"))]
    groups: dict[object, list[int]] = {}  # one file -> the positions of the entries that name it
    entries = []
    for position, (name, path, roots) in enumerate(named):
        try:
            resolved, refused = resolve_allowed(path, roots), None
            identity = file_identity(resolved)
        except PathNotAllowed as err:
            resolved, refused, identity = None, str(err), ("refused", os.path.normpath(path.absolute()))
        entries.append((name, path, refused, resolved))
        groups.setdefault(identity, []).append(position)
    kept, same_file = [], []
    for positions in groups.values():
        # the file under a name that is not a link, when it has one: outputs are named after the recording itself
        first = min(positions, key=lambda k: (entries[k][1].is_symlink(), k))
        kept.append(first)
        same_file += [
            {"path": str(entries[k][1]), "same_as": str(entries[first][1]), "file": str(entries[k][3] or entries[k][1])}
            for k in positions
            if k != first
        ]
    out, seen = [], set()
    for name, path, refused, _ in (entries[k] for k in sorted(kept)):
        video_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(name).with_suffix(""))).strip("._") or "video"
        base, k = video_id, 2
        while video_id in seen:  # only for names that differ in odd characters alone
            video_id, k = f"{base}_{k}", k + 1
        seen.add(video_id)
        out.append(Recording(video_id, path, refused))
    return ScanInputs(out, same_file)


def file_identity(path: Path):
    """What makes two paths one recording: the file's device and inode (a link, `./`, a hard link all agree), or its
    resolved path when it cannot be read (its reader then says why)."""
    try:
        stat = path.stat()
    except OSError:
        return str(path.resolve())
    return stat.st_dev, stat.st_ino


# --- windows --------------------------------------------------------------------------------------------------


def scan_windows(clock: FrameClock, window_s: float, stride_s: float, num_frames: int) -> list[Window]:
    """The scan's windows: [k * stride_s, k * stride_s + window_s) that fit in the video (`sliding_windows`); none
    for a recording shorter than one window (the scan skips it and says so, rather than score a shorter clip)."""
    return sliding_windows(clock, window_s, stride_s, num_frames)


def damaged_stretches(job: VideoJob, stride_s: float) -> list[dict]:
    """The video's skipped windows grouped into runs of consecutive windows, each with the frames that would not
    decode and the time no window could judge: each window answers for the `stride_s` before its end (the first
    window for everything before its end), so `not_scanned_s` of a run of k windows is k x stride_s long."""
    stretches: list[list[Window]] = []
    for window in sorted(job.skipped_windows, key=lambda w: w.index):
        if stretches and window.index == stretches[-1][-1].index + 1:
            stretches[-1].append(window)
        else:
            stretches.append([window])
    out = []
    for run in stretches:
        bad = sorted({i for w in run for i in w.frame_indices if i in job.undecodable})
        first, last = run[0], run[-1]
        lo = 0.0 if first.index == 0 else max(first.end_s - stride_s, 0.0)
        out.append(
            {
                "damaged_frames": [bad[0], bad[-1]],
                "damaged_s": [round(job.clock.time_of(bad[0]), 6), round(job.clock.time_of(bad[-1]), 6)],
                "windows_skipped": len(run),
                "windows": [first.index, last.index],
                "window_ends_s": [first.end_s, last.end_s],
                "not_scanned_s": [round(lo, 6), last.end_s],
                "reason": job.undecodable[bad[0]].removeprefix(f"{job.path}: "),
            }
        )
    return out


def timeline_with_gaps(rows: list[dict], stretches: list[dict]) -> list[dict]:
    """Timeline rows plus, per damaged stretch, a row without a score at its first window's end: an alert never
    runs across time that was not scanned (ghostprobe.alerts closes an alert at a window without a score)."""
    gaps = [{"end_s": s["window_ends_s"][0], "p_ghost_probing": None, "gap": True} for s in stretches]
    return sorted(rows + gaps, key=lambda r: r["end_s"])


# --- resumable per-video files --------------------------------------------------------------------------------


def scan_identity(model_cfg: dict, prompt, settings: dict) -> str:
    """What must match for a stored window score to count: the model's answer settings (the resolved config minus
    its kind's pacing keys, `ghostprobe.models.base.answer_settings`, as eval's run identity), the prompt, and how
    windows are made (their settings and the library's window rule)."""
    identity = {
        "model": answer_settings(model_cfg),
        "prompt": asdict(prompt),
        "windows": {**settings, "rule": WINDOW_RULE},
    }
    text = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_timeline(path: Path, identity: str) -> dict[int, dict]:
    """Answered windows of this identity from timeline.jsonl (the newest row per window)."""
    rows = {row["window"]: row for row in read_jsonl(path) if row.get("run") == identity}
    return {k: r for k, r in rows.items() if r.get("error") is None}


# --- decoding ahead of the model ------------------------------------------------------------------------------


@dataclass
class Chunk:
    job: VideoJob
    windows: list[Window]
    new_indices: list[int]  # frames this chunk decodes (the rest come from the previous chunk's cache)
    frames: Future | None = None  # -> uint8 [len(new_indices), S, S, 3]
    last_of_video: bool = False


def plan_chunks(job: VideoJob, chunk_windows: int) -> list[Chunk]:
    """The video's unanswered windows in chunks of consecutive windows; each frame appears in one chunk's
    `new_indices` only (the first that needs it)."""
    pending = [w for w in job.windows if w.index not in job.done]
    chunks, decoded = [], set()
    for start in range(0, len(pending), chunk_windows):
        windows = pending[start : start + chunk_windows]
        needed = sorted({i for w in windows for i in w.frame_indices})
        chunks.append(Chunk(job, windows, [i for i in needed if i not in decoded]))
        lowest = needed[0]
        decoded = {i for i in decoded | set(needed) if i >= lowest}  # earlier ones are never needed again
    if chunks:
        chunks[-1].last_of_video = True
    return chunks


def decoded_chunks(
    chunks: Iterator[Chunk], frame_size: int, decode_threads: int, workers: int, prefetch: int
) -> Iterator[tuple[Chunk, dict[int, np.ndarray], dict[int, str]]]:
    """Yield each chunk with the frames its windows need that could be decoded ({index: frame}) and the frames
    of its own that could not ({index: reason}), decoded in `workers` threads up to `prefetch` chunks ahead."""

    def decode(chunk: Chunk) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        job = chunk.job

        def read(indices: list[int], pyav_fallback: bool = False) -> np.ndarray:
            return read_frames(
                job.path, indices, job.info, decode_threads, size=frame_size, pyav_fallback=pyav_fallback
            )

        try:
            return dict(zip(chunk.new_indices, read(chunk.new_indices, pyav_fallback=True), strict=True)), {}
        except VideoReadError:
            return read_around_damage(read, chunk.new_indices)

    cache: dict[int, np.ndarray] = {}
    cache_video: str | None = None
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="scan-decode") as pool:
        queue: list[Chunk] = []
        source = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(queue) < max(1, prefetch) + 1:
                try:
                    chunk = next(source)
                except StopIteration:
                    exhausted = True
                    break
                chunk.frames = pool.submit(decode, chunk)
                queue.append(chunk)
            if not queue:
                return
            chunk = queue.pop(0)
            if cache_video != chunk.job.video_id:
                cache, cache_video = {}, chunk.job.video_id
            new, bad = chunk.frames.result()
            chunk.frames = None
            cache.update(new)
            yield chunk, cache, bad
            lowest = min(chunk.windows[-1].frame_indices)
            cache = {i: f for i, f in cache.items() if i >= lowest}


def read_around_damage(
    read: Callable[[list[int]], np.ndarray], indices: list[int]
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Frames of `indices` read in halves, down to single frames, around the ones that will not decode:
    ({index: frame} of those that did, {index: reason} of those that did not). Each try decodes from the key frame
    before it, so a damaged stretch costs tries in proportion to its frames, not a decode of the whole file."""
    try:
        return dict(zip(indices, read(indices), strict=True)), {}
    except VideoReadError as err:
        if len(indices) == 1:
            return {}, {indices[0]: str(err)}
    half = len(indices) // 2
    first, first_bad = read_around_damage(read, indices[:half])
    second, second_bad = read_around_damage(read, indices[half:])
    return first | second, first_bad | second_bad


def window_clip(job: VideoJob, window: Window, frames: dict[int, np.ndarray]) -> ClipInput:
    return ClipInput(
        window_sample_id(job.video_id, window.index),
        np.stack([frames[i] for i in window.frame_indices]),
        window.timestamps_s,
    )


def probe(job: VideoJob, decode_threads: int) -> None:
    """Probe the file (refuses playlists and non-video files) and read its clock; sets job.error when unreadable."""
    try:
        job.info = probe_video(job.path, decode_threads)
        job.clock = FrameClock(job.info.fps, job.info.num_frames, frame_times_s(job.path, job.info, decode_threads))
    except VideoReadError as err:
        job.error = str(err)
    except OSError as err:
        job.error = f"{job.path}: {err}"


# --- API budget -----------------------------------------------------------------------------------------------


def api_estimate(model_cfg: dict, num_windows: int, num_frames: int, estimate_cfg: dict) -> dict:
    """Calls and dollars an API model would cost for `num_windows` windows, before any call: images per window
    (the model's max_frames of the window's frames) times the provider's tokens per image plus the prompt,
    answers of max_tokens_score tokens, at the config's list prices."""
    images = min(num_frames, int(model_cfg.get("max_frames") or num_frames))
    per_image = int(estimate_cfg["tokens_per_image"].get(model_cfg["kind"], 300))
    tokens_in = images * per_image + int(estimate_cfg["prompt_tokens"])
    tokens_out = int(model_cfg.get("max_tokens_score") or 5)
    per_call = (
        tokens_in * float(model_cfg.get("price_per_1m_input_usd") or 0)
        + tokens_out * float(model_cfg.get("price_per_1m_output_usd") or 0)
    ) / 1e6
    return {
        "calls": num_windows,
        "tokens_in_per_call": tokens_in,
        "tokens_out_per_call": tokens_out,
        "usd_per_call": per_call,
        "usd": per_call * num_windows,
    }
