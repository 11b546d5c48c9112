"""Benchmark the data-prep stage against a bare decord decode of the same frames of the same clips.

    python scripts/bench_data_prep.py [--clips 12] [--duration-s 10] [--resolutions 720p,1080p] [--num-proc 1,2]
        [--resize decoder,straight]

For each resolution it makes synthetic H.264 clips once (rendered at 320x180 by ghostprobe.synth, upscaled and
re-encoded with libx264 at the target size: decode cost depends on size and bitrate, and numpy rendering at 1080p
would take longer than the benchmark), then for each num_proc runs, each in a fresh process (so peak memory is that
run's own; worker peaks are the largest pool worker's): (a) the bare decode (decord, uniform 8 frames per clip,
nothing else) and (b) the full data prep (probe, checks, decode, resize to 224, Arrow write, save_to_disk) once per
`--resize` mode (`decoder`: resized inside decord as the original Video-LLaMA; `straight`: full-size decode + PIL
bicubic). It prints clips/s, frames/s, the prep/bare time ratio (the overhead of everything that is not decoding)
and peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
FRAMES_PER_CLIP = 8


def bare_decode_one(path: str) -> int:
    import decord

    from ghostprobe.sampling import uniform_indices

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    frames = reader.get_batch(uniform_indices(len(reader), FRAMES_PER_CLIP)).asnumpy()
    return len(frames)


def run_bare(paths: list[str], num_proc: int) -> float:
    started = time.perf_counter()
    if num_proc <= 1:
        for path in paths:
            bare_decode_one(path)
    else:
        with multiprocessing.get_context("spawn").Pool(num_proc) as pool:
            list(pool.imap_unordered(bare_decode_one, paths, chunksize=1))
    return time.perf_counter() - started


def run_prep(labels: str, out_dir: str, num_proc: int, resize: str) -> float:
    from data_prep.prepare import prepare_dataset
    from ghostprobe.config import prep_settings

    started = time.perf_counter()
    report = prepare_dataset(labels, out_dir, prep_settings(num_proc=num_proc, resize=resize))
    assert report["num_rejected"] == 0, report["rejected"]
    return time.perf_counter() - started


def upscaled_clips(clips, small_dir: Path, out_dir: Path, width: int, height: int, fps: int):
    """Re-encode the small synthetic clips at width x height; returns the labels (same clips, same paths)."""
    import decord
    import numpy as np
    from PIL import Image

    from ghostprobe.labels import write_labels
    from ghostprobe.video import write_video

    for clip in clips:
        reader = decord.VideoReader(str(small_dir / clip.video))
        # Streamed frame by frame: a parent holding GBs would inflate the children's peak RSS (inherited at exec).
        big = (
            np.asarray(Image.fromarray(reader[i].asnumpy()).resize((width, height), Image.Resampling.BILINEAR))
            for i in range(len(reader))
        )
        (out_dir / clip.video).parent.mkdir(parents=True, exist_ok=True)
        write_video(out_dir / clip.video, big, fps)
    write_labels(out_dir / "labels.json", clips)
    return clips


def _vm_hwm_mib() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would include the parent's peak, which Linux carries over exec."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(kind: str, args: tuple, queue) -> None:
    seconds = run_bare(*args) if kind == "bare" else run_prep(*args)
    peak_self = _vm_hwm_mib()
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put((seconds, peak_self, peak_children))


def measure(kind: str, *args) -> tuple[float, float, float]:
    """Run one measurement in a fresh process: (seconds, peak RSS MiB of the main process, of the largest worker)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(kind, args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--resolutions", default="720p,1080p")
    parser.add_argument("--num-proc", default="1,2")
    parser.add_argument("--resize", default="decoder,straight", help="prep.resize modes to compare")
    args = parser.parse_args()

    from ghostprobe.synth import generate

    print(
        f"{args.clips} synthetic H.264 clips of {args.duration_s:g} s at {args.fps} fps, {FRAMES_PER_CLIP} frames "
        "per clip, prep resizes to 224 and stores uint8\n"
    )
    print(
        "| resolution | num_proc | prep.resize | bare decode clips/s | prep clips/s | prep frames/s | "
        "prep / bare time | peak RSS main (MiB) | peak RSS worker (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        small_dir = Path(tmp) / "small"
        generated = generate(out_dir=small_dir, num_clips=args.clips, seed=0, fps=args.fps, duration_s=args.duration_s)
        for name in args.resolutions.split(","):
            width, height = RESOLUTIONS[name]
            clips_dir = Path(tmp) / name
            labels = upscaled_clips(generated, small_dir, clips_dir, width, height, args.fps)
            paths = [str(clips_dir / clip.video) for clip in labels]
            for num_proc in (int(n) for n in args.num_proc.split(",")):
                bare_s, _, _ = measure("bare", paths, num_proc)
                for resize in args.resize.split(","):
                    out_dir = Path(tmp) / f"prep_{name}_{num_proc}_{resize}"
                    prep_s, peak_main, peak_worker = measure(
                        "prep", str(clips_dir / "labels.json"), str(out_dir), num_proc, resize
                    )
                    shutil.rmtree(out_dir)
                    print(
                        f"| {name} | {num_proc} | {resize} | {args.clips / bare_s:.2f} | {args.clips / prep_s:.2f} | "
                        f"{args.clips * FRAMES_PER_CLIP / prep_s:.1f} | {prep_s / bare_s:.2f} | {peak_main:.0f} | "
                        f"{peak_worker:.0f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
