"""Video-LLaMA-2's vision-language branch assembled from transformers' own BLIP-2 and LLaMA blocks.

Data path of one clip of T frames (T <= max_frames):
    frames -> EVA ViT-g (`Blip2VisionModel`, its post_layernorm is the original `ln_vision`)
           -> image Q-Former (`Blip2QFormerModel`, `num_query_tokens` queries per frame)
           -> + learned frame position embedding -> T * num_query_tokens tokens
           -> video Q-Former (`Blip2QFormerModel`, `num_video_query_tokens` queries)
           -> llama_proj -> written over the `<ImageHere>` placeholder positions of the prompt -> LLaMA-2.
"""

import contextlib

import torch
from torch import nn
from torch.nn import functional as F
from transformers import Blip2QFormerModel, Blip2VisionModel, GenerationMixin, LlamaForCausalLM, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration import VideoLlamaConfig


class LayerNormFp32(nn.LayerNorm):
    """The original's `ln_vision` (BLIP-2's LayerNorm): computed in fp32 whatever the input, returned in its dtype."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        out = F.layer_norm(hidden_states.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(hidden_states.dtype)


class VideoLlamaPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading flags shared by the Video-LLaMA model classes."""

    config: VideoLlamaConfig
    config_class = VideoLlamaConfig
    base_model_prefix = "video_llama"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    # The Q-Formers do not support flash-attention in transformers' BLIP-2 either.
    _supports_flash_attn = False
    # As transformers' BLIP-2 and the original (Q-Formers in fp32 under autocast): an fp16 load keeps the Q-Former
    # side in fp32, where the small trained part of the model lives and where fp16 overflow would hurt most.
    _keep_in_fp32_modules = [
        "query_tokens",
        "qformer",
        "video_frame_position_embedding",
        "video_query_tokens",
        "video_qformer",
        "post_layernorm",
    ]
    _no_split_modules = ["Blip2EncoderLayer", "Blip2QFormerLayer", "LlamaDecoderLayer"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, VideoLlamaForConditionalGeneration):
            # The original draws both query token sets from N(0, 0.02) (BERT's initializer_range).
            std = module.config.qformer_config.initializer_range
            init.normal_(module.query_tokens, mean=0.0, std=std)
            init.normal_(module.video_query_tokens, mean=0.0, std=std)


class VideoLlamaForConditionalGeneration(VideoLlamaPreTrainedModel, GenerationMixin):
    """Video-LLaMA (first generation) with a LLaMA-2-chat backbone: video frames + prompt -> next-token logits.

    Attribute names follow the original checkpoint (`visual_encoder`, `query_tokens`, `qformer`,
    `video_frame_position_embedding`, `video_query_tokens`, `video_qformer`, `llama_proj`), except that the LLM is
    `language_model` as in transformers' other vision-language models; see `convert.RENAME_RULES`.
    """

    def __init__(self, config: VideoLlamaConfig):
        super().__init__(config)
        qformer_width = config.qformer_config.hidden_size
        self.visual_encoder = Blip2VisionModel._from_config(config.vision_config)
        # The original ln_vision: a default-eps LayerNorm (Blip2VisionModel would use the blocks' eps) run in fp32.
        self.visual_encoder.post_layernorm = LayerNormFp32(config.vision_config.hidden_size, eps=config.ln_vision_eps)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, qformer_width))
        self.qformer = Blip2QFormerModel._from_config(config.qformer_config)
        self.video_frame_position_embedding = nn.Embedding(config.max_frames, qformer_width)
        self.video_query_tokens = nn.Parameter(torch.zeros(1, config.num_video_query_tokens, qformer_width))
        self.video_qformer = Blip2QFormerModel._from_config(config.video_qformer_config)
        self.llama_proj = nn.Linear(config.video_qformer_config.hidden_size, config.text_config.hidden_size)
        self.language_model = LlamaForCausalLM._from_config(config.text_config)
        # The dtype the Q-Formers and llama_proj run in under autocast (the original: fp16 on GPU); None: their
        # weights' dtype. Set by precision.apply_precision from conf/hardware/.
        self.video_autocast_dtype: torch.dtype | None = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encode clips into LLM input embeddings.

        Args:
            pixel_values: float tensor [B, T, 3, H, W], frames normalised with the CLIP mean/std, T <= max_frames.

        Returns:
            [B, num_video_query_tokens, text hidden size] in the dtype of `llama_proj`.
        """
        if pixel_values.dim() != 5:
            raise ValueError(
                f"pixel_values must be [batch, frames, 3, height, width], got shape {tuple(pixel_values.shape)}"
            )
        batch_size, num_frames = pixel_values.shape[:2]
        if num_frames > self.config.max_frames:
            raise ValueError(
                f"got {num_frames} frames per clip but Video-LLaMA's frame position embedding has "
                f"max_frames={self.config.max_frames} rows: sample at most {self.config.max_frames} frames"
            )
        vision_dtype = self.visual_encoder.embeddings.patch_embedding.weight.dtype
        frames = pixel_values.flatten(0, 1).to(vision_dtype)
        frame_patches = self.visual_encoder(pixel_values=frames).last_hidden_state  # ln_vision already applied
        with self._video_autocast(frames.device):
            return self._encode_frame_patches(frame_patches, batch_size, num_frames)

    def _video_autocast(self, device: torch.device):
        if self.video_autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.video_autocast_dtype)

    def _encode_frame_patches(self, frame_patches: torch.Tensor, batch_size: int, num_frames: int) -> torch.Tensor:
        """ViT patches of every frame -> image Q-Former -> + frame positions -> video Q-Former -> llama_proj."""
        if self.video_autocast_dtype is None:
            frame_patches = frame_patches.to(self.query_tokens.dtype)
        queries = self.query_tokens.expand(frame_patches.shape[0], -1, -1)
        frame_queries = self.qformer(query_embeds=queries, encoder_hidden_states=frame_patches).last_hidden_state
        frame_queries = frame_queries.unflatten(0, (batch_size, num_frames))  # [B, T, Q, D]

        frame_ids = torch.arange(num_frames, device=frame_queries.device)
        frame_positions = self.video_frame_position_embedding(frame_ids)  # [T, D]
        frame_queries = frame_queries + frame_positions[None, :, None, :].to(frame_queries.dtype)
        clip_tokens = frame_queries.flatten(1, 2)  # [B, T * Q, D]

        video_queries = self.video_query_tokens.expand(batch_size, -1, -1)
        video_tokens = self.video_qformer(query_embeds=video_queries, encoder_hidden_states=clip_tokens)
        return self.llama_proj(video_tokens.last_hidden_state.to(self.llama_proj.weight.dtype))

    def _embed_prompt(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings of the prompt with the placeholder positions replaced by the video tokens."""
        is_video = input_ids == self.config.video_token_index
        # The placeholder id may lie past the vocabulary (as in the original); embed a harmless id in its place.
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_video, 0))
        per_row = is_video.sum(dim=1)
        if pixel_values is None:
            if bool(per_row.any()):
                raise ValueError(
                    f"input_ids contain the video placeholder (id {self.config.video_token_index}) but no "
                    "pixel_values were given"
                )
            return inputs_embeds
        expected = self.config.num_video_query_tokens
        if bool((per_row != expected).any()):
            raise ValueError(
                f"each prompt needs exactly {expected} video placeholder tokens (id {self.config.video_token_index},"
                f" config.num_video_query_tokens), got {per_row.tolist()} per row: build prompts with the processor"
            )
        video_embeds = self.get_video_features(pixel_values).to(inputs_embeds.device, inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(is_video.unsqueeze(-1), video_embeds)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Next-token logits (and the LM loss when `labels` is given) for prompts holding one clip each.

        Args:
            input_ids: [B, L] prompt ids; each row holds `num_video_query_tokens` copies of `video_token_index`
                when `pixel_values` is given.
            attention_mask: [B, L], 1 for real tokens.
            pixel_values: [B, T, 3, H, W] frames; only needed in the first (prefill) step of generation.
            labels: [B, L], -100 where no loss is wanted; placeholder positions are never scored.
            cache: the LLM's key/value cache (filled by `generate`).
            inputs_embeds: ready-made LLM input embeddings instead of `input_ids` (then `pixel_values` is ignored).

        Returns:
            The LLM's `CausalLMOutputWithPast` (loss, logits, cache).
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids (or inputs_embeds)")
            inputs_embeds = self._embed_prompt(input_ids, pixel_values)
        if labels is not None:
            labels = labels.masked_fill(labels == self.config.video_token_index, -100)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
