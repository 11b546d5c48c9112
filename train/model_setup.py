"""The model to train: base checkpoint, precision, which parts learn (freezing policy), LoRA via peft.

Freezing policy (conf/exp/*.yaml, `train.llm` + `train.modules`):
- `llm`: "frozen" (original stage 2), "lora" (adapters on the LLM's linear layers, lm_head excluded) or "full";
- `modules`: top-level parts trained in full besides the LLM, e.g. the video Q-Former, its query tokens, the frame
  position embedding and llama_proj. The ViT and the image Q-Former stay frozen in every released recipe.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ghostprobe.dtypes import DTYPES, auto_dtype_name, dtype_by_name
from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration
from ghostprobe.models.video_llama.run_dir import checkpoint_info, resolve_model_dir

log = logging.getLogger(__name__)
LLM_MODES = ("frozen", "lora", "full")
PRECISIONS = ("auto", *DTYPES)


def choose_precision(name: str = "auto") -> str:
    """The training precision for `name`: "auto" is bf16 where the GPU has it (A100, H100), fp16 (+ dynamic loss
    scaling) on older GPUs (V100), fp32 on CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {name!r}")
    if name != "auto":
        if name != "fp32" and not torch.cuda.is_available():
            raise ValueError(f"train.precision={name} needs a GPU; on CPU use fp32 (or auto)")
        return name
    return auto_dtype_name("cuda" if torch.cuda.is_available() else "cpu")


def load_base_model(path: str | Path, precision: str) -> tuple[VideoLlamaForConditionalGeneration, Path]:
    """The model to start from (a converted folder, or a full checkpoint/run of an earlier training) in the
    training dtype. Under ZeRO-3 the weights are partitioned while loading (transformers sees the DeepSpeed config
    that the TrainingArguments registered), so no rank ever holds the whole 7B/13B model."""
    model_dir = resolve_model_dir(path)
    if checkpoint_info(model_dir)["format"] != "full":
        raise ValueError(
            f"{model_dir} is a LoRA checkpoint: merge it first (python scripts/export_model.py "
            f"run_dir={model_dir} out=DIR) and train from DIR"
        )
    model = VideoLlamaForConditionalGeneration.from_pretrained(
        model_dir, dtype=dtype_by_name(precision, "train.precision")
    )
    return model, model_dir


def _lora_target_regex(target_modules: Sequence[str]) -> str:
    # peft full-matches a string against each module name: this limits LoRA to the LLM's decoder layers, so the
    # Q-Formers' linear layers (also called query/key/value/dense) and lm_head never get adapters.
    names = "|".join(target_modules)
    return rf"language_model\.model\.layers\.\d+\.(self_attn|mlp)\.({names})"


def apply_training_policy(
    model: VideoLlamaForConditionalGeneration, llm: str, modules: Sequence[str], lora: Mapping | None = None
) -> torch.nn.Module:
    """Freeze everything, then unfreeze `modules` and the LLM per `llm`; returns the model (a peft model for LoRA)."""
    if llm not in LLM_MODES:
        raise ValueError(f"train.llm must be one of {LLM_MODES}, got {llm!r}")
    unknown = [name for name in modules if not hasattr(model, name)]
    if unknown:
        raise ValueError(
            f"train.modules {unknown} are not parts of the model; choose among video_qformer, "
            "video_query_tokens, video_frame_position_embedding, llama_proj, qformer, query_tokens, "
            "visual_encoder"
        )
    model.requires_grad_(False)
    if llm == "lora":
        from peft import LoraConfig, get_peft_model

        if not lora:
            raise ValueError("train.llm=lora needs a train.lora section (r, alpha, dropout, target_modules)")
        config = LoraConfig(
            r=int(lora["r"]),
            lora_alpha=int(lora["alpha"]),
            lora_dropout=float(lora["dropout"]),
            target_modules=_lora_target_regex(lora["target_modules"]),
            bias="none",
        )
        # Adapters in the model's own dtype: DeepSpeed keeps the fp32 master copy of every trained weight itself,
        # and ZeRO-3 flattens the trained parameters into one buffer of one dtype. peft's default would upcast the
        # adapters of a bf16/fp16 model to fp32 beside the bf16 video side: "assert len(set(t.dtype ...)) == 1" in
        # DeepSpeed's defragment, seen on the first GPU run (docs/benchmarks.md, "The pipeline on a GPU").
        model = get_peft_model(model, config, autocast_adapter_dtype=False)
    elif llm == "full":
        model.language_model.requires_grad_(True)
    base = model.get_base_model() if llm == "lora" else model
    for name in modules:
        getattr(base, name).requires_grad_(True)
    return model


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total, trainable and per-part parameter counts (ZeRO-3 partitioned parameters counted at full size)."""

    def numel(p):
        return int(getattr(p, "ds_numel", p.numel()))

    counts = {"total": 0, "trainable": 0}
    for param in model.parameters():
        counts["total"] += numel(param)
        if param.requires_grad:
            counts["trainable"] += numel(param)
    return counts


def trained_set_for_timing(model: VideoLlamaForConditionalGeneration, train_cfg, fused: bool):
    """A recipe's trained set as the benchmarks time it in one process without DeepSpeed (scripts/bench_train.py,
    scripts/gpu_check.py): the recipe's gradient checkpointing and training policy, the trained weights in fp32 (the
    master copies DeepSpeed's bf16 optimizer keeps) under torch AdamW. Returns (model in train mode, optimizer)."""
    if train_cfg.gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model = apply_training_policy(model, train_cfg.llm, list(train_cfg.modules), train_cfg.lora)
    trained = [p for p in model.parameters() if p.requires_grad]
    for p in trained:
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(trained, lr=train_cfg.lr, fused=fused)
    model.train()
    return model, optimizer
