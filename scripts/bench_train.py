"""Benchmark training throughput: samples/s, tokens/s, MFU and peak memory, ZeRO-2 against ZeRO-3 and LoRA against
full fine-tuning.

    python scripts/bench_train.py                                   # tiny model, 2 CPU ranks, zero2/zero3 x lora/full
    python scripts/bench_train.py --llm lora --steps 12 --work-dir /tmp/bench_train --omp-threads 1
    python scripts/bench_train.py --device cuda --llm lora,full --llm-layers 4,8     # 7B-shaped, one GPU, bf16
    python scripts/bench_train.py --device cuda --preset 13b --llm lora --llm-layers 4,8

CPU (default): the real trainer, `deepspeed --num_gpus 2 train/main.py +exp=tiny_smoke` (gloo, fp32), once per ZeRO
stage and LLM mode, on the tiny random checkpoint and 40 synthetic clips (24 used for training, so that every
optimizer step holds a full global batch of 8), validation and checkpoints off. The figures are the trainer's own
logs in RUN/metrics.jsonl (one window per optimizer step, the first dropped as warm-up; medians of the rest). Memory
is rank 0's peak resident set. `--omp-threads N` exports OMP_NUM_THREADS=N to the ranks; without it they run with
the threads the README's command gets.

GPU (`--device cuda`): this process, no launcher and no DeepSpeed: Video-LLaMA-2-7B's (or 13B's) shapes (EVA ViT-g,
both Q-Formers, LLaMA-2 cut to `--llm-layers` decoder layers) with random weights, frozen weights in bf16 and trained
ones in fp32 under bf16 autocast with torch AdamW (~18 bytes per trained parameter: fp32 weight, gradient and two
moments plus autocast's bf16 copy; DeepSpeed's bf16 optimizer on one unpartitioned GPU holds 16-20), the train.*
recipe of conf/exp/ (lora: lora_fewshot or lora_13b, full: full_ft; micro batch, LoRA, trained modules, gradient
checkpointing), 8 random 224 px frames per clip. Tokens are non-padding input tokens, video placeholders included,
as the trainer counts them. Step time, FLOPs and memory are linear in the number of layers:
two depths give the per-layer slope, and a last row scales them to the preset's depth (32 layers for 7B). MFU is
against the measured bf16 matmul peak of the GPU (the datasheet figure, which the trainer's logs use, is printed too).
Memory is torch.cuda.max_memory_allocated over the timed steps, weights included.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CPU_TRAIN_SAMPLES = 24  # 3 full optimizer steps of 2 ranks x 2 clips x 2 accumulation per epoch
# conf/exp/ recipes whose train.* settings the GPU mode uses (the model itself is random), by (preset, llm)
GPU_EXPERIMENTS = {
    ("7b", "lora"): "lora_fewshot",
    ("13b", "lora"): "lora_13b",
    ("7b", "full"): "full_ft",
    ("13b", "full"): "full_ft",
    ("tiny", "lora"): "lora_fewshot",
    ("tiny", "full"): "full_ft",
}


# ---- CPU: the real trainer on 2 ranks ------------------------------------------------------------------------
def prepare_tiny(work_dir: Path) -> tuple[Path, Path]:
    """(tiny random checkpoint, prepared dataset of 40 synthetic 28 px clips) in `work_dir`, made once."""
    from data_prep.prepare import prepare_dataset
    from ghostprobe.config import prep_settings
    from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint
    from ghostprobe.synth import generate

    base, data = work_dir / "tiny_base", work_dir / "prepared"
    if not (base / "config.json").is_file():
        build_tiny_checkpoint(base)
    if not data.is_dir():
        generate(work_dir / "clips", num_clips=40, seed=0, width=160, height=96, fps=2, duration_s=4.0)
        report = prepare_dataset(work_dir / "clips" / "labels.json", data, prep_settings(frame_size=28))
        assert report["num_rejected"] == 0, report["rejected"]
    return base, data


def launch(run_dir: Path, overrides: list[str], timeout_s: int, omp_threads: int | None = None) -> None:
    """Train on 2 CPU ranks into `run_dir`; the launcher's output goes to RUN.log."""
    with socket.socket() as s:  # a free port: other launchers may be running on this machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        str(Path(sys.executable).parent / "deepspeed"),
        "--num_gpus",
        "2",
        "--master_port",
        str(port),
        "train/main.py",
        "+exp=tiny_smoke",
        f"output_dir={run_dir}",
        *overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true"}
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    log = run_dir.with_suffix(".log")
    log.write_text(done.stdout + done.stderr)
    if done.returncode:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode} (log: {log}):\n{tail}")


def summarize(metrics_file: Path, warmup_windows: int = 1) -> dict[str, float]:
    """Medians over the training logs of a run's metrics.jsonl that carry a throughput window, the first
    `warmup_windows` dropped; peak memory is the largest logged. Validation and end-of-run lines are skipped."""
    logs = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    windows = [m for m in logs if m.get("samples_per_s") is not None][warmup_windows:]
    if not windows:
        raise ValueError(f"{metrics_file}: no throughput window after {warmup_windows} warm-up one(s); train longer")
    samples = [m["samples_per_s"] for m in windows]
    return {
        "windows": len(windows),
        "samples_per_s": float(np.median(samples)),
        "samples_per_s_p25": float(np.percentile(samples, 25)),
        "samples_per_s_p75": float(np.percentile(samples, 75)),
        "tokens_per_s": float(np.median([m["tokens_per_s"] for m in windows])),
        "mfu": float(np.median([m["mfu"] for m in windows if m.get("mfu") is not None] or [np.nan])),
        "peak_memory_gib": max(m["peak_memory_gib"] for m in logs if m.get("peak_memory_gib") is not None),
    }


def bench_cpu(args) -> None:
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_train_"))
    base, data = prepare_tiny(work_dir)
    common = [
        f"model.path={base}",
        f"data.path={data}",
        f"data.max_train_samples={CPU_TRAIN_SAMPLES}",
        "logger=none",
        "progress_bar=false",
        "eval.every_steps=0",
        "eval.test_at_end=false",
        "checkpoint.every_steps=0",
        f"train.max_steps={args.steps}",
        *args.override,
    ]
    threads = f"OMP_NUM_THREADS={args.omp_threads}" if args.omp_threads else "OMP_NUM_THREADS unset"
    print(
        f"tiny preset, 2 CPU ranks (gloo, fp32, {threads}), {args.steps} optimizer steps of 8 clips, "
        f"work dir {work_dir}\n"
    )
    print("| config | samples/s (median) | samples/s p25-p75 | tokens/s | MFU | peak memory rank 0 (GiB) | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for llm in args.llm.split(","):
        for stage in ("zero2", "zero3"):
            run_dir = work_dir / f"run_{stage}_{llm}_{time.strftime('%H%M%S')}"
            started = time.perf_counter()
            launch(run_dir, [*common, f"deepspeed={stage}", f"train.llm={llm}"], args.timeout_s, args.omp_threads)
            wall_s = time.perf_counter() - started
            r = results[stage, llm] = summarize(run_dir / "metrics.jsonl")
            print(
                f"| {stage} {llm} | {r['samples_per_s']:.2f} | {r['samples_per_s_p25']:.2f}-"
                f"{r['samples_per_s_p75']:.2f} | {r['tokens_per_s']:.0f} | {r['mfu']:.3%} | "
                f"{r['peak_memory_gib']:.2f} | {wall_s:.0f} |",
                flush=True,
            )
    print("\n| ratio ZeRO-3 / ZeRO-2 | samples/s | tokens/s | peak memory |\n|---|---|---|---|")
    for llm in args.llm.split(","):
        z2, z3 = results["zero2", llm], results["zero3", llm]
        print(
            f"| {llm} | {z3['samples_per_s'] / z2['samples_per_s']:.2f} | "
            f"{z3['tokens_per_s'] / z2['tokens_per_s']:.2f} | {z3['peak_memory_gib'] / z2['peak_memory_gib']:.2f} |"
        )


# ---- GPU: 7B-shaped, in this process ---------------------------------------------------------------------------
def measure_gpu(cfg, preset: str, llm_layers: int, num_frames: int, steps: int, warmup_steps: int = 2) -> dict:
    """One model of `preset`'s shapes with the LLM cut to `llm_layers` layers, trained per `cfg.train` for `steps` timed
    forward+backward+AdamW steps at `cfg.train.micro_batch_size`: step seconds, FLOPs per sample, peak GiB."""
    from ghostprobe.models.base import ClipInput
    from ghostprobe.models.video_llama.tiny import random_model_of_preset
    from ghostprobe.prompts import load_prompt
    from train.data import AnswerCollator
    from train.model_setup import trained_set_for_timing
    from train.throughput import flops_per_sample

    model, processor = random_model_of_preset(preset, "cuda", torch.bfloat16, llm_layers)
    model, optimizer = trained_set_for_timing(model, cfg.train, fused=True)
    size = model.config.vision_config.image_size
    collator = AnswerCollator(
        processor, load_prompt(cfg.prompt), cfg.train.answers.positive, cfg.train.answers.negative
    )
    rng = np.random.default_rng(0)
    items = [
        {
            "clip": ClipInput(
                f"clip{i}",
                rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8),
                tuple(0.5 * k for k in range(num_frames)),
            ),
            "label": i % 2 == 0,
            "index": i,
        }
        for i in range(cfg.train.micro_batch_size)
    ]
    batch = collator(items)
    batch.pop("targets")
    batch = {k: v.cuda() for k, v in batch.items()}
    text_tokens = float(batch["attention_mask"].sum()) / len(items)  # per sample, as the trainer counts them

    torch.cuda.reset_peak_memory_stats()
    for step in range(warmup_steps + steps):
        if step == warmup_steps:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - started) / steps
    assert torch.isfinite(loss), f"non-finite loss {loss.item()}"
    result = {
        "step_s": step_s,
        "flops_per_sample": flops_per_sample(model, num_frames, text_tokens),
        "text_tokens": text_tokens,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    del model, optimizer, batch, loss
    torch.cuda.empty_cache()
    return result


def bench_gpu(args) -> None:
    from ghostprobe.config import compose
    from ghostprobe.models.video_llama.presets import video_llama_config
    from train.throughput import measure_matmul_tflops, peak_tflops

    measured_tflops = measure_matmul_tflops(8192, torch.bfloat16, "cuda")
    datasheet_tflops = peak_tflops()
    depths = [int(n) for n in args.llm_layers.split(",")]
    full_depth = video_llama_config(args.preset).text_config.num_hidden_layers
    print(
        f"{torch.cuda.get_device_name()}: bf16 matmul 8192^3 measured {measured_tflops:.0f} TFLOP/s, "
        f"datasheet {datasheet_tflops:.0f}; {args.preset} shapes, random weights, {args.frames} frames per clip, "
        f"{args.steps} timed steps\n"
    )
    print(
        "| recipe | micro batch | LLM layers | samples/s | tokens/s | MFU (measured peak) | MFU (datasheet) | "
        "peak memory (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for llm in args.llm.split(","):
        exp = GPU_EXPERIMENTS[args.preset, llm]
        cfg = compose("train", [f"+exp={exp}", *args.override])
        batch_size = cfg.train.micro_batch_size
        rows = {n: measure_gpu(cfg, args.preset, n, args.frames, args.steps) for n in depths}
        if len(depths) >= 2 and full_depth not in rows:
            a, b = depths[0], depths[-1]  # linear in the layer count: the slope from two depths, scaled up
            rows[f"{full_depth} (scaled)"] = {
                key: rows[a][key] + (full_depth - a) * (rows[b][key] - rows[a][key]) / (b - a) for key in rows[a]
            }
        for layers, r in rows.items():
            samples_per_s = batch_size / r["step_s"]
            mfu = samples_per_s * r["flops_per_sample"] / (measured_tflops * 1e12)
            print(
                f"| {exp} ({llm}) | {batch_size} | {layers} | {samples_per_s:.2f} | "
                f"{samples_per_s * r['text_tokens']:.0f} | {mfu:.1%} | "
                f"{mfu * measured_tflops / datasheet_tflops:.1%} | {r['peak_memory_gib']:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--llm", default="lora,full", help="LLM modes to compare: lora, full")
    parser.add_argument("--steps", type=int, default=None, help="CPU: optimizer steps per run (20); GPU: timed (10)")
    parser.add_argument("--work-dir", default=None, help="CPU: where the model, data and runs go (a temp dir)")
    parser.add_argument("--timeout-s", type=int, default=1200, help="CPU: per launch")
    parser.add_argument("--omp-threads", type=int, default=None, help="CPU: OMP_NUM_THREADS per rank (default unset)")
    parser.add_argument("--preset", default="7b", choices=["7b", "13b", "tiny"], help="GPU: the shapes")
    parser.add_argument("--llm-layers", default="4,8", help="GPU: LLaMA depths measured (two: scaled to full)")
    parser.add_argument("--frames", type=int, default=8, help="GPU: frames per clip")
    parser.add_argument(
        "--override", action="append", default=[], help="extra conf/train.yaml key=value for every run (repeatable)"
    )
    args = parser.parse_args()
    if args.device == "cuda":
        args.steps = args.steps or 10
        bench_gpu(args)
    else:
        args.steps = args.steps or 20
        bench_cpu(args)


if __name__ == "__main__":
    main()
