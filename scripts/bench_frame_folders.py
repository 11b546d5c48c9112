"""Benchmark data prep of clips stored as frame folders (DoTA's layout) against a bare decode of the same images.

    python scripts/bench_frame_folders.py [--clips 8] [--duration-s 10] [--fps 10] [--resolution 720p]
        [--listing-frames 100000]

Makes `--clips` DoTA-like clips once: synthetic clips (ghostprobe.synth at 320x180), upscaled to the resolution and
saved as jpg (quality 90) in <clip>/images/000000.jpg at `--fps`. Then, in this process, one after the other:
(a) the bare decode: the 8 uniformly sampled images of each clip decoded at full size by FFmpeg's JPEG decoder
(PyAV, one file at a time) and, for reference, by Pillow; nothing else; (b) the whole data prep of the folders
(listing and header checks, probe, image2 decode with the 224 scale inside FFmpeg, cache entry, Arrow write,
save_to_disk), and its two frame-folder steps timed alone (listing and checking; reading the 8 frames at 224).
Prints seconds per clip and the prep / bare ratio. `--listing-frames N` also times listing and
checking one folder of N small images (what a 100,000-frame folder costs once per clip).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
FRAMES_PER_CLIP = 8


def make_folders(root: Path, clips: int, duration_s: float, fps: float, size: tuple[int, int]) -> Path:
    """DoTA-like jpg folders of synthetic clips and their label file; returns the label file."""
    import decord
    from PIL import Image

    from ghostprobe.labels import write_labels
    from ghostprobe.synth import generate

    labels = generate(out_dir=root / "synth", num_clips=clips, seed=0, fps=fps, duration_s=duration_s)
    folder_labels = []
    for clip in labels:
        reader = decord.VideoReader(str(root / "synth" / clip.video))
        images = root / "frames" / clip.clip_id / "images"
        images.mkdir(parents=True)
        for index in range(len(reader)):
            big = Image.fromarray(reader[index].asnumpy()).resize(size, Image.Resampling.BILINEAR)
            big.save(images / f"{index:06d}.jpg", quality=90)
        folder_labels.append(clip.model_copy(update={"video": f"frames/{clip.clip_id}", "fps": float(fps)}))
    write_labels(root / "labels.json", folder_labels)
    return root / "labels.json"


def bare_decode(labels_path: Path, decoder: str) -> float:
    """Seconds to decode the 8 sampled images of every clip at full size, nothing else."""
    import av
    import numpy as np
    from PIL import Image

    from ghostprobe.frame_folder import list_frame_folder
    from ghostprobe.labels import load_labels
    from ghostprobe.sampling import uniform_indices

    clips = load_labels(labels_path).clips
    folders = [list_frame_folder(labels_path.parent / clip.video) for clip in clips]  # listing is not decoding
    started = time.perf_counter()
    for sequence in folders:
        for index in uniform_indices(sequence.num_frames, FRAMES_PER_CLIP):
            path = sequence.folder / sequence.file_name(index)
            if decoder == "ffmpeg":
                with av.open(str(path)) as container:
                    frame = next(container.decode(video=0))
                    frame.to_ndarray(format="rgb24")
            else:
                with Image.open(path) as image:
                    np.asarray(image.convert("RGB"))
    return time.perf_counter() - started


def folder_steps(labels_path: Path) -> tuple[float, float]:
    """(seconds listing and checking every folder, seconds reading the 8 frames of every clip through image2 with
    the 224 scale): the two frame-folder steps inside data prep, timed alone."""
    from ghostprobe.frame_folder import list_frame_folder
    from ghostprobe.labels import load_labels
    from ghostprobe.sampling import uniform_indices
    from ghostprobe.video import probe_video, read_frames

    clips = load_labels(labels_path).clips
    started = time.perf_counter()
    for clip in clips:
        list_frame_folder(labels_path.parent / clip.video)
    listed = time.perf_counter() - started
    infos = [probe_video(labels_path.parent / clip.video, fps=clip.fps) for clip in clips]
    started = time.perf_counter()
    for clip, info in zip(clips, infos, strict=True):
        read_frames(labels_path.parent / clip.video, uniform_indices(info.num_frames, FRAMES_PER_CLIP), info, size=224)
    return listed, time.perf_counter() - started


def prep(labels_path: Path, out_dir: Path) -> float:
    import datasets  # noqa: F401  (imported before the clock starts, as a long run pays it once)

    from data_prep.prepare import prepare_dataset
    from ghostprobe.config import prep_settings

    settings = prep_settings(num_proc=1, resize="decoder")  # composing the Hydra config: ~1.5 s, not data prep
    started = time.perf_counter()
    report = prepare_dataset(labels_path, out_dir, settings)
    assert report["num_rejected"] == 0, report["rejected"]
    return time.perf_counter() - started


def listing(root: Path, frames: int) -> tuple[float, float]:
    """(seconds to write, seconds to list and check) one folder of `frames` small jpg images."""
    import io

    import numpy as np
    from PIL import Image

    from ghostprobe.frame_folder import list_frame_folder

    folder = root / "long" / "images"
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.fromarray(np.full((36, 64, 3), 128, np.uint8)).save(buffer, format="JPEG")
    started = time.perf_counter()
    for index in range(frames):
        (folder / f"{index:06d}.jpg").write_bytes(buffer.getvalue())
    written = time.perf_counter() - started
    started = time.perf_counter()
    sequence = list_frame_folder(root / "long")
    assert sequence.num_frames == frames
    return written, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--resolution", default="720p", choices=sorted(RESOLUTIONS))
    parser.add_argument("--listing-frames", type=int, default=0, help="also time listing one folder of N images")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_frame_folders_"))
    try:
        labels = make_folders(root, args.clips, args.duration_s, args.fps, RESOLUTIONS[args.resolution])
        frames_per_clip = round(args.duration_s * args.fps)
        ffmpeg_s = bare_decode(labels, "ffmpeg")
        pillow_s = bare_decode(labels, "pillow")
        listed_s, read_s = folder_steps(labels)
        prep_s = prep(labels, root / "prepared")
        n = args.clips
        print(
            f"{n} clips of {frames_per_clip} jpg frames ({args.resolution}, {args.fps:g} fps), "
            f"{FRAMES_PER_CLIP} frames sampled per clip; seconds per clip"
        )
        print(
            "| resolution | bare decode FFmpeg | bare decode Pillow | listing + header checks | image2 read at 224 "
            "| whole prep | prep clips/s | prep / bare FFmpeg time |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {args.resolution} | {ffmpeg_s / n:.3f} | {pillow_s / n:.3f} | {listed_s / n:.3f} | {read_s / n:.3f} "
            f"| {prep_s / n:.3f} | {n / prep_s:.2f} | {prep_s / ffmpeg_s:.2f} |"
        )
        if args.listing_frames:
            written_s, listed_s = listing(root, args.listing_frames)
            print(
                f"listing and checking one folder of {args.listing_frames} images: {listed_s:.2f} s "
                f"({1e6 * listed_s / args.listing_frames:.0f} us per image; writing them took {written_s:.1f} s)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
