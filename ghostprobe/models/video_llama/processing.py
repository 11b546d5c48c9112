"""Prepared clips + a prompt -> Video-LLaMA-2 model inputs: normalised pixels, the LLaMA-2 chat prompt, padded batches.

One processor serves evaluation and training, so that both see the same token sequences:
- scoring / generation: `processor(clips, prompt)`;
- training: `processor(clips, prompt, answers=[...])` appends each answer and `</s>` and supervises only those.
Rows are LEFT-padded in both cases: every row's last prompt token is then the last position (what scoring reads
and where generation continues), and `position_ids` count real tokens only, so a clip gets the same logits whatever
else is in its batch.

Token ids equal the original's (see prompt_format.py): the text on each side of the video is tokenized on its own,
with sentencepiece on the folder's `tokenizer.model` when it has one (the original's slow `LlamaTokenizer` is
sentencepiece; transformers 5 converting `tokenizer.model` tokenizes a double space differently), else with the
folder's transformers tokenizer (the tiny test model, or a LLaMA folder that ships a `tokenizer.json`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from ghostprobe.frames import RESIZE_MODES, resize_frames
from ghostprobe.models.base import ClipInput
from ghostprobe.prompts import Prompt

from .configuration import VideoLlamaConfig
from .prompt_format import PROMPT_END, PROMPT_FORMATS, VIDEO_PLACEHOLDER, prompt_segments

PROCESSOR_CONFIG_NAME = "processor_config.json"
SENTENCEPIECE_MODEL_NAME = "tokenizer.model"
# The original Video-LLaMA frame normalisation (BLIP-2's, i.e. OpenAI CLIP's statistics).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
QUESTIONS = ("detect", "when")
IGNORE_INDEX = -100  # label value the LM loss skips


@dataclass(frozen=True)
class AnswerChoice:
    """The two tokens that scoring compares, after the tokens both answers start with.

    LLaMA's sentencepiece writes the space after "[/INST]" into the answer's first piece ("▁Yes"); a Chinese
    character has no such piece, so " 是" is ["▁", "是"]. `prefix_ids` (here ["▁"]) are appended to the prompt, and
    the yes/no decision is read at the next position.
    """

    prefix_ids: tuple[int, ...]
    yes_id: int
    no_id: int


def yes_probability_from_logits(logits: torch.Tensor, choice: AnswerChoice) -> torch.Tensor:
    """P(yes) / (P(yes) + P(no)) per row of next-token `logits` [B, vocab]; NaN where any logit of the row is not
    finite (fp16 overflow). Eval's scoring (backend.yes_probability) and the trainer's validation both read it."""
    pair = logits[:, [choice.yes_id, choice.no_id]].float()
    p_yes = pair.softmax(-1)[:, 0]
    return p_yes.masked_fill(~torch.isfinite(logits).all(-1), float("nan"))


class VideoLlamaProcessor:
    """`ClipInput`s + a `Prompt` -> `input_ids`, `attention_mask`, `position_ids`, `pixel_values` (+ `labels`).

    Args:
        tokenizer: the checkpoint folder's LLaMA tokenizer, holding the `<ImageHere>` placeholder token.
        image_size: frames are resized to image_size x image_size (224 for the released models).
        num_video_query_tokens: placeholder tokens per prompt (the model's LLM tokens per clip, 32).
        max_frames: most frames per clip (rows of the model's frame position embedding, 32).
        resize: "straight" (squeeze, as the original) or "pad" (keep aspect, letterbox), for frames not yet square
            at image_size.
        prompt_format: "original" (the original Chat path, token for token) or "localized_frames" (prompt_format.py).
        sentencepiece_model: the LLaMA `tokenizer.model` to tokenize text with (as the original); None: `tokenizer`.
    """

    def __init__(
        self,
        tokenizer,
        image_size: int = 224,
        num_video_query_tokens: int = 32,
        max_frames: int = 32,
        resize: str = "straight",
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        prompt_format: str = "original",
        sentencepiece_model: str | Path | None = None,
    ):
        if VIDEO_PLACEHOLDER not in tokenizer.get_vocab():
            raise ValueError(
                f"the tokenizer has no {VIDEO_PLACEHOLDER} token: use the tokenizer of a folder "
                "written by scripts/convert_video_llama.py (or ghostprobe.models.video_llama.tiny)"
            )
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        self.tokenizer, self.prompt_format = tokenizer, prompt_format
        self.sentencepiece = None
        if sentencepiece_model is not None:
            import sentencepiece

            self.sentencepiece = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model))
        self.image_size, self.num_video_query_tokens, self.max_frames = image_size, num_video_query_tokens, max_frames
        self.resize = resize
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_PLACEHOLDER)
        self.bos_id, self.eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        # The original pads LLaMA-2 prompts with <unk>; padded positions are masked out, so any id would do.
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.unk_token_id, 0) if i is not None)

    # ---- frames -----------------------------------------------------------------------------------------------
    def check_frames(self, frames: np.ndarray, clip_id: str = "?", num_timestamps: int | None = None) -> None:
        """Raise ValueError naming the clip when its frames cannot go into the model."""
        shape = getattr(frames, "shape", None)
        if shape is None or len(shape) != 4 or shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"clip {clip_id!r}: frames must be uint8 RGB [T, H, W, 3], got "
                f"{getattr(frames, 'dtype', type(frames))} {shape}"
            )
        if not 1 <= shape[0] <= self.max_frames:
            raise ValueError(
                f"clip {clip_id!r}: {shape[0]} frames, but Video-LLaMA takes 1 to max_frames="
                f"{self.max_frames} (its frame position embedding has that many rows); sample fewer "
                "frames (conf/sampling)"
            )
        if num_timestamps is not None and num_timestamps != shape[0]:
            raise ValueError(f"clip {clip_id!r}: {shape[0]} frames but {num_timestamps} timestamps")

    def pixel_values(self, frames: np.ndarray, clip_id: str = "?") -> torch.Tensor:
        """uint8 frames [T, H, W, 3] of any size -> float [T, 3, S, S]: resized, /255, CLIP mean/std normalised."""
        self.check_frames(frames, clip_id)
        if frames.shape[1:3] != (self.image_size, self.image_size):
            frames = resize_frames(frames, self.image_size, self.resize)
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        return (pixels - mean) / std

    # ---- text -------------------------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """Token ids of a piece of prompt text, no BOS/EOS, as the original's LLaMA tokenizer gives them."""
        if self.sentencepiece is not None:
            return self.sentencepiece.encode(text)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prompt_segments(
        self, prompt: Prompt, timestamps_s: Sequence[float], question: str = "detect"
    ) -> tuple[str, str]:
        """The prompt's text before and after the video, in this processor's `prompt_format`."""
        if question not in QUESTIONS:
            raise ValueError(f"question must be one of {QUESTIONS}, got {question!r}")
        text = prompt.question if question == "detect" else prompt.when_question
        return prompt_segments(self.prompt_format, prompt, timestamps_s, text)

    def prompt_text(self, prompt: Prompt, timestamps_s: Sequence[float], question: str = "detect") -> str:
        """The whole prompt as the original's `conv.get_prompt()` writes it (one `<ImageHere>` for the video)."""
        return VIDEO_PLACEHOLDER.join(self.prompt_segments(prompt, timestamps_s, question))

    def prompt_ids(self, prompt: Prompt, timestamps_s: Sequence[float], question: str = "detect") -> list[int]:
        """BOS + the text before the video + one placeholder id per video token + the text after it."""
        before, after = self.prompt_segments(prompt, timestamps_s, question)
        return [
            self.bos_id,
            *self.encode_text(before),
            *[self.video_token_id] * self.num_video_query_tokens,
            *self.encode_text(after),
        ]

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of `answer` as it follows a prompt (after "[/INST] "), without bos/eos."""
        context = self.encode_text(PROMPT_END)
        full = self.encode_text(f"{PROMPT_END} {answer.strip()}")
        if full[: len(context)] != context:
            raise ValueError(f"the tokenizer merges {PROMPT_END!r} with the answer {answer!r}: cannot split them")
        return full[len(context) :]

    def answer_choice(self, yes_word: str, no_word: str) -> AnswerChoice:
        """The tokens scoring compares for a prompt's yes/no words, read from this tokenizer (never hard-coded).

        A word of several tokens is scored by its first token after the prefix both words share (with a warning);
        two words that tokenize alike up to the end of one of them cannot be told apart and raise ValueError.
        """
        yes, no = self.answer_ids(yes_word), self.answer_ids(no_word)
        shared = 0
        while shared < min(len(yes), len(no)) and yes[shared] == no[shared]:
            shared += 1
        if shared == len(yes) or shared == len(no):
            pieces = (self.tokenizer.convert_ids_to_tokens(yes), self.tokenizer.convert_ids_to_tokens(no))
            raise ValueError(
                f"answer words {yes_word!r} and {no_word!r} tokenize to {pieces[0]} and {pieces[1]}: "
                "no single token tells them apart; choose other yes_word/no_word in the prompt"
            )
        for word, ids in ((yes_word, yes), (no_word, no)):
            if len(ids) > shared + 1:
                warnings.warn(
                    f"answer word {word!r} is {len(ids) - shared} tokens "
                    f"{self.tokenizer.convert_ids_to_tokens(ids[shared:])}: scoring uses the first"
                )
        return AnswerChoice(tuple(yes[:shared]), yes[shared], no[shared])

    def decode(self, ids: Sequence[int]) -> str:
        """Generated ids -> text, special tokens dropped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    # ---- batches ----------------------------------------------------------------------------------------------
    def __call__(
        self,
        clips: Sequence[ClipInput],
        prompt: Prompt,
        question: str = "detect",
        answers: Sequence[str] | None = None,
        suffix_ids: Sequence[int] = (),
    ) -> dict[str, torch.Tensor]:
        """A left-padded model batch; with `answers`, also `labels` (-100 except each answer's tokens and `</s>`).

        All clips of a batch need the same number of frames (the model stacks them). `suffix_ids` are appended to
        every prompt (scoring appends `AnswerChoice.prefix_ids`).
        """
        if answers is not None and len(answers) != len(clips):
            raise ValueError(f"got {len(answers)} answers for {len(clips)} clips")
        frame_counts = {clip.clip_id: len(clip.frames) for clip in clips}
        if len(set(frame_counts.values())) > 1:
            raise ValueError(f"clips of one batch must have the same number of frames, got {frame_counts}")
        pixel_values, rows, label_rows = [], [], []
        for i, clip in enumerate(clips):
            self.check_frames(clip.frames, clip.clip_id, len(clip.timestamps_s))
            pixel_values.append(self.pixel_values(clip.frames, clip.clip_id))
            ids = [*self.prompt_ids(prompt, clip.timestamps_s, question), *suffix_ids]
            if ids.count(self.video_token_id) != self.num_video_query_tokens:  # a tokenizer mapping text to it
                raise ValueError(
                    f"clip {clip.clip_id!r}: the prompt holds {ids.count(self.video_token_id)} "
                    f"{VIDEO_PLACEHOLDER} tokens, expected {self.num_video_query_tokens}"
                )
            labels = [IGNORE_INDEX] * len(ids)
            if answers is not None:
                answer = [*self.answer_ids(answers[i]), self.eos_id]
                ids, labels = ids + answer, labels + answer
            rows.append(ids)
            label_rows.append(labels)

        length = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        for i, (ids, row_labels) in enumerate(zip(rows, label_rows, strict=True)):
            input_ids[i, length - len(ids) :] = torch.tensor(ids)
            attention_mask[i, length - len(ids) :] = 1
            labels[i, length - len(ids) :] = torch.tensor(row_labels)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            # Positions count real tokens, so left padding does not shift the rotary positions of a row.
            "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
            "pixel_values": torch.stack(pixel_values),
        }
        if answers is not None:
            batch["labels"] = labels
        return batch

    # ---- files ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "num_video_query_tokens": self.num_video_query_tokens,
            "max_frames": self.max_frames,
            "resize": self.resize,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "prompt_format": self.prompt_format,
        }

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the tokenizer (+ tokenizer.model) and processor_config.json into `out_dir` (the model folder)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(out_dir)
        if self.sentencepiece is not None:
            (out_dir / SENTENCEPIECE_MODEL_NAME).write_bytes(self.sentencepiece.serialized_model_proto())
        (out_dir / PROCESSOR_CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides) -> VideoLlamaProcessor:
        """Load from a model folder (converter output, tiny model or training checkpoint).

        `overrides` replace processor_config.json's values; None values are ignored (a config's "use the folder's").
        """
        path = Path(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        config_file = path / PROCESSOR_CONFIG_NAME
        sentencepiece_model = path / SENTENCEPIECE_MODEL_NAME
        if config_file.is_file():
            kwargs = json.loads(config_file.read_text())
        else:
            config = VideoLlamaConfig.from_pretrained(path)
            kwargs = {
                "image_size": config.vision_config.image_size,
                "max_frames": config.max_frames,
                "num_video_query_tokens": config.num_video_query_tokens,
            }
        if not sentencepiece_model.is_file() and getattr(tokenizer, "vocab_size", 0) == 32000:
            warnings.warn(
                f"{path}: no {SENTENCEPIECE_MODEL_NAME}, so LLaMA-2 prompts are tokenized by transformers, "
                "which differs from the original on double spaces; convert the checkpoint again "
                "(scripts/convert_video_llama.py copies tokenizer.model)"
            )
        kwargs.update({key: value for key, value in overrides.items() if value is not None})
        return cls(
            tokenizer, sentencepiece_model=sentencepiece_model if sentencepiece_model.is_file() else None, **kwargs
        )
