"""Video-LLaMA-2 at its real shapes on CPU, with random weights: everything a user does first, minus the download.

    python scripts/dry_run.py preset=7b work_dir=/tmp/dry_run
    python scripts/dry_run.py preset=7b work_dir=/tmp/dry_run scoring.dtype=fp32 training.enabled=false

Scoring (conf/dry_run.yaml `scoring`):
  1. fake ORIGINAL files at the preset's shapes (ghostprobe/models/video_llama/fake_originals.py), LLaMA at its full
     depth if the model fits `memory_budget_gb` in `scoring.dtype`, else as many layers as fit (printed);
  2. scripts/convert_video_llama.py on them (the streaming converter, in `scoring.dtype`), in its own process;
  3. `from_pretrained` through the eval backend (kind video_llama, that dtype, CPU), synthetic clips from the
     project's generator through data prep at the model's 224 px, `score` on `scoring.clips` clips and a greedy
     `generate` of `scoring.generate_tokens` tokens on the first.
  Printed: weights bytes, load time, peak RSS of loading + scoring (VmHWM, reset before loading), seconds per clip.
Training (`training`): the `training.exp` recipe's model (lora_fewshot: LoRA r 128 on every LLM linear, the video
side trained) at the preset's width with LLaMA cut to `training.llm_layers`, `training.steps` optimizer steps of the
real trainer under ZeRO-3 on `training.ranks` CPU ranks (`deepspeed --num_gpus N train/main.py`, gloo, fp32).
  Printed: each rank's peak RSS against DeepSpeed's `estimate_zero3_model_states_mem_needs_all_live` for the same
  model, and the trained-parameter count against the LoRA formula r x (d_in + d_out) per adapted linear.
Every figure also goes to WORK_DIR/dry_run.json. Linux only (peak memory is read from /proc).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ghostprobe.config import CONF_DIR
from ghostprobe.dtypes import dtype_by_name
from ghostprobe.files import write_json_atomic
from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration, video_llama_config
from ghostprobe.models.video_llama.fake_originals import write_fake_originals
from ghostprobe.models.video_llama.modeling import VideoLlamaPreTrainedModel

GB = 1e9
# Python, torch, transformers and datasets, plus the activations of one 8-frame clip at 224 px: what the process
# holds besides the weights (measured ~1 GB at 7B shapes; docs/benchmarks.md).
OVERHEAD_GB = 1.5


# ---- memory -----------------------------------------------------------------------------------------------------
def _status_kib(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_gb(pid: int | str = "self") -> float:
    """The process's peak resident set (VmHWM) since it started or since `reset_peak_rss`."""
    return _status_kib("VmHWM", pid) * 1024 / GB


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux >= 4.0), so that a phase's peak is its own."""
    Path("/proc/self/clear_refs").write_text("5")


def _config(preset: str, llm_layers: int):
    config = video_llama_config(preset)
    config.text_config.num_hidden_layers = llm_layers
    return config


def weights_gb(preset: str, llm_layers: int, dtype: torch.dtype) -> float:
    """Bytes of the loaded weights: `dtype`, except the Q-Former side kept fp32 (from a meta-device model)."""
    keep_fp32 = set(VideoLlamaPreTrainedModel._keep_in_fp32_modules)
    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(_config(preset, llm_layers))
    size = 0
    for name, param in model.named_parameters():
        width = 4 if keep_fp32.intersection(name.split(".")) else torch.finfo(dtype).bits // 8
        size += param.numel() * width
    return size / GB


def llm_layers_that_fit(preset: str, dtype: torch.dtype, budget_gb: float) -> tuple[int, float, float]:
    """(layers, weights GB with them, GB per layer): the preset's depth if the weights plus OVERHEAD_GB fit
    `budget_gb`, else as many layers as fit."""
    full = video_llama_config(preset).text_config.num_hidden_layers
    without, one = weights_gb(preset, 0, dtype), weights_gb(preset, 1, dtype)
    per_layer = one - without
    layers = min(full, math.floor((budget_gb - OVERHEAD_GB - without) / per_layer))
    if layers < 1:
        raise SystemExit(
            f"dry_run: {preset} without LLaMA layers needs {without + OVERHEAD_GB:.1f} GB in {dtype}, "
            f"more than memory_budget_gb={budget_gb}"
        )
    return layers, without + layers * per_layer, per_layer


def matmul_gflops(dtype: torch.dtype, n: int = 512) -> float:
    """This CPU's matmul rate in `dtype` (best of 3), to say up front how long the scoring will take."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    best = float("inf")
    for _ in range(4):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


# ---- steps --------------------------------------------------------------------------------------------------------
def convert(originals: dict, out: Path, preset: str, dtype: str) -> float:
    """scripts/convert_video_llama.py on `originals`, in its own process; returns its wall seconds."""
    command = [
        sys.executable,
        str(REPO / "scripts" / "convert_video_llama.py"),
        "--preset",
        preset,
        "--dtype",
        dtype,
        "--out",
        str(out),
        *(f"--{key.replace('_', '-')}={value}" for key, value in originals.items()),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    )
    if done.returncode:
        raise SystemExit(f"dry_run: conversion failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def synthetic_dataset(folder: Path, num_clips: int, num_frames: int, frame_size: int) -> Path:
    """`num_clips` clips from the project's generator through data prep (uniform sampling, `frame_size` px)."""
    from data_prep.prepare import prepare_dataset
    from ghostprobe.synth import generate

    generate(folder / "clips", num_clips=num_clips, seed=0)
    # conf/data_prep.yaml's defaults, read as files (Hydra is already running this script), uniform sampling.
    settings = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data_prep.yaml").prep)
    sampling = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "sampling" / "uniform.yaml"))
    split = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "split" / "random.yaml"))  # the split group's default
    settings.update(frame_size=frame_size, sampling={**sampling, "num_frames": num_frames}, split=split)
    report = prepare_dataset(folder / "clips" / "labels.json", folder / "prepared", settings)
    if report["rejected"]:
        raise SystemExit(f"dry_run: data prep rejected synthetic clips: {report['rejected']}")
    return folder / "prepared"


def clips_of(dataset: Path) -> list:
    """Every prepared row of every split as a ClipInput."""
    from datasets import load_from_disk

    from ghostprobe.frames import frames_from_row
    from ghostprobe.models.base import ClipInput

    clips = []
    for split in load_from_disk(str(dataset)).values():
        for row in split.with_format("numpy", columns=["frames"], output_all_columns=True):
            clips.append(
                ClipInput(row["clip_id"], frames_from_row(row["frames"]), tuple(float(t) for t in row["timestamps_s"]))
            )
    return clips


def score_at_real_shapes(cfg: DictConfig, work: Path) -> dict:
    """Fake originals -> streamed conversion -> from_pretrained -> score + generate (module docstring)."""
    from ghostprobe.models.base import build_model
    from ghostprobe.prompts import load_prompt

    s = cfg.scoring
    dtype = dtype_by_name(s.dtype, "scoring.dtype")
    rates = {name: matmul_gflops(d) for name, d in (("fp32", torch.float32), (s.dtype, dtype))}
    print("matmul 512^3 on this CPU: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()), flush=True)
    if rates[s.dtype] < rates["fp32"] / 8:
        print(
            f"  {s.dtype} runs at 1/{rates['fp32'] / rates[s.dtype]:.0f} of fp32 here (no native {s.dtype} "
            "matmuls): scoring will be slow; scoring.dtype=fp32 is the fast choice on this CPU",
            flush=True,
        )
    full = video_llama_config(cfg.preset).text_config.num_hidden_layers
    if s.llm_layers:
        layers, weights = s.llm_layers, weights_gb(cfg.preset, s.llm_layers, dtype)
        depth = "full depth" if layers == full else f"cut from {full} by scoring.llm_layers"
    else:
        layers, weights, _ = llm_layers_that_fit(cfg.preset, dtype, cfg.memory_budget_gb)
        depth = (
            "full depth"
            if layers == full
            else (f"cut from {full}: the full depth does not fit memory_budget_gb={cfg.memory_budget_gb} in {s.dtype}")
        )
    print(
        f"scoring model: {cfg.preset} shapes, LLaMA {layers} layers ({depth}), {s.dtype}, weights ~{weights:.1f} GB",
        flush=True,
    )

    started = time.perf_counter()
    originals = write_fake_originals(
        work / "originals_scoring", _config(cfg.preset, layers), real_dtypes=True, llama_shard_size="1GB"
    )
    sources_gb = (
        sum(f.stat().st_size for p in originals.values() for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
        / GB
    )
    fake_s = time.perf_counter() - started
    converted = work / "converted_scoring"
    convert_s = convert(originals, converted, cfg.preset, s.dtype)
    if not cfg.keep:
        shutil.rmtree(work / "originals_scoring")
    print(f"fake originals {sources_gb:.2f} GB in {fake_s:.0f} s; converted in {convert_s:.0f} s", flush=True)

    image_size = video_llama_config(cfg.preset).vision_config.image_size
    clips = (
        clips_of(synthetic_dataset(work / "scoring_data", s.clips, s.num_frames, image_size))[: s.clips]
        if s.clips
        else []
    )

    reset_peak_rss()
    started = time.perf_counter()
    backend = build_model(
        {
            "kind": "video_llama",
            "path": str(converted),
            "dtype": s.dtype,
            "device": "cpu",
            "batch_size": 1,
            "generation": {"max_new_tokens": max(int(s.generate_tokens), 1)},
        }
    )
    load_s = time.perf_counter() - started
    model, processor = backend.model, backend.processor
    weights_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    dtypes = {
        part: str(next(getattr(model, part).parameters()).dtype).removeprefix("torch.")
        for part in ("visual_encoder", "qformer", "video_qformer", "llama_proj", "language_model")
    }
    text = model.config.text_config
    facts = {
        "vocab_size": text.vocab_size,
        "tokenizer_length": len(processor.tokenizer),
        "video_token_index": model.config.video_token_index,
        "max_position_embeddings": text.max_position_embeddings,
        "rope_parameters": dict(getattr(text, "rope_parameters", None) or {}),
        "dtypes": dtypes,
    }
    print(f"loaded in {load_s:.0f} s: weights {weights_bytes / GB:.2f} GB, {json.dumps(facts)}", flush=True)
    if clips:
        scored = score_and_generate(backend, clips, load_prompt(cfg.prompt), int(s.generate_tokens))
    else:
        # from_pretrained maps the weight files and reads a page when it is first used: read every tensor once, as
        # a forward pass would, so that the peak RSS counts the weights.
        with torch.no_grad():
            scored = {"weights_checksum": float(sum(float(p.float().sum()) for p in model.parameters()))}
    peak = peak_rss_gb()
    del backend, model
    if not cfg.keep:
        shutil.rmtree(converted)
    return {
        "preset": cfg.preset,
        "dtype": s.dtype,
        "llm_layers": layers,
        "full_depth": full,
        "matmul_gflops": rates,
        "sources_gb": sources_gb,
        "convert_s": convert_s,
        "load_s": load_s,
        "weights_gb": weights_bytes / GB,
        "peak_rss_gb": peak,
        "num_frames": s.num_frames,
        **scored,
        **facts,
    }


def score_and_generate(backend, clips: list, prompt, generate_tokens: int) -> dict:
    """`score` on every clip, a greedy `generate` on the first; SystemExit if a score is no probability or a prompt
    is longer than the LLM's positions."""
    started = time.perf_counter()
    scores = backend.score(clips, prompt)
    score_s = time.perf_counter() - started
    for output in scores:
        print(
            f"  score {output.clip_id}: P(ghost probing) {output.p_ghost_probing:.4f}, {output.tokens_in} prompt "
            f"tokens, {output.latency_s:.1f} s"
            + (f", error {output.extra['error']}" if "error" in output.extra else ""),
            flush=True,
        )
    generated = None
    if generate_tokens:
        started = time.perf_counter()
        (answer,) = backend.generate(clips[:1], prompt)
        generated = {
            "seconds": time.perf_counter() - started,
            "tokens": answer.tokens_out,
            "answer": answer.answer,
            "error": answer.extra.get("error"),
        }
        print(
            f"  generate {clips[0].clip_id}: {answer.tokens_out} tokens in {generated['seconds']:.0f} s: "
            f"{answer.answer!r}",
            flush=True,
        )
    problems = [
        f"{o.clip_id}: {o.extra.get('error', 'no score')}" for o in scores if not 0.0 <= o.p_ghost_probing <= 1.0
    ]
    longest = max(o.tokens_in for o in scores)
    positions = backend.model.config.text_config.max_position_embeddings
    if longest >= positions:
        problems.append(f"prompt of {longest} tokens >= max_position_embeddings {positions}")
    if problems:
        raise SystemExit(f"dry_run: scoring at real shapes failed: {problems}")
    return {
        "seconds_per_clip": score_s / len(clips),
        "scores": [o.p_ghost_probing for o in scores],
        "prompt_tokens": longest,
        "generate": generated,
    }


# ---- training -------------------------------------------------------------------------------------------------------
LORA_SHAPES = {  # LLaMA linear -> (in features, out features) from the text config
    "q_proj": lambda t: (t.hidden_size, t.num_attention_heads * t.head_dim),
    "k_proj": lambda t: (t.hidden_size, t.num_key_value_heads * t.head_dim),
    "v_proj": lambda t: (t.hidden_size, t.num_key_value_heads * t.head_dim),
    "o_proj": lambda t: (t.num_attention_heads * t.head_dim, t.hidden_size),
    "gate_proj": lambda t: (t.hidden_size, t.intermediate_size),
    "up_proj": lambda t: (t.hidden_size, t.intermediate_size),
    "down_proj": lambda t: (t.intermediate_size, t.hidden_size),
}


def expected_trainable(config, recipe) -> dict:
    """The LoRA formula, r x (d_in + d_out) per adapted linear per layer, plus the modules trained in full."""
    text, r = config.text_config, int(recipe.lora.r)
    per_layer = sum(r * sum(LORA_SHAPES[name](text)) for name in recipe.lora.target_modules)
    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(config)
    parts = [getattr(model, name) for name in recipe.modules]  # modules, or bare parameters (query tokens)
    full = sum(
        p.numel() for part in parts for p in ([part] if isinstance(part, torch.nn.Parameter) else part.parameters())
    )
    return {
        "lora": per_layer * text.num_hidden_layers,
        "lora_per_layer": per_layer,
        "modules_in_full": full,
        "total": per_layer * text.num_hidden_layers + full,
    }


def deepspeed_estimate(config, recipe, ranks: int) -> dict:
    """DeepSpeed's own ZeRO-3 model-states estimate for this model (LoRA applied), `ranks` devices on one node.

    `estimate_zero3_model_states_mem_needs_all_live(model)` counts parameters by data pointer to skip shared ones,
    which on a meta-device model (all pointers 0) counts one tensor; the model is not built for real here (9 GB in
    fp32), so the same counts (total, largest module; LLaMA-2 shares no tensor) go to the `_all_cold` form it calls.
    """
    from deepspeed.runtime.zero.stage3 import (
        estimate_zero3_model_states_mem_needs,
        estimate_zero3_model_states_mem_needs_all_cold,
    )

    from train.model_setup import apply_training_policy, parameter_counts

    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(config)
        model = apply_training_policy(model, recipe.llm, list(recipe.modules), recipe.lora)
    total = sum(p.numel() for p in model.parameters())
    largest_layer = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        estimate_zero3_model_states_mem_needs_all_cold(total, largest_layer, num_gpus_per_node=ranks)
    _, per_device, _ = estimate_zero3_model_states_mem_needs(
        total, largest_layer, num_gpus_per_node=ranks, cpu_offload=False, cpu_offload_params=False, zero_init=True
    )
    return {
        "table": printed.getvalue(),
        "total_params": total,
        "largest_layer_params": largest_layer,
        "per_rank_gb": per_device / GB,
        "counted": parameter_counts(model),
    }


def _rank_processes(launcher_pid: int) -> dict[int, int]:
    """pid -> local rank of the launcher's training processes."""
    import psutil

    ranks = {}
    try:
        children = psutil.Process(launcher_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return ranks
    for child in children:
        with contextlib.suppress(psutil.Error):
            found = re.search(r"--local_rank=(\d+)", " ".join(child.cmdline()))
            if found and any(part.endswith("train/main.py") for part in child.cmdline()):
                ranks[child.pid] = int(found.group(1))
    return ranks


def launch_and_watch(command: list[str], log_path: Path, limit_gb: float, timeout_s: int, env: dict) -> dict:
    """Run the launcher, sampling each rank's peak RSS (VmHWM) and anonymous memory (RssAnon) every second; stop it
    when the ranks' anonymous memory together passes `limit_gb`, or after `timeout_s`. The limit leaves out file
    pages (the mapped checkpoint shards both ranks read), which the kernel reclaims and which VmRSS would count once
    per rank. Returns {"returncode", "peak_rss_gb": {rank: GB}, "peak_anon_gb": {rank: GB}, "stopped": reason,
    "anon_trace": [[seconds, total anonymous GB], ...] every 10 s}."""
    peaks, anon_peaks, stopped, trace = {}, {}, None, []
    with open(log_path, "w") as log:
        launcher = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", **env},
        )
        started = time.monotonic()
        while launcher.poll() is None:
            anon_now = 0.0
            for pid, rank in _rank_processes(launcher.pid).items():
                with contextlib.suppress(OSError, KeyError):
                    anon = _status_kib("RssAnon", pid) * 1024 / GB
                    peaks[rank] = max(peaks.get(rank, 0.0), peak_rss_gb(pid))
                    anon_peaks[rank] = max(anon_peaks.get(rank, 0.0), anon)
                    anon_now += anon
            elapsed = time.monotonic() - started
            if not trace or elapsed - trace[-1][0] >= 10:
                trace.append([round(elapsed), round(anon_now, 2)])
            if anon_now > limit_gb or time.monotonic() - started > timeout_s:
                stopped = (
                    f"ranks held {anon_now:.1f} GB of anonymous memory > training.memory_limit_gb={limit_gb}"
                    if anon_now > limit_gb
                    else f"still running after training.timeout_s={timeout_s}"
                )
                os.killpg(launcher.pid, signal.SIGTERM)  # the launcher's own process group: it and its ranks
                launcher.wait(60)
                break
            time.sleep(1.0)
    return {
        "returncode": launcher.returncode,
        "peak_rss_gb": dict(sorted(peaks.items())),
        "peak_anon_gb": dict(sorted(anon_peaks.items())),
        "stopped": stopped,
        "anon_trace": trace,
    }


def training_recipe(exp: str) -> DictConfig:
    """conf/train.yaml's `train` section with conf/exp/`exp`.yaml's over it (read as files: Hydra is running)."""
    return OmegaConf.merge(
        OmegaConf.load(CONF_DIR / "train.yaml").train, OmegaConf.load(CONF_DIR / "exp" / f"{exp}.yaml").get("train", {})
    )


def train_at_real_width(cfg: DictConfig, work: Path) -> dict:
    """The recipe's model at the preset's width, LLaMA cut to `training.llm_layers`: two ZeRO-3 steps on CPU ranks."""
    t = cfg.training
    recipe = training_recipe(t.exp)
    config = _config(cfg.preset, t.llm_layers)
    expected = expected_trainable(config, recipe)
    estimate = deepspeed_estimate(config, recipe, t.ranks)
    print(
        f"training model: {cfg.preset} width, LLaMA {t.llm_layers} layers, {t.exp} (LoRA r {recipe.lora.r} on "
        f"{list(recipe.lora.target_modules)}, trained in full: {list(recipe.modules)}); "
        f"{estimate['counted']['total'] / 1e9:.2f} B parameters, {estimate['counted']['trainable'] / 1e6:.2f} M "
        f"trained (LoRA formula {expected['total'] / 1e6:.2f} M)",
        flush=True,
    )

    originals = write_fake_originals(work / "originals_training", config, real_dtypes=True, llama_shard_size="1GB")
    converted = work / "converted_training"
    convert(originals, converted, cfg.preset, "fp16")
    if not cfg.keep:
        shutil.rmtree(work / "originals_training")
    image_size = config.vision_config.image_size
    data = synthetic_dataset(work / "training_data", t.clips, t.num_frames, image_size)

    run_dir = work / "training_run"
    shutil.rmtree(run_dir, ignore_errors=True)
    with socket.socket() as s:  # a free port: other launchers may run on this machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "deepspeed"),
        "--num_gpus",
        str(t.ranks),
        "--master_port",
        str(port),
        "train/main.py",
        f"+exp={t.exp}",
        "deepspeed=zero3",
        f"model.path={converted}",
        f"data.path={data}",
        f"output_dir={run_dir}",
        "logger=none",
        "progress_bar=false",
        "eval.every_steps=0",
        "eval.test_at_end=false",
        "eval.early_stopping_patience=null",
        "checkpoint.every_steps=0",
        f"train.max_steps={t.steps}",
        "train.log_every_steps=1",
        "train.precision=fp32",
        f"train.micro_batch_size={t.micro_batch_size}",
        f"train.global_batch_size={t.micro_batch_size * t.ranks}",
        "data.balance_classes=false",
        *t.overrides,
    ]
    print("  " + " ".join(command), flush=True)
    started = time.perf_counter()
    # read by glibc when each rank starts (see conf/dry_run.yaml)
    env = {"MALLOC_MMAP_THRESHOLD_": str(t.malloc_mmap_threshold_bytes)} if t.malloc_mmap_threshold_bytes else {}
    watched = launch_and_watch(command, work / "training_run.log", t.memory_limit_gb, t.timeout_s, env)
    wall_s = time.perf_counter() - started
    log_text = (work / "training_run.log").read_text(errors="replace")
    if watched["returncode"] or watched["stopped"]:
        write_json_atomic(work / "training_failed.json", watched, allow_nan=False)  # the memory trace up to the stop
        raise SystemExit(
            f"dry_run: training failed ({watched['stopped'] or 'exit ' + str(watched['returncode'])}); "
            f"log {work / 'training_run.log'}:\n{log_text[-4000:]}"
        )
    logs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [m["loss"] for m in logs if "loss" in m]
    trained = re.search(r"trained ([\d.]+)M", log_text)
    if not cfg.keep:
        shutil.rmtree(converted)
    return {
        "exp": t.exp,
        "llm_layers": t.llm_layers,
        "ranks": t.ranks,
        "steps": t.steps,
        "wall_s": wall_s,
        "overrides": list(t.overrides),
        "malloc_mmap_threshold_bytes": t.malloc_mmap_threshold_bytes,
        "num_frames": t.num_frames,
        "micro_batch_size": t.micro_batch_size,
        "losses": losses,
        "peak_rss_gb_per_rank": watched["peak_rss_gb"],
        "peak_anon_gb_per_rank": watched["peak_anon_gb"],
        "anon_trace": watched["anon_trace"],
        "deepspeed_estimate_per_rank_gb": estimate["per_rank_gb"],
        "deepspeed_table": estimate["table"],
        # what this fp32 run's partitions hold at least: 4 B per frozen parameter; 16 B per trained one (weight,
        # gradient, Adam's two moments), all split over the ranks
        "model_states_by_hand_gb_per_rank": (
            4 * (estimate["counted"]["total"] - estimate["counted"]["trainable"])
            + 16 * estimate["counted"]["trainable"]
        )
        / t.ranks
        / GB,
        "total_params": estimate["counted"]["total"],
        "trainable_params": estimate["counted"]["trainable"],
        "trainer_logged_trainable_m": float(trained.group(1)) if trained else None,
        "lora_formula": expected,
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="dry_run")
def main(cfg: DictConfig) -> None:
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    result = {"config": OmegaConf.to_container(cfg, resolve=True)}
    if cfg.scoring.enabled:
        result["scoring"] = scoring = score_at_real_shapes(cfg, work)
        print(
            f"\nscoring: {scoring['preset']} shapes, LLaMA {scoring['llm_layers']}/{scoring['full_depth']} layers, "
            f"{scoring['dtype']}: weights {scoring['weights_gb']:.2f} GB, peak RSS {scoring['peak_rss_gb']:.2f} GB"
            + (
                f", {scoring['seconds_per_clip']:.1f} s per clip ({scoring['num_frames']} frames)"
                if "seconds_per_clip" in scoring
                else ", no clips scored (scoring.clips=0)"
            )
            + (
                f", generate {scoring['generate']['seconds']:.0f} s for {scoring['generate']['tokens']} tokens"
                if scoring.get("generate")
                else ""
            ),
            flush=True,
        )
        write_json_atomic(work / "dry_run.json", result, allow_nan=False)
    if cfg.training.enabled:
        result["training"] = training = train_at_real_width(cfg, work)
        peaks = ", ".join(
            f"rank {rank} {gb:.2f} GB (anonymous {training['peak_anon_gb_per_rank'][rank]:.2f})"
            for rank, gb in training["peak_rss_gb_per_rank"].items()
        )
        print(
            f"\ntraining: {training['exp']}, {training['steps']} ZeRO-3 steps on {training['ranks']} CPU ranks in "
            f"{training['wall_s']:.0f} s, losses {[round(x, 3) for x in training['losses']]}\n"
            f"  peak RSS {peaks}; DeepSpeed's ZeRO-3 model-states estimate "
            f"{training['deepspeed_estimate_per_rank_gb']:.2f} GB per rank (every parameter trained: 16-bit weights "
            f"and gradients, fp32 Adam, no offload); by hand for this run (fp32, only LoRA and the video side "
            f"trained) {training['model_states_by_hand_gb_per_rank']:.2f} GB per rank\n"
            f"  trained parameters {training['trainable_params']:,} (trainer's log "
            f"{training['trainer_logged_trainable_m']} M), LoRA formula {training['lora_formula']['total']:,}",
            flush=True,
        )
        print(training["deepspeed_table"])
    write_json_atomic(work / "dry_run.json", result, allow_nan=False)
    print(f"figures: {work / 'dry_run.json'}")


if __name__ == "__main__":
    main()
