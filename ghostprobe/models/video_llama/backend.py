"""`kind: video_llama`: a converted Video-LLaMA-2 folder behind the score/generate model interface.

score: one forward pass per batch. P(ghost probing) = P(yes) / (P(yes) + P(no)), the softmax over the logits of the
prompt's yes/no answer tokens where the answer starts; `extra["answer_token_mass"]` keeps P(yes) + P(no) over the
whole vocabulary (low when the model would rather start "The video shows ...").
generate: greedy by default; `generation:` in conf/model/*.yaml turns on the original's sampling (top_p 0.9,
temperature 1.0, max_new_tokens 300). Answers are parsed with ghostprobe.answers.
Loading keys (dtype, vision_dtype, video_autocast, device_map, max_memory, sdpa_backends, ...) come from
conf/hardware/*.yaml; precision.py says which dtype each part runs in and why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import LogitsProcessorList

from ghostprobe.answers import read_answer
from ghostprobe.dtypes import dtype_by_name
from ghostprobe.models.base import ClipInput, ModelOutput, accelerate_max_memory, register
from ghostprobe.models.non_finite import NonFiniteRows, flag_non_finite
from ghostprobe.prompts import Prompt

from .modeling import VideoLlamaForConditionalGeneration
from .precision import PrecisionPolicy, apply_precision
from .processing import AnswerChoice, VideoLlamaProcessor, yes_probability_from_logits
from .run_dir import load_video_llama, resolve_model_dir, weights_signature

SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
GENERATION_DEFAULTS = {"do_sample": False, "max_new_tokens": 300, "top_p": 0.9, "temperature": 1.0, "seed": 0}
# 8/4-bit loading quantizes the LLM only: the vision side is small and the Q-Formers are kept in fp32 anyway.
_NOT_QUANTIZED = ["visual_encoder", "qformer", "video_qformer", "llama_proj", "language_model.lm_head"]


def from_pretrained_kwargs(
    dtype: str = "fp32",
    device_map=None,
    max_memory: Mapping | None = None,
    attn_implementation: str = "sdpa",
    load_in_8bit: bool = False,
    load_in_4bit: bool = False,
) -> dict:
    """The `from_pretrained` arguments for conf/hardware/ settings (quantization, placement...).

    Weights load in the dtypes the folder stores (the converter's fp16, Q-Former side and ln_vision fp32, like the
    original files); `apply_precision` then casts each part, so nothing is rounded twice. `dtype` (the LLM's) is
    the compute dtype of a quantized LLM.
    """
    llm_dtype = dtype_by_name(dtype)
    kwargs = {"dtype": "auto", "attn_implementation": attn_implementation}
    if max_memory is not None:
        if device_map is None:
            raise ValueError("max_memory needs a device_map (e.g. device_map=auto)")
        kwargs["max_memory"] = accelerate_max_memory(max_memory)
    if load_in_8bit or load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ImportError(
                "load_in_8bit/load_in_4bit need the bitsandbytes package (CUDA only): "
                "pip install bitsandbytes, or set load_in_8bit=false and load_in_4bit=false"
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=load_in_8bit,
            load_in_4bit=load_in_4bit,
            llm_int8_skip_modules=_NOT_QUANTIZED,
            bnb_4bit_compute_dtype=llm_dtype,
        )
        device_map = device_map or "auto"  # bitsandbytes places weights while loading
    if device_map is not None:
        kwargs["device_map"] = dict(device_map) if isinstance(device_map, Mapping) else device_map
    return kwargs


def answer_logits(model: VideoLlamaForConditionalGeneration, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Next-token logits [B, vocab] (float32) after the last position of a left-padded processor batch."""
    text_device = model.get_input_embeddings().weight.device
    vision_device = model.visual_encoder.embeddings.patch_embedding.weight.device
    out = model(
        input_ids=batch["input_ids"].to(text_device),
        attention_mask=batch["attention_mask"].to(text_device),
        position_ids=batch["position_ids"].to(text_device),
        pixel_values=batch["pixel_values"].to(vision_device),
        logits_to_keep=1,
        use_cache=False,
    )
    return out.logits[:, -1].float()


def yes_probability(
    model: VideoLlamaForConditionalGeneration, batch: Mapping[str, torch.Tensor], choice: AnswerChoice
) -> torch.Tensor:
    """P(ghost probing) [B] for a processor batch built with `suffix_ids=choice.prefix_ids` (also the trainer's
    validation score: `choice = processor.answer_choice(prompt.yes_word, prompt.no_word)`, no `answers=`).
    Runs under the caller's grad mode."""
    prefix = torch.tensor(choice.prefix_ids, dtype=torch.long)
    if len(prefix) and not (batch["input_ids"][:, -len(prefix) :].cpu() == prefix).all():
        raise ValueError(
            "the batch does not end with the answers' shared prefix tokens: build it with "
            "processor(clips, prompt, suffix_ids=choice.prefix_ids)"
        )
    return yes_probability_from_logits(answer_logits(model, batch), choice)


def _weights(model_cfg: dict) -> dict | None:
    # No folder, no signature: a model object handed to the scan or eval directly names a placeholder path.
    path = model_cfg.get("path")
    return weights_signature(path) if path and Path(path).exists() else None


@register("video_llama", hardware_keys=None, weights=_weights)
class VideoLlamaBackend:
    """A converted Video-LLaMA-2 folder (scripts/convert_video_llama.py, or the tiny one) as a `VideoQAModel`.

    Args:
        path: the converted folder (model, tokenizer with `<ImageHere>`, optional processor_config.json), or a
            checkpoint / run directory written by train/main.py (see run_dir.resolve_model_dir).
        batch_size: clips per forward pass / generate call.
        dtype, vision_dtype, video_autocast: the LLM's dtype, the ViT's (null: as dtype) and the autocast dtype of
            the Q-Formers and llama_proj (null: fp32); see precision.py for the original's and each profile's.
        device_map, max_memory, attn_implementation, load_in_8bit, load_in_4bit: see `from_pretrained_kwargs`.
        device: where the whole model goes when device_map is null ("auto": cuda if available, else cpu).
        sdpa_backends: torch SDPA kernels allowed, e.g. [efficient, math] on V100 (no flash); null lets torch pick.
        nan_guard: true: a clip with non-finite logits gets a NaN score / no answer, a warning and extra["error"];
            false: raise FloatingPointError at the first one (for debugging precision problems).
        generation: do_sample, max_new_tokens, top_p, temperature, seed (GENERATION_DEFAULTS).
        resize: how frames not already image_size square are resized ("straight" or "pad").
        prompt_format: "original" (the original Chat path, token for token) or "localized_frames"; None: the one in
            the folder's processor_config.json (converted folders and fine-tunes say "original").
    """

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        batch_size: int = 1,
        dtype: str = "fp32",
        vision_dtype: str | None = None,
        video_autocast: str | None = None,
        device: str = "auto",
        device_map=None,
        max_memory: Mapping | None = None,
        attn_implementation: str = "sdpa",
        sdpa_backends: Sequence[str] | None = None,
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        nan_guard: bool = True,
        generation: Mapping | None = None,
        resize: str = "straight",
        prompt_format: str | None = None,
    ):
        requested = Path(path)
        # A converted folder as is; a training checkpoint or run directory (train/) -> its best complete checkpoint.
        path = resolve_model_dir(requested)
        unknown = set(generation or {}) - set(GENERATION_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown generation setting(s) {sorted(unknown)}; known: {sorted(GENERATION_DEFAULTS)}")
        unknown = set(sdpa_backends or ()) - set(SDPA_BACKENDS)
        if unknown:
            raise ValueError(f"unknown sdpa_backends {sorted(unknown)}; known: {sorted(SDPA_BACKENDS)}")
        self.name = name or requested.name
        self.batch_size, self.nan_guard = int(batch_size), nan_guard
        self.generation = {**GENERATION_DEFAULTS, **(generation or {})}
        self._sdpa_backends = [SDPA_BACKENDS[b] for b in sdpa_backends] if sdpa_backends else None
        self.precision = PrecisionPolicy.from_names(dtype, vision_dtype, video_autocast)
        kwargs = from_pretrained_kwargs(dtype, device_map, max_memory, attn_implementation, load_in_8bit, load_in_4bit)
        self.model = load_video_llama(path, **kwargs).eval()  # LoRA checkpoints come back merged
        apply_precision(self.model, self.precision, quantized=load_in_8bit or load_in_4bit)
        if "device_map" not in kwargs:
            self.model.to(
                "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
            )
        self.processor = VideoLlamaProcessor.from_pretrained(path, resize=resize, prompt_format=prompt_format)
        self.prompt_format = self.processor.prompt_format  # recorded in metrics.json and the report
        self.max_frames = self.processor.max_frames  # a clip with more is refused: eval checks its data at start-up
        config = self.model.config
        if (self.processor.video_token_id, self.processor.num_video_query_tokens) != (
            config.video_token_index,
            config.num_video_query_tokens,
        ):
            raise ValueError(
                f"{path}: the tokenizer/processor ({self.processor.video_token_id}, "
                f"{self.processor.num_video_query_tokens} placeholders) disagree with config.json "
                f"(video_token_index {config.video_token_index}, {config.num_video_query_tokens})"
            )

    def _inference(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self._sdpa_backends:
            stack.enter_context(sdpa_kernel(self._sdpa_backends))
        return stack

    def _batches(
        self,
        clips: Sequence[ClipInput],
        prompt: Prompt,
        question: str,
        outputs: list[ModelOutput],
        suffix_ids: Sequence[int] = (),
    ):
        """(clip indices, processor batch) per batch_size chunk and frame count; bad clips get extra["error"]."""
        for start in range(0, len(clips), self.batch_size):
            by_frames: dict[int, list[int]] = {}
            for i in range(start, min(start + self.batch_size, len(clips))):
                try:
                    self.processor.check_frames(clips[i].frames, clips[i].clip_id, len(clips[i].timestamps_s))
                except ValueError as error:
                    outputs[i].extra["error"] = str(error)
                    warnings.warn(str(error))
                    continue
                by_frames.setdefault(len(clips[i].frames), []).append(i)
            for indices in by_frames.values():
                yield indices, self.processor([clips[i] for i in indices], prompt, question, suffix_ids=suffix_ids)

    def score(self, clips: list[ClipInput], prompt: Prompt) -> list[ModelOutput]:
        """P(ghost probing) per clip from one forward pass per batch (NaN for clips that could not be scored)."""
        choice = self.processor.answer_choice(prompt.yes_word, prompt.no_word)
        outputs = [ModelOutput(clip.clip_id) for clip in clips]
        for indices, batch in self._batches(clips, prompt, "detect", outputs, suffix_ids=choice.prefix_ids):
            started = time.perf_counter()
            with self._inference():
                logits = answer_logits(self.model, batch)
            p_yes = yes_probability_from_logits(logits, choice)
            mass = logits.softmax(-1)[:, [choice.yes_id, choice.no_id]].sum(-1)
            latency_s = (time.perf_counter() - started) / len(indices)  # the batch's time, shared by its clips
            for row, i in enumerate(indices):
                output = outputs[i]
                output.p_ghost_probing, output.latency_s = float(p_yes[row]), latency_s
                output.tokens_in = int(batch["attention_mask"][row].sum())
                output.extra["answer_token_mass"] = float(mass[row])
                if p_yes[row].isnan():
                    flag_non_finite(output, self.nan_guard)
        return outputs

    def _generate_kwargs(self) -> dict:
        settings = self.generation
        kwargs = {
            "max_new_tokens": int(settings["max_new_tokens"]),
            "do_sample": bool(settings["do_sample"]),
            "eos_token_id": self.processor.eos_id,
            "pad_token_id": self.processor.pad_id,
        }
        if kwargs["do_sample"]:  # greedy decoding ignores them, and transformers warns when they are set
            kwargs.update(top_p=float(settings["top_p"]), temperature=float(settings["temperature"]))
        return kwargs

    def generate(self, clips: list[ClipInput], prompt: Prompt, question: str = "detect") -> list[ModelOutput]:
        """Answer the "detect" (yes/no) or "when" (event time) question per clip; parsed with ghostprobe.answers."""
        outputs = [ModelOutput(clip.clip_id) for clip in clips]
        text_device = self.model.get_input_embeddings().weight.device
        for indices, batch in self._batches(clips, prompt, question, outputs):
            non_finite = NonFiniteRows(self.processor.eos_id)
            if self.generation["do_sample"]:
                torch.manual_seed(int(self.generation["seed"]))  # each batch samples reproducibly
            started = time.perf_counter()
            with self._inference():
                # position_ids are left out: generate derives the same ones from the attention mask at every step.
                sequences = self.model.generate(
                    input_ids=batch["input_ids"].to(text_device),
                    attention_mask=batch["attention_mask"].to(text_device),
                    pixel_values=batch["pixel_values"].to(self.model.visual_encoder.device),
                    logits_processor=LogitsProcessorList([non_finite]),
                    **self._generate_kwargs(),
                )
            latency_s = (time.perf_counter() - started) / len(indices)
            new_tokens = sequences[:, batch["input_ids"].shape[1] :].tolist()
            for row, i in enumerate(indices):
                output, ids = outputs[i], new_tokens[row]
                if self.processor.eos_id in ids:
                    ids = ids[: ids.index(self.processor.eos_id) + 1]
                output.latency_s, output.tokens_out = latency_s, len(ids)
                output.tokens_in = int(batch["attention_mask"][row].sum())
                if non_finite.row_is_bad(row):
                    flag_non_finite(output, self.nan_guard)
                    continue
                output.answer = self.processor.decode(ids)
                output.extra["answer_token_ids"] = ids
                output.parsed_answer, output.event_time_s = read_answer(output.answer, question)
        return outputs
