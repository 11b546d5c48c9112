"""Clips stored as folders of numbered images (DoTA, DADA-2000, CAP-DATA, A3D): listing, checks and decoding.

A label's `video` may name a folder of numbered jpg or png images (`000000.jpg`..., `0001.png`...; numbering from
any start, 0 or 1 in practice), held directly or in an `images/` subfolder, with the clip's `fps` in the label. The
folder is listed and checked once per clip; frames are then read through FFmpeg's image-sequence demuxer (`image2`,
via PyAV), so the decoder-side resize is the same FFmpeg `scale` filter as for video files and a folder gives the
same arrays as the same images stored in a lossless video (tests/test_frame_folders.py).

Every problem is a `VideoReadError` naming the folder and the files at fault: no images, a file that is not a
numbered image, a gap in the numbering, mixed extensions, zero padding, sizes or pixel modes, a file whose content
is not what its extension says, a folder or image that links outside the allowed roots (ghostprobe/links.py: the
videos folder and `allowed_roots=`; the link and its target are named).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostprobe.links import AllowedRoots, PathNotAllowed, resolve_allowed
from ghostprobe.video import VideoReadError, pyav_rgb_converter

# extension -> (FFmpeg decoder the image2 demuxer picks for it, Pillow's name of the format)
IMAGE_TYPES = {".jpg": ("mjpeg", "JPEG"), ".jpeg": ("mjpeg", "JPEG"), ".png": ("png", "PNG")}
IMAGES_SUBFOLDER = "images"
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")
_SHOWN = 3  # names quoted in a message before "and N more"


@dataclass(frozen=True)
class FrameSequence:
    """A checked folder of numbered images: what FFmpeg's image2 demuxer needs to read it."""

    folder: Path  # where the images are (the clip's folder, or its images/ subfolder)
    pattern: str  # FFmpeg's name pattern inside `folder`, e.g. "%06d.jpg"
    first_number: int  # the number of the first image (frame index 0)
    num_frames: int
    width: int
    height: int
    codec: str  # mjpeg or png

    @property
    def ffmpeg_input(self) -> str:
        """The pattern as FFmpeg opens it; a literal % in the folder's own path is doubled so it is not a field."""
        return str(self.folder).replace("%", "%%") + os.sep + self.pattern

    def file_name(self, index: int) -> str:
        """The image file of frame `index` (0 = the first image)."""
        return _format(self.pattern, self.first_number + index)


def list_frame_folder(path: str | Path, roots: AllowedRoots | None = None) -> FrameSequence:
    """List and check a frame folder (one directory listing and one image-header read per file; no decoding).

    `roots`: the videos folder and `allowed_roots=`; an images/ folder or an image that is a link to somewhere outside
    them is refused (ghostprobe/links.py), as a video path that leaves them is. Raises `VideoReadError` naming the
    folder and the offending files.
    """
    path = Path(path)
    folder = path / IMAGES_SUBFOLDER if (path / IMAGES_SUBFOLDER).is_dir() else path
    if not folder.is_dir():
        raise VideoReadError(f"{path}: frame folder not found")
    try:
        entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        raise VideoReadError(f"{folder}: cannot list the frame folder ({err.strerror})") from None
    images, others = [], []
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        match = _NUMBERED.match(stem)
        if ext.lower() in IMAGE_TYPES and match and entry.is_file():
            images.append((entry, match["prefix"], match["number"], ext))
        else:
            others.append(entry.name + ("/" if entry.is_dir() else ""))
    if others:
        raise VideoReadError(
            f"{folder}: not a numbered image (jpg/png): {_names(others)}; a frame folder holds only "
            "its frames (hidden files aside)"
        )
    if not images:
        raise VideoReadError(f"{folder}: empty frame folder (no jpg or png images)")
    _same(folder, "image types", Counter(ext.lower() for *_, ext in images), images, lambda i: i[3].lower())
    _same(folder, "name prefixes", Counter(prefix for _, prefix, _, _ in images), images, lambda i: i[1])
    pattern = _pattern(folder, images)
    numbers = sorted(int(number) for _, _, number, _ in images)
    first, last = numbers[0], numbers[-1]
    if last - first + 1 != len(numbers):
        missing = sorted(set(range(first, last + 1)) - set(numbers))
        raise VideoReadError(
            f"{folder}: the numbering has gaps: {_names([_format(pattern, n) for n in missing])} "
            f"missing between {_format(pattern, first)} and {_format(pattern, last)}; FFmpeg "
            "would stop at the first gap"
        )
    if roots is not None:
        _check_links(folder, [entry for entry, *_ in images], roots)  # the images/ folder, then each image
    width, height = _check_headers(folder, images)
    codec = IMAGE_TYPES[images[0][3].lower()][0]
    return FrameSequence(
        folder=folder,
        pattern=pattern,
        first_number=first,
        num_frames=len(numbers),
        width=width,
        height=height,
        codec=codec,
    )


def open_sequence(sequence: FrameSequence, fps: float):
    """An av container reading `sequence` as a video of `fps` (FFmpeg's image2 demuxer, nothing else)."""
    import av

    options = {"framerate": repr(float(fps)), "start_number": str(sequence.first_number), "pattern_type": "sequence"}
    # Forcing the demuxer means no file is probed for its format: a playlist named 0001.jpg is read as a (broken)
    # JPEG, never followed.
    return av.open(sequence.ffmpeg_input, format="image2", options=options)


def read_sequence_frames(sequence: FrameSequence, fps: float, wanted: list[int], size: int | None) -> list[np.ndarray]:
    """Frames at sorted unique `wanted` indices as uint8 RGB arrays; `size`: squeezed to size x size by FFmpeg's
    bilinear `scale` filter, as video files are. Each frame is one file: the demuxer seeks straight to it."""
    out = []
    with open_sequence(sequence, fps) as container:
        stream = container.streams.video[0]
        to_rgb = pyav_rgb_converter(stream, size)
        for index in wanted:
            container.seek(index, stream=stream, any_frame=True)  # the image2 demuxer counts pts in frames
            packet = next(container.demux(stream), None)
            if packet is None or packet.pts != index:
                raise VideoReadError(
                    f"{sequence.folder}: {sequence.file_name(index)} could not be read as frame {index}"
                )
            frames = stream.codec_context.decode(packet)
            if not frames:
                raise VideoReadError(f"{sequence.folder}: {sequence.file_name(index)} decodes to no image")
            out.append(to_rgb(frames[0]))
    return out


def _pattern(folder: Path, images: list) -> str:
    """The image2 pattern of the names: %0Nd when every number has N digits, %d when none is zero-padded."""
    prefix, ext = images[0][1], images[0][3]
    widths = Counter(len(number) for _, _, number, _ in images)
    escaped = prefix.replace("%", "%%") + "{field}" + ext.replace("%", "%%")
    if len(widths) == 1:
        return escaped.format(field=f"%0{next(iter(widths))}d")
    padded = [entry.name for entry, _, number, _ in images if number.startswith("0") and len(number) > 1]
    if not padded:
        return escaped.format(field="%d")
    raise VideoReadError(
        f"{folder}: mixed zero padding: {widths.most_common(1)[0][1]} names of "
        f"{widths.most_common(1)[0][0]} digits, others like {_names(padded)}; number the images "
        "all with the same number of digits"
    )


def _check_links(folder: Path, entries: list, roots: AllowedRoots) -> None:
    try:
        resolve_allowed(folder, roots)
    except PathNotAllowed as err:
        raise VideoReadError(f"{folder}: {err}") from None
    refused = []
    for entry in entries:
        if entry.is_symlink():
            try:
                resolve_allowed(entry.path, roots)
            except PathNotAllowed:
                refused.append(f"{entry.name} -> {os.path.realpath(entry.path)}")
    if refused:
        raise VideoReadError(
            f"{folder}: image links to files outside {roots.describe()}: {_names(refused)}; add "
            "their folder to allowed_roots= to follow them"
        )


def _check_headers(folder: Path, images: list) -> tuple[int, int]:
    """(width, height) shared by every image, read from the headers alone; a file whose content is not its
    extension's format, or a size or pixel mode that differs from the others, is named."""
    from PIL import Image, UnidentifiedImageError

    shapes: dict[tuple, list[str]] = {}
    for entry, _, _, ext in images:
        expected = IMAGE_TYPES[ext.lower()][1]
        try:
            with Image.open(entry.path) as image:
                found, size, mode = image.format, image.size, image.mode
        except (UnidentifiedImageError, OSError) as err:
            raise VideoReadError(f"{folder}: {entry.name} is not a readable image ({err})") from None
        if found != expected:
            raise VideoReadError(f"{folder}: {entry.name} holds a {found} image, not the {expected} its name says")
        shapes.setdefault((size, _pixel_kind(mode)), []).append(entry.name)
    if len(shapes) > 1:
        ranked = sorted(shapes.items(), key=lambda kv: -len(kv[1]))
        (size, kind), common = ranked[0]
        odd = "; ".join(f"{w}x{h} {k}: {_names(names)}" for ((w, h), k), names in ranked[1:])
        raise VideoReadError(
            f"{folder}: mixed frame sizes or pixel modes: {len(common)} frames are "
            f"{size[0]}x{size[1]} {kind}, but {odd}"
        )
    (width, height), _ = next(iter(shapes))
    return width, height


def _pixel_kind(mode: str) -> str:
    """Pillow's mode reduced to what changes FFmpeg's pixel format: colour, grey, palette, with or without alpha."""
    return {
        "L": "grey",
        "I;16": "grey",
        "I": "grey",
        "LA": "grey+alpha",
        "P": "palette",
        "RGBA": "RGB+alpha",
        "CMYK": "CMYK",
    }.get(mode, "RGB")


def _same(folder: Path, what: str, counts: Counter, images: list, key) -> None:
    if len(counts) > 1:
        common = counts.most_common(1)[0][0]
        odd = [entry.name for entry, *rest in images if key((entry, *rest)) != common]
        raise VideoReadError(
            f"{folder}: mixed {what}: {counts[common]} images have {common!r}, these not: {_names(odd)}"
        )


def _format(pattern: str, number: int) -> str:
    return pattern % number  # printf-style as FFmpeg's: "%06d" is the number, "%%" a literal %


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" (and {len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
