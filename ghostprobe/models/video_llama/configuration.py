"""Configuration of Video-LLaMA-2's vision-language branch, built from transformers' BLIP-2 and LLaMA configs."""

from transformers import Blip2QFormerConfig, Blip2VisionConfig, LlamaConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec


class VideoLlamaConfig(PretrainedConfig):
    """Config of `VideoLlamaForConditionalGeneration` (Video-LLaMA first generation, vision-language branch).

    Sub-configs:
        vision_config: EVA ViT-g/14 as a `Blip2VisionConfig` (39 blocks, 1408 wide, LayerNorm eps 1e-6).
        qformer_config: the frozen BLIP-2 image Q-Former (`Blip2QFormerConfig`, cross-attention every 2nd layer).
        video_qformer_config: the trained video Q-Former (2 layers, cross-attention in every layer).
        text_config: the LLaMA-2-chat `LlamaConfig`.

    Other fields:
        num_query_tokens: image Q-Former queries per frame (32).
        num_video_query_tokens: video Q-Former queries per clip = LLM tokens per clip (32).
        max_frames: rows of the learned frame position embedding, hence the most frames a clip may have (32).
        video_token_index: id of the `<ImageHere>` placeholder. The prompt holds `num_video_query_tokens` copies of
            it; the model overwrites those positions with the projected video tokens and never looks the id up in
            the embedding matrix (as the original), so the id may lie past the LLM vocabulary (32000 for LLaMA-2).
        ln_vision_eps: eps of the LayerNorm after the ViT (`ln_vision`, torch default 1e-5 in the original), which
            differs from the 1e-6 of the ViT blocks.
    """

    model_type = "ghostprobe_video_llama"
    attribute_map = {"video_token_id": "video_token_index"}
    sub_configs_defaults = {
        "vision_config": Blip2VisionConfig,
        "qformer_config": Blip2QFormerConfig,
        "video_qformer_config": SubConfigSpec(
            Blip2QFormerConfig,
            init_kwargs={"num_hidden_layers": 2, "cross_attention_frequency": 1, "encoder_hidden_size": 768},
        ),
        "text_config": LlamaConfig,
    }

    vision_config: dict | PretrainedConfig | None = None
    qformer_config: dict | PretrainedConfig | None = None
    video_qformer_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    num_query_tokens: int = 32
    num_video_query_tokens: int = 32
    max_frames: int = 32
    video_token_index: int = 32000
    ln_vision_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The widths the Q-Formers attend to are fixed by the modules before them; deriving them here means a preset
        # cannot get them out of step.
        self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size
        self.video_qformer_config.encoder_hidden_size = self.qformer_config.hidden_size
        if self.video_qformer_config.hidden_size != self.qformer_config.hidden_size:
            raise ValueError(
                "video_qformer_config.hidden_size must equal qformer_config.hidden_size (the frame position "
                f"embedding is added to image Q-Former outputs), got {self.video_qformer_config.hidden_size} and "
                f"{self.qformer_config.hidden_size}"
            )
