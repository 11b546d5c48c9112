"""Benchmark `scan/main.py` on long recordings: seconds of video scanned per second of wall clock and windows/s
with the tiny model on CPU, against a bare decode of the same frames (same chunks, same decoder resize) in the
same run, and peak memory per recording length and resolution (the goal: flat in the length).

    python scripts/bench_scan.py                                        # 1 and 10 min, 720p and 1080p, 10 fps
    python scripts/bench_scan.py --minutes 1 10 30 --resolutions 720p 1080p --fps 10
    python scripts/bench_scan.py --model-kind null                      # decode + windows only (a constant scorer)

Each measurement runs in its own process (peak RSS is per process): `decode` reads every frame the windows need
with ghostprobe.video.read_frames(size=frame_size) chunk by chunk, one thread, nothing else; `scan` is the whole
scan (scan.main.scan with conf/scan.yaml, windows 2 s every 0.5 s, 8 frames, frames squeezed to 224 in the decoder,
2 decode threads ahead of the model). Recordings are made here (a gradient, noise blocks and a moving bar, H.264
ultrafast) and kept in --work-dir for the next run. GPU scoring throughput of the 7B shape is
scripts/bench_scoring.py's (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "360p": (640, 360)}


def make_recording(path: Path, minutes: float, width: int, height: int, fps: float) -> Path:
    """A recording with changing content (so the decoder works as on real footage), written frame by frame."""
    from ghostprobe.video import write_video

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    base = np.linspace(40, 200, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    blocks = rng.integers(0, 60, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    base = np.clip(base + np.kron(blocks, np.ones((16, 16, 1), np.float32))[:height, :width], 0, 255).astype(np.uint8)
    n = int(round(minutes * 60 * fps))

    def frames():
        for t in range(n):
            frame = np.roll(base, t * 4, axis=1)
            x = (t * 13) % (width - 40)
            frame[:, x : x + 40] = 255
            yield frame

    tmp = path.with_name(f".{path.name}")
    write_video(tmp, frames(), fps, options={"preset": "ultrafast", "crf": 26})
    tmp.replace(path)
    return path


class ConstantScorer:
    """For --model-kind null: every window gets 0.1 (what decode and windowing cost without a model)."""

    name = "constant"

    def score(self, clips, prompt):
        from ghostprobe.models.base import ModelOutput

        return [ModelOutput(c.clip_id, p_ghost_probing=0.1) for c in clips]


def child_decode(video: Path, frame_size: int, chunk_windows: int) -> dict:
    from ghostprobe.video import read_frames
    from scan.recordings import VideoJob, plan_chunks, probe, scan_windows

    job = VideoJob("bench", video)
    probe(job, 1)
    job.windows = scan_windows(job.clock, 2.0, 0.5, 8)
    started = time.perf_counter()
    frames = 0
    for chunk in plan_chunks(job, chunk_windows):
        frames += len(read_frames(video, chunk.new_indices, job.info, 1, size=frame_size))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "frames_decoded": frames, "windows": len(job.windows), "video_s": job.clock.duration_s}


def child_scan(
    video: Path, out_dir: Path, model_kind: str, model_path: Path, frame_size: int, chunk_windows: int
) -> dict:
    from ghostprobe.config import compose
    from scan.main import scan

    overrides = [
        f"input={video}",
        f"output_dir={out_dir}",
        "progress=false",
        f"frame_size={frame_size}",
        f"chunk_windows={chunk_windows}",
        f"model.path={model_path}",
        "batch_size=8",
    ]
    cfg = compose("scan", overrides)
    started = time.perf_counter()
    code = scan(cfg, model=ConstantScorer()) if model_kind == "null" else scan(cfg)
    wall = time.perf_counter() - started
    summary = json.loads((out_dir / "scan.json").read_text())
    windows = summary["videos"][0]["windows"]
    return {
        "exit": code,
        "wall_s": wall,
        "loop_s": summary["wall_s"],
        "windows": windows,
        "video_s": summary["videos"][0]["duration_s"],
    }


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--resolutions", nargs="+", default=["720p", "1080p"], choices=sorted(RESOLUTIONS))
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--frame-size", type=int, default=224)
    parser.add_argument("--chunk-windows", type=int, default=64)
    parser.add_argument("--model-kind", choices=["tiny", "null"], default="tiny")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_scan"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, video = args.child[0], Path(args.child[1])
        result = (
            child_decode(video, args.frame_size, args.chunk_windows)
            if kind == "decode"
            else child_scan(
                video, Path(args.child[2]), args.model_kind, Path(args.child[3]), args.frame_size, args.chunk_windows
            )
        )
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint

    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.work_dir / "tiny_video_llama"
    if not (model_path / "config.json").exists():
        build_tiny_checkpoint(model_path)
    print(
        f"model: {args.model_kind}; scan loop = decoding + scoring + timeline writes; whole = the scan call "
        "(probe, model load, alerts, scan.html too)"
    )
    print(
        "| recording | frames decoded | decode alone s (video s/s) | scan loop s | whole s | video s/s (loop) | "
        "windows/s (loop) | loop / decode | peak MB decode | peak MB scan |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for resolution in args.resolutions:
        width, height = RESOLUTIONS[resolution]
        for minutes in args.minutes:
            video = make_recording(
                args.work_dir / f"rec_{resolution}_{minutes:g}min_{args.fps:g}fps.mp4", minutes, width, height, args.fps
            )
            common = [
                f"--frame-size={args.frame_size}",
                f"--chunk-windows={args.chunk_windows}",
                f"--model-kind={args.model_kind}",
            ]
            decode = run_child([*common, "--child", "decode", str(video)])
            out_dir = args.work_dir / f"scan_{video.stem}_{args.model_kind}_{time.time_ns()}"
            scanned = run_child([*common, "--child", "scan", str(video), str(out_dir), str(model_path)])
            video_s = scanned["video_s"]
            print(
                f"| {resolution} {minutes:g} min {args.fps:g} fps | {decode['frames_decoded']} | "
                f"{decode['wall_s']:.1f} ({video_s / decode['wall_s']:.1f}) | {scanned['loop_s']:.1f} | "
                f"{scanned['wall_s']:.1f} | {video_s / scanned['loop_s']:.1f} | "
                f"{scanned['windows'] / scanned['loop_s']:.1f} | {scanned['loop_s'] / decode['wall_s']:.2f} | "
                f"{decode['peak_rss_mb']:.0f} | "
                f"{scanned['peak_rss_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
