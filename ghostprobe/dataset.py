"""The prepared dataset's schema, the one definition every stage reads: one row per sampled window (one per clip
for whole-clip policies).

Data prep writes the columns (`dataset_features`, `rows_for_clip`); train and eval read them (`TRAIN_COLUMNS`,
`LABEL_COLUMNS`) and never open the video again. Columns are documented in docs/labels.md ("Prepared dataset").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from datasets import ClassLabel, Features, List, Value

from ghostprobe.frames import packed_frames
from ghostprobe.labels import LABEL_NAMES, ClipLabel

# What training reads of a row: the model input and its answer.
TRAIN_COLUMNS = ("sample_id", "frames", "timestamps_s", "is_ghost_probing")
# Per-sample label columns eval copies into each predictions.jsonl row, for metrics and reports without the dataset
# (the frame rate and length let eval/anticipation.py put window scores back on the video's frames).
LABEL_COLUMNS = (
    "clip_id",
    "window_index",
    "window_end_s",
    "is_ghost_probing",
    "t_first_visible_s",
    "t_event_s",
    "actor",
    "occluder",
    "light",
    "weather",
    "video_fps",
    "video_num_frames",
    "label_quality",
    "source_dataset",
    "source_category",
)


# A window's frames in uint8 storage (ghostprobe.frames.packed_frames): [N, H, W, 3] and N*H*W*3 bytes. large_binary:
# 64-bit offsets, so a batch of long, large windows never overflows Arrow's 2 GiB per array.
UINT8_FRAMES = {"shape": List(Value("int32")), "rgb": Value("large_binary")}
# In jpeg storage, one JPEG file per frame. Plain bytes, not the Image feature: `save_to_disk` re-embeds Image columns
# through Python objects, 100 MB row groups at a time, which tripled data prep's memory on long clips.
JPEG_FRAMES = List(Value("binary"))


def dataset_features(settings: dict) -> Features:
    """The columns and their types; `settings` are data prep's (storage: uint8 or jpeg)."""
    frames = UINT8_FRAMES if settings["storage"] == "uint8" else JPEG_FRAMES
    text = Value("string")
    seconds = Value("float32")
    # float64 where a prompt prints the value: the frames message rounds index / fps to 0.1 s as the original does,
    # and float32 moves values such as 0.45 across the rounding boundary.
    exact = Value("float64")
    return Features(
        {
            "sample_id": text,
            "clip_id": text,
            "window_index": Value("int32"),
            "video": text,
            "label": ClassLabel(names=list(LABEL_NAMES)),
            "is_ghost_probing": Value("bool"),
            "frames": frames,
            "frame_indices": List(Value("int32")),
            "timestamps_s": List(exact),
            "window_start_s": seconds,
            "window_end_s": seconds,
            "t_first_visible_s": seconds,
            "t_event_s": seconds,
            "t_end_s": seconds,
            "actor": text,
            "occluder": text,
            "side": text,
            "outcome": text,
            "light": text,
            "weather": text,
            "scene": text,
            "road": text,
            "group": text,
            "notes": text,
            "label_quality": text,
            "source_dataset": text,
            "source_category": text,
            "video_fps": exact,
            "video_num_frames": Value("int32"),
            "video_duration_s": seconds,
            "video_width": Value("int32"),
            "video_height": Value("int32"),
            "video_codec": text,
            "decode_backend": text,
        }
    )


def source_category(clip: ClipLabel) -> str | None:
    """The public dataset's category a label came from, as one readable value ("dada2000 / 1 ego-car hits a crossing
    pedestrian", "dota / ego: pedestrian"); None for a clip with no such provenance."""
    source = clip.source
    if source is None or (source.category_id is None and source.category_name is None):
        return None
    category = " ".join(str(part) for part in (source.category_id, source.category_name) if part is not None)
    return f"{source.dataset} / {category}" if source.dataset else category


def rows_for_clip(clip: ClipLabel, meta: dict, stored_frames: Callable[[list[int]], list[bytes]], storage: str):
    """Yield the dataset rows of one prepared clip from its cache entry: `meta` is the entry's metadata and
    `stored_frames(rows)` the stored bytes (uint8 pixels, or JPEG files) of the clip's decoded frames at positions
    `rows`, read one window at a time so that a long clip is never in memory whole."""
    info = meta["video_info"]
    event = clip.event
    base = {
        "clip_id": clip.clip_id,
        "video": clip.video,
        "label": clip.label,
        "is_ghost_probing": clip.is_ghost_probing,
        "t_first_visible_s": event.t_first_visible_s if event else None,
        "t_event_s": event.t_event_s if event else None,
        "t_end_s": event.t_end_s if event else None,
        "actor": event.actor if event else None,
        "occluder": event.occluder if event else None,
        "side": event.side if event else None,
        "outcome": event.outcome if event else None,
        "light": clip.context.light,
        "weather": clip.context.weather,
        "scene": clip.context.scene,
        "road": clip.context.road,
        "group": clip.group,
        "notes": clip.notes,
        "label_quality": clip.quality,
        "source_dataset": clip.source.dataset if clip.source else None,
        "source_category": source_category(clip),
        "video_fps": info["fps"],
        "video_num_frames": info["num_frames"],
        "video_duration_s": info["duration_s"],
        "video_width": info["width"],
        "video_height": info["height"],
        "video_codec": info["codec"],
        "decode_backend": info["backend"],
    }
    frame_shape = meta["frame_shape"]
    for k, window in enumerate(meta["windows"]):
        blobs = stored_frames(window["rows"])
        if storage == "uint8":
            window_frames = packed_frames(np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), *frame_shape))
        else:
            window_frames = blobs
        yield {
            **base,
            "sample_id": window["sample_id"],  # ghostprobe.sampling.window_sample_id: unique within a dataset
            "window_index": k,
            "frames": window_frames,
            "frame_indices": window["frame_indices"],
            "timestamps_s": window["timestamps_s"],
            "window_start_s": window["start_s"],
            "window_end_s": window["end_s"],
        }
