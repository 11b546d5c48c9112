"""Tiny Video-LLaMA pieces made offline for tests: model, inputs, and fake ORIGINAL checkpoints.

The fake checkpoints use the original key names (EVA ViT, LAVIS BLIP-2 Q-Former, Video-LLaMA VL file, HF LLaMA
folder) with tiny shapes, including the keys a real conversion must drop.
"""

from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from ghostprobe.models.video_llama import VideoLlamaConfig, VideoLlamaForConditionalGeneration, video_llama_config
# The tokenizers live in the library (the tiny checkpoint uses them); re-exported for the tests.
from ghostprobe.models.video_llama.tiny import tiny_tokenizer, tiny_video_tokenizer  # noqa: F401


def tiny_model(seed: int = 0) -> VideoLlamaForConditionalGeneration:
    """A random tiny-preset model in eval mode."""
    torch.manual_seed(seed)
    return VideoLlamaForConditionalGeneration(video_llama_config("tiny")).eval()


def tiny_inputs(config: VideoLlamaConfig, batch: int = 2, frames: int = 3, text_len: int = 6, seed: int = 0):
    """(input_ids, attention_mask, pixel_values) with one clip's placeholders after a bos token per row."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(3, config.text_config.vocab_size, (batch, text_len), generator=generator)
    video = torch.full((batch, config.num_video_query_tokens), config.video_token_index)
    input_ids = torch.cat([torch.ones(batch, 1, dtype=torch.long), video, text], dim=1)
    size = config.vision_config.image_size
    pixel_values = torch.randn(batch, frames, 3, size, size, generator=generator)
    return input_ids, torch.ones_like(input_ids), pixel_values


def _rand(*shape, generator):
    return torch.randn(*shape, generator=generator) * 0.1


def fake_eva_vit_state_dict(config: VideoLlamaConfig, extra_blocks: int = 1, seed: int = 1) -> dict:
    """eva_vit_g.pth layout (no prefix), with `extra_blocks` more blocks than the model uses (EVA-CLIP-g's 40th)."""
    g, vc = torch.Generator().manual_seed(seed), config.vision_config
    d, inner, p = vc.hidden_size, vc.intermediate_size, vc.patch_size
    state = {
        "cls_token": _rand(1, 1, d, generator=g),
        "pos_embed": _rand(1, (vc.image_size // p) ** 2 + 1, d, generator=g),
        "patch_embed.proj.weight": _rand(d, 3, p, p, generator=g),
        "patch_embed.proj.bias": _rand(d, generator=g),
    }
    for i in range(vc.num_hidden_layers + extra_blocks):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[b + norm + ".weight"] = 1 + _rand(d, generator=g)
            state[b + norm + ".bias"] = _rand(d, generator=g)
        state[b + "attn.qkv.weight"] = _rand(3 * d, d, generator=g)
        state[b + "attn.q_bias"] = _rand(d, generator=g)
        state[b + "attn.v_bias"] = _rand(d, generator=g)
        state[b + "attn.proj.weight"], state[b + "attn.proj.bias"] = _rand(d, d, generator=g), _rand(d, generator=g)
        state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"] = _rand(inner, d, generator=g), _rand(inner, generator=g)
        state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"] = _rand(d, inner, generator=g), _rand(d, generator=g)
    return state


def _fake_qformer(prefix: str, qc, generator, with_text_parts: bool) -> dict:
    """LAVIS BERT Q-Former keys under `prefix` (e.g. "Qformer.bert."), cross-attention every `frequency` layers."""
    h, inner, enc = qc.hidden_size, qc.intermediate_size, qc.encoder_hidden_size
    state = {prefix + "embeddings.LayerNorm.weight": 1 + _rand(h, generator=generator),
             prefix + "embeddings.LayerNorm.bias": _rand(h, generator=generator),
             prefix + "embeddings.position_ids": torch.arange(qc.max_position_embeddings)[None]}
    if with_text_parts:
        state[prefix + "embeddings.word_embeddings.weight"] = _rand(qc.vocab_size, h, generator=generator)
        state[prefix + "embeddings.position_embeddings.weight"] = _rand(qc.max_position_embeddings, h,
                                                                        generator=generator)

    def linear(name, out_dim, in_dim):
        state[name + ".weight"], state[name + ".bias"] = (_rand(out_dim, in_dim, generator=generator),
                                                          _rand(out_dim, generator=generator))

    def norm(name):
        state[name + ".weight"], state[name + ".bias"] = 1 + _rand(h, generator=generator), _rand(h, generator=generator)

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


def fake_blip2_checkpoint(config: VideoLlamaConfig, seed: int = 2) -> dict:
    """blip2_pretrained_flant5xxl.pth layout: {"model": ln_vision, Qformer (with text parts), query_tokens, t5_proj}."""
    g, qc = torch.Generator().manual_seed(seed), config.qformer_config
    d = config.vision_config.hidden_size
    state = {"ln_vision.weight": 1 + _rand(d, generator=g), "ln_vision.bias": _rand(d, generator=g),
             "query_tokens": _rand(1, config.num_query_tokens, qc.hidden_size, generator=g),
             "t5_proj.weight": _rand(16, qc.hidden_size, generator=g), "t5_proj.bias": _rand(16, generator=g),
             "Qformer.cls.predictions.bias": _rand(qc.vocab_size, generator=g)}
    state.update(_fake_qformer("Qformer.bert.", qc, g, with_text_parts=True))
    return {"model": state}


def fake_vl_checkpoint(config: VideoLlamaConfig, seed: int = 3) -> dict:
    """VL_LLaMA_2_*.pth layout: trained video modules plus buffers to drop, optimizer state, config, epoch."""
    g, qc = torch.Generator().manual_seed(seed), config.video_qformer_config
    h, llm = qc.hidden_size, config.text_config.hidden_size
    head_dim = llm // config.text_config.num_attention_heads
    state = {"video_query_tokens": _rand(1, config.num_video_query_tokens, h, generator=g),
             "video_frame_position_embedding.weight": _rand(config.max_frames, h, generator=g),
             "llama_proj.weight": _rand(llm, h, generator=g), "llama_proj.bias": _rand(llm, generator=g),
             "Qformer.bert.embeddings.position_ids": torch.arange(512)[None]}
    for i in range(config.text_config.num_hidden_layers):
        state[f"llama_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.rand(head_dim // 2)
    state.update(_fake_qformer("video_Qformer.bert.", qc, g, with_text_parts=False))
    return {"model": state, "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 3e-5}]},
            "config": {"model": {"arch": "video_llama", "max_frame_pos": config.max_frames}},
            "scaler": {"scale": 65536.0}, "epoch": 2}


def make_tiny_llama_folder(path: Path, config: VideoLlamaConfig, safe: bool = True, seed: int = 4) -> Path:
    """An HF LLaMA folder (weights, config.json, tokenizer without the placeholder), as `llama-2-*-chat-hf/`."""
    torch.manual_seed(seed)
    llama = LlamaForCausalLM(config.text_config)
    if safe:
        llama.save_pretrained(path)
    else:  # the .bin layout of older HF folders: a pickle of plain tensors
        path.mkdir(parents=True, exist_ok=True)
        llama.config.save_pretrained(path)
        torch.save(llama.state_dict(), path / "pytorch_model.bin")
    tiny_tokenizer(config.text_config.vocab_size).save_pretrained(path)
    return path


def write_fake_originals(root: Path, config: VideoLlamaConfig | None = None, safe: bool = True) -> dict:
    """All four original sources under `root`; returns the convert_checkpoints keyword arguments for them."""
    config = config or video_llama_config("tiny")
    root.mkdir(parents=True, exist_ok=True)
    torch.save(fake_eva_vit_state_dict(config), root / "eva_vit_g.pth")
    torch.save(fake_blip2_checkpoint(config), root / "blip2_pretrained_flant5xxl.pth")
    torch.save(fake_vl_checkpoint(config), root / "VL_LLaMA_2_7B_Finetuned.pth")
    llama = make_tiny_llama_folder(root / "llama-2-7b-chat-hf", config, safe=safe)
    return {"eva_vit": root / "eva_vit_g.pth", "blip2": root / "blip2_pretrained_flant5xxl.pth",
            "vl": root / "VL_LLaMA_2_7B_Finetuned.pth", "llama": llama}
