"""`kind: hf_native`: any video LLM that transformers loads from a local folder with AutoModelForImageTextToText and
AutoProcessor (Qwen2.5-VL, VideoLLaMA3, LLaVA-OneVision, ...), behind the score/generate model interface.

A clip goes in as one video through the model's own chat template and processor. Its frames were sampled by data
prep; `num_frames` / `fps` may thin them further (evenly), the processor never re-samples (`do_sample_frames=False`).
Their times travel as `video_metadata` (Qwen2.5-VL spaces its temporal position ids by them, VideoLLaMA3 writes
"Time 1.5s:" before each frame) and, with `frames_message`, as the prompts' frames sentence before the question.
score: one forward pass, P(yes) / (P(yes) + P(no)) over the first answer token, batched with left padding.
generate: greedy. transformers' video processors need torchvision: a processor that cannot load says so.
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, LogitsProcessorList

from ghostprobe.answers import read_answer
from ghostprobe.dtypes import auto_dtype_name, dtype_by_name
from ghostprobe.files import weight_files_signature
from ghostprobe.models.base import ClipInput, ModelOutput, accelerate_max_memory, register
from ghostprobe.models.non_finite import NonFiniteRows, flag_non_finite
from ghostprobe.prompts import Prompt, after_frames_message


def resolve_device_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """`device: auto` is cuda when there is a GPU; `dtype: auto` is ghostprobe.dtypes.auto_dtype_name's choice."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if dtype == "auto":
        dtype = auto_dtype_name(device.type)
    return device, dtype_by_name(dtype)


def answer_token_ids(tokenizer, word: str) -> list[int]:
    """The ids that can start the answer `word`: its first token as written and after a space, deduplicated.

    A variant whose first token is bare whitespace (a lone "Ġ" or SentencePiece "▁") is skipped: it starts any word.
    """
    ids: list[int] = []
    for variant in (word, " " + word):
        tokens = tokenizer.encode(variant, add_special_tokens=False)
        if tokens and tokenizer.decode(tokens[:1]).strip() and tokens[0] not in ids:
            ids.append(tokens[0])
    if not ids:
        raise ValueError(f"the tokenizer encodes the answer word {word!r} to no usable token")
    return ids


def video_metadata(clip: ClipInput) -> dict:
    """Metadata that lets the processor see the clip's real frame times: `fps` is the sampling rate (median frame
    spacing) and `frames_indices` the timestamps counted in frames of that rate, so that `VideoMetadata.timestamps`
    gives the timestamps back and `sampled_fps` the rate."""
    times = np.asarray(clip.timestamps_s, dtype=float)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    fps = 1.0 / step if step > 0 else 1.0
    return {
        "fps": fps,
        "total_num_frames": len(times),
        "duration": len(times) / fps,
        "frames_indices": [t * fps for t in times],
    }


def _load_processor(folder: Path):
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except Exception as error:
        try:
            import torchvision  # noqa: F401

            hint = ""
        except Exception:  # absent, or built for another torch (a CUDA wheel next to a CPU torch fails to load)
            hint = (
                f" transformers' video processors need torchvision: install the build matching torch "
                f"{torch.__version__}."
            )
        raise RuntimeError(f"cannot load the processor of {folder}: {error}.{hint}") from error
    if getattr(processor, "video_processor", None) is None:
        raise ValueError(f"{folder}: its processor ({type(processor).__name__}) has no video processor")
    if processor.chat_template is None:
        raise ValueError(f"{folder}: no chat template (chat_template.jinja or in processor_config.json)")
    if processor.tokenizer.pad_token is None:  # batches are left-padded; the attention mask hides the pad token
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def _local_weights(model_cfg: dict) -> dict | None:
    path = model_cfg.get("path")
    return weight_files_signature(path) if path and Path(path).is_dir() else None


@register(
    "hf_native",
    weights=_local_weights,
    hardware_keys={"dtype", "device", "device_map", "max_memory", "attn_implementation", "nan_guard"},
)
class HfNativeVideoLLM:
    """A transformers video LLM from a local folder; conf/model/qwen2_5_vl_7b.yaml documents every argument.

    dtype, device, device_map, max_memory, attn_implementation, nan_guard are the conf/hardware/ keys; nan_guard
    true: a clip with non-finite logits gets NaN / no answer, extra["error"] and a warning; false: FloatingPointError.
    """

    def __init__(
        self,
        *,
        path: str,
        batch_size: int,
        max_new_tokens: int,
        dtype: str = "auto",
        device: str = "auto",
        device_map: str | Mapping | None = None,
        max_memory: Mapping | None = None,
        attn_implementation: str | None = None,
        nan_guard: bool = True,
        num_frames: int | None = None,
        fps: float | None = None,
        frames_message: bool = True,
        video_kwargs: Mapping | None = None,
        name: str | None = None,
    ):
        folder = Path(path).expanduser()
        self.name = name or folder.name
        if not (folder / "config.json").is_file():
            problem = "has no config.json" if folder.is_dir() else "does not exist"
            raise FileNotFoundError(
                f"model {self.name!r}: the folder {folder} {problem}. Download the checkpoint on a machine with "
                f"internet (huggingface-cli download REPO --local-dir {folder}; conf/model/*.yaml name the repos), "
                "copy it here, or point model.path= at it"
            )
        self.batch_size, self.max_new_tokens, self.nan_guard = int(batch_size), int(max_new_tokens), nan_guard
        self.num_frames, self.fps, self.frames_message = num_frames, fps, frames_message
        self.video_kwargs = dict(video_kwargs or {})
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.processor = _load_processor(folder)
        self.tokenizer = self.processor.tokenizer
        # a misspelt setting would otherwise fail every clip, one warning at a time
        known = set(getattr(self.processor.video_processor.valid_kwargs, "__annotations__", {}))
        if set(self.video_kwargs) - known:
            raise ValueError(
                f"video_kwargs {sorted(set(self.video_kwargs) - known)} are not settings of "
                f"{type(self.processor.video_processor).__name__}; it takes {sorted(known)}"
            )
        loading = {"dtype": self.dtype, "attn_implementation": attn_implementation}
        if device_map is not None:
            loading.update(device_map=device_map, max_memory=accelerate_max_memory(max_memory) or None)
        self.prompt_format = "chat_template"  # the model's own chat template (metrics.json, report)
        self.model = AutoModelForImageTextToText.from_pretrained(folder, **loading).eval()
        if device_map is None:
            self.model.to(self.device)
        # Only the last position's logits are needed: [batch, ~3k tokens, 150k vocab] would not fit in memory.
        self._logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else [self.tokenizer.eos_token_id]
        self._eos_id, self._stop_ids = eos_ids[0], {*eos_ids, self.tokenizer.pad_token_id}

    def _inputs(self, clips: Sequence[ClipInput], prompt: Prompt, question: str):
        """Processor outputs for a batch, left-padded so that every row's last position is where its answer starts."""
        texts = []
        for clip in clips:
            text = question
            if self.frames_message:
                text = after_frames_message(question, clip.timestamps_s, prompt.language)
            conversation = [
                {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
                {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]},
            ]
            texts.append(self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False))
        bos = self.tokenizer.bos_token
        inputs = self.processor(
            text=texts,
            videos=[clip.frames for clip in clips],
            return_tensors="pt",
            videos_kwargs={
                **self.video_kwargs,
                "do_sample_frames": False,
                "video_metadata": [video_metadata(clip) for clip in clips],
            },
            # a template that already writes the bos token must not get a second one
            text_kwargs={
                "padding": True,
                "padding_side": "left",
                "add_special_tokens": not (bos and texts[0].startswith(bos)),
            },
        )
        inputs = inputs.to(self.model.device)
        for key in [k for k in inputs if k.startswith("pixel_values")]:
            inputs[key] = inputs[key].to(self.dtype)
        return inputs

    def score(self, clips: list[ClipInput], prompt: Prompt) -> list[ModelOutput]:
        """P(ghost probing) per clip from one forward pass: P(yes) / (P(yes) + P(no)) over the first answer token.

        extra["answer_token_mass"] is P(yes) + P(no) over the whole vocabulary (low when the model would rather
        start "The video shows ..."). latency_s is the batch's wall time (processor and model), shared by its clips.
        """
        yes_ids = answer_token_ids(self.tokenizer, prompt.yes_word)
        no_ids = answer_token_ids(self.tokenizer, prompt.no_word)
        if set(yes_ids) & set(no_ids):
            raise ValueError(
                f"prompt {prompt.name!r}: {prompt.yes_word!r} and {prompt.no_word!r} start with the same "
                f"token in {self.name}'s tokenizer, so score() cannot tell them apart"
            )

        def run(batch: list[ClipInput]) -> list[ModelOutput]:
            started = time.perf_counter()
            inputs = self._inputs(batch, prompt, prompt.question)
            with torch.inference_mode():
                keep = {"logits_to_keep": 1} if self._logits_to_keep else {}
                logits = self.model(**inputs, **keep, use_cache=False).logits[:, -1].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            log_yes, log_no = (torch.logsumexp(log_probs[:, ids], dim=-1) for ids in (yes_ids, no_ids))
            log_either = torch.logaddexp(log_yes, log_no)
            p_yes, mass = torch.exp(log_yes - log_either).tolist(), torch.exp(log_either).tolist()
            latency_s = (time.perf_counter() - started) / len(batch)
            outputs = []
            for row, clip in enumerate(batch):
                output = ModelOutput(
                    clip.clip_id,
                    latency_s=latency_s,
                    extra={"answer_token_mass": mass[row]},
                    tokens_in=int(inputs["attention_mask"][row].sum()),
                )
                if math.isfinite(p_yes[row]):
                    output.p_ghost_probing = p_yes[row]
                else:
                    flag_non_finite(output, self.nan_guard)
                outputs.append(output)
            return outputs

        return self._in_batches(clips, run)

    def generate(self, clips: list[ClipInput], prompt: Prompt, question: str = "detect") -> list[ModelOutput]:
        """Greedy answers per clip, parsed with ghostprobe.answers: `parsed_answer` for "detect", `event_time_s` for
        "when"."""
        if question not in ("detect", "when"):
            raise ValueError(f"question must be 'detect' or 'when', got {question!r}")

        def run(batch: list[ClipInput]) -> list[ModelOutput]:
            started = time.perf_counter()
            inputs = self._inputs(batch, prompt, prompt.question if question == "detect" else prompt.when_question)
            non_finite = NonFiniteRows(self._eos_id)
            with torch.inference_mode():
                # temperature/top_p/top_k unset: a checkpoint's sampling defaults must not reach greedy decoding
                sequences = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    logits_processor=LogitsProcessorList([non_finite]),
                )
            new_tokens = sequences[:, inputs["input_ids"].shape[1] :].tolist()
            latency_s = (time.perf_counter() - started) / len(batch)
            outputs = []
            for row, (clip, tokens) in enumerate(zip(batch, new_tokens, strict=True)):
                # the answer ends at its first stop token; after it comes padding up to the batch's longest answer
                tokens_out = next((i + 1 for i, t in enumerate(tokens) if t in self._stop_ids), len(tokens))
                output = ModelOutput(
                    clip.clip_id,
                    latency_s=latency_s,
                    tokens_out=tokens_out,
                    tokens_in=int(inputs["attention_mask"][row].sum()),
                )
                outputs.append(output)
                if non_finite.row_is_bad(row):
                    flag_non_finite(output, self.nan_guard)
                    continue
                output.answer = self.tokenizer.decode(tokens[:tokens_out], skip_special_tokens=True).strip()
                output.parsed_answer, output.event_time_s = read_answer(output.answer, question)
            return outputs

        return self._in_batches(clips, run)

    def _in_batches(self, clips: list[ClipInput], run: Callable[[list[ClipInput]], list[ModelOutput]]):
        """`run` over batches of up to batch_size clips of one frame shape (some models stack pixels), outputs in
        input order. A failing batch is retried clip by clip; a clip failing alone gets NaN and extra["error"]."""
        outputs: list[ModelOutput | None] = [None] * len(clips)
        selected: list[ClipInput | None] = [None] * len(clips)
        for i, clip in enumerate(clips):
            try:
                selected[i] = clip.evenly_thinned(self.num_frames, self.fps)
            except ValueError as error:
                outputs[i] = ModelOutput(clip.clip_id, extra={"error": str(error)})
                warnings.warn(str(error))
        shape = lambda i: selected[i].frames.shape  # noqa: E731
        order = sorted((i for i, clip in enumerate(selected) if clip is not None), key=shape)
        for _, same_shape in itertools.groupby(order, key=shape):
            same_shape = list(same_shape)
            for first in range(0, len(same_shape), self.batch_size):
                indices = same_shape[first : first + self.batch_size]
                try:
                    results = run([selected[i] for i in indices])
                except FloatingPointError:
                    raise  # nan_guard: false asked for it
                except Exception as error:  # noqa: BLE001  (one bad clip must not stop the others)
                    if len(indices) > 1:
                        results = [self._in_batches([clips[i]], run)[0] for i in indices]
                    else:
                        message = f"{self.name}: clip {clips[indices[0]].clip_id!r} failed: {error!r}"
                        warnings.warn(message)
                        results = [ModelOutput(clips[indices[0]].clip_id, extra={"error": message})]
                for i, result in zip(indices, results, strict=True):
                    outputs[i] = result
        return outputs
