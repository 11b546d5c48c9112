"""Conversion of original Video-LLaMA-2 checkpoints, on fake originals with the real key names and tiny shapes."""

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from transformers import AutoTokenizer

from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration, video_llama_config
from ghostprobe.models.video_llama.convert import (
    ConversionError,
    convert_checkpoints,
    convert_state_dicts,
    load_llama_folder,
    load_torch_checkpoint,
)
from ghostprobe.models.video_llama.fake_originals import (
    fake_blip2_checkpoint,
    fake_eva_vit_state_dict,
    fake_vl_checkpoint,
    write_fake_originals,
)
from ghostprobe.models.video_llama.modeling import VideoLlamaPreTrainedModel
from helpers import tiny_inputs

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
    reports = convert_checkpoints(
        tmp_path / "out", base_config=video_llama_config("tiny"), dtype="fp32", log=lambda line: None, **originals
    )
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
    command = [
        sys.executable,
        os.path.join(REPO_ROOT, "scripts", "convert_video_llama.py"),
        "--eva-vit",
        str(sources["eva_vit"]),
        "--blip2",
        str(sources["blip2"]),
        "--vl",
        str(sources["vl"]),
        "--llama",
        str(sources["llama"]),
        "--out",
        str(out),
        "--dtype",
        "fp16",
        "--preset",
        "tiny",
    ]
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
    sources = [
        ("eva", eva),
        ("blip2", fake_blip2_checkpoint(config)["model"]),
        ("vl", fake_vl_checkpoint(config)["model"]),
        ("llama", llama),
    ]
    return config, sources


def test_in_memory_sources_convert_cleanly():
    config, sources = _in_memory_sources()
    state, _ = convert_state_dicts(sources, config, torch.float32)
    assert "visual_encoder.encoder.layers.1.self_attn.qkv.bias" in state


def test_vision_weights_may_come_from_the_blip2_file_and_override_eva():
    config, sources = _in_memory_sources()
    eva = sources[0][1]
    blip2_with_vit = dict(sources[1][1], **{k: v + 1 for k, v in eva.items()})
    state, _ = convert_state_dicts(
        [(name, source) for name, source in [("blip2", blip2_with_vit), *sources[2:]]], config, torch.float32
    )  # no eva_vit_g.pth at all
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
    with pytest.raises(
        ConversionError, match=r"llama_proj\.weight: model \(64, 32\) vs vl:llama_proj\.weight \(64, 16\)"
    ):
        convert_state_dicts(sources, config)


def test_script_exits_non_zero_naming_the_bad_key_before_writing_anything(originals, tmp_path):
    vl = torch.load(originals["vl"], weights_only=True)
    del vl["model"]["video_query_tokens"]
    torch.save(vl, tmp_path / "broken_vl.pth")
    out = tmp_path / "converted"
    command = [
        sys.executable,
        os.path.join(REPO_ROOT, "scripts", "convert_video_llama.py"),
        "--preset",
        "tiny",
        "--eva-vit",
        str(originals["eva_vit"]),
        "--blip2",
        str(originals["blip2"]),
        "--vl",
        str(tmp_path / "broken_vl.pth"),
        "--llama",
        str(originals["llama"]),
        "--out",
        str(out),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 1
    assert "video_query_tokens" in result.stderr and "missing" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken_vl.pth"]  # no --out, no partial folder


def test_pickled_objects_need_the_explicit_opt_in(tmp_path):
    path = tmp_path / "with_objects.pth"
    torch.save({"model": {"w": torch.ones(1)}, "config": argparse.Namespace(lr=1e-5)}, path)
    with pytest.raises(ConversionError, match="no such file"):
        load_torch_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(ConversionError, match="--allow-pickle"):
        load_torch_checkpoint(path)
    assert load_torch_checkpoint(path, allow_pickle=True)["config"].lr == 1e-5


def _stored_tensors(folder):
    """Every tensor of a converted folder as stored (dtype included), read with safetensors' own reader."""
    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    )
    tensors = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as handle:
            tensors.update({key: handle.get_tensor(key) for key in handle.keys()})
    return tensors


def test_fp16_conversion_in_shards_stores_the_hand_placed_weights_with_the_qformer_side_in_fp32(originals, tmp_path):
    out = tmp_path / "out"
    convert_checkpoints(
        out,
        base_config=video_llama_config("tiny"),
        dtype="fp16",
        max_shard_size="100KB",
        log=lambda line: None,
        **originals,
    )
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 3 and shards[0].startswith("model-00001-of-")
    per_shard = {name: sum(1 for file in index["weight_map"].values() if file == name) for name in shards}
    header_bytes = {name: 8 + int.from_bytes((out / name).read_bytes()[:8], "little") for name in shards}
    # a tensor larger than the limit (the 131 kB embeddings) gets a shard of its own, as in save_pretrained
    assert all((out / name).stat().st_size - header_bytes[name] <= 100_000 for name in shards if per_shard[name] > 1)

    stored = _stored_tensors(out)
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float16" and config["architectures"] == ["VideoLlamaForConditionalGeneration"]
    by_hand = _model_built_by_hand(originals, VideoLlamaForConditionalGeneration.config_class.from_pretrained(out))
    keep_fp32 = set(VideoLlamaPreTrainedModel._keep_in_fp32_modules)
    expected = by_hand.state_dict()
    assert sorted(stored) == sorted(expected) == sorted(index["weight_map"])
    for key, tensor in expected.items():
        dtype = torch.float32 if keep_fp32.intersection(key.split(".")) else torch.float16
        assert stored[key].dtype == dtype and torch.equal(stored[key], tensor.to(dtype)), key
    assert stored["video_qformer.layernorm.weight"].dtype == torch.float32  # the rule above is not vacuous

    model, info = VideoLlamaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.language_model.lm_head.weight.dtype == torch.float16


def test_default_shard_size_writes_one_file_for_a_small_model(originals, tmp_path):
    convert_checkpoints(tmp_path / "out", base_config=video_llama_config("tiny"), log=lambda line: None, **originals)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_killed_conversion_leaves_nothing_at_out_and_the_next_run_cleans_up(originals, tmp_path):
    out = tmp_path / "converted"
    # The conversion kills itself (SIGKILL: no cleanup code runs) right after writing its first tensor.
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from ghostprobe.models.video_llama import video_llama_config
        from ghostprobe.models.video_llama.convert import convert_checkpoints
        from ghostprobe.models.video_llama.shard_writer import ShardedSafetensorsWriter

        write = ShardedSafetensorsWriter.write
        def write_then_die(self, key, tensor):
            write(self, key, tensor)
            os.kill(os.getpid(), signal.SIGKILL)
        ShardedSafetensorsWriter.write = write_then_die
        originals = {{key: Path(value) for key, value in {dict((k, str(v)) for k, v in originals.items())!r}.items()}}
        convert_checkpoints({str(out)!r}, base_config=video_llama_config("tiny"), max_shard_size="100KB",
                            log=lambda line: None, **originals)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not out.exists()
    (leftover,) = tmp_path.glob(".converted.partial-*")
    assert any(leftover.glob("model-*.safetensors"))  # it was killed while writing

    lines = []
    convert_checkpoints(out, base_config=video_llama_config("tiny"), log=lines.append, **originals)
    assert not leftover.exists() and any(str(leftover) in line for line in lines)
    assert VideoLlamaForConditionalGeneration.from_pretrained(out) is not None


def test_an_out_folder_holding_files_is_refused_and_left_alone(originals, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConversionError, match="already exists and is not an empty folder"):
        convert_checkpoints(tmp_path, base_config=video_llama_config("tiny"), log=lambda line: None, **originals)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_legacy_format_pth_is_read_whole_and_converts_the_same(originals, tmp_path):
    # Files written before torch 1.6 are no zip archives and cannot be mapped.
    legacy = tmp_path / "eva_vit_g.pth"
    torch.save(torch.load(originals["eva_vit"], weights_only=True), legacy, _use_new_zipfile_serialization=False)
    convert_checkpoints(
        tmp_path / "legacy",
        base_config=video_llama_config("tiny"),
        log=lambda line: None,
        **dict(originals, eva_vit=legacy),
    )
    convert_checkpoints(tmp_path / "zip", base_config=video_llama_config("tiny"), log=lambda line: None, **originals)
    legacy_tensors, zip_tensors = _stored_tensors(tmp_path / "legacy"), _stored_tensors(tmp_path / "zip")
    assert legacy_tensors.keys() == zip_tensors.keys()
    assert all(torch.equal(legacy_tensors[key], zip_tensors[key]) for key in zip_tensors)


def test_llama_index_naming_an_absent_shard_fails_naming_it(originals, tmp_path):
    llama = tmp_path / "llama"
    llama.mkdir()
    for path in originals["llama"].iterdir():
        (llama / path.name).write_bytes(path.read_bytes())
    (llama / "model.safetensors").rename(llama / "model-00001-of-00002.safetensors")
    weight_map = {key: "model-00001-of-00002.safetensors" for key in load_llama_folder(originals["llama"])}
    weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors"
    (llama / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(ConversionError, match=r"lists \['model-00002-of-00002\.safetensors'\] but the folder lacks"):
        convert_checkpoints(
            tmp_path / "out",
            base_config=video_llama_config("tiny"),
            log=lambda line: None,
            **dict(originals, llama=llama),
        )


def test_shard_writer_takes_tensors_in_any_order_and_safetensors_reads_them_back(tmp_path):
    from ghostprobe.models.video_llama.shard_writer import ShardedSafetensorsWriter

    generator = torch.Generator().manual_seed(0)
    tensors = {
        "a.fp16": torch.randn(3, 5, generator=generator).half(),  # odd byte count before wider tensors
        "b.fp32": torch.randn(7, generator=generator),
        "c.bf16": torch.randn(2, 2, generator=generator).bfloat16(),
        "d.ids": torch.arange(6).reshape(2, 3),
        "e.scalar": torch.tensor(1.5),
        "f.big": torch.randn(64, 64, generator=generator),
    }
    writer = ShardedSafetensorsWriter(
        tmp_path, {k: (tuple(t.shape), t.dtype) for k, t in tensors.items()}, max_shard_size=200
    )
    for key in reversed(list(tensors)):
        writer.write(key, tensors[key])
    writer.close()
    stored = _stored_tensors(tmp_path)
    assert stored.keys() == tensors.keys()
    assert all(stored[k].dtype == t.dtype and torch.equal(stored[k], t) for k, t in tensors.items())
    assert len(json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]) == len(tensors)


def test_shard_writer_refuses_to_finish_with_a_planned_tensor_missing(tmp_path):
    from ghostprobe.models.video_llama.shard_writer import ShardedSafetensorsWriter

    writer = ShardedSafetensorsWriter(tmp_path, {"a": ((2,), torch.float32), "b": ((3,), torch.float16)}, "1GB")
    writer.write("a", torch.ones(2))
    with pytest.raises(ValueError, match="b: 12 bytes, the plan says 6"):
        writer.write("b", torch.ones(3))  # fp32 where fp16 was planned
    with pytest.raises(RuntimeError, match=r"1 planned tensors were never written, e.g. \['b'\]"):
        writer.close()
