"""Benchmark Video-LLaMA-2 scoring (P(ghost probing) from one forward pass): latency per clip and clips/s at batch 1
against batch N, load memory, on random weights of a preset's real shapes.

    python scripts/bench_scoring.py                                   # tiny preset on CPU, fp32, batch 1 vs 8
    python scripts/bench_scoring.py --preset 7b --device cuda --dtype bf16 --batch-sizes 1,16
    python scripts/bench_scoring.py --preset 13b --device cuda --dtype fp16 --batch-sizes 1,16

Frames are random uint8 [8, 224, 224, 3] (8 frames as the original evaluation); the prompt is the default zh one.
The planning document's budget is < 2 min per video: scoring needs no generation, so this is the whole model cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from ghostprobe.dtypes import DTYPES


def build(preset: str, device: str, dtype: torch.dtype):
    """A random-init model of `preset` on `device` in `dtype`, and a processor whose tokenizer fits its vocabulary."""
    from ghostprobe.models.video_llama.tiny import random_model_of_preset

    model, processor = random_model_of_preset(preset, device, dtype)
    return model.eval(), processor


def clips(n: int, num_frames: int = 8):
    from ghostprobe.models.base import ClipInput

    rng = np.random.default_rng(0)
    return [
        ClipInput(
            f"clip{i}",
            rng.integers(0, 255, (num_frames, 224, 224, 3), dtype=np.uint8),
            tuple(0.6 * k for k in range(num_frames)),
        )
        for i in range(n)
    ]


def time_batch(model, processor, prompt, batch_size: int, repeats: int, device: str) -> float:
    """Median seconds per clip of scoring a batch of `batch_size` clips (processor + forward)."""
    from ghostprobe.models.video_llama.backend import yes_probability

    choice = processor.answer_choice(prompt.yes_word, prompt.no_word)
    inputs = clips(batch_size)
    times = []
    for k in range(repeats + 1):  # the first run warms up kernels and allocator
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        batch = processor(inputs, prompt, suffix_ids=choice.prefix_ids)
        batch["pixel_values"] = batch["pixel_values"].to(next(model.parameters()).dtype)
        with torch.inference_mode():
            p = yes_probability(model, batch, choice)
        if device == "cuda":
            torch.cuda.synchronize()
        if k:
            times.append((time.perf_counter() - started) / batch_size)
    assert torch.isfinite(p).all(), "non-finite scores"
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "7b", "13b"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from ghostprobe.config import compose
    from ghostprobe.prompts import load_prompt

    prompt = load_prompt(compose("eval", ["output_dir=x", "data.path=x"]).prompt)
    started = time.perf_counter()
    model, processor = build(args.preset, args.device, DTYPES[args.dtype])
    load_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    memory = f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB on GPU" if args.device == "cuda" else "n/a (CPU)"
    print(
        f"preset {args.preset}, {params / 1e9:.2f} B parameters, {args.dtype} on {args.device}: "
        f"built in {load_s:.1f} s, weights {memory}"
    )
    print("| batch | seconds per clip | clips/s | speed-up vs batch 1 | peak GPU memory |")
    print("|---|---|---|---|---|")
    baseline = None
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        per_clip = time_batch(model, processor, prompt, batch_size, args.repeats, args.device)
        baseline = baseline or per_clip
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if args.device == "cuda" else "n/a"
        print(f"| {batch_size} | {per_clip:.4f} | {1 / per_clip:.1f} | {baseline / per_clip:.2f}x | {peak} |")


if __name__ == "__main__":
    main()
