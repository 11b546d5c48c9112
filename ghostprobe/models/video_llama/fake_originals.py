"""Fake ORIGINAL Video-LLaMA-2 checkpoints: the original files' key names and layouts with random values, at any
preset's shapes. The converter's tests use the tiny preset; scripts/bench_convert.py and scripts/dry_run.py write
them at 7B/13B shapes, where no real weights can be downloaded.

Files, as the released ones are laid out (`write_fake_originals`):
- `eva_vit_g.pth`: EVA-CLIP-g's plain state dict with one block more than BLIP-2 uses (its 40th).
- `blip2_pretrained_flant5xxl.pth`: {"model": ln_vision, Qformer with its text parts, query_tokens, t5_proj}.
- `VL_LLaMA_2_7B_Finetuned.pth`: {"model": the trained video modules and buffers to drop, "optimizer", "config",
  "scaler", "epoch"}.
- `llama-2-7b-chat-hf/`: an HF LLaMA folder (config.json, generation_config.json, weights, a LLaMA tokenizer of
  exactly the vocabulary size, without the placeholder).
`real_dtypes=True` stores them as the released files do (EVA ViT and LLaMA fp16, the LAVIS files fp32) and writes the
LLaMA weights in safetensors shards of `llama_shard_size`, one shard in memory at a time; the default (fp32, one
file) is what the tests need.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from .configuration import VideoLlamaConfig
from .presets import video_llama_config

LLAMA_FOLDER = "llama-2-7b-chat-hf"


def _rand(*shape, generator, dtype=torch.float32):
    return (torch.randn(*shape, generator=generator) * 0.1).to(dtype)


def fake_eva_vit_state_dict(
    config: VideoLlamaConfig, extra_blocks: int = 1, seed: int = 1, dtype: torch.dtype = torch.float32
) -> dict:
    """eva_vit_g.pth layout (no prefix), with `extra_blocks` more blocks than the model uses (EVA-CLIP-g's 40th)."""
    g, vc = torch.Generator().manual_seed(seed), config.vision_config
    d, inner, p = vc.hidden_size, vc.intermediate_size, vc.patch_size

    def rand(*shape):
        return _rand(*shape, generator=g, dtype=dtype)

    state = {
        "cls_token": rand(1, 1, d),
        "pos_embed": rand(1, (vc.image_size // p) ** 2 + 1, d),
        "patch_embed.proj.weight": rand(d, 3, p, p),
        "patch_embed.proj.bias": rand(d),
    }
    for i in range(vc.num_hidden_layers + extra_blocks):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[b + norm + ".weight"] = 1 + rand(d)
            state[b + norm + ".bias"] = rand(d)
        state[b + "attn.qkv.weight"] = rand(3 * d, d)
        state[b + "attn.q_bias"] = rand(d)
        state[b + "attn.v_bias"] = rand(d)
        state[b + "attn.proj.weight"], state[b + "attn.proj.bias"] = rand(d, d), rand(d)
        state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"] = rand(inner, d), rand(inner)
        state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"] = rand(d, inner), rand(d)
    return state


def _fake_qformer(prefix: str, qc, generator, with_text_parts: bool) -> dict:
    """LAVIS BERT Q-Former keys under `prefix` (e.g. "Qformer.bert."), cross-attention every `frequency` layers."""
    h, inner, enc = qc.hidden_size, qc.intermediate_size, qc.encoder_hidden_size
    state = {
        prefix + "embeddings.LayerNorm.weight": 1 + _rand(h, generator=generator),
        prefix + "embeddings.LayerNorm.bias": _rand(h, generator=generator),
        prefix + "embeddings.position_ids": torch.arange(qc.max_position_embeddings)[None],
    }
    if with_text_parts:
        state[prefix + "embeddings.word_embeddings.weight"] = _rand(qc.vocab_size, h, generator=generator)
        state[prefix + "embeddings.position_embeddings.weight"] = _rand(
            qc.max_position_embeddings, h, generator=generator
        )

    def linear(name, out_dim, in_dim):
        state[name + ".weight"], state[name + ".bias"] = (
            _rand(out_dim, in_dim, generator=generator),
            _rand(out_dim, generator=generator),
        )

    def norm(name):
        state[name + ".weight"] = 1 + _rand(h, generator=generator)
        state[name + ".bias"] = _rand(h, generator=generator)

    for i in range(qc.num_hidden_layers):
        layer = f"{prefix}encoder.layer.{i}."
        kinds = [("attention", h)] + ([("crossattention", enc)] if i % qc.cross_attention_frequency == 0 else [])
        for kind, kv_width in kinds:
            linear(layer + kind + ".self.query", h, h)
            linear(layer + kind + ".self.key", h, kv_width)
            linear(layer + kind + ".self.value", h, kv_width)
            linear(layer + kind + ".output.dense", h, h)
            norm(layer + kind + ".output.LayerNorm")
        ffns = ("_query", "") if with_text_parts else ("_query",)
        for suffix in ffns:
            linear(layer + "intermediate" + suffix + ".dense", inner, h)
            linear(layer + "output" + suffix + ".dense", h, inner)
            norm(layer + "output" + suffix + ".LayerNorm")
    return state


def fake_blip2_checkpoint(config: VideoLlamaConfig, seed: int = 2, t5_width: int = 16) -> dict:
    """blip2_pretrained_flant5xxl.pth layout: {"model": ln_vision, Qformer (with text parts), query_tokens, t5_proj}.
    `t5_width`: t5_proj's output width (FlanT5-XXL's 4096 in the released file)."""
    g, qc = torch.Generator().manual_seed(seed), config.qformer_config
    d = config.vision_config.hidden_size
    state = {
        "ln_vision.weight": 1 + _rand(d, generator=g),
        "ln_vision.bias": _rand(d, generator=g),
        "query_tokens": _rand(1, config.num_query_tokens, qc.hidden_size, generator=g),
        "t5_proj.weight": _rand(t5_width, qc.hidden_size, generator=g),
        "t5_proj.bias": _rand(t5_width, generator=g),
        "Qformer.cls.predictions.bias": _rand(qc.vocab_size, generator=g),
    }
    state.update(_fake_qformer("Qformer.bert.", qc, g, with_text_parts=True))
    return {"model": state}


def fake_vl_checkpoint(config: VideoLlamaConfig, seed: int = 3) -> dict:
    """VL_LLaMA_2_*.pth layout: trained video modules plus buffers to drop, optimizer state, config, epoch."""
    g, qc = torch.Generator().manual_seed(seed), config.video_qformer_config
    h, llm = qc.hidden_size, config.text_config.hidden_size
    head_dim = llm // config.text_config.num_attention_heads
    state = {
        "video_query_tokens": _rand(1, config.num_video_query_tokens, h, generator=g),
        "video_frame_position_embedding.weight": _rand(config.max_frames, h, generator=g),
        "llama_proj.weight": _rand(llm, h, generator=g),
        "llama_proj.bias": _rand(llm, generator=g),
        "Qformer.bert.embeddings.position_ids": torch.arange(512)[None],
    }
    for i in range(config.text_config.num_hidden_layers):
        state[f"llama_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.rand(head_dim // 2)
    state.update(_fake_qformer("video_Qformer.bert.", qc, g, with_text_parts=False))
    return {
        "model": state,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 3e-5}]},
        "config": {"model": {"arch": "video_llama", "max_frame_pos": config.max_frames}},
        "scaler": {"scale": 65536.0},
        "epoch": 2,
    }


def write_llama_folder(
    path: Path,
    text_config: LlamaConfig,
    seed: int = 4,
    dtype: torch.dtype = torch.float32,
    safe: bool = True,
    shard_size: str | None = None,
) -> Path:
    """An HF LLaMA folder (weights, config.json, generation_config.json, a tokenizer of exactly
    `text_config.vocab_size` tokens, no placeholder), as `llama-2-*-chat-hf/`.

    safe=False: one pytorch_model.bin (the .bin layout of older HF folders). safe=True: model.safetensors, or shards
    of `shard_size` with model.safetensors.index.json, written one at a time (a 7B folder never is in memory whole).
    """
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    from .tiny import tiny_tokenizer

    path.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        shapes = LlamaForCausalLM(text_config).state_dict()
    generator = torch.Generator().manual_seed(seed)

    def fake(key: str) -> torch.Tensor:
        shape = shapes[key].shape
        if key.endswith("norm.weight"):  # RMSNorm gains near 1, as trained ones are
            return (1 + _rand(*shape, generator=generator)).to(dtype)
        return _rand(*shape, generator=generator, dtype=dtype)

    if not safe:
        torch.save({key: fake(key) for key in shapes}, path / "pytorch_model.bin")
    else:
        split = split_torch_state_dict_into_shards(
            {k: v.to(dtype) for k, v in shapes.items()}, max_shard_size=shard_size or "1TB"
        )
        for filename, keys in split.filename_to_tensors.items():
            save_file({key: fake(key) for key in keys}, str(path / filename), metadata={"format": "pt"})
        if split.is_sharded:
            index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
            (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    text_config.save_pretrained(path)
    GenerationConfig.from_model_config(text_config).save_pretrained(path)
    tiny_tokenizer(text_config.vocab_size).save_pretrained(path)
    return path


def write_fake_originals(
    root: Path,
    config: VideoLlamaConfig | None = None,
    safe: bool = True,
    real_dtypes: bool = False,
    llama_shard_size: str | None = None,
) -> dict:
    """All four original sources under `root` (see the module docstring); returns the convert_checkpoints keyword
    arguments for them."""
    config = config or video_llama_config("tiny")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    half = torch.float16 if real_dtypes else torch.float32
    torch.save(fake_eva_vit_state_dict(config, dtype=half), root / "eva_vit_g.pth")
    t5_width = 4096 if real_dtypes else 16
    torch.save(fake_blip2_checkpoint(config, t5_width=t5_width), root / "blip2_pretrained_flant5xxl.pth")
    torch.save(fake_vl_checkpoint(config), root / "VL_LLaMA_2_7B_Finetuned.pth")
    llama = write_llama_folder(
        root / LLAMA_FOLDER, config.text_config, dtype=half, safe=safe, shard_size=llama_shard_size
    )
    return {
        "eva_vit": root / "eva_vit_g.pth",
        "blip2": root / "blip2_pretrained_flant5xxl.pth",
        "vl": root / "VL_LLaMA_2_7B_Finetuned.pth",
        "llama": llama,
    }
