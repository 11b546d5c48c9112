"""Writing RGB frames to a video file with PyAV: H.264 in mp4 for the generator, MPEG-4 Part 2 in avi for tests.

The same frames must give the same bitstream (the generator promises identical decoded frames for a seed). Two
things were needed for that, both found by encoding one clip 20-60 times: the encoder option `threads=1` (PyAV's
`codec_context.thread_count = 1` was not enough), and x264's macroblock-tree rate control off (`mbtree=0`): with it
on, x264's SIMD code gave a different stream every few runs on an AVX-512 machine; with `asm=0` or `mbtree=0` it
never did. ultrafast/superfast presets have no mbtree anyway.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

# x264 settings for the generator's clips: fast enough to be a small share of generation time, visually clean.
X264_DEFAULTS = {"crf": "23", "preset": "veryfast", "x264-params": "mbtree=0"}
# Bits per pixel per frame for codecs driven by a bit rate (mpeg4): ~4.7 Mb/s at 1584x660x30, like a dashcam's.
_BITS_PER_PIXEL = 0.15


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict | None = None, bit_rate: int | None = None) -> Path:
    """Encode uint8 RGB frames ([T, H, W, 3] array, or an iterable of [H, W, 3]) to `path`; returns the path.

    The container follows the file name (`.mp4`, `.avi`, `.mkv`, ...). `codec` is an FFmpeg encoder name:
    "libx264" (H.264; `options` are added to crf 23, preset veryfast, x264-params mbtree=0: keep mbtree off if you
    replace x264-params and need repeatable output) or "mpeg4" (MPEG-4 Part 2, as many dashcams write into .avi;
    quality set by `bit_rate`, default 0.15 bits per pixel per frame). `fps` may be fractional (29.97 is stored as
    2997/100, 30000/1001 as itself). Raises ValueError for frames of the wrong shape or dtype, or odd sizes with a
    4:2:0 `pix_fmt`.
    """
    path = Path(path)
    frames = iter(frames)
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError(f"{path}: no frames to write") from None
    height, width = _check_frame(path, first, None)
    if pix_fmt.endswith("420p") and (width % 2 or height % 2):
        raise ValueError(f"{path}: {width}x{height} cannot be stored as {pix_fmt} (width and height must be even); "
                         "crop or pad the frames by one pixel")
    if fps <= 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    codec_options = dict(X264_DEFAULTS if codec == "libx264" else {}, threads="1")
    codec_options.update({k: str(v) for k, v in (options or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=codec_options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec != "libx264":
            stream.codec_context.bit_rate = bit_rate or int(_BITS_PER_PIXEL * width * height * float(rate))
        elif bit_rate:
            stream.codec_context.bit_rate = bit_rate
        for index, array in enumerate(_chain(first, frames)):
            _check_frame(path, array, (height, width), index)
            frame = _to_av_frame(array)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _to_av_frame(array: np.ndarray) -> av.VideoFrame:
    h, w, _ = array.shape
    if array.strides[1:] == (4, 1) and array.strides[0] >= 4 * w:
        # RGB viewed out of 4-byte pixels (the renderer's packed frames): hand the pixels over as RGBA, no copy.
        # The fourth byte is read but not used (the encoder's pix_fmt has no alpha).
        rgba = np.lib.stride_tricks.as_strided(array, (h, w, 4), (array.strides[0], 4, 1), writeable=False)
        return av.VideoFrame.from_ndarray(rgba, format="rgba")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")


def _chain(first, rest):
    yield first
    yield from rest


def _check_frame(path: Path, array, size: tuple[int, int] | None, index: int = 0) -> tuple[int, int]:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"{path}: frame {index} must be a uint8 [H, W, 3] RGB array, got {got}")
    if size is not None and array.shape[:2] != size:
        raise ValueError(f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]}, the first frame was "
                         f"{size[1]}x{size[0]}")
    return array.shape[0], array.shape[1]
