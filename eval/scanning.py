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
model, so decoding overlaps scoring.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ghostprobe.models.base import ClipInput
from ghostprobe.sampling import (WINDOW_RULE, FrameClock, Window, make_window, sliding_windows,
                                 window_sample_id)
from ghostprobe.video import VideoInfo, VideoReadError, frame_times_s, probe_video, read_frames

API_KINDS = ("openai", "gemini")


@dataclass
class VideoJob:
    video_id: str
    path: Path
    info: VideoInfo | None = None
    clock: FrameClock | None = None
    windows: list[Window] = field(default_factory=list)
    done: dict[int, dict] = field(default_factory=dict)  # window index -> its timeline row (answered ones)
    error: str | None = None


# --- inputs ---------------------------------------------------------------------------------------------------

def list_inputs(spec: str, extensions: list[str]) -> list[tuple[str, Path]]:
    """(video_id, path) for `input=`: one file, a folder (searched recursively for `extensions`) or a .txt list
    (one path a line, relative to the list's folder; `#` comments). The video id is the path relative to the
    folder (or as listed) with separators and odd characters replaced, so outputs of two files never collide."""
    root = Path(spec)
    if not root.exists():
        raise FileNotFoundError(f"input={spec} does not exist")
    if root.is_dir():
        suffixes = {e.lower() for e in extensions}
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        named = [(str(p.relative_to(root)), p) for p in files]
    elif root.suffix.lower() == ".txt":
        named = []
        for line in root.read_text(encoding="utf-8-sig").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line) if Path(line).is_absolute() else root.parent / line
                named.append((line, path))
    else:
        named = [(root.name, root)]
    out, seen = [], set()
    for name, path in named:
        video_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(name).with_suffix(""))).strip("._") or "video"
        base, k = video_id, 2
        while video_id in seen:  # only for names that differ in odd characters alone
            video_id, k = f"{base}_{k}", k + 1
        seen.add(video_id)
        out.append((video_id, path))
    return out


# --- windows --------------------------------------------------------------------------------------------------

def scan_windows(clock: FrameClock, window_s: float, stride_s: float, num_frames: int) -> list[Window]:
    """Windows [k * stride_s, k * stride_s + window_s) that fit in the video (`sliding_windows`), or one over the
    whole video when it is shorter than a window."""
    if clock.duration_s < window_s:
        return [make_window(clock, 0.0, round(clock.duration_s, 6), num_frames)]
    return sliding_windows(clock, window_s, stride_s, num_frames)


# --- resumable per-video files --------------------------------------------------------------------------------

def scan_identity(model_cfg: dict, prompt, settings: dict) -> str:
    """What must match for a stored window score to count: the model, the prompt, and how windows are made."""
    identity = {"model": {k: model_cfg.get(k) for k in ("kind", "name", "path", "model", "prompt_format")},
                "prompt": asdict(prompt), "windows": {**settings, "rule": WINDOW_RULE}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def file_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_timeline(path: Path, identity: str) -> dict[int, dict]:
    """Answered windows of this identity from timeline.jsonl (the newest row per window; a torn last line from a
    kill is skipped)."""
    rows: dict[int, dict] = {}
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("run") == identity:
                rows[row["window"]] = row
    return {k: r for k, r in rows.items() if r.get("error") is None}


class TimelineWriter:
    """Appends window rows, flushed and fsynced per batch: a kill loses at most the batch in flight."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            data = path.read_bytes()  # a row cut by a kill would glue onto the next one
            path.write_bytes(data[: data.rfind(b"\n") + 1])
        self._file = open(path, "a", encoding="utf-8")

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self._file.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_json_atomic(path: Path, doc) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- decoding ahead of the model ------------------------------------------------------------------------------

@dataclass
class Chunk:
    job: VideoJob
    windows: list[Window]
    new_indices: list[int]           # frames this chunk decodes (the rest come from the previous chunk's cache)
    frames: Future | None = None     # -> uint8 [len(new_indices), S, S, 3]
    last_of_video: bool = False


def plan_chunks(job: VideoJob, chunk_windows: int) -> list[Chunk]:
    """The video's unanswered windows in chunks of consecutive windows; each frame appears in one chunk's
    `new_indices` only (the first that needs it)."""
    pending = [w for w in job.windows if w.index not in job.done]
    chunks, decoded = [], set()
    for start in range(0, len(pending), chunk_windows):
        windows = pending[start:start + chunk_windows]
        needed = sorted({i for w in windows for i in w.frame_indices})
        chunks.append(Chunk(job, windows, [i for i in needed if i not in decoded]))
        lowest = needed[0]
        decoded = {i for i in decoded | set(needed) if i >= lowest}  # earlier ones are never needed again
    if chunks:
        chunks[-1].last_of_video = True
    return chunks


def decoded_chunks(chunks: Iterator[Chunk], frame_size: int, decode_threads: int, workers: int,
                   prefetch: int) -> Iterator[tuple[Chunk, dict[int, np.ndarray] | VideoReadError]]:
    """Yield each chunk with the frames its windows need ({index: frame}), decoded in `workers` threads up to
    `prefetch` chunks ahead. A decode error is yielded in place of the frames (the caller drops the video)."""
    def decode(chunk: Chunk):
        return read_frames(chunk.job.path, chunk.new_indices, chunk.job.info, decode_threads, size=frame_size)

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
            try:
                new = chunk.frames.result()
            except VideoReadError as err:
                yield chunk, err
                cache = {}
                continue
            chunk.frames = None
            cache.update(zip(chunk.new_indices, new))
            yield chunk, cache
            lowest = min(chunk.windows[-1].frame_indices)
            cache = {i: f for i, f in cache.items() if i >= lowest}


def window_clip(job: VideoJob, window: Window, frames: dict[int, np.ndarray]) -> ClipInput:
    return ClipInput(window_sample_id(job.video_id, window.index), np.stack([frames[i] for i in window.frame_indices]),
                     window.timestamps_s)


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
    per_call = (tokens_in * float(model_cfg.get("price_per_1m_input_usd") or 0)
                + tokens_out * float(model_cfg.get("price_per_1m_output_usd") or 0)) / 1e6
    return {"calls": num_windows, "tokens_in_per_call": tokens_in, "tokens_out_per_call": tokens_out,
            "usd_per_call": per_call, "usd": per_call * num_windows}
