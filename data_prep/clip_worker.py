"""Per-clip work of the data-prep stage, run in worker processes: probe, check, sample, decode, resize, cache.

Each prepared clip is written to one cache file (`<cache key>.frames`, written to a temporary name and renamed, so a
kill never leaves a half-written entry). The key covers the clip's label, the video file's size and mtime and every
prep setting that changes the output, so a re-run reuses exactly the clips whose inputs did not change. A worker
returns only a small dict: memory stays bounded by the clip in flight, however large the dataset.

A cache entry holds the frames the clip's windows use, each decoded once, in video order: their stored bytes back to
back (uint8 pixels, or one JPEG file each), then the metadata as JSON (windows, video info, each frame's byte
offset), then the JSON's length and a format tag. Frames are written as they are decoded and read back a window at
a time (`CachedClip`), so neither end holds a whole long clip in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ghostprobe.frame_folder import IMAGES_SUBFOLDER
from ghostprobe.frames import encode_jpeg, iter_resized_frames
from ghostprobe.labels import ClipLabel, events_beyond_video
from ghostprobe.links import AllowedRoots
from ghostprobe.sampling import WINDOW_POLICIES, SamplingError, sample_windows, window_sample_id
from ghostprobe.video import VideoReadError, frame_times_s, probe_video

CACHE_FORMAT = 4  # 2: decoder resizing, short clips kept, per-clip warnings, presentation times; 3: one window rule
# (ghostprobe.sampling.WINDOW_RULE), window timestamps from the window's first frame, sample ids in the entry;
# 4: frames streamed into a `.frames` file (was one .npz written at the end, the clip's frames all in memory)
CACHE_SUFFIX = ".frames"
_TRAILER = struct.Struct("<Q8s")  # the metadata's length in bytes, then the format tag
_TAG = b"GPCLIP04"
# The settings that change what a clip's cache entry holds; anything else (num_proc, paths) does not.
OUTPUT_SETTINGS = ("sampling", "frame_size", "resize", "storage", "jpeg_quality", "seed")
# Label fields a cache entry does not depend on (the dataset's rows take them from the label file on every run): a
# review that only turns a weak label gold, adds provenance or a note re-uses the decoded frames.
DESCRIPTIVE_FIELDS = ("notes", "context", "group", "split", "label_quality", "source")
DESCRIPTIVE_EVENT_FIELDS = ("actor", "occluder", "side", "outcome")


@dataclass(frozen=True)
class ClipTask:
    clip_json: str
    video_path: str
    cache_path: str
    settings: dict
    videos_root: str | None = None  # a frame folder's images may link only inside it or an allowed root
    allowed_roots: tuple[str, ...] = ()


class EventTimeError(ValueError):
    """Labelled event times that do not fit the real video."""


def cache_key(clip: ClipLabel, video_path: Path, settings: dict) -> str:
    """The name of a clip's cache entry: a hash of what decides its frames and windows (label, event times, video
    file or frame folder, output settings), not of its descriptive fields."""
    decisive = {k: v for k, v in clip.to_json().items() if k not in DESCRIPTIVE_FIELDS}
    if "event" in decisive:
        decisive["event"] = {k: v for k, v in decisive["event"].items() if k not in DESCRIPTIVE_EVENT_FIELDS}
    payload = {
        "format": CACHE_FORMAT,
        "clip": decisive,
        "video": [str(video_path), *_video_stamp(video_path)],
        "settings": {name: settings[name] for name in OUTPUT_SETTINGS},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _video_stamp(video_path: Path) -> list:
    """What changes when the video changes: a file's size and mtime; a frame folder's mtime and that of its images/
    subfolder (they change when an image is added, removed or renamed; an image rewritten in place is not seen)."""
    if video_path.is_file():
        stat = video_path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    if video_path.is_dir():
        images = video_path / IMAGES_SUBFOLDER
        return [video_path.stat().st_mtime_ns, images.stat().st_mtime_ns if images.is_dir() else None]
    return [None, None]


def prepare_clip(task: ClipTask) -> dict:
    """Prepare one clip into its cache file. Never raises: a failure comes back as {"ok": False, "reason": ...}."""
    clip = ClipLabel.model_validate_json(task.clip_json)
    try:
        roots = AllowedRoots.of(task.videos_root, task.allowed_roots) if task.videos_root else None
        _prepare(clip, Path(task.video_path), Path(task.cache_path), task.settings, roots)
    except (VideoReadError, SamplingError, EventTimeError) as err:
        return {"clip_id": clip.clip_id, "ok": False, "reason": str(err)}
    except Exception as err:  # a decoder bug on one odd file must not stop the other clips
        return {"clip_id": clip.clip_id, "ok": False, "reason": f"unexpected {type(err).__name__}: {err}"}
    return {"clip_id": clip.clip_id, "ok": True}


def _prepare(clip: ClipLabel, video_path: Path, cache_path: Path, settings: dict, roots: AllowedRoots | None) -> None:
    info = probe_video(video_path, settings["decode_threads"], fps=clip.fps, roots=roots)
    _check_event_times(clip, info.duration_s, info.fps)
    event = clip.event
    # Variable frame rate (phone dashcams): frames are sampled and stamped by their presentation times.
    times = frame_times_s(video_path, info, settings["decode_threads"])
    windows = sample_windows(
        settings["sampling"],
        fps=info.fps,
        num_frames=info.num_frames,
        t_event_s=event.t_event_s if event else None,
        is_positive=clip.is_ghost_probing,
        seed_key=f"{settings['seed']}:{clip.clip_id}",
        frame_times_s=times,
    )
    sampling = settings["sampling"]
    windowed = sampling["policy"] in WINDOW_POLICIES
    short = sampling["policy"] == "uniform" and info.num_frames < sampling["num_frames"]
    unique = sorted({i for window in windows for i in window.frame_indices})
    position = {index: k for k, index in enumerate(unique)}
    size = settings["frame_size"]
    meta = {
        "video_info": info.to_json(),
        "unique_indices": unique,
        "frame_shape": [size, size, 3],
        # The original samples every frame of a clip shorter than asked; the model sees fewer frames.
        "warnings": [
            f"{info.num_frames} frames, fewer than the {sampling['num_frames']} asked: all of them are "
            "used (as the original Video-LLaMA does)"
        ]
        if short
        else [],
        "variable_frame_rate": times is not None,
        "windows": [
            {
                "sample_id": window_sample_id(clip.clip_id, w.index if windowed else None),
                "frame_indices": list(w.frame_indices),
                "rows": [position[i] for i in w.frame_indices],
                "timestamps_s": list(w.timestamps_s),
                "start_s": w.start_s,
                "end_s": w.end_s,
            }
            for w in windows
        ],
    }
    chunks = iter_resized_frames(
        video_path,
        unique,
        info,
        size,
        settings["resize"],
        settings["decode_threads"],
        int(settings["decode_chunk_mb"] * 1e6),
    )
    _write_entry(cache_path, meta, chunks, settings)


def _write_entry(cache_path: Path, meta: dict, chunks, settings: dict) -> None:
    """Write a clip's frames into its cache entry as they are decoded (`chunks` of uint8 arrays), then its metadata;
    the entry is renamed into place only once whole."""
    tmp = cache_path.with_name(cache_path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            digest, offsets = hashlib.sha256(), [0]
            for chunk in chunks:
                blobs = (
                    encode_jpeg(chunk, settings["jpeg_quality"])
                    if settings["storage"] == "jpeg"
                    else [frame.tobytes() for frame in chunk]
                )
                for blob in blobs:
                    f.write(blob)
                    digest.update(blob)
                    offsets.append(offsets[-1] + len(blob))
            meta["frame_offsets"] = offsets
            digest.update(json.dumps(meta, sort_keys=True).encode())
            meta["content_sha256"] = digest.hexdigest()
            encoded = json.dumps(meta).encode()
            f.write(encoded)
            f.write(_TRAILER.pack(len(encoded), _TAG))
        os.replace(tmp, cache_path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a clip that fails part-way leaves no partial file behind
        raise


def _check_event_times(clip: ClipLabel, duration_s: float, fps: float) -> None:
    if clip.events is not None:
        raise EventTimeError(
            "a long recording with `events`: scan it with `python scan/main.py labels=...`; data "
            "prep cuts one-event clips (label each clip with `event`)"
        )
    beyond = events_beyond_video(clip, duration_s, fps)
    if beyond:
        raise EventTimeError(beyond)


class CachedClip:
    """An open cache entry: `meta` (its metadata) at once, the frames on demand (`stored_frames`). Use it in a
    `with` block."""

    def __init__(self, cache_path: Path):
        self.path = Path(cache_path)
        self._file = open(self.path, "rb")
        try:
            self.meta = self._read_meta()
        except BaseException:
            self._file.close()
            raise
        self._offsets = self.meta["frame_offsets"]

    def _read_meta(self) -> dict:
        end = self._file.seek(0, os.SEEK_END)
        if end >= _TRAILER.size:
            self._file.seek(end - _TRAILER.size)
            length, tag = _TRAILER.unpack(self._file.read(_TRAILER.size))
            if tag == _TAG and length <= end - _TRAILER.size:
                self._file.seek(end - _TRAILER.size - length)
                return json.loads(self._file.read(length))
        raise ValueError(
            f"{self.path}: not a complete data-prep cache entry (format {CACHE_FORMAT}); delete it and "
            "re-run data prep (the clip is prepared again)"
        )

    def stored_frames(self, rows: list[int]) -> list[bytes]:
        """The stored bytes (uint8 pixels, or a JPEG file) of the entry's frames at positions `rows`."""
        return [os.pread(self._file.fileno(), self._offsets[r + 1] - self._offsets[r], self._offsets[r]) for r in rows]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CachedClip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cache_entry_complete(cache_path: Path) -> bool:
    """Whether a cache entry is there and whole: entries are renamed into place once written, so an incomplete one
    comes from outside (an interrupted copy of the folder, a full disk on another machine): it is prepared again."""
    try:
        with CachedClip(cache_path):
            return True
    except (OSError, ValueError):
        return False


def load_cache_meta(cache_path: Path) -> dict:
    """A cache entry's metadata alone (the frames are not read)."""
    with CachedClip(cache_path) as cached:
        return cached.meta
