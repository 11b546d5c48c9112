"""Named architectures of Video-LLaMA-2's vision-language branch: the released 7B/13B and a tiny one for tests.

Pretrained and Finetuned checkpoints of one size share the architecture, so a preset names a size only.

LLaMA-2 RMSNorm eps: Meta's params.json says 1e-5 for every size, and so does the HF `Llama-2-*-chat-hf`
config.json today; the 7B-chat HF config carried 1e-6 until Meta fixed it (Oct 2023, meta-llama/llama#771), and the
`llama-2-7b-chat-hf` folder inside the Video-LLaMA-2 repos may be a copy from before the fix. The presets use 1e-5;
the converter always takes the value from the LLaMA folder's own config.json, i.e. what the original code ran with.
"""

from .configuration import VideoLlamaConfig

# EVA ViT-g/14 as BLIP-2 uses it: EVA-CLIP-g's 40 blocks minus the last, MLP ratio 4.3637 -> 6144.
_EVA_VIT_G = dict(
    hidden_size=1408,
    intermediate_size=6144,
    num_hidden_layers=39,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    hidden_act="gelu",
    layer_norm_eps=1e-6,
    qkv_bias=True,
)
# BERT-base Q-Former of BLIP-2; only the query path exists here (use_qformer_text_input=False).
_IMAGE_QFORMER = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    cross_attention_frequency=2,
    layer_norm_eps=1e-12,
)
_VIDEO_QFORMER = dict(_IMAGE_QFORMER, num_hidden_layers=2, cross_attention_frequency=1)

_LLAMA_2 = {
    "7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008),
    "13b": dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, intermediate_size=13824),
}


def _llama_2_text_config(size: str) -> dict:
    return dict(
        _LLAMA_2[size],
        num_key_value_heads=_LLAMA_2[size]["num_attention_heads"],
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def _tiny() -> VideoLlamaConfig:
    # A few MB: small enough for CPU tests and a demo, but with every structural feature of the real model (cross
    # attention every 2nd / every layer, several frames, placeholder id past the vocabulary).
    qformer = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, layer_norm_eps=1e-12)
    return VideoLlamaConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            layer_norm_eps=1e-6,
            qkv_bias=True,
            # Blip2VisionConfig's default 1e-10 would make a random ViT blind to the pixels.
            initializer_range=0.02,
        ),
        qformer_config=dict(qformer, num_hidden_layers=2, cross_attention_frequency=2),
        video_qformer_config=dict(qformer, num_hidden_layers=2, cross_attention_frequency=1),
        text_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=1024,
            max_position_embeddings=512,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
        num_query_tokens=4,
        num_video_query_tokens=4,
        max_frames=8,
        video_token_index=1024,
    )


PRESETS = ("7b", "13b", "tiny")


def video_llama_config(preset: str) -> VideoLlamaConfig:
    """Return the `VideoLlamaConfig` of a named architecture: "7b", "13b" or "tiny".

    "7b"/"13b" match DAMO-NLP-SG/Video-LLaMA-2-{7B,13B}-{Pretrained,Finetuned}; "tiny" is a random few-MB model for
    tests and CPU demos (image size 28, 4 queries per frame, 4 video tokens, at most 8 frames, vocabulary 1024 with
    the placeholder id 1024 just past it, as LLaMA-2's 32000).
    """
    preset = preset.lower()
    if preset == "tiny":
        return _tiny()
    if preset not in _LLAMA_2:
        raise ValueError(f"unknown Video-LLaMA preset {preset!r}; choose one of {PRESETS}")
    return VideoLlamaConfig(
        vision_config=dict(_EVA_VIT_G),
        qformer_config=dict(_IMAGE_QFORMER),
        video_qformer_config=dict(_VIDEO_QFORMER),
        text_config=_llama_2_text_config(preset),
        num_query_tokens=32,
        num_video_query_tokens=32,
        max_frames=32,
        video_token_index=32000,
        ln_vision_eps=1e-5,
    )
