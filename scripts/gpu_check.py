"""The GPU figures of docs/benchmarks.md in one run, every one written to one JSON file (the Python part of
scripts/gpu_check.sh, which first installs the wheels it needs).

    python scripts/gpu_check.py --out gpu_check.json                           # GPU: the whole plan, < 8 min on H100
    python scripts/gpu_check.py --device cpu --presets tiny --train-preset tiny --train-layers 1,2 \
        --batch-sizes 1,2 --out /tmp/gpu_check.json                            # the same code at tiny shapes on CPU

Random weights of the real shapes (EVA ViT-g, both Q-Formers, LLaMA-2-7B/13B), built directly on the device; the
tokenizer is the tiny one (ids < 1025 exist in LLaMA-2's vocabulary; prompts have about the real length).
1. scoring: per preset and dtype (bf16, fp16; the hardware profiles' policy: LLM and ViT in the dtype, Q-Formers
   fp32 under its autocast), seconds per clip and clips/s of processor + one forward pass (`yes_probability`) at
   each batch size, 8 random 224 px frames per clip, median of --repeats; weights and peak memory.
2. training: the lora_fewshot and full_ft recipes' train.* (LoRA r 128 / full LLM, video side trained, gradient
   checkpointing, micro batch from the recipe) at --train-preset's shapes with LLaMA cut to each --train-layers
   depth: seconds per optimizer step (frozen weights bf16, trained fp32 under bf16 autocast, torch AdamW; fp32 on
   CPU), samples/s, tokens/s, MFU against the measured bf16 matmul peak and the datasheet, peak memory; the last
   rows scale the two depths linearly to the preset's full depth.
3. nan_guard: the v100x4 profile (fp16 LLM and ViT, fp16 autocast) at --guard-preset's shapes on a batch of clips:
   each LLaMA layer's largest activation against fp16's 65504, finite scores; then an overflow forced in the last
   norm: every score must come out NaN and `generate` must flag every row (never a number, never a "no").
Each step is recorded as it ends (a failure is recorded with its error and the next step runs); the file is
rewritten atomically after every step, so a run stopped by the time budget keeps what it measured.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import torch

from ghostprobe.files import write_json_atomic
from ghostprobe.models.video_llama.tiny import random_model_of_preset

FP16_MAX = float(torch.finfo(torch.float16).max)


# ---- device -----------------------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts afresh (Linux)


def peak_gib(device: str) -> float:
    """Peak allocated GPU memory, or this process's peak RSS on CPU, since `reset_peak`."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def environment(device: str) -> dict:
    import transformers

    info = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    if device == "cuda":
        from train.throughput import measure_matmul_tflops, peak_tflops

        info.update(
            gpu=torch.cuda.get_device_name(),
            capability=list(torch.cuda.get_device_capability()),
            cuda=torch.version.cuda,
            memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
            bf16_matmul_tflops_measured=measure_matmul_tflops(8192, torch.bfloat16, "cuda"),
            bf16_tflops_datasheet=peak_tflops(),
        )
    return info


# ---- inputs -----------------------------------------------------------------------------------------------------
def random_clips(count: int, num_frames: int, size: int, seed: int = 0) -> list:
    from ghostprobe.models.base import ClipInput

    rng = np.random.default_rng(seed)
    return [
        ClipInput(
            f"clip{i}",
            rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8),
            tuple(0.5 * k for k in range(num_frames)),
        )
        for i in range(count)
    ]


def _prompt(config_name: str, overrides: list[str]):
    from ghostprobe.config import compose
    from ghostprobe.prompts import load_prompt

    return load_prompt(compose(config_name, overrides).prompt)


# ---- 1. scoring -----------------------------------------------------------------------------------------------
def scoring(
    preset: str, dtypes: list[str], batch_sizes: list[int], num_frames: int, repeats: int, device: str
) -> list[dict]:
    """Seconds per clip of processor + forward at each batch size, per dtype (one model, cast between dtypes)."""
    from ghostprobe.dtypes import DTYPES
    from ghostprobe.models.video_llama.backend import yes_probability
    from ghostprobe.models.video_llama.precision import PrecisionPolicy, apply_precision

    prompt = _prompt("eval", ["output_dir=x", "data.path=x"])
    model, processor = random_model_of_preset(preset, device, DTYPES[dtypes[0]])
    model.eval()
    choice = processor.answer_choice(prompt.yes_word, prompt.no_word)
    size = model.config.vision_config.image_size
    rows = []
    for name in dtypes:
        apply_precision(model, PrecisionPolicy.from_names(name, name, name))  # as hardware/a100x8 (bf16), v100x4
        weights_gib = sum(t.numel() * t.element_size() for t in model.parameters()) / 2**30
        for batch_size in batch_sizes:
            clips = random_clips(batch_size, num_frames, size)
            reset_peak(device)
            times = []
            for k in range(repeats + 1):  # the first run warms up kernels and the allocator
                sync(device)
                started = time.perf_counter()
                batch = processor(clips, prompt, suffix_ids=choice.prefix_ids)
                with torch.inference_mode():
                    p_yes = yes_probability(model, {k: v.to(device) for k, v in batch.items()}, choice)
                sync(device)
                if k:
                    times.append((time.perf_counter() - started) / batch_size)
            per_clip = float(np.median(times))
            rows.append(
                {
                    "preset": preset,
                    "dtype": name,
                    "batch_size": batch_size,
                    "num_frames": num_frames,
                    "seconds_per_clip": per_clip,
                    "clips_per_s": 1 / per_clip,
                    "weights_gib": weights_gib,
                    "peak_gib": peak_gib(device),
                    "finite_scores": int(torch.isfinite(p_yes).sum()),
                    "prompt_tokens": int(batch["attention_mask"][0].sum()),
                }
            )
            print(
                f"scoring {preset} {name} batch {batch_size}: {per_clip:.4f} s/clip, peak "
                f"{rows[-1]['peak_gib']:.1f} GiB",
                flush=True,
            )
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows


# ---- 2. training ----------------------------------------------------------------------------------------------
def training_step(
    preset: str, exp: str, llm_layers: int, num_frames: int, steps: int, device: str, warmup_steps: int = 2
) -> dict:
    """Timed optimizer steps of the `exp` recipe's trained set at `preset`'s shapes with `llm_layers` LLaMA layers."""
    from ghostprobe.config import compose
    from train.model_setup import parameter_counts, trained_set_for_timing
    from train.throughput import flops_per_sample

    cfg = compose("train", [f"+exp={exp}"])
    on_gpu = device == "cuda"
    model, processor = random_model_of_preset(preset, device, torch.bfloat16 if on_gpu else torch.float32, llm_layers)
    model, optimizer = trained_set_for_timing(model, cfg.train, fused=on_gpu)

    prompt = _prompt("train", [f"+exp={exp}"])
    batch_size = int(cfg.train.micro_batch_size)
    clips = random_clips(batch_size, num_frames, model.config.vision_config.image_size)
    answers = [cfg.train.answers.positive if i % 2 == 0 else cfg.train.answers.negative for i in range(batch_size)]
    batch = {k: v.to(device) for k, v in processor(clips, prompt, answers=answers).items()}
    text_tokens = float(batch["attention_mask"].sum()) / batch_size  # per sample, as the trainer counts them
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)

    reset_peak(device)
    for step in range(warmup_steps + steps):
        if step == warmup_steps:
            sync(device)
            started = time.perf_counter()
        with autocast:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    step_s = (time.perf_counter() - started) / steps
    counts = parameter_counts(model)
    result = {
        "preset": preset,
        "exp": exp,
        "llm": cfg.train.llm,
        "llm_layers": llm_layers,
        "micro_batch_size": batch_size,
        "num_frames": num_frames,
        "step_s": step_s,
        "samples_per_s": batch_size / step_s,
        "tokens_per_s": batch_size * text_tokens / step_s,
        "text_tokens": text_tokens,
        "flops_per_sample": flops_per_sample(model, num_frames, text_tokens),
        "peak_gib": peak_gib(device),
        "loss": float(loss.detach()),
        "trainable_params": counts["trainable"],
        "total_params": counts["total"],
    }
    del model, optimizer, batch, loss
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def training(
    preset: str, exps: list[str], depths: list[int], num_frames: int, steps: int, device: str, environment_info: dict
) -> list[dict]:
    """`training_step` at each depth per recipe, plus the rows scaled linearly to the preset's full depth, with MFU."""
    from ghostprobe.models.video_llama import video_llama_config

    full_depth = video_llama_config(preset).text_config.num_hidden_layers
    measured_tflops = environment_info.get("bf16_matmul_tflops_measured")
    datasheet_tflops = environment_info.get("bf16_tflops_datasheet")
    rows = []
    for exp in exps:
        by_depth = {n: training_step(preset, exp, n, num_frames, steps, device) for n in depths}
        if len(depths) >= 2 and full_depth not in by_depth:
            a, b = depths[0], depths[-1]  # step time, FLOPs and memory are linear in the layer count

            scaled = {
                key: by_depth[a][key] + (full_depth - a) * (by_depth[b][key] - by_depth[a][key]) / (b - a)
                for key in ("step_s", "flops_per_sample", "peak_gib")
            }
            step_s = scaled["step_s"]
            by_depth[full_depth] = dict(
                by_depth[b],
                llm_layers=full_depth,
                scaled_from=[a, b],
                step_s=step_s,
                samples_per_s=by_depth[a]["micro_batch_size"] / step_s,
                tokens_per_s=by_depth[a]["micro_batch_size"] * by_depth[a]["text_tokens"] / step_s,
                flops_per_sample=scaled["flops_per_sample"],
                peak_gib=scaled["peak_gib"],
                loss=None,
                trainable_params=None,
                total_params=None,
            )
        for row in by_depth.values():
            flops_per_s = row["samples_per_s"] * row["flops_per_sample"]
            row["mfu_measured_peak"] = flops_per_s / (measured_tflops * 1e12) if measured_tflops else None
            row["mfu_datasheet"] = flops_per_s / (datasheet_tflops * 1e12) if datasheet_tflops else None
            rows.append(row)
            print(
                f"training {exp} {row['llm_layers']} layers: {row['step_s']:.3f} s/step, "
                f"{row['samples_per_s']:.2f} samples/s, peak {row['peak_gib']:.1f} GiB",
                flush=True,
            )
    return rows


# ---- 3. the fp16 NaN guard ------------------------------------------------------------------------------------
def nan_guard(preset: str, batch_size: int, num_frames: int, device: str) -> dict:
    """The v100x4 profile's fp16 at real shapes: activation headroom per LLaMA layer and finite scores; then a
    forced overflow must turn every score into NaN and every generated row into a flagged one."""
    from ghostprobe.models.base import ModelOutput
    from ghostprobe.models.non_finite import NonFiniteRows, flag_non_finite
    from ghostprobe.models.video_llama.backend import answer_logits, yes_probability_from_logits
    from ghostprobe.models.video_llama.precision import PrecisionPolicy, apply_precision

    prompt = _prompt("eval", ["output_dir=x", "data.path=x"])
    model, processor = random_model_of_preset(preset, device, torch.float16)
    model.eval()
    apply_precision(model, PrecisionPolicy.from_names("fp16", "fp16", "fp16"))  # conf/hardware/v100x4.yaml
    choice = processor.answer_choice(prompt.yes_word, prompt.no_word)
    clips = random_clips(batch_size, num_frames, model.config.vision_config.image_size)
    batch = {k: v.to(device) for k, v in processor(clips, prompt, suffix_ids=choice.prefix_ids).items()}

    largest: dict[str, float] = {}

    def record(name):
        def hook(module, inputs, output):
            hidden = output if torch.is_tensor(output) else output[0]  # a layer's tuple or a ModelOutput
            largest[name] = max(largest.get(name, 0.0), float(hidden.detach().abs().float().max()))

        return hook

    layers = model.language_model.model.layers
    handles = [layer.register_forward_hook(record(f"llm.{i}")) for i, layer in enumerate(layers)]
    handles.append(model.visual_encoder.register_forward_hook(record("vision")))
    with torch.inference_mode():
        p_yes = yes_probability_from_logits(answer_logits(model, batch), choice)
    for handle in handles:
        handle.remove()
    llm_peak = max(v for k, v in largest.items() if k.startswith("llm."))

    # Forced overflow: the final RMSNorm's gain at 6e4 (itself a valid fp16) pushes normalised activations of
    # order 1 past 65504, as an overflowing real model would, right before lm_head.
    with torch.no_grad():
        model.language_model.model.norm.weight.fill_(6e4)
        overflowed = yes_probability_from_logits(answer_logits(model, batch), choice)
        watcher = NonFiniteRows(processor.eos_id)
        model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            max_new_tokens=2,
            do_sample=False,
            pad_token_id=processor.pad_id,
            eos_token_id=processor.eos_id,
            logits_processor=[watcher],
        )
    flagged = []
    for row in range(batch_size):
        output = ModelOutput(clips[row].clip_id, p_ghost_probing=float(overflowed[row]))
        if watcher.row_is_bad(row):
            flag_non_finite(output, nan_guard=True)
        flagged.append("non-finite logits" in (output.extra.get("error") or ""))
    result = {
        "preset": preset,
        "batch_size": batch_size,
        "num_frames": num_frames,
        "largest_activation_per_llm_layer": [largest[f"llm.{i}"] for i in range(len(layers))],
        "largest_vision_activation": largest["vision"],
        "llm_headroom_vs_fp16_max": FP16_MAX / llm_peak,
        "finite_scores": int(torch.isfinite(p_yes).sum()),
        "forced_overflow_scores_nan": int(torch.isnan(overflowed).sum()),
        "forced_overflow_generate_flagged": int(sum(flagged)),
    }
    result["guard_holds"] = (
        result["forced_overflow_scores_nan"] == batch_size and result["forced_overflow_generate_flagged"] == batch_size
    )
    print(
        f"nan guard {preset}: largest LLM activation {llm_peak:.3g} (fp16 max {FP16_MAX:.0f}), "
        f"{result['finite_scores']}/{batch_size} finite; forced overflow: {result['forced_overflow_scores_nan']} "
        f"NaN scores, {result['forced_overflow_generate_flagged']} generate rows flagged",
        flush=True,
    )
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


# ---- the run ----------------------------------------------------------------------------------------------------
class Run:
    """Steps run in order within a time budget; the JSON is rewritten after each one."""

    def __init__(self, out: Path, budget_s: float, args: dict):
        self.out, self.budget_s, self.started = out, budget_s, time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.document = {"arguments": args, "steps": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def step(self, name: str, function, *args, **kwargs):
        elapsed = time.perf_counter() - self.started
        if elapsed > self.budget_s:
            self.document["steps"][name] = {"skipped": f"time budget of {self.budget_s:.0f} s spent"}
        else:
            started = time.perf_counter()
            try:
                self.document["steps"][name] = {"result": function(*args, **kwargs)}
            except Exception as error:  # recorded, and the other steps still run
                self.document["steps"][name] = {
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc()[-4000:],
                }
                print(f"{name}: FAILED {error}", flush=True)
                if "cuda" in str(error).lower() and torch.cuda.is_available():
                    torch.cuda.empty_cache()
            self.document["steps"][name]["seconds"] = time.perf_counter() - started
        self.document["wall_s"] = time.perf_counter() - self.started
        write_json_atomic(self.out, self.document, allow_nan=False)
        return self.document["steps"][name].get("result")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file written")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--presets", default="7b,13b", help="scoring presets")
    parser.add_argument("--dtypes", default="bf16,fp16", help="scoring dtypes")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--repeats", type=int, default=5, help="scoring: timed repeats per batch size")
    parser.add_argument("--train-preset", default="7b")
    parser.add_argument("--train-exps", default="lora_fewshot,full_ft", help="conf/exp/ recipes timed")
    parser.add_argument("--train-layers", default="4,8", help="LLaMA depths trained (two: scaled to full depth)")
    parser.add_argument("--train-steps", type=int, default=10, help="timed optimizer steps per depth")
    parser.add_argument("--guard-preset", default="7b")
    parser.add_argument("--guard-batch-size", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=450, help="steps not started by then are skipped")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --device cpu for the tiny CPU run)", file=sys.stderr)
        return 2

    run = Run(args.out, args.budget_s, vars(args) | {"out": str(args.out)})
    info = run.step("environment", environment, args.device) or {}
    split = [s for s in args.dtypes.split(",") if s]
    for preset in args.presets.split(","):
        run.step(
            f"scoring_{preset}",
            scoring,
            preset,
            split,
            [int(b) for b in args.batch_sizes.split(",")],
            args.frames,
            args.repeats,
            args.device,
        )
    run.step(
        f"training_{args.train_preset}",
        training,
        args.train_preset,
        args.train_exps.split(","),
        [int(n) for n in args.train_layers.split(",")],
        args.frames,
        args.train_steps,
        args.device,
        info,
    )
    run.step(
        f"nan_guard_{args.guard_preset}", nan_guard, args.guard_preset, args.guard_batch_size, args.frames, args.device
    )
    failed = [name for name, step in run.document["steps"].items() if "result" not in step]
    print(f"gpu_check: {args.out} ({run.document['wall_s']:.0f} s)" + (f"; not measured: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
