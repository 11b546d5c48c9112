"""Memory and disk use of data prep on long clips with `sampling=sliding`, against the raw bytes of the frames.

    python scripts/bench_long_clip.py [--minutes 1,5,10] [--fps 10] [--frame-size 224] [--storage uint8]
        [--before-rev ef850c6]

Makes one synthetic clip per length (a moving texture at 640x360, libx264 through ghostprobe's `write_video`: cheap
to render, and decoding it costs what a real clip of that size costs), labelled `normal` so that sliding windows
cover the whole clip, and prepares it with `sampling=sliding` (num_frames 8, window_s 2, stride_s 0.5) and
`split=zero_shot`, `prep.num_proc=1`. Each measurement runs in a fresh process:

- `prepare_clip` alone (probe, sample, decode, resize, cache entry) and the whole `prepare_dataset` (the same, then
  the Arrow write and `save_to_disk`);
- peak RSS is the process's VmHWM (resident pages of every kind, file pages it maps included); peak anonymous RSS is
  RssAnon sampled every 5 ms (the memory the process itself allocated, what the kernel cannot drop);
- "dataset / frame bytes" is the prepared dataset's Arrow files (the `.prep_cache` excluded) over the raw bytes of
  the frames its rows hold: rows x frames per row x size x size x 3;
- "read ms per window": reading the first 200 rows' frames as numpy arrays (numpy format, `frames_from_row`), after
  the peaks are taken.

`--before-rev REV` also runs the code of git revision REV (its data_prep/ and ghostprobe/, extracted with
`git archive`) on the same clips in the same run, so the two can be compared under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_WIDTH, CLIP_HEIGHT = 640, 360


def moving_texture(num_frames: int, seed: int = 0):
    """Frames of a random texture sliding left, with a bright square crossing it: every frame differs, and the
    encoder has motion to code, as in a dashcam clip."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Coarse blocks of noise: a texture an encoder compresses to a realistic few KB per frame, not to nothing.
    texture = np.kron(
        rng.integers(0, 256, (CLIP_HEIGHT // 8, 2 * CLIP_WIDTH // 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)
    )
    for index in range(num_frames):
        shift = (index * 4) % CLIP_WIDTH
        frame = np.ascontiguousarray(texture[:, shift : shift + CLIP_WIDTH])
        x = (index * 7) % (CLIP_WIDTH - 40)
        frame[150:190, x : x + 40] = 255
        yield frame


def make_clip(folder: Path, minutes: float, fps: int) -> Path:
    """`folder/labels.json` naming one clip of `minutes` at `fps`; returns the label file."""
    from ghostprobe.labels import ClipLabel, write_labels
    from ghostprobe.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "clip.mp4", moving_texture(round(minutes * 60 * fps)), fps)
    write_labels(folder / "labels.json", [ClipLabel(clip_id=f"drive_{minutes:g}min", video="clip.mp4", label="normal")])
    return folder / "labels.json"


# ---- the measurement, in a fresh process whose sys.path starts with the tree under test ----------------------------


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class AnonPeak:
    """Samples RssAnon every 5 ms in a thread: /proc keeps a peak of all resident pages (VmHWM) but not of these."""

    def __init__(self):
        self.peak_mib, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, _status_mib("RssAnon"))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, _status_mib("RssAnon"))


def child(kind: str, labels: str, out_dir: str, storage: str, frame_size: int) -> dict:
    import datasets  # noqa: F401  (imported before the clock and the baseline, as prepare_dataset will)

    from data_prep import clip_worker
    from data_prep.prepare import prepare_dataset
    from ghostprobe.config import prep_settings
    from ghostprobe.labels import load_labels

    settings = prep_settings(sampling="sliding", split="zero_shot", storage=storage, frame_size=frame_size, num_proc=1)
    start_rss_mib, start_anon_mib = _status_mib("VmRSS"), _status_mib("RssAnon")
    started = time.perf_counter()
    with AnonPeak() as anon:
        if kind == "clip":
            clip = load_labels(labels).clips[0]
            video = Path(labels).parent / clip.video
            suffix = getattr(clip_worker, "CACHE_SUFFIX", ".npz")
            Path(out_dir).mkdir(parents=True)
            task = clip_worker.ClipTask(
                clip.model_dump_json(), str(video), str(Path(out_dir) / f"entry{suffix}"), settings, str(video.parent)
            )
            result = clip_worker.prepare_clip(task)
            assert result["ok"], result
        else:
            report = prepare_dataset(labels, out_dir, settings)
            assert report["num_rejected"] == 0, report["rejected"]
    result = {
        "seconds": time.perf_counter() - started,
        "start_rss_mib": start_rss_mib,
        "start_anon_mib": start_anon_mib,
        "peak_rss_mib": _status_mib("VmHWM"),
        "peak_anon_mib": anon.peak_mib,
    }
    if kind == "dataset":
        result["read_ms_per_window"] = read_ms_per_window(out_dir)
    return result


def read_ms_per_window(out_dir: str, windows: int = 200) -> float:
    """Milliseconds to read one window's frames as a numpy array, as training and eval read them (numpy format,
    `frames_from_row`), over the first `windows` rows; after the peaks are taken."""
    from datasets import load_from_disk

    from ghostprobe.frames import frames_from_row

    rows = load_from_disk(out_dir)["test"].with_format("numpy", columns=["frames"])
    count = min(windows, len(rows))
    started = time.perf_counter()
    for index in range(count):
        assert frames_from_row(rows[index]["frames"]).dtype.name == "uint8"
    return 1000 * (time.perf_counter() - started) / count


def measure(tree: Path, kind: str, labels: Path, out_dir: Path, storage: str, frame_size: int) -> dict:
    """Run `child` in a fresh interpreter on the code in `tree`."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--tree",
        str(tree),
        "--labels",
        str(labels),
        "--out-dir",
        str(out_dir),
        "--storage",
        storage,
        "--frame-size",
        str(frame_size),
    ]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{tree}: {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def dataset_bytes(out_dir: Path) -> int:
    """Bytes of the prepared dataset's files, its clip cache left out."""
    total = 0
    for root, dirs, files in os.walk(out_dir):
        dirs[:] = [d for d in dirs if d != ".prep_cache"]
        total += sum(os.path.getsize(Path(root, name)) for name in files if not Path(root, name).is_symlink())
    return total


def rows_and_frames(out_dir: Path) -> tuple[int, int]:
    """The dataset's rows, and the frames they hold, over all splits."""
    from datasets import load_from_disk

    splits = load_from_disk(str(out_dir))
    return (
        sum(len(split) for split in splits.values()),
        sum(len(indices) for split in splits.values() for indices in split["frame_indices"]),
    )


def extract_revision(revision: str, into: Path) -> Path:
    """The library and data-prep code (and conf/) of git `revision`, extracted into `into`."""
    archive = into / "tree.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), revision, "ghostprobe", "data_prep", "conf"], cwd=REPO_ROOT, check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="1,5,10")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--frame-size", type=int, default=224)
    parser.add_argument("--storage", default="uint8")
    parser.add_argument("--before-rev", default=None, help="also measure the code of this git revision")
    parser.add_argument("--child", choices=("clip", "dataset"), help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        sys.path.insert(0, args.tree)
        print(json.dumps(child(args.child, args.labels, args.out_dir, args.storage, args.frame_size)))
        return
    sys.path.insert(0, str(REPO_ROOT))
    frame_bytes = args.frame_size * args.frame_size * 3
    print(
        f"sampling=sliding (8 frames, 2 s windows, stride 0.5 s), {CLIP_WIDTH}x{CLIP_HEIGHT} clips at "
        f"{args.fps} fps, frames stored {args.frame_size} px {args.storage}; one fresh process per cell\n"
    )
    print(
        "| code | clip | rows | frames held | prepare_clip peak RSS / anon (MiB) | whole prep peak RSS / anon (MiB) | "
        "prep s | dataset bytes per frame | dataset / frame bytes | clip cache (MiB) | read ms per window |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    starts = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", REPO_ROOT)]
        if args.before_rev:
            trees.insert(0, (args.before_rev, extract_revision(args.before_rev, Path(tmp))))
        for minutes in (float(m) for m in args.minutes.split(",")):
            labels = make_clip(Path(tmp) / f"clip_{minutes:g}min", minutes, args.fps)
            for name, tree in trees:
                out = Path(tmp) / "out"
                clip = measure(tree, "clip", labels, out, args.storage, args.frame_size)
                shutil.rmtree(out)
                whole = measure(tree, "dataset", labels, out, args.storage, args.frame_size)
                rows, frames = rows_and_frames(out)
                on_disk = dataset_bytes(out)
                cache_mib = sum(p.stat().st_size for p in (out / ".prep_cache").rglob("*") if p.is_file()) / 2**20
                shutil.rmtree(out)
                print(
                    f"| {name} | {minutes:g} min | {rows} | {frames} | {clip['peak_rss_mib']:.0f} / "
                    f"{clip['peak_anon_mib']:.0f} | {whole['peak_rss_mib']:.0f} / {whole['peak_anon_mib']:.0f} | "
                    f"{whole['seconds']:.1f} | {on_disk / frames:.0f} | {on_disk / (frames * frame_bytes):.2f} | "
                    f"{cache_mib:.0f} | {whole['read_ms_per_window']:.2f} |",
                    flush=True,
                )
                starts += [
                    (clip["start_rss_mib"], clip["start_anon_mib"]),
                    (whole["start_rss_mib"], whole["start_anon_mib"]),
                ]
            shutil.rmtree(labels.parent)
    print(
        f"\nA measuring process after its imports, before any work: RSS {max(r for r, _ in starts):.0f} MiB, "
        f"anonymous {max(a for _, a in starts):.0f} MiB (largest of all cells)"
    )


if __name__ == "__main__":
    main()
