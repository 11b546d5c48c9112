"""Convert the original Video-LLaMA-2 checkpoints into a `VideoLlamaForConditionalGeneration` folder.

Sources, read in the original code's load order (a later source overrides an earlier one for the same key):
  1. `eva_vit_g.pth`: plain EVA-CLIP-g state dict (`blocks.*`, `cls_token`, ...): prefixed with `visual_encoder.`.
  2. `blip2_pretrained_flant5xxl.pth`: `{"model": {...}}` with `ln_vision.*`, `Qformer.*`, `query_tokens`, ... .
  3. `VL_LLaMA_2_*.pth`: `{"model": {...}, "optimizer", "config", ...}` with the trained video modules.
  4. `llama-2-*-chat-hf/`: HF LLaMA folder (safetensors or .bin, sharded or not): prefixed with `llama_model.`.
Every key then goes through RENAME_RULES: mapped to a transformers key or dropped for a stated reason; any key
no rule matches, any model key left without a value and any shape mismatch stops the conversion naming the keys.
"""

import copy
import json
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig

from ghostprobe.dtypes import DTYPES

from .configuration import VideoLlamaConfig
from .modeling import VideoLlamaForConditionalGeneration, VideoLlamaPreTrainedModel
from .prompt_format import VIDEO_PLACEHOLDER as VIDEO_PLACEHOLDER_TOKEN  # the original's <ImageHere>



class ConversionError(RuntimeError):
    """The sources do not fit the model: the message names the keys and what to do."""


def _qformer_rules(src: str, dst: str) -> list[tuple[str, str]]:
    """Renames of one BERT Q-Former (query path only), as in transformers' BLIP-2 conversion."""
    layer = rf"{src}\.bert\.encoder\.layer\.(\d+)"
    return [
        (rf"{src}\.bert\.embeddings\.LayerNorm\.(weight|bias)", rf"{dst}.layernorm.\1"),
        (rf"{layer}\.(attention|crossattention)\.self\.(query|key|value)\.(weight|bias)",
         rf"{dst}.encoder.layer.\1.\2.attention.\3.\4"),
        (rf"{layer}\.(attention|crossattention)\.output\.(dense|LayerNorm)\.(weight|bias)",
         rf"{dst}.encoder.layer.\1.\2.output.\3.\4"),
        (rf"{layer}\.(intermediate_query|output_query)\.(dense|LayerNorm)\.(weight|bias)",
         rf"{dst}.encoder.layer.\1.\2.\3.\4"),
    ]


_VIT_BLOCK = r"visual_encoder\.blocks\.(\d+)"
_VIT_LAYER = r"visual_encoder.encoder.layers.\1"

# (original key regex, full match) -> transformers key template, or DROP(reason). First matching rule wins.
RENAME_RULES: list[tuple[str, str]] = [
    # EVA ViT-g -> Blip2VisionModel (q_bias/v_bias are fused into qkv.bias afterwards, see _fuse_qkv_biases)
    (r"visual_encoder\.cls_token", "visual_encoder.embeddings.class_embedding"),
    (r"visual_encoder\.pos_embed", "visual_encoder.embeddings.position_embedding"),
    (r"visual_encoder\.patch_embed\.proj\.(weight|bias)", r"visual_encoder.embeddings.patch_embedding.\1"),
    (rf"{_VIT_BLOCK}\.norm([12])\.(weight|bias)", rf"{_VIT_LAYER}.layer_norm\2.\3"),
    (rf"{_VIT_BLOCK}\.attn\.qkv\.weight", rf"{_VIT_LAYER}.self_attn.qkv.weight"),
    (rf"{_VIT_BLOCK}\.attn\.(q_bias|v_bias)", rf"{_VIT_LAYER}.self_attn.\2"),
    (rf"{_VIT_BLOCK}\.attn\.proj\.(weight|bias)", rf"{_VIT_LAYER}.self_attn.projection.\2"),
    (rf"{_VIT_BLOCK}\.mlp\.(fc1|fc2)\.(weight|bias)", rf"{_VIT_LAYER}.mlp.\2.\3"),
    (r"ln_vision\.(weight|bias)", r"visual_encoder.post_layernorm.\1"),
    # Image Q-Former (BLIP-2) and video Q-Former (Video-LLaMA) share the BERT layout.
    (r"query_tokens", "query_tokens"),
    *_qformer_rules("Qformer", "qformer"),
    (r"video_query_tokens", "video_query_tokens"),
    (r"video_frame_position_embedding\.weight", "video_frame_position_embedding.weight"),
    *_qformer_rules("video_Qformer", "video_qformer"),
    (r"llama_proj\.(weight|bias)", r"llama_proj.\1"),
    # Buffers the model rebuilds itself; checked before the LLaMA rule so the VL file's inv_freq copies drop.
    (r".*\.position_ids", "DROP(buffer the model rebuilds)"),
    (r".*\.rotary_emb\.inv_freq", "DROP(buffer the model rebuilds)"),
    (r"llama_model\.(.+)", r"language_model.\1"),
    # Parts of the sources that Video-LLaMA's vision-language branch does not contain.
    (r"(video_)?Qformer\.cls\..+", "DROP(Q-Former text head, unused)"),
    (r"(video_)?Qformer\.bert\.embeddings\.(word|position)_embeddings\..+", "DROP(Q-Former text embeddings, unused)"),
    (r"(video_)?Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\..+", "DROP(Q-Former text FFN, unused)"),
    (r"t5_(proj|model)\..+", "DROP(BLIP-2 FlanT5 side, unused)"),
    (r"(vision_proj|text_proj|itm_head)\..+|temp", "DROP(BLIP-2 stage-1 heads, unused)"),
    (r"visual_encoder\.(norm|fc_norm|head)\..+", "DROP(EVA-CLIP head, BLIP-2 uses the trunk only)"),
    (r"audio_.+", "DROP(audio branch, not part of the VL model)"),
]
_COMPILED_RULES = [(re.compile(pattern), target) for pattern, target in RENAME_RULES]
_DROP = re.compile(r"DROP\((.+)\)")


def rename_key(key: str, num_vision_layers: int) -> tuple[str | None, str | None]:
    """Map one original-namespace key: (transformers key, None), (None, drop reason) or (None, None) if unknown."""
    for pattern, target in _COMPILED_RULES:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        if dropped := _DROP.fullmatch(target):
            return None, dropped.group(1)
        if key.startswith("visual_encoder.blocks.") and int(match.group(1)) >= num_vision_layers:
            return None, f"ViT blocks past the {num_vision_layers} the model uses (EVA-CLIP-g's last block)"
        return match.expand(target), None
    return None, None


@dataclass
class SourceReport:
    """What happened to the keys of one source file/folder."""

    name: str
    mapped: int = 0
    overridden: list[str] = field(default_factory=list)  # earlier sources' values this one replaced
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    dropped_examples: dict = field(default_factory=dict)  # reason -> first key
    unknown: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.name}: {self.mapped} mapped, {sum(self.dropped.values())} dropped"
                 + (f", {len(self.overridden)} overriding earlier sources" if self.overridden else "")]
        for reason, count in self.dropped.most_common():
            lines.append(f"    dropped {count:5d} x {reason} (e.g. {self.dropped_examples[reason]})")
        return "\n".join(lines)


def load_torch_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict:
    """torch.load a .pth/.bin on CPU with weights_only=True; full unpickling only when the user opts in."""
    if not Path(path).is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # what weights_only=True raises for anything but plain tensors/dicts
        if not allow_pickle:
            raise ConversionError(
                f"{path}: cannot be read with torch.load(weights_only=True): {error}\n"
                "If you trust this file, rerun with --allow-pickle (it executes code stored in the pickle)."
            ) from error
    return torch.load(path, map_location="cpu", weights_only=False)


def _model_state(checkpoint: dict, path: str | Path) -> dict:
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path}: expected a state dict or {{'model': state dict}}, got {type(checkpoint)}")
    return state


def load_llama_folder(folder: str | Path, allow_pickle: bool = False) -> dict:
    """All tensors of an HF LLaMA folder: model.safetensors(.index.json) or pytorch_model(.bin.index.json)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder (expected the llama-2-*-chat-hf folder)")
    for index_name, single_name in (("model.safetensors.index.json", "model.safetensors"),
                                    ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        index = folder / index_name
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else (
            [single_name] if (folder / single_name).exists() else [])
        if not files:
            continue
        state = {}
        for name in files:
            path = folder / name
            state.update(load_file(path) if name.endswith(".safetensors") else
                         _model_state(load_torch_checkpoint(path, allow_pickle), path))
        return state
    raise ConversionError(f"{folder}: no model.safetensors[.index.json] or pytorch_model.bin[.index.json] found")


def _fuse_qkv_biases(state: dict, origin: dict) -> None:
    """EVA keeps q_bias and v_bias (k has none); Blip2Attention holds them as one qkv.bias = [q, 0, v]."""
    for q_key in [key for key in state if key.endswith(".self_attn.q_bias")]:
        prefix = q_key[: -len("q_bias")]
        if prefix + "v_bias" not in state:
            continue  # reported as a missing qkv.bias
        q_bias, v_bias = state.pop(q_key), state.pop(prefix + "v_bias")
        state[prefix + "qkv.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])
        origin[prefix + "qkv.bias"] = origin.pop(q_key)


def _shorten(keys: list[str], limit: int = 20) -> str:
    listed = "\n  ".join(sorted(keys)[:limit])
    return f"\n  {listed}" + (f"\n  ... and {len(keys) - limit} more" if len(keys) > limit else "")


def convert_state_dicts(
    sources: list[tuple[str, dict]], config: VideoLlamaConfig, dtype: torch.dtype = torch.float16
) -> tuple[dict, list[SourceReport]]:
    """Rename original-namespace state dicts (in override order) into the model's keys, checked against it.

    `sources` are (name, state dict) pairs whose keys already carry the original model's prefixes. Q-Former-side
    tensors stay fp32 (as in the originals); the rest is cast to `dtype`. Raises ConversionError naming every
    unknown, missing or mis-shaped key.
    """
    with torch.device("meta"):
        expected = {k: v.shape for k, v in VideoLlamaForConditionalGeneration(config).state_dict().items()}
    keep_fp32 = set(VideoLlamaPreTrainedModel._keep_in_fp32_modules)  # ln_vision and the Q-Former side
    state, origin, reports = {}, {}, []
    for name, source in sources:
        report = SourceReport(name)
        for key, tensor in source.items():
            new_key, reason = rename_key(key, config.vision_config.num_hidden_layers)
            if reason is not None:
                report.dropped[reason] += 1
                report.dropped_examples.setdefault(reason, key)
                continue
            if new_key is None or (new_key not in expected and not new_key.endswith(("q_bias", "v_bias"))):
                report.unknown.append(key if new_key is None else f"{key} -> {new_key}")
                continue
            if new_key in state:
                report.overridden.append(f"{origin[new_key]} -> {name}:{key}")
            target_dtype = torch.float32 if keep_fp32.intersection(new_key.split(".")) else dtype
            state[new_key] = tensor.to(target_dtype) if tensor.is_floating_point() else tensor
            origin[new_key] = f"{name}:{key}"
            report.mapped += 1
        reports.append(report)
    _fuse_qkv_biases(state, origin)

    problems = []
    unknown = [f"{r.name}: {key}" for r in reports for key in r.unknown]
    if unknown:
        problems.append(f"{len(unknown)} unexpected source keys (no rename rule or no such model key):"
                        + _shorten(unknown))
    missing = [key for key in expected if key not in state]
    if missing:
        problems.append(f"{len(missing)} model keys missing from every source:" + _shorten(missing))
    misshaped = [f"{key}: model {tuple(expected[key])} vs {origin[key]} {tuple(state[key].shape)}"
                 for key in state if key in expected and state[key].shape != expected[key]]
    if misshaped:
        problems.append(f"{len(misshaped)} keys with a shape the model does not have:" + _shorten(misshaped))
    if problems:
        raise ConversionError("conversion failed:\n" + "\n".join(problems)
                              + "\nCheck the source files and the --preset (architecture of the non-LLM parts).")
    return state, reports


def text_config_from_llama_folder(folder: str | Path) -> LlamaConfig:
    """The LLaMA folder's own config.json (its rms_norm_eps, rope and vocabulary are what the original ran with)."""
    if not Path(folder, "config.json").is_file():
        raise ConversionError(f"{folder}: no config.json (expected the llama-2-*-chat-hf folder)")
    text_config = LlamaConfig.from_pretrained(folder)
    # LLaMA-2 unties input and output embeddings; a config that says otherwise would silently drop lm_head.
    if text_config.tie_word_embeddings:
        raise ConversionError(f"{folder}/config.json ties word embeddings; LLaMA-2-chat does not")
    return text_config


def _save_processor(out_dir: str | Path, tokenizer, config: VideoLlamaConfig, llama: Path) -> None:
    """The tokenizer, LLaMA's own `tokenizer.model` (the processor tokenizes with it, as the original) and
    processor_config.json (original prompt format)."""
    from .processing import SENTENCEPIECE_MODEL_NAME, VideoLlamaProcessor

    sentencepiece_model = llama / SENTENCEPIECE_MODEL_NAME
    VideoLlamaProcessor(
        tokenizer, image_size=config.vision_config.image_size, num_video_query_tokens=config.num_video_query_tokens,
        max_frames=config.max_frames,
        sentencepiece_model=sentencepiece_model if sentencepiece_model.is_file() else None,
    ).save_pretrained(out_dir)


def convert_checkpoints(
    out_dir: str | Path,
    llama: str | Path,
    vl: str | Path,
    blip2: str | Path | None = None,
    eva_vit: str | Path | None = None,
    base_config: VideoLlamaConfig | None = None,
    dtype: str = "fp16",
    allow_pickle: bool = False,
    max_shard_size: str = "5GB",
    log=print,
) -> list[SourceReport]:
    """Convert original Video-LLaMA-2 files into `out_dir`, loadable with `from_pretrained(out_dir)` offline.

    Args:
        out_dir: output folder (model.safetensors[ shards], config.json, tokenizer with `<ImageHere>` added).
        llama: the `llama-2-*-chat-hf` folder of the Video-LLaMA-2 repo (weights, config.json, tokenizer).
        vl: `VL_LLaMA_2_*_{Pretrained,Finetuned}.pth`.
        blip2: `blip2_pretrained_flant5xxl.pth` (image Q-Former, query tokens, ln_vision).
        eva_vit: `eva_vit_g.pth`; may be left out when the BLIP-2 file already holds `visual_encoder.*`.
        base_config: architecture of the non-LLM parts (default: the "7b" preset, which 13B shares); its
            text_config is replaced by the LLaMA folder's config.json.
        dtype: "fp16", "bf16" or "fp32" for the ViT, llama_proj and LLM; Q-Former-side weights stay fp32.
        allow_pickle: allow full unpickling of files that weights_only=True refuses (trusted files only).

    Returns:
        One SourceReport per source. Raises ConversionError on unknown, missing or mis-shaped keys.
    """
    from .presets import video_llama_config

    config = copy.deepcopy(base_config or video_llama_config("7b"))
    config.text_config = text_config_from_llama_folder(llama)
    try:
        tokenizer = AutoTokenizer.from_pretrained(llama)
    except Exception as error:  # the causes vary by tokenizer backend; the user needs the folder and the cause
        raise ConversionError(
            f"{llama}: cannot load the LLaMA tokenizer ({error}). A folder with tokenizer.model but no "
            "tokenizer.json needs the `sentencepiece` package to convert it."
        ) from error
    if VIDEO_PLACEHOLDER_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([VIDEO_PLACEHOLDER_TOKEN], special_tokens=True)  # as the original does at start-up
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # the original pads LLaMA-2 prompts with <unk>
    config.video_token_index = tokenizer.convert_tokens_to_ids(VIDEO_PLACEHOLDER_TOKEN)

    sources = []
    if eva_vit is not None:
        eva_state = _model_state(load_torch_checkpoint(eva_vit, allow_pickle), eva_vit)
        sources.append((Path(eva_vit).name, {f"visual_encoder.{k}": v for k, v in eva_state.items()}))
    if blip2 is not None:
        sources.append((Path(blip2).name, _model_state(load_torch_checkpoint(blip2, allow_pickle), blip2)))
    sources.append((Path(vl).name, _model_state(load_torch_checkpoint(vl, allow_pickle), vl)))
    llama_state = load_llama_folder(llama, allow_pickle)
    sources.append((Path(llama).name, {f"llama_model.{k}": v for k, v in llama_state.items()}))

    state, reports = convert_state_dicts(sources, config, DTYPES[dtype])
    for report in reports:
        log(report.summary())
        for line in report.overridden[:5]:
            log(f"    overrides {line}")
    del sources, llama_state

    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)
    # save_pretrained records the dtype of the first parameter (query_tokens, kept fp32); from_pretrained's default
    # dtype="auto" should load the LLM side in the dtype asked for, so record that instead.
    model.config.dtype = DTYPES[dtype]
    model.config.save_pretrained(out_dir)
    _save_processor(out_dir, tokenizer, config, Path(llama))
    log(f"wrote {out_dir}: {sum(t.numel() for t in state.values()) / 1e6:.1f}M parameters, "
        f"video_token_index={config.video_token_index} ({VIDEO_PLACEHOLDER_TOKEN})")
    return reports
