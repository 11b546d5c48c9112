"""Convert the original Video-LLaMA-2 checkpoints into a `VideoLlamaForConditionalGeneration` folder, streaming.

Sources, read in the original code's load order (a later source overrides an earlier one for the same key):
  1. `eva_vit_g.pth`: plain EVA-CLIP-g state dict (`blocks.*`, `cls_token`, ...): prefixed with `visual_encoder.`.
  2. `blip2_pretrained_flant5xxl.pth`: `{"model": {...}}` with `ln_vision.*`, `Qformer.*`, `query_tokens`, ... .
  3. `VL_LLaMA_2_*.pth`: `{"model": {...}, "optimizer", "config", ...}` with the trained video modules.
  4. `llama-2-*-chat-hf/`: HF LLaMA folder (safetensors or .bin, sharded or not): prefixed with `llama_model.`.
Every key then goes through RENAME_RULES: mapped to a transformers key or dropped for a stated reason; any key
no rule matches, any model key left without a value and any shape mismatch stops the conversion naming the keys.

Two passes (checkpoint_sources.py reads the files lazily):
  1. plan: every source's key names, shapes and dtypes (no tensor data) -> renames, overrides, the per-source report
     and every check. Nothing is written before all checks pass.
  2. write: source file by source file, each tensor read, renamed, cast and written to its safetensors shard at once
     (shard_writer.py), the file closed before the next one opens. Memory holds one source file's pages and one
     tensor, whatever the model's depth.
Everything is written into a hidden folder beside `out_dir` (`.NAME.partial-PID`) and renamed to `out_dir` when
complete, so `out_dir` either holds a whole conversion or does not exist. A killed run leaves its partial folder,
which the next conversion to the same `out_dir` removes.
"""

import copy
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig

from ghostprobe.dtypes import DTYPES

from .checkpoint_sources import (  # noqa: F401  (load_torch_checkpoint, load_llama_folder: part of this API)
    ConversionError,
    Source,
    llama_source,
    load_llama_folder,
    load_torch_checkpoint,
    memory_source,
    torch_source,
)
from .configuration import VideoLlamaConfig
from .modeling import VideoLlamaForConditionalGeneration, VideoLlamaPreTrainedModel
from .prompt_format import VIDEO_PLACEHOLDER as VIDEO_PLACEHOLDER_TOKEN  # the original's <ImageHere>
from .shard_writer import ShardedSafetensorsWriter

# Peak memory is about the largest source file plus what the process holds anyway; shards of 1 GB keep the files
# easy to move and the count small (about 15 for 7B, 27 for 13B).
DEFAULT_MAX_SHARD_SIZE = "1GB"


def _qformer_rules(src: str, dst: str) -> list[tuple[str, str]]:
    """Renames of one BERT Q-Former (query path only), as in transformers' BLIP-2 conversion."""
    layer = rf"{src}\.bert\.encoder\.layer\.(\d+)"
    return [
        (rf"{src}\.bert\.embeddings\.LayerNorm\.(weight|bias)", rf"{dst}.layernorm.\1"),
        (
            rf"{layer}\.(attention|crossattention)\.self\.(query|key|value)\.(weight|bias)",
            rf"{dst}.encoder.layer.\1.\2.attention.\3.\4",
        ),
        (
            rf"{layer}\.(attention|crossattention)\.output\.(dense|LayerNorm)\.(weight|bias)",
            rf"{dst}.encoder.layer.\1.\2.output.\3.\4",
        ),
        (
            rf"{layer}\.(intermediate_query|output_query)\.(dense|LayerNorm)\.(weight|bias)",
            rf"{dst}.encoder.layer.\1.\2.\3.\4",
        ),
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
        lines = [
            f"{self.name}: {self.mapped} mapped, {sum(self.dropped.values())} dropped"
            + (f", {len(self.overridden)} overriding earlier sources" if self.overridden else "")
        ]
        for reason, count in self.dropped.most_common():
            lines.append(f"    dropped {count:5d} x {reason} (e.g. {self.dropped_examples[reason]})")
        return "\n".join(lines)


@dataclass
class PlannedTensor:
    """One tensor of the converted model: the original tensors it is made from, its shape and written dtype."""

    parts: list[tuple[int, str]]  # (index of the file in the flat file list, original key); two for a fused qkv.bias
    shape: tuple[int, ...]
    dtype: torch.dtype
    arrival: int = 0  # position in the read order of its last part: the order tensors reach the writer


def _shorten(keys: list[str], limit: int = 20) -> str:
    listed = "\n  ".join(sorted(keys)[:limit])
    return f"\n  {listed}" + (f"\n  ... and {len(keys) - limit} more" if len(keys) > limit else "")


def _target_dtype(key: str, source_dtype: torch.dtype, dtype: torch.dtype) -> torch.dtype:
    """Q-Former-side tensors stay fp32 (as in the originals), other floating tensors become `dtype`."""
    if not source_dtype.is_floating_point:
        return source_dtype
    keep_fp32 = set(VideoLlamaPreTrainedModel._keep_in_fp32_modules)  # ln_vision and the Q-Former side
    return torch.float32 if keep_fp32.intersection(key.split(".")) else dtype


def _fuse_qkv_biases(entries: dict, origin: dict) -> None:
    """EVA keeps q_bias and v_bias (k has none); Blip2Attention holds them as one qkv.bias = [q, 0, v]."""
    for q_key in [key for key in entries if key.endswith(".self_attn.q_bias")]:
        prefix = q_key[: -len("q_bias")]
        if prefix + "v_bias" not in entries:
            continue  # reported as a missing qkv.bias
        (q_part, q_shape, q_dtype), (v_part, v_shape, _) = entries.pop(q_key), entries.pop(prefix + "v_bias")
        entries[prefix + "qkv.bias"] = ([*q_part, *v_part], (2 * q_shape[0] + v_shape[0],), q_dtype)
        origin[prefix + "qkv.bias"] = origin.pop(q_key)


def plan_conversion(
    sources: list[Source], expected: dict[str, torch.Size], num_vision_layers: int, dtype: torch.dtype
) -> tuple[dict[str, PlannedTensor], list[SourceReport]]:
    """Rename every source key (in override order) from names, shapes and dtypes only, and check the result.

    Returns the model's tensors in the order the write pass produces them, and one report per source. Raises
    ConversionError naming every unknown, missing or mis-shaped key.
    """
    entries, origin, reports, read_position = {}, {}, [], {}
    file_index = 0
    for source in sources:
        report = SourceReport(source.name)
        for file in source.files:
            with file.open() as tensors:
                for key in tensors.keys():
                    new_key, reason = rename_key(key, num_vision_layers)
                    if reason is not None:
                        report.dropped[reason] += 1
                        report.dropped_examples.setdefault(reason, key)
                        continue
                    if new_key is None or (new_key not in expected and not new_key.endswith(("q_bias", "v_bias"))):
                        report.unknown.append(key if new_key is None else f"{key} -> {new_key}")
                        continue
                    if new_key in entries:
                        report.overridden.append(f"{origin[new_key]} -> {source.name}:{key}")
                    shape, source_dtype = tensors.meta(key)
                    entries[new_key] = ([(file_index, key)], shape, source_dtype)
                    origin[new_key] = f"{source.name}:{key}"
                    read_position[file_index, key] = len(read_position)
                    report.mapped += 1
            file_index += 1
        reports.append(report)
    _fuse_qkv_biases(entries, origin)

    problems = []
    unknown = [f"{r.name}: {key}" for r in reports for key in r.unknown]
    if unknown:
        problems.append(
            f"{len(unknown)} unexpected source keys (no rename rule or no such model key):" + _shorten(unknown)
        )
    missing = [key for key in expected if key not in entries]
    if missing:
        problems.append(f"{len(missing)} model keys missing from every source:" + _shorten(missing))
    misshaped = [
        f"{key}: model {tuple(expected[key])} vs {origin[key]} {tuple(shape)}"
        for key, (_, shape, _) in entries.items()
        if key in expected and tuple(shape) != tuple(expected[key])
    ]
    if misshaped:
        problems.append(f"{len(misshaped)} keys with a shape the model does not have:" + _shorten(misshaped))
    if problems:
        raise ConversionError(
            "conversion failed:\n"
            + "\n".join(problems)
            + "\nCheck the source files and the --preset (architecture of the non-LLM parts)."
        )

    planned = {
        key: PlannedTensor(
            parts, tuple(shape), _target_dtype(key, source_dtype, dtype), max(read_position[part] for part in parts)
        )
        for key, (parts, shape, source_dtype) in entries.items()
    }
    return dict(sorted(planned.items(), key=lambda item: item[1].arrival)), reports


def _cast_copy(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # A copy the process owns: the source file's mapping can go as soon as the file is done.
    return torch.empty(tensor.shape, dtype=dtype).copy_(tensor)


def produce_tensors(
    sources: list[Source], planned: dict[str, PlannedTensor], sink: Callable[[str, torch.Tensor], None]
) -> None:
    """Read, cast (and fuse) every planned tensor, one source file open at a time; `sink(key, tensor)` for each, in
    the planned order."""
    files = [file for source in sources for file in source.files]
    wanted: dict[int, list[tuple[int, str, str]]] = {}  # file -> [(read position, model key, original key)]
    for key, plan in planned.items():
        for file_index, original in plan.parts:
            wanted.setdefault(file_index, []).append((plan.arrival, key, original))
    waiting: dict[str, dict] = {}  # model key -> {part: cast tensor}, for fused tensors until their last part
    for file_index in sorted(wanted):
        with files[file_index].open() as tensors:
            for _, key, original in sorted(wanted[file_index]):
                plan = planned[key]
                read = waiting.setdefault(key, {})
                read[file_index, original] = _cast_copy(tensors.tensor(original), plan.dtype)
                if len(read) < len(plan.parts):
                    continue
                parts = [read[part] for part in plan.parts]
                del waiting[key]
                fused = len(parts) == 2  # [q, 0, v]: see _fuse_qkv_biases
                sink(key, torch.cat([parts[0], torch.zeros_like(parts[0]), parts[1]]) if fused else parts[0])


def convert_state_dicts(
    sources: list[tuple[str, dict]], config: VideoLlamaConfig, dtype: torch.dtype = torch.float16
) -> tuple[dict, list[SourceReport]]:
    """Rename original-namespace state dicts held in memory (in override order) into the model's keys, checked
    against it; the in-memory form of what `convert_checkpoints` streams to disk.

    `sources` are (name, state dict) pairs whose keys already carry the original model's prefixes. Q-Former-side
    tensors stay fp32 (as in the originals); the rest is cast to `dtype`. Raises ConversionError naming every
    unknown, missing or mis-shaped key.
    """
    with torch.device("meta"):
        expected = {k: v.shape for k, v in VideoLlamaForConditionalGeneration(config).state_dict().items()}
    lazy = [memory_source(name, state) for name, state in sources]
    planned, reports = plan_conversion(lazy, expected, config.vision_config.num_hidden_layers, dtype)
    state = {}
    produce_tensors(lazy, planned, state.__setitem__)
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
        tokenizer,
        image_size=config.vision_config.image_size,
        num_video_query_tokens=config.num_video_query_tokens,
        max_frames=config.max_frames,
        sentencepiece_model=sentencepiece_model if sentencepiece_model.is_file() else None,
    ).save_pretrained(out_dir)


def _partial_folder(out_dir: Path, log) -> Path:
    """A fresh hidden folder beside `out_dir` for this run; leftovers of killed runs to the same `out_dir` go."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_alive(int(pid)):
            log(f"removing {leftover} (left by an interrupted conversion)")
            shutil.rmtree(leftover, ignore_errors=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return partial


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConversionError(
            f"{out_dir} already exists and is not an empty folder: delete it or choose another "
            "--out (a conversion never writes into an existing one)"
        )


def _write_model_files(
    folder: Path,
    sources: list[Source],
    planned: dict[str, PlannedTensor],
    model: VideoLlamaForConditionalGeneration,
    dtype: str,
    max_shard_size: str,
    log,
) -> None:
    """The weights (shards + index), config.json and generation_config.json, as save_pretrained lays them out."""
    writer = ShardedSafetensorsWriter(folder, {key: (p.shape, p.dtype) for key, p in planned.items()}, max_shard_size)
    log(
        f"writing {writer.total_size / 1e9:.2f} GB in {len(writer.split.filename_to_tensors)} shard(s) of at most "
        f"{max_shard_size}"
    )
    try:
        produce_tensors(sources, planned, writer.write)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    config = model.config
    config.architectures = [type(model).__name__]
    # from_pretrained's default dtype="auto" should load the LLM side in the dtype asked for (the first tensor,
    # query_tokens, is kept fp32).
    config.dtype = DTYPES[dtype]
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)


def convert_checkpoints(
    out_dir: str | Path,
    llama: str | Path,
    vl: str | Path,
    blip2: str | Path | None = None,
    eva_vit: str | Path | None = None,
    base_config: VideoLlamaConfig | None = None,
    dtype: str = "fp16",
    allow_pickle: bool = False,
    max_shard_size: str = DEFAULT_MAX_SHARD_SIZE,
    log=print,
) -> list[SourceReport]:
    """Convert original Video-LLaMA-2 files into `out_dir`, loadable with `from_pretrained(out_dir)` offline.

    Args:
        out_dir: output folder, created by the conversion (it must not exist, or be empty): safetensors shards
            (+ index), config.json, generation_config.json, the tokenizer with `<ImageHere>` added,
            processor_config.json.
        llama: the `llama-2-*-chat-hf` folder of the Video-LLaMA-2 repo (weights, config.json, tokenizer).
        vl: `VL_LLaMA_2_*_{Pretrained,Finetuned}.pth`.
        blip2: `blip2_pretrained_flant5xxl.pth` (image Q-Former, query tokens, ln_vision).
        eva_vit: `eva_vit_g.pth`; may be left out when the BLIP-2 file already holds `visual_encoder.*`.
        base_config: architecture of the non-LLM parts (default: the "7b" preset, which 13B shares); its
            text_config is replaced by the LLaMA folder's config.json.
        dtype: "fp16", "bf16" or "fp32" for the ViT, llama_proj and LLM; Q-Former-side weights stay fp32.
        allow_pickle: allow full unpickling of files that weights_only=True refuses (trusted files only).
        max_shard_size: largest safetensors file written, e.g. "1GB" (memory does not depend on it).

    Returns:
        One SourceReport per source. Raises ConversionError on unknown, missing or mis-shaped keys, before anything
        is written.
    """
    from .presets import video_llama_config

    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
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
        sources.append(torch_source(eva_vit, "visual_encoder.", allow_pickle))
    if blip2 is not None:
        sources.append(torch_source(blip2, allow_pickle=allow_pickle))
    sources.append(torch_source(vl, allow_pickle=allow_pickle))
    sources.append(llama_source(llama, allow_pickle))

    with torch.device("meta"):
        model = VideoLlamaForConditionalGeneration(config)
    expected = {key: tensor.shape for key, tensor in model.state_dict().items()}
    planned, reports = plan_conversion(sources, expected, config.vision_config.num_hidden_layers, DTYPES[dtype])
    for report in reports:
        log(report.summary())
        for line in report.overridden[:5]:
            log(f"    overrides {line}")

    partial = _partial_folder(out_dir, log)
    try:
        _write_model_files(partial, sources, planned, model, dtype, max_shard_size, log)
        _save_processor(partial, tokenizer, config, Path(llama))
        _check_out_dir(out_dir)  # the folder may have appeared while this ran
        if out_dir.exists():
            out_dir.rmdir()
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    num_parameters = sum(torch.Size(plan.shape).numel() for plan in planned.values())
    log(
        f"wrote {out_dir}: {num_parameters / 1e6:.1f}M parameters, "
        f"video_token_index={config.video_token_index} ({VIDEO_PLACEHOLDER_TOKEN})"
    )
    return reports
