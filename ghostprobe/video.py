"""Video probing and frame decoding: decord first, PyAV when decord cannot read a file; frame folders through
FFmpeg's image-sequence demuxer (ghostprobe/frame_folder.py). Writing frames to a video file (`write_video`: exports,
the review tools, the synthetic generator) with PyAV.

Metadata (fps, frame count, duration, resolution) always comes from the file, never from labels; a frame folder has
no rate of its own, so its `fps` is the label's. Every failure is a `VideoReadError` whose message says what is wrong
with which file, so the data-prep stage can reject one clip and carry on with the others.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

    from ghostprobe.frame_folder import FrameSequence
    from ghostprobe.links import AllowedRoots


class VideoReadError(RuntimeError):
    """A video file that cannot be probed or decoded; the message names the file and the reason."""


# FFmpeg demuxers that read one local file and nothing else. Any other is refused before a decoder opens the file:
# playlists and lists (hls, concat, dash) and session descriptions (sdp) open further files or URLs, so a file
# inside the videos folder could bring video from anywhere into a dataset.
SINGLE_FILE_CONTAINERS = (
    "mov",
    "mp4",
    "matroska",
    "webm",
    "avi",
    "mpegts",
    "flv",
    "mpeg",
    "asf",
    "ogg",
    "h264",
    "hevc",
    "m4v",
)


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    backend: str  # the decoder that will read this file: "decord", "pyav", or "image2" for a frame folder
    # A frame folder only: where its images are, their FFmpeg name pattern and the first image's number.
    image_folder: str | None = None
    image_pattern: str | None = None
    first_number: int | None = None

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    @property
    def sequence(self) -> FrameSequence:
        """The frame folder this info describes (backend "image2")."""
        from ghostprobe.frame_folder import FrameSequence

        return FrameSequence(
            Path(self.image_folder),
            self.image_pattern,
            self.first_number,
            self.num_frames,
            self.width,
            self.height,
            self.codec,
        )

    def to_json(self) -> dict:
        # Where a folder's images are is how to read them, not what the clip is: left out, so a prepared dataset's
        # content hash does not depend on the folder's path.
        fields = {k: v for k, v in asdict(self).items() if k not in _FOLDER_FIELDS}
        return fields | {"duration_s": self.duration_s}


_FOLDER_FIELDS = ("image_folder", "image_pattern", "first_number")


def probe_video(
    path: str | Path, decode_threads: int = 1, fps: float | None = None, roots: AllowedRoots | None = None
) -> VideoInfo:
    """Read a video's metadata; decodes the first frame with the chosen backend to prove the file is readable.

    `path` may be a folder of numbered images (ghostprobe/frame_folder.py): `fps` (the label's) is then required,
    and `roots` (the videos folder and `allowed_roots=`, ghostprobe/links.py) refuses images that link outside them.
    """
    if Path(path).is_dir():
        return _probe_folder(Path(path), fps, roots)
    if fps and not Path(path).exists():  # a label with an fps most likely names a frame folder
        raise VideoReadError(f"{path}: frame folder (or video file) not found")
    path = _check_file(path)
    codec, declared = _check_container(path)
    try:
        info = _probe_decord(path, decode_threads)
    except Exception as decord_err:  # decord raises its own error types, and sometimes plain RuntimeError
        try:
            info = _probe_pyav(path)
        except Exception as pyav_err:
            raise VideoReadError(
                f"{path}: cannot decode ({_diagnose(path, pyav_err)}); decord: "
                f"{_short(decord_err)}; PyAV: {_short(pyav_err)}"
            ) from None
    if info.codec == "unknown":
        info = replace(info, codec=codec)
    # A cut-off avi still opens and reads as a shorter clip; its header still declares the full length.
    if declared and info.num_frames < declared - 1:
        raise VideoReadError(
            f"{path}: truncated: the container declares {declared} frames but only {info.num_frames} are readable"
        )
    return info


def read_frames(
    path: str | Path,
    indices: list[int],
    info: VideoInfo,
    decode_threads: int = 1,
    size: int | None = None,
    pyav_fallback: bool = True,
) -> np.ndarray:
    """Decode the frames at `indices` (any order, repeats allowed) as uint8 RGB [N, H, W, 3].

    `size`: squeeze every frame to size x size inside the decoder, as the original Video-LLaMA's
    `decord.VideoReader(path, height=size, width=size)` does (FFmpeg's scaler, bilinear); the PyAV fallback runs
    the same FFmpeg filter and gives the same arrays (tests/test_data_prep.py). `pyav_fallback=False`: a file decord
    reads is not retried with PyAV, which decodes from the file's start (callers that narrow down a damaged stretch
    by reading smaller sets would otherwise decode the whole file again per try).
    """
    path = Path(path)
    wanted = sorted(set(indices))
    if not wanted:
        return np.zeros((0, size or info.height, size or info.width, 3), np.uint8)
    if wanted[0] < 0 or wanted[-1] >= info.num_frames:
        raise VideoReadError(f"{path}: frame index out of range 0..{info.num_frames - 1}: {wanted[0]}..{wanted[-1]}")
    if info.backend == "image2":
        from ghostprobe.frame_folder import read_sequence_frames

        try:
            frames = read_sequence_frames(info.sequence, info.fps, wanted, size)
        except VideoReadError:
            raise
        except Exception as err:
            raise VideoReadError(f"{path}: decoding frames {wanted[0]}..{wanted[-1]} failed: {_short(err)}") from None
    elif info.backend == "decord":
        try:
            frames = _read_decord(path, wanted, decode_threads, size)
        except Exception as decord_err:
            if not pyav_fallback:
                raise VideoReadError(
                    f"{path}: decoding frames {wanted[0]}..{wanted[-1]} failed: {_short(decord_err)}"
                ) from None
            try:
                frames = _read_pyav(path, wanted, size)
            except Exception as pyav_err:
                raise VideoReadError(
                    f"{path}: decoding frames {wanted[0]}..{wanted[-1]} failed (truncated or "
                    f"corrupt?); decord: {_short(decord_err)}; PyAV: {_short(pyav_err)}"
                ) from None
    else:
        try:
            frames = _read_pyav(path, wanted, size)
        except VideoReadError:
            raise
        except Exception as err:
            raise VideoReadError(f"{path}: decoding frames {wanted[0]}..{wanted[-1]} failed: {_short(err)}") from None
    by_index = dict(zip(wanted, frames, strict=True))
    return np.stack([by_index[i] for i in indices])


def iter_frames(
    path: str | Path,
    indices: list[int],
    info: VideoInfo,
    decode_threads: int = 1,
    size: int | None = None,
    chunk_frames: int = 256,
) -> Iterator[np.ndarray]:
    """`read_frames` for long clips: the frames at `indices` (sorted, distinct), each decoded once and in order, as
    uint8 RGB arrays [n <= chunk_frames, H, W, 3], so that memory holds one chunk however long the video.

    Decord and frame folders read chunk by chunk (`read_frames`, one seek each); a file that only PyAV reads is
    decoded in one pass, where a `read_frames` per chunk would restart from the first frame every time.
    """
    indices = list(indices)
    if indices != sorted(set(indices)):
        raise ValueError("iter_frames takes sorted, distinct frame indices")
    chunks = [indices[k : k + chunk_frames] for k in range(0, len(indices), chunk_frames)]
    if info.backend != "pyav" or len(chunks) <= 1:
        for chunk in chunks:
            yield read_frames(path, chunk, info, decode_threads, size)
        return
    path = Path(path)
    if indices[0] < 0 or indices[-1] >= info.num_frames:
        raise VideoReadError(f"{path}: frame index out of range 0..{info.num_frames - 1}: {indices[0]}..{indices[-1]}")
    chunk = []
    try:
        for frame in _decode_pyav(path, indices, size):
            chunk.append(frame)
            if len(chunk) == chunk_frames:
                yield np.stack(chunk)
                chunk = []
    except VideoReadError:
        raise
    except Exception as err:
        raise VideoReadError(f"{path}: decoding frames {indices[0]}..{indices[-1]} failed: {_short(err)}") from None
    if chunk:
        yield np.stack(chunk)


def frame_times_s(path: str | Path, info: VideoInfo, decode_threads: int = 1) -> tuple[float, ...] | None:
    """Presentation time of every frame in seconds from the first, for a variable-frame-rate video; None at a
    constant rate (every frame within half a frame interval of index / fps), where index / fps is exact and is what
    the original Video-LLaMA computes. Read from the container's timestamps: nothing is decoded. A frame folder is
    constant-rate by construction (None)."""
    if info.backend == "image2":
        return None
    try:
        if info.backend == "decord":
            import decord

            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=decode_threads)
            times = reader.get_frame_timestamp(list(range(info.num_frames)))[:, 0].astype(np.float64)
        else:
            times = _packet_times_s(Path(path))
    except Exception as err:  # noqa: BLE001  (without the clock a VFR clip would be stamped wrongly: reject it)
        raise VideoReadError(f"{path}: cannot read the frames' presentation times: {_short(err)}") from None
    if len(times) != info.num_frames:
        raise VideoReadError(f"{path}: {len(times)} presentation times for {info.num_frames} frames")
    times = times - times[0]
    constant = np.arange(info.num_frames) / info.fps
    if np.abs(times - constant).max() <= 0.5 / info.fps:
        return None
    return tuple(float(t) for t in times)


def _packet_times_s(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [packet.pts for packet in container.demux(stream) if packet.pts is not None]
        return np.sort(np.asarray(pts, np.float64)) * float(stream.time_base)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path}: video file not found")
    if not path.is_file():
        raise VideoReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: empty file (0 bytes)")
    return path


def _probe_folder(path: Path, fps: float | None, roots: AllowedRoots | None) -> VideoInfo:
    if not fps:
        raise VideoReadError(
            f"{path}: a folder of frames has no frame rate of its own: give the clip's `fps` in the label file"
        )
    from ghostprobe.frame_folder import list_frame_folder, open_sequence

    sequence = list_frame_folder(path, roots)
    try:
        with open_sequence(sequence, fps) as container:
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
    except Exception as err:  # noqa: BLE001  (FFmpeg's own error, named with the folder)
        raise VideoReadError(f"{sequence.folder}: FFmpeg cannot read {sequence.file_name(0)}: {_short(err)}") from None
    if first is None:
        raise VideoReadError(f"{sequence.folder}: FFmpeg decodes no frame from {sequence.file_name(0)}")
    return VideoInfo(
        fps=float(fps),
        num_frames=sequence.num_frames,
        width=sequence.width,
        height=sequence.height,
        codec=sequence.codec,
        backend="image2",
        image_folder=str(sequence.folder),
        image_pattern=sequence.pattern,
        first_number=sequence.first_number,
    )


def _probe_decord(path: Path, decode_threads: int) -> VideoInfo:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=decode_threads)
    num_frames = len(reader)
    if num_frames == 0:
        raise VideoReadError("no frames")
    height, width = reader[0].shape[:2]
    fps = float(reader.get_avg_fps())
    if not fps > 0:
        raise VideoReadError(f"invalid frame rate {fps}")
    return VideoInfo(
        fps=fps, num_frames=num_frames, width=int(width), height=int(height), codec="unknown", backend="decord"
    )


def _probe_pyav(path: Path) -> VideoInfo:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoReadError("unknown frame rate")
        num_frames = 0
        first = None
        # Count by decoding: container frame counts are missing or wrong in many avi/mkv files.
        for frame in container.decode(stream):
            if first is None:
                first = frame
            num_frames += 1
        if first is None:
            raise VideoReadError("no decodable frames")
        return VideoInfo(
            fps=float(Fraction(rate)),
            num_frames=num_frames,
            width=first.width,
            height=first.height,
            codec=stream.codec_context.name,
            backend="pyav",
        )


def _read_decord(path: Path, wanted: list[int], decode_threads: int, size: int | None = None) -> np.ndarray:
    import decord

    resize = {"width": size, "height": size} if size else {}
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=decode_threads, **resize)
    return reader.get_batch(wanted).asnumpy()


def _read_pyav(path: Path, wanted: list[int], size: int | None = None) -> list[np.ndarray]:
    return list(_decode_pyav(path, wanted, size))


def _decode_pyav(path: Path, wanted: list[int], size: int | None = None) -> Iterator[np.ndarray]:
    """The frames at sorted distinct `wanted`, in order, from one sequential decode."""
    import av

    want = set(wanted)
    found = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        to_rgb = pyav_rgb_converter(stream, size)
        # Sequential decode: on long-GOP files a seek per frame costs ~2x (docs/benchmarks.md).
        for index, frame in enumerate(container.decode(stream)):
            if index in want:
                found += 1
                yield to_rgb(frame)
            if index >= wanted[-1]:
                break
    if found < len(wanted):
        raise VideoReadError(f"{path}: stream ended before frame {wanted[found]} (truncated?)")


def pyav_rgb_converter(stream, size: int | None):
    """frame -> uint8 RGB array for frames of `stream`: squeezed to size x size by FFmpeg's filters (`size`), or
    full size."""
    return _pyav_scaler(stream, size) if size else lambda frame: frame.to_ndarray(format="rgb24")


def _pyav_scaler(stream, size: int):
    """frame -> uint8 RGB [size, size, 3] through the FFmpeg filters decord's resizing reader uses (a bilinear
    `scale`, then `format=rgb24`): identical arrays, where PyAV's own `reformat` differs by up to 6-42 levels."""
    import av

    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    scale = graph.add("scale", f"{size}:{size}:flags=bilinear")
    rgb = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    source.link_to(scale)
    scale.link_to(rgb)
    rgb.link_to(sink)
    graph.configure()

    def to_rgb(frame) -> np.ndarray:
        graph.push(frame)
        return graph.pull().to_ndarray()

    return to_rgb


def _check_container(path: Path) -> tuple[str, int]:
    """Refuse anything but a plain single-file video; return (codec name, frame count the container declares or 0)
    from the header alone, no decoding. A header PyAV cannot read is left to the decoders to diagnose."""
    import av

    listing = _lists_other_files(path)
    # FFmpeg checks the whitelist after it picks a demuxer and before that demuxer reads anything.
    only_single_file = {"format_whitelist": ",".join(SINGLE_FILE_CONTAINERS)}
    try:
        with av.open(str(path), container_options=only_single_file) as container:
            if not container.streams.video:
                only = " (the file holds only audio)" if container.streams.audio else ""
                raise VideoReadError(f"{path}: no video stream{only}")
            stream = container.streams.video[0]
            codec = stream.codec_context.name if stream.codec_context else "unknown"  # None: no decoder for it
            return codec, int(stream.frames or 0)
    except av.error.FFmpegError as err:
        image = _image_kind(path)
        if image:  # an image renamed .mp4 is no playlist: say what it is
            raise VideoReadError(
                f"{path}: {image} image, not a video (whatever its name says): clips are video files "
                "or folders of numbered frames (docs/labels.md)"
            ) from None
        if listing or err.errno == errno.EINVAL:
            raise VideoReadError(
                f"{path}: {listing or 'a container format'}, not a plain video file: only "
                f"single-file containers are read ({', '.join(SINGLE_FILE_CONTAINERS)}); "
                "playlists and lists that open other files or URLs are refused"
            ) from None
        return "unknown", 0


# Leading bytes of the still-image formats a renamed file most often is.
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG"),
    (b"\x89PNG\r\n\x1a\n", "a PNG"),
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"BM", "a BMP"),
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
)


def _image_kind(path: Path) -> str | None:
    """ "a JPEG", "a PNG", ... when the file is a still image (by its first bytes), else None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP"
    return next((name for magic, name in _IMAGE_MAGIC if head.startswith(magic)), None)


def _lists_other_files(path: Path) -> str | None:
    """What a text file that names other files is (for the message), from its first bytes; None for anything else."""
    with open(path, "rb") as f:
        head = f.read(1024).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"#EXTM3U"):
        return "a playlist (#EXTM3U)"
    if head.startswith(b"ffconcat"):
        return "a concat list (ffconcat)"
    if b"<MPD" in head:
        return "a DASH manifest (<MPD>)"
    return None


def _diagnose(path: Path, pyav_err: Exception) -> str:
    """A human hint for an undecodable file: not a video at all, a codec nobody decodes, or a damaged video."""
    if "Decoder not found" in str(pyav_err) or "codec not currently supported" in str(pyav_err):
        return "unsupported codec: neither decord nor PyAV has a decoder for its video stream"
    with open(path, "rb") as f:
        head = f.read(16)
    looks_like_video = (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")
        or head[:4] == b"RIFF"
        or head[:4] == b"\x1aE\xdf\xa3"
    )
    if looks_like_video:
        return "video container found but it is truncated or corrupt"
    return "not a video file, or its header is corrupt"


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[-1] if text else type(err).__name__)[:200]


# ---------------------------------------------------------------------------------------------------------------
# Writing
#
# The same frames must give the same bitstream (the generator promises identical decoded frames for a seed). Two
# things were needed for that, both found by encoding one clip 20-60 times: the encoder option `threads=1` (PyAV's
# `codec_context.thread_count = 1` was not enough), and x264's macroblock-tree rate control off (`mbtree=0`): with it
# on, x264's SIMD code gave a different stream every few runs on an AVX-512 machine; with `asm=0` or `mbtree=0` it
# never did. ultrafast/superfast presets have no mbtree anyway.

# x264 settings: fast enough to be a small share of the generator's time, visually clean.
X264_DEFAULTS = {"crf": "23", "preset": "veryfast", "x264-params": "mbtree=0"}
# Bits per pixel per frame for codecs driven by a bit rate (mpeg4): ~4.7 Mb/s at 1584x660x30, like a dashcam's.
_BITS_PER_PIXEL = 0.15


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Encode uint8 RGB frames ([T, H, W, 3] array, or an iterable of [H, W, 3]) to `path`; returns the path.

    The container follows the file name (`.mp4`, `.avi`, `.mkv`, ...). `codec` is an FFmpeg encoder name:
    "libx264" (H.264; `options` are added to crf 23, preset veryfast, x264-params mbtree=0: keep mbtree off if you
    replace x264-params and need repeatable output) or "mpeg4" (MPEG-4 Part 2, as many dashcams write into .avi;
    quality set by `bit_rate`, default 0.15 bits per pixel per frame). `fps` may be fractional (29.97 is stored as
    2997/100, 30000/1001 as itself). Raises ValueError for frames of the wrong shape or dtype, or odd sizes with a
    4:2:0 `pix_fmt`.
    """
    import av

    path = Path(path)
    frames = iter(frames)
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError(f"{path}: no frames to write") from None
    height, width = _check_frame_to_write(path, first, None)
    if pix_fmt.endswith("420p") and (width % 2 or height % 2):
        raise ValueError(
            f"{path}: {width}x{height} cannot be stored as {pix_fmt} (width and height must be even); "
            "crop or pad the frames by one pixel"
        )
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
        for index, array in enumerate(itertools.chain([first], frames)):
            _check_frame_to_write(path, array, (height, width), index)
            frame = _to_av_frame(array)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _to_av_frame(array: np.ndarray) -> av.VideoFrame:
    import av

    h, w, _ = array.shape
    if array.strides[1:] == (4, 1) and array.strides[0] >= 4 * w:
        # RGB viewed out of 4-byte pixels (the renderer's packed frames): hand the pixels over as RGBA, no copy.
        # The fourth byte is read but not used (the encoder's pix_fmt has no alpha).
        rgba = np.lib.stride_tricks.as_strided(array, (h, w, 4), (array.strides[0], 4, 1), writeable=False)
        return av.VideoFrame.from_ndarray(rgba, format="rgba")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")


def _check_frame_to_write(path: Path, array, size: tuple[int, int] | None, index: int = 0) -> tuple[int, int]:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"{path}: frame {index} must be a uint8 [H, W, 3] RGB array, got {got}")
    if size is not None and array.shape[:2] != size:
        raise ValueError(
            f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]}, the first frame was {size[1]}x{size[0]}"
        )
    return array.shape[0], array.shape[1]
