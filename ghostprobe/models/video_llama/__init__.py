"""Video-LLaMA-2 (vision-language branch) as a transformers model, its presets and checkpoint conversion."""

from .configuration import VideoLlamaConfig
from .modeling import VideoLlamaForConditionalGeneration, VideoLlamaPreTrainedModel
from .presets import PRESETS, video_llama_config

VIDEO_PLACEHOLDER_TOKEN = "<ImageHere>"

__all__ = [
    "PRESETS",
    "VIDEO_PLACEHOLDER_TOKEN",
    "VideoLlamaConfig",
    "VideoLlamaForConditionalGeneration",
    "VideoLlamaPreTrainedModel",
    "video_llama_config",
]
