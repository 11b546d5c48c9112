"""Video-LLaMA-2 (vision-language branch) as a transformers model, its presets and checkpoint conversion."""

from transformers import AutoConfig

from .configuration import VideoLlamaConfig
from .convert import VIDEO_PLACEHOLDER_TOKEN
from .modeling import VideoLlamaForConditionalGeneration, VideoLlamaPreTrainedModel
from .presets import PRESETS, video_llama_config

__all__ = [
    "PRESETS",
    "VIDEO_PLACEHOLDER_TOKEN",
    "VideoLlamaConfig",
    "VideoLlamaForConditionalGeneration",
    "VideoLlamaPreTrainedModel",
    "video_llama_config",
]

# Lets AutoConfig (and AutoTokenizer, which reads config.json) recognise converted folders.
AutoConfig.register(VideoLlamaConfig.model_type, VideoLlamaConfig, exist_ok=True)
