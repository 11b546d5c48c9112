"""Which dtype each part of Video-LLaMA-2 runs in: the original's where the hardware allows (conf/hardware/).

The original (Video-LLaMA `video_llama.py` with its demo config) runs:
| part | original | a100x8 / h100 | v100x4 (no bf16) | cpu |
|---|---|---|---|---|
| EVA ViT-g | fp16 weights (`vit_precision: fp16`) | fp16 | fp16 | fp32 |
| `ln_vision` | fp32 weights, computed in fp32, output cast back to fp16 | same | same | fp32 |
| image + video Q-Former, `llama_proj` | fp32 weights under `autocast(fp16)` | same | same | fp32, no autocast |
| LLaMA-2 | bf16 (`torch_dtype=torch.bfloat16`) | bf16 | **fp16** | fp32 |

Known deviations besides V100's fp16 LLM: the original concatenates the fp16 video tokens with the bf16 text
embeddings (`torch.cat` promotes them to fp32), so transformers 4.28's LLaMA keeps its residual stream in fp32 while
every layer computes in bf16; transformers 5 needs one dtype there, so the project casts the video tokens to the
LLM's dtype. On CPU every part runs in fp32 (the parity fixture was made so too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ghostprobe.dtypes import dtype_by_name


@dataclass(frozen=True)
class PrecisionPolicy:
    """llm: LLaMA's dtype; vision: the ViT's; video_autocast: the autocast dtype of the Q-Formers and llama_proj
    (None: they run in their fp32 weights' dtype)."""

    llm: torch.dtype
    vision: torch.dtype
    video_autocast: torch.dtype | None

    @classmethod
    def from_names(
        cls, dtype: str, vision_dtype: str | None = None, video_autocast: str | None = None
    ) -> PrecisionPolicy:
        """From conf/hardware/ names: `dtype` (the LLM), `vision_dtype` (None: as `dtype`), `video_autocast`."""
        autocast = dtype_by_name(video_autocast, "video_autocast") if video_autocast else None
        if autocast is torch.float32:
            autocast = None  # autocast to fp32 is no autocast
        return cls(dtype_by_name(dtype), dtype_by_name(vision_dtype or dtype, "vision_dtype"), autocast)


def apply_precision(model, policy: PrecisionPolicy, quantized: bool = False) -> None:
    """Cast each part of a loaded `VideoLlamaForConditionalGeneration` to `policy` (in place).

    Casting up (fp16 -> fp32) is exact, so a folder stored in fp16 (the converter's default, like the original
    files) loses nothing; a quantized LLM is left as loaded.
    """
    if not quantized:
        model.language_model.to(policy.llm)
    model.visual_encoder.to(policy.vision)
    model.visual_encoder.post_layernorm.float()  # ln_vision: fp32 weights, as in the original
    for module in (model.qformer, model.video_qformer, model.video_frame_position_embedding, model.llama_proj):
        module.float()
    model.query_tokens.data = model.query_tokens.data.float()
    model.video_query_tokens.data = model.video_query_tokens.data.float()
    model.video_autocast_dtype = policy.video_autocast
