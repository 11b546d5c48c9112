"""Benchmark the Video-LLaMA-2 checkpoint converter's peak memory against the model's depth, on fake originals of the
real layouts and shapes (random weights; no real checkpoint can be downloaded here).

    python scripts/bench_convert.py --layers 2,8,32 --work-dir /tmp/bench_convert             # 7B shapes
    python scripts/bench_convert.py --preset 13b --layers 2,24 --work-dir /tmp/bench_convert
    git show 11bffef:ghostprobe/models/video_llama/convert.py > /tmp/convert_before.py
    python scripts/bench_convert.py --layers 2,8 --before /tmp/convert_before.py --work-dir /tmp/bench_convert
    python scripts/bench_convert.py --originals ../shared/parity/checkpoints --preset tiny \
        --before /tmp/convert_before.py --work-dir /tmp/bench_parity

Per depth: the four original files at the preset's shapes with LLaMA-2 cut to N decoder layers, stored as the
released ones are (EVA ViT-g and LLaMA fp16, LLaMA in safetensors shards of --llama-shard-size; the LAVIS BLIP-2
and VL files fp32), then scripts/convert_video_llama.py's converter (fp16, --max-shard-size) in a fresh process.
Printed: the sources' size and their largest file, the output's size, the converter process's peak RSS (VmHWM,
which counts the pages of memory-mapped source files it has read) and its peak anonymous memory (RssAnon, sampled
every 20 ms: what the kernel cannot reclaim by dropping file pages), peak / sources, and wall time.
`--before CONVERTER.py` also runs another converter module (e.g. the one from before streaming) on the same sources,
prints its row, and compares the two output folders tensor for tensor (keys, dtypes, values) and file for file.
`--originals DIR` converts the original files found in DIR instead of writing fake ones (one depth).
Sources and outputs are deleted after each depth unless --keep.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
PROJECT_CONVERTER = REPO / "ghostprobe" / "models" / "video_llama" / "convert.py"
GB = 1e9


# ---- the measured process -------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(args: dict) -> None:
    """Run one conversion in this process; print {"peak_rss_gb", "peak_anon_gb", "wall_s"} as the last line."""
    # A converter file outside the package (an older version) is loaded as a module of the package, so that its
    # relative imports (.modeling, .presets...) resolve to the project's.
    spec = importlib.util.spec_from_file_location(
        "ghostprobe.models.video_llama._benchmarked_convert", args["converter"]
    )
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    from ghostprobe.models.video_llama import video_llama_config

    peak_anon_kib, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak_anon_kib[0] = max(peak_anon_kib[0], _status_kib("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    converter.convert_checkpoints(
        args["out"],
        **args["sources"],
        base_config=video_llama_config(args["preset"]),
        dtype="fp16",
        max_shard_size=args["max_shard_size"],
        log=lambda line: None,
    )
    wall_s = time.perf_counter() - started
    done.set()
    sampler.join()
    print(
        json.dumps(
            {
                "peak_rss_gb": _status_kib("VmHWM") * 1024 / GB,
                "peak_anon_gb": peak_anon_kib[0] * 1024 / GB,
                "wall_s": wall_s,
            }
        )
    )


def measure(converter: Path, sources: dict, out: Path, preset: str, max_shard_size: str) -> dict:
    """Convert in a fresh process (its peak memory is its own) and return its figures."""
    args = {
        "converter": str(converter),
        "out": str(out),
        "preset": preset,
        "max_shard_size": max_shard_size,
        "sources": {k: str(v) for k, v in sources.items()},
    }
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode:
        raise SystemExit(f"{converter} failed on {sources}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- inputs -----------------------------------------------------------------------------------------------------
def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _largest_file(paths) -> int:
    return max(
        p.stat().st_size for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
    )


def find_originals(folder: Path) -> dict:
    """The original files of a fixture folder: eva_vit*.pth (optional), blip2*.pth, VL_*.pth, the LLaMA folder."""
    from ghostprobe.models.video_llama.checkpoint_sources import has_llama_weights

    def one(pattern: str, required: bool = True):
        found = sorted(folder.glob(pattern))
        if len(found) > 1 or (required and not found):
            raise SystemExit(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
        return found[0] if found else None

    llama = [p for p in sorted(folder.iterdir()) if has_llama_weights(p)]
    if len(llama) != 1:
        raise SystemExit(f"expected one LLaMA folder with weights in {folder}, found {[p.name for p in llama]}")
    sources = {
        "eva_vit": one("eva_vit*.pth", required=False),
        "blip2": one("blip2*.pth"),
        "vl": one("VL_*.pth"),
        "llama": llama[0],
    }
    return {k: v for k, v in sources.items() if v is not None}


def write_sources(folder: Path, preset: str, layers: int, llama_shard_size: str) -> dict:
    """Fake originals of `preset`'s shapes with LLaMA-2 cut to `layers` decoder layers, stored as released."""
    from ghostprobe.models.video_llama import video_llama_config
    from ghostprobe.models.video_llama.fake_originals import write_fake_originals

    config = video_llama_config(preset)
    config.text_config.num_hidden_layers = layers
    return write_fake_originals(folder, config, real_dtypes=True, llama_shard_size=llama_shard_size)


def estimated_disk_gb(preset: str, layers: int, with_before: bool) -> float:
    """Sources plus one (two with --before) converted copies, from the parameter counts."""
    import torch

    from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration, video_llama_config

    config = video_llama_config(preset)
    config.text_config.num_hidden_layers = layers
    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(config)
    parameters = sum(p.numel() for p in model.parameters())
    fp32_extra = sum(p.numel() for name, p in model.named_parameters() if "qformer" in name)  # kept fp32
    converted = (2 * parameters + 2 * fp32_extra) / GB
    # the sources also hold the dropped parts: EVA's last block, the Q-Former text side, t5_proj (~0.6 GB at 7B)
    return converted * (3 if with_before else 2) + 0.6


# ---- comparing two converted folders ---------------------------------------------------------------------------
def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return [folder / "model.safetensors"]


def compare_folders(ours: Path, theirs: Path) -> list[str]:
    """Differences between two converted folders: tensors (key, dtype, shape, values; one pair in memory at a time)
    and every other file (JSON by content, others by bytes). Empty when they are the same model."""
    from safetensors import safe_open

    differences = []
    ours_where = {key: path for path in _weight_files(ours) for key in safe_open(str(path), "pt").keys()}
    theirs_where = {key: path for path in _weight_files(theirs) for key in safe_open(str(path), "pt").keys()}
    if ours_where.keys() != theirs_where.keys():
        differences.append(
            f"keys only in {ours.name}: {sorted(ours_where.keys() - theirs_where.keys())[:5]}, only "
            f"in {theirs.name}: {sorted(theirs_where.keys() - ours_where.keys())[:5]}"
        )
    for key in sorted(ours_where.keys() & theirs_where.keys()):
        with safe_open(str(ours_where[key]), "pt") as a, safe_open(str(theirs_where[key]), "pt") as b:
            x, y = a.get_tensor(key), b.get_tensor(key)
            if x.dtype != y.dtype or x.shape != y.shape or not bool((x == y).all()):
                differences.append(
                    f"{key}: {x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)}, "
                    f"{'equal' if x.shape == y.shape and bool((x == y).all()) else 'values differ'}"
                )
    weights = {"model.safetensors.index.json"} | {p.name for p in _weight_files(ours) + _weight_files(theirs)}
    others = {p.name for p in ours.iterdir()} | {p.name for p in theirs.iterdir()}
    for name in sorted(others - weights):
        a, b = ours / name, theirs / name
        if not (a.is_file() and b.is_file()):
            differences.append(f"{name}: only in {ours.name if a.is_file() else theirs.name}")
        elif name.endswith(".json"):
            if json.loads(a.read_text()) != json.loads(b.read_text()):
                differences.append(f"{name}: contents differ")
        elif a.read_bytes() != b.read_bytes():
            differences.append(f"{name}: bytes differ")
    return differences


# ---- the benchmark ----------------------------------------------------------------------------------------------
def row(label: str, layers, sources_gb: float, largest_gb: float, out_gb: float, figures: dict) -> str:
    peak = figures["peak_rss_gb"]
    return (
        f"| {label} | {layers} | {sources_gb:.2f} | {largest_gb:.2f} | {out_gb:.2f} | {peak:.2f} | "
        f"{figures['peak_anon_gb']:.2f} | {peak / sources_gb:.2f} | {peak - largest_gb:.2f} | "
        f"{figures['wall_s']:.0f} |"
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="7b", choices=["7b", "13b", "tiny"])
    parser.add_argument("--layers", default="2,8,32", help="LLaMA decoder layers, one run each")
    parser.add_argument("--max-shard-size", default="1GB", help="the converter's --max-shard-size")
    parser.add_argument("--llama-shard-size", default="1GB", help="shard size of the fake LLaMA folder")
    parser.add_argument("--before", type=Path, help="another convert.py to run and compare with (e.g. an older one)")
    parser.add_argument("--originals", type=Path, help="convert these original files instead of fake ones")
    parser.add_argument("--work-dir", type=Path, required=True, help="where sources and outputs go (deleted after)")
    parser.add_argument("--max-disk-gb", type=float, default=45.0, help="skip depths that need more disk")
    parser.add_argument("--keep", action="store_true", help="keep sources and outputs")
    args = parser.parse_args()

    depths = ["fixture"] if args.originals else [int(n) for n in args.layers.split(",")]
    print(
        f"preset {args.preset}, converter --max-shard-size {args.max_shard_size}, fake LLaMA shards of "
        f"{args.llama_shard_size}; GB = 1e9 bytes\n"
    )
    print(
        "| converter | LLM layers | sources GB | largest source GB | output GB | peak RSS GB | peak anon GB | "
        "peak / sources | peak - largest source GB | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for layers in depths:
        work = args.work_dir / f"{args.preset}_{layers}"
        if args.originals:
            sources = find_originals(args.originals)
        else:
            need = estimated_disk_gb(args.preset, layers, args.before is not None)
            free = shutil.disk_usage(args.work_dir.parent if not args.work_dir.exists() else args.work_dir).free / GB
            if need > min(args.max_disk_gb, free):
                print(
                    f"| skipped | {layers} | needs ~{need:.0f} GB of disk (budget {args.max_disk_gb:.0f}, free "
                    f"{free:.0f}) | | | | | | | |",
                    flush=True,
                )
                continue
            sources = write_sources(work / "originals", args.preset, layers, args.llama_shard_size)
        sources_gb = sum(_size(p) for p in sources.values()) / GB
        largest_gb = _largest_file(sources.values()) / GB
        runs = [("streaming", PROJECT_CONVERTER)] + ([("before", args.before)] if args.before else [])
        outputs = {}
        for label, converter in runs:
            out = work / f"out_{label}"
            figures = measure(converter, sources, out, args.preset, args.max_shard_size)
            outputs[label] = out
            print(row(label, layers, sources_gb, largest_gb, _size(out) / GB, figures), flush=True)
        if args.before:
            differences = compare_folders(outputs["streaming"], outputs["before"])
            print(
                f"|   outputs compared | {layers} | "
                + (
                    "identical: every tensor (key, dtype, values) and file"
                    if not differences
                    else f"{len(differences)} DIFFERENCES: {differences[:5]}"
                )
                + " |",
                flush=True,
            )
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
