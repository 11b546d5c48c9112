"""Conversion of original Video-LLaMA-2 checkpoints, on fake originals with the real key names and tiny shapes."""

import argparse
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration, video_llama_config
from ghostprobe.models.video_llama.convert import (
    ConversionError,
    convert_checkpoints,
    convert_state_dicts,
    load_llama_folder,
    load_torch_checkpoint,
)
from helpers import (
    fake_blip2_checkpoint,
    fake_eva_vit_state_dict,
    fake_vl_checkpoint,
    tiny_inputs,
    write_fake_originals,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source_config():
    # The LLaMA folder says rms_norm_eps 1e-6 (as the 7B-chat folder did in 2023) while the preset says 1e-5:
    # the converted model must follow the folder.
    config = video_llama_config("tiny")
    config.text_config.rms_norm_eps = 1e-6
    return config


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    return write_fake_originals(tmp_path_factory.mktemp("originals"), _source_config(), safe=True)


def _copy_linear(module, state, name):
    module.weight.copy_(state[name + ".weight"])
    module.bias.copy_(state[name + ".bias"])


def _place_qformer_by_hand(qformer, state, prefix):
    _copy_linear(qformer.layernorm, state, prefix + "embeddings.LayerNorm")
    for i, layer in enumerate(qformer.encoder.layer):
        kinds = ["attention"] + (["crossattention"] if layer.has_cross_attention else [])
        for kind in kinds:
            block, src = getattr(layer, kind), f"{prefix}encoder.layer.{i}.{kind}"
            for projection in ("query", "key", "value"):
                _copy_linear(getattr(block.attention, projection), state, f"{src}.self.{projection}")
            _copy_linear(block.output.dense, state, f"{src}.output.dense")
            _copy_linear(block.output.LayerNorm, state, f"{src}.output.LayerNorm")
        _copy_linear(layer.intermediate_query.dense, state, f"{prefix}encoder.layer.{i}.intermediate_query.dense")
        _copy_linear(layer.output_query.dense, state, f"{prefix}encoder.layer.{i}.output_query.dense")
        _copy_linear(layer.output_query.LayerNorm, state, f"{prefix}encoder.layer.{i}.output_query.LayerNorm")


@torch.no_grad()
def _model_built_by_hand(originals, config):
    """The same original weights placed module by module, independently of the converter's rename table."""
    eva = torch.load(originals["eva_vit"], weights_only=True)
    blip2 = torch.load(originals["blip2"], weights_only=True)["model"]
    vl = torch.load(originals["vl"], weights_only=True)["model"]
    model = VideoLlamaForConditionalGeneration(config).eval()
    vit = model.visual_encoder
    vit.embeddings.class_embedding.copy_(eva["cls_token"])
    vit.embeddings.position_embedding.copy_(eva["pos_embed"])
    _copy_linear(vit.embeddings.patch_embedding, eva, "patch_embed.proj")
    for i, layer in enumerate(vit.encoder.layers):
        _copy_linear(layer.layer_norm1, eva, f"blocks.{i}.norm1")
        _copy_linear(layer.layer_norm2, eva, f"blocks.{i}.norm2")
        layer.self_attn.qkv.weight.copy_(eva[f"blocks.{i}.attn.qkv.weight"])
        q_bias, v_bias = eva[f"blocks.{i}.attn.q_bias"], eva[f"blocks.{i}.attn.v_bias"]
        layer.self_attn.qkv.bias.copy_(torch.cat([q_bias, torch.zeros_like(q_bias), v_bias]))
        _copy_linear(layer.self_attn.projection, eva, f"blocks.{i}.attn.proj")
        _copy_linear(layer.mlp.fc1, eva, f"blocks.{i}.mlp.fc1")
        _copy_linear(layer.mlp.fc2, eva, f"blocks.{i}.mlp.fc2")
    _copy_linear(vit.post_layernorm, blip2, "ln_vision")
    model.query_tokens.copy_(blip2["query_tokens"])
    _place_qformer_by_hand(model.qformer, blip2, "Qformer.bert.")
    model.video_query_tokens.copy_(vl["video_query_tokens"])
    model.video_frame_position_embedding.weight.copy_(vl["video_frame_position_embedding.weight"])
    _place_qformer_by_hand(model.video_qformer, vl, "video_Qformer.bert.")
    _copy_linear(model.llama_proj, vl, "llama_proj")
    model.language_model.load_state_dict(load_llama_folder(originals["llama"]))
    return model


def test_converted_model_loads_completely_and_matches_weights_placed_by_hand(originals, tmp_path):
    reports = convert_checkpoints(tmp_path / "out", base_config=video_llama_config("tiny"), dtype="fp32",
                                  log=lambda line: None, **originals)
    model, info = VideoLlamaForConditionalGeneration.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.text_config.rms_norm_eps == 1e-6  # from the LLaMA folder, not the preset

    by_hand = _model_built_by_hand(originals, model.config)
    converted_state = model.state_dict()
    for key, tensor in by_hand.state_dict().items():
        assert torch.equal(converted_state[key], tensor), key
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, frames=3)
    with torch.no_grad():
        expected = by_hand(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
        got = model.eval()(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
    assert torch.equal(got, expected)

    eva_report, blip2_report, vl_report, llama_report = reports
    assert eva_report.dropped["ViT blocks past the 2 the model uses (EVA-CLIP-g's last block)"] == 13  # 1 block
    assert blip2_report.dropped["BLIP-2 FlanT5 side, unused"] == 2
    # two Q-Former position_ids + one rotary inv_freq per LLaMA layer
    assert vl_report.dropped["buffer the model rebuilds"] == 2 + model.config.text_config.num_hidden_layers
    assert llama_report.mapped == len(model.language_model.state_dict()) and not llama_report.overridden


def test_script_converts_bin_llama_folder_to_fp16_with_placeholder_token(tmp_path):
    sources = write_fake_originals(tmp_path / "originals", _source_config(), safe=False)
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO_ROOT, "scripts", "convert_video_llama.py"),
               "--eva-vit", str(sources["eva_vit"]), "--blip2", str(sources["blip2"]), "--vl", str(sources["vl"]),
               "--llama", str(sources["llama"]), "--out", str(out), "--dtype", "fp16", "--preset", "tiny"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "VL_LLaMA_2_7B_Finetuned.pth: 58 mapped, 4 dropped" in result.stdout

    model = VideoLlamaForConditionalGeneration.from_pretrained(out).eval()
    assert model.language_model.lm_head.weight.dtype == torch.float16
    assert model.video_qformer.layernorm.weight.dtype == torch.float32  # Q-Former side kept fp32
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<ImageHere>") == model.config.video_token_index == 1024
    assert tokenizer.pad_token == tokenizer.unk_token
    input_ids, attention_mask, pixel_values = tiny_inputs(model.config, batch=1, frames=2)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
    assert torch.isfinite(logits.float()).all()


def _in_memory_sources():
    config = video_llama_config("tiny")
    eva = {f"visual_encoder.{k}": v for k, v in fake_eva_vit_state_dict(config).items()}
    with torch.device("meta"):
        llama = VideoLlamaForConditionalGeneration(config).language_model.state_dict()
    llama = {f"llama_model.{k}": torch.zeros(v.shape) for k, v in llama.items()}
    sources = [("eva", eva), ("blip2", fake_blip2_checkpoint(config)["model"]),
               ("vl", fake_vl_checkpoint(config)["model"]), ("llama", llama)]
    return config, sources


def test_in_memory_sources_convert_cleanly():
    config, sources = _in_memory_sources()
    state, _ = convert_state_dicts(sources, config, torch.float32)
    assert "visual_encoder.encoder.layers.1.self_attn.qkv.bias" in state


def test_vision_weights_may_come_from_the_blip2_file_and_override_eva():
    config, sources = _in_memory_sources()
    eva = sources[0][1]
    blip2_with_vit = dict(sources[1][1], **{k: v + 1 for k, v in eva.items()})
    state, _ = convert_state_dicts([(name, source) for name, source in [("blip2", blip2_with_vit), *sources[2:]]],
                                   config, torch.float32)  # no eva_vit_g.pth at all
    assert torch.equal(state["visual_encoder.embeddings.class_embedding"], eva["visual_encoder.cls_token"] + 1)
    _, reports = convert_state_dicts([sources[0], ("blip2", blip2_with_vit), *sources[2:]], config, torch.float32)
    assert len(reports[1].overridden) == len([k for k in eva if not k.startswith("visual_encoder.blocks.2.")])


def test_missing_key_fails_naming_it():
    config, sources = _in_memory_sources()
    del sources[2][1]["llama_proj.bias"]
    with pytest.raises(ConversionError, match=r"1 model keys missing[\s\S]*llama_proj\.bias"):
        convert_state_dicts(sources, config)


def test_unexpected_key_fails_naming_it():
    config, sources = _in_memory_sources()
    sources[2][1]["video_Qformer.bert.encoder.layer.0.attention.self.rel_bias"] = torch.zeros(3)
    with pytest.raises(ConversionError, match=r"unexpected[\s\S]*vl: video_Qformer\.bert\.encoder\.layer\.0\."):
        convert_state_dicts(sources, config)


def test_misshaped_key_fails_naming_it_with_both_shapes():
    config, sources = _in_memory_sources()
    sources[2][1]["llama_proj.weight"] = torch.zeros(64, 16)
    with pytest.raises(ConversionError, match=r"llama_proj\.weight: model \(64, 32\) vs vl:llama_proj\.weight \(64, 16\)"):
        convert_state_dicts(sources, config)


def test_script_exits_non_zero_naming_the_bad_key(originals, tmp_path):
    vl = torch.load(originals["vl"], weights_only=True)
    del vl["model"]["video_query_tokens"]
    torch.save(vl, tmp_path / "broken_vl.pth")
    command = [sys.executable, os.path.join(REPO_ROOT, "scripts", "convert_video_llama.py"), "--preset", "tiny",
               "--eva-vit", str(originals["eva_vit"]), "--blip2", str(originals["blip2"]),
               "--vl", str(tmp_path / "broken_vl.pth"), "--llama", str(originals["llama"]), "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE="1"))
    assert result.returncode == 1
    assert "video_query_tokens" in result.stderr and "missing" in result.stderr
    assert not (tmp_path / "model.safetensors").exists()


def test_pickled_objects_need_the_explicit_opt_in(tmp_path):
    path = tmp_path / "with_objects.pth"
    torch.save({"model": {"w": torch.ones(1)}, "config": argparse.Namespace(lr=1e-5)}, path)
    with pytest.raises(ConversionError, match="no such file"):
        load_torch_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(ConversionError, match="--allow-pickle"):
        load_torch_checkpoint(path)
    assert load_torch_checkpoint(path, allow_pickle=True)["config"].lr == 1e-5
