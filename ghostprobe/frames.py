"""Prepared frames: resizing decoded frames, and storing/reading them in a `datasets` column.

Three resize modes for data prep: `decoder` squeezes to size x size inside the decoder, exactly as the original
Video-LLaMA's `load_video` (decord `VideoReader(height=, width=)`, FFmpeg's bilinear scaler); `straight` squeezes a
full-size decode with PIL bicubic (mean abs difference 3.85 levels from the original at 224, max 121) and `pad`
keeps the aspect ratio and letterboxes with black. Two storage modes: `uint8` (exact: a row's frames as one block of
bytes with its shape, `packed_frames`; the dataset is the size of its frames) and `jpeg` (a list of JPEG files, lossy,
several times smaller). `frames_from_row` reads either, and the Array4D and Image columns of datasets prepared before.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

RESIZE_MODES = ("straight", "pad")  # resizing of decoded frames (resize_frames)
PREP_RESIZE_MODES = ("decoder", *RESIZE_MODES)


def iter_resized_frames(
    path,
    indices: list[int],
    info,
    size: int,
    mode: str = "decoder",
    decode_threads: int = 1,
    chunk_bytes: int = 64_000_000,
) -> Iterator[np.ndarray]:
    """Frames at sorted distinct `indices` of a probed video (`ghostprobe.video.VideoInfo`) as uint8 RGB
    [n, size, size, 3], chunk by chunk in order, each decoded once: at most `chunk_bytes` of decoded frames (full
    size for `straight` and `pad`) are held at once, however long the clip."""
    from ghostprobe.video import iter_frames

    if mode not in PREP_RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(PREP_RESIZE_MODES)}")
    decoded_bytes = 3 * (size * size if mode == "decoder" else info.width * info.height)
    chunk_frames = max(1, int(chunk_bytes // decoded_bytes))
    for chunk in iter_frames(path, indices, info, decode_threads, size if mode == "decoder" else None, chunk_frames):
        yield chunk if mode == "decoder" else resize_frames(chunk, size, mode)


def resize_frames(frames: np.ndarray, size: int, mode: str = "straight") -> np.ndarray:
    """Resize uint8 RGB frames [N, H, W, 3] to [N, size, size, 3] (bicubic)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    return (
        np.stack([_resize_one(frame, size, mode) for frame in frames])
        if len(frames)
        else np.zeros((0, size, size, 3), np.uint8)
    )


def _resize_one(frame: np.ndarray, size: int, mode: str) -> np.ndarray:
    image = Image.fromarray(frame)
    if mode == "straight":
        return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = np.zeros((size, size, 3), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = np.asarray(image.resize((new_w, new_h), Image.Resampling.BICUBIC))
    return canvas


def encode_jpeg(frames: np.ndarray, quality: int) -> list[bytes]:
    """Each uint8 RGB frame [H, W, 3] of `frames` as the bytes of a JPEG file at `quality`."""
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def packed_frames(frames: np.ndarray) -> dict:
    """uint8 RGB frames [N, H, W, 3] as a `frames` value of a uint8-storage dataset (`ghostprobe.dataset`): their
    shape and their bytes in row-major order. Arrow stores that as one block plus one offset per row, where an
    Array4D column stores a 4-byte offset for every pixel (2.3x the frames' bytes)."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    return {"shape": list(frames.shape), "rgb": frames.tobytes()}


def frames_from_row(value) -> np.ndarray:
    """A row's `frames` value, whichever storage it used, as uint8 RGB [N, H, W, 3]."""
    if isinstance(value, dict) and "rgb" in value:  # uint8 storage, any `datasets` format
        shape = tuple(int(d) for d in value["shape"])
        pixels = np.frombuffer(value["rgb"], np.uint8)
        if len(shape) != 4 or pixels.size != np.prod(shape):
            raise ValueError(
                f"{pixels.size} frame bytes do not fill the stored shape {list(shape)} (a damaged "
                "dataset: re-run data prep)"
            )
        return pixels.reshape(shape).copy()  # a writable array, as every other storage gives (torch.from_numpy)
    if len(value) and isinstance(value[0], bytes):  # jpeg storage: one JPEG file per frame
        return np.stack([_decode_jpeg(blob) for blob in value])
    if isinstance(value, np.ndarray):  # Array4D, as data prep stored frames before: read in numpy format
        return value.astype(np.uint8, copy=False)
    # Data prep before stored JPEG frames as a list of Image (decoded to PIL, or dicts with decode=False).
    if len(value) and isinstance(value[0], Image.Image):
        return np.stack([np.asarray(image.convert("RGB")) for image in value])
    if len(value) and isinstance(value[0], dict):
        return np.stack([_decode_jpeg(v["bytes"]) for v in value])
    return np.asarray(value, dtype=np.uint8)


def _decode_jpeg(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
