"""Training FLOPs per sample, the hardware's peak, MFU and peak memory.

MFU here is the usual estimate (PaLM appendix B): model FLOPs from parameter counts, not measured kernels.
- LLM, per token: forward 2N, backward to the activations 2N (the video tokens come from trained modules, so the
  gradient must flow through the whole LLM even when it is frozen or LoRA-adapted), weight gradients 2N_trained;
  plus attention 12 * layers * width * sequence (6 * 2 * L * d * s over forward and backward).
- vision side, per frame: the frozen ViT and image Q-Former run forward only (2N per token); the video Q-Former
  and llama_proj get 6N per query token when trained.
Gradient checkpointing recomputes forwards; that work is not counted (as in MFU, unlike hardware FLOPs utilisation).
"""

from __future__ import annotations

import resource
import time

import torch

# Dense bf16/fp16 tensor-core peaks (datasheets); other devices are measured with a matmul.
_GPU_PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "A800": 312.0,
    "V100": 125.0,
    "L40S": 362.0,
    "A10": 125.0,
}


def _numel(param) -> int:
    return int(getattr(param, "ds_numel", param.numel()))  # ZeRO-3 leaves a 0-size placeholder in .data


def _part_counts(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """(parameters, trained parameters) per top-level part of a Video-LLaMA model (peft prefixes stripped)."""
    counts: dict[str, list[int]] = {}
    for name, param in model.named_parameters():
        name = name.removeprefix("base_model.model.")
        part = name.split(".")[0]
        entry = counts.setdefault(part, [0, 0])
        entry[0] += _numel(param)
        if param.requires_grad:
            entry[1] += _numel(param)
    return {k: (v[0], v[1]) for k, v in counts.items()}


def flops_per_sample(model: torch.nn.Module, num_frames: int, text_tokens: float) -> float:
    """Estimated training FLOPs for one clip of `num_frames` frames and a prompt+answer of `text_tokens` tokens."""
    config = model.config
    parts = _part_counts(model)

    def cost(part: str, tokens: float) -> float:
        total, trained = parts.get(part, (0, 0))
        # forward; backward to the activations and weight gradients only where something is trained
        return tokens * (2 * total + (2 * total + 2 * trained if trained else 0))

    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2 + 1
    flops = num_frames * (cost("visual_encoder", patches) + cost("qformer", config.num_query_tokens))
    flops += cost("video_qformer", config.num_video_query_tokens) + cost("llama_proj", config.num_video_query_tokens)
    llm_total, llm_trained = parts.get("language_model", (0, 0))
    text = config.text_config
    attention = 12 * text.num_hidden_layers * text.hidden_size * text_tokens
    flops += text_tokens * (4 * llm_total + 2 * llm_trained + attention)
    return float(flops)


def peak_tflops(configured: float | None = None) -> float:
    """Peak dense TFLOP/s of one device: `configured` if given, the datasheet figure of a known GPU, else measured
    (a square matmul in the training dtype on GPU, fp32 on CPU; a fraction of a second)."""
    if configured:
        return float(configured)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, value in _GPU_PEAK_TFLOPS.items():
            if key in name:
                return value
        return measure_matmul_tflops(4096, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16, "cuda")
    return measure_matmul_tflops(1024, torch.float32, "cpu")


def measure_matmul_tflops(n: int, dtype: torch.dtype, device: str, repeats: int = 5) -> float:
    """Best-of-`repeats` TFLOP/s of an n x n x n matmul."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first round warms up kernels and caches
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e12


def peak_memory_gib() -> float:
    """Peak memory of this rank: allocated GPU memory on GPU, the process's max resident set on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
