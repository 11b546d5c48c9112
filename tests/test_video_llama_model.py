"""Video-LLaMA-2 model on CPU with the tiny preset: training step, limits, save/load, generation, presets."""

import pytest
import torch

from ghostprobe.models.video_llama import (
    PRESETS,
    VideoLlamaConfig,
    VideoLlamaForConditionalGeneration,
    video_llama_config,
)
from helpers import tiny_inputs, tiny_model, tiny_video_tokenizer


def _no_dropout(config: VideoLlamaConfig) -> VideoLlamaConfig:
    for sub in (config.qformer_config, config.video_qformer_config):
        sub.hidden_dropout_prob = sub.attention_probs_dropout_prob = 0.0
    return config


def test_forward_backward_gives_finite_loss_and_gradients_everywhere():
    torch.manual_seed(0)
    model = VideoLlamaForConditionalGeneration(video_llama_config("tiny")).train()
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, batch=2, frames=3)
    labels = input_ids.clone()  # placeholder positions must be ignored by the loss, not crash it
    out = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, labels=labels)
    assert out.logits.shape == (*input_ids.shape, model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name in (
        "video_query_tokens",
        "video_frame_position_embedding.weight",
        "llama_proj.weight",
        "video_qformer.encoder.layer.1.crossattention.attention.key.weight",
        "query_tokens",
        "qformer.encoder.layer.0.crossattention.attention.key.weight",
        "visual_encoder.encoder.layers.0.self_attn.qkv.weight",
        "language_model.model.layers.0.self_attn.q_proj.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@torch.no_grad()
def test_video_features_shape_and_frame_order_comes_from_the_frame_position_embedding():
    model = tiny_model()
    _, _, pixel_values = tiny_inputs(model.config, batch=2, frames=4)

    def order_changes_features():
        features = model.get_video_features(pixel_values)
        assert features.shape == (2, model.config.num_video_query_tokens, model.config.text_config.hidden_size)
        return not torch.allclose(features, model.get_video_features(pixel_values.flip(1)), atol=1e-5)

    # Trained-like scales: at the 0.02 init, attention is nearly uniform and averages the frame order away.
    model.video_frame_position_embedding.weight.normal_()
    for layer in model.video_qformer.encoder.layer:
        layer.crossattention.attention.query.weight.normal_(std=0.5)
        layer.crossattention.attention.key.weight.normal_(std=0.5)
    assert order_changes_features()
    model.video_frame_position_embedding.weight.zero_()  # the video Q-Former alone is blind to frame order
    assert not order_changes_features()


def test_video_tokens_replace_the_placeholders_only():
    model = tiny_model()
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, batch=1, frames=2)
    other_clip = torch.randn_like(pixel_values)
    with torch.no_grad():
        a = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
        b = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=other_clip).logits
    first_video = 1  # bos comes before the placeholders, so causal attention keeps it blind to the clip
    assert torch.allclose(a[:, :first_video], b[:, :first_video])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_more_frames_than_max_frames_is_a_clear_error():
    model = tiny_model()
    limit = model.config.max_frames
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, batch=1, frames=limit + 1)
    with pytest.raises(ValueError, match=f"max_frames={limit}"):
        model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)


def test_wrong_number_of_placeholders_is_a_clear_error():
    model = tiny_model()
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, batch=2, frames=2)
    input_ids[1, 1] = 5  # one placeholder fewer in row 1
    with pytest.raises(ValueError, match="exactly 4 video placeholder"):
        model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=input_ids, attention_mask=attention_mask)


def test_save_and_load_round_trip_gives_identical_logits(tmp_path):
    model = tiny_model(seed=3)
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config)
    model.save_pretrained(tmp_path)
    loaded = VideoLlamaForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
        got = loaded(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
    assert torch.equal(expected, got)
    assert loaded.visual_encoder.post_layernorm.eps == model.config.ln_vision_eps


def test_generate_encodes_the_clip_once_and_matches_uncached_greedy_decoding():
    model = tiny_model(seed=1)
    tokenizer = tiny_video_tokenizer()
    config = model.config
    prompt = "[INST] <Video>" + "<ImageHere>" * config.num_video_query_tokens + "</Video> Is there a ghost ? [/INST]"
    batch = tokenizer([prompt, prompt], return_tensors="pt")
    assert (batch.input_ids == config.video_token_index).sum(1).tolist() == [config.num_video_query_tokens] * 2
    _, _, pixel_values = tiny_inputs(config, batch=2, frames=3)

    calls = []
    encode = model.get_video_features
    model.get_video_features = lambda pv: calls.append(pv.shape) or encode(pv)
    kwargs = dict(**batch, pixel_values=pixel_values, max_new_tokens=5, do_sample=False)
    cached = model.generate(**kwargs)
    assert len(calls) == 1, "pixel_values must only be used in the prefill step"
    uncached = model.generate(**kwargs, use_cache=False)

    assert cached.shape == (2, batch.input_ids.shape[1] + 5)
    assert torch.equal(cached, uncached)
    with torch.no_grad():
        first = model(**batch, pixel_values=pixel_values).logits[:, -1].argmax(-1)
    assert torch.equal(cached[:, batch.input_ids.shape[1]], first)
    assert (cached[:, batch.input_ids.shape[1] :] < config.text_config.vocab_size).all()


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    config = _no_dropout(video_llama_config("tiny"))
    plain = VideoLlamaForConditionalGeneration(config).train()
    checkpointed = VideoLlamaForConditionalGeneration(config).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.language_model.model.layers[0].gradient_checkpointing
    assert checkpointed.video_qformer.encoder.layer[0].gradient_checkpointing
    input_ids, attention_mask, pixel_values = tiny_inputs(config)
    losses = []
    for model in (plain, checkpointed):
        loss = model(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, labels=input_ids
        ).loss
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(plain.video_query_tokens.grad, checkpointed.video_query_tokens.grad)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_survives_a_config_round_trip(preset, tmp_path):
    config = video_llama_config(preset)
    config.save_pretrained(tmp_path)
    reloaded = VideoLlamaConfig.from_pretrained(tmp_path)
    assert reloaded.to_dict() == config.to_dict()
    with torch.device("meta"):
        VideoLlamaForConditionalGeneration(reloaded)


@pytest.mark.parametrize("preset,llm_width,llm_layers", [("7b", 4096, 32), ("13b", 5120, 40)])
def test_released_presets_match_the_original_architecture(preset, llm_width, llm_layers):
    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(video_llama_config(preset))
    vit = model.visual_encoder
    assert len(vit.encoder.layers) == 39  # EVA-CLIP-g's 40 blocks minus the last
    assert vit.post_layernorm.eps == 1e-5 and vit.encoder.layers[0].layer_norm1.eps == 1e-6
    assert vit.embeddings.position_embedding.shape == (1, 257, 1408)
    image_layers = model.qformer.encoder.layer
    assert [layer.has_cross_attention for layer in image_layers] == [i % 2 == 0 for i in range(12)]
    assert image_layers[0].crossattention.attention.key.in_features == 1408
    video_layers = model.video_qformer.encoder.layer
    assert len(video_layers) == 2 and all(layer.has_cross_attention for layer in video_layers)
    assert video_layers[0].crossattention.attention.key.in_features == 768
    assert model.video_frame_position_embedding.weight.shape == (32, 768)
    assert model.video_query_tokens.shape == (1, 32, 768)  # 32 LLM tokens per clip
    assert (model.llama_proj.in_features, model.llama_proj.out_features) == (768, llm_width)
    assert len(model.language_model.model.layers) == llm_layers
    assert model.get_input_embeddings().weight.shape[0] == 32000
    assert model.config.video_token_index == 32000
