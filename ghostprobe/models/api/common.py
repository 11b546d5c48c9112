"""What the OpenAI and Gemini baselines share: settings, frames as JPEG, the model class, yes/no probability.

The two backends differ only in how one request is made and read (openai_model.py, gemini_model.py); everything a
user tunes or pays for (frames sent, retries, rate, prices) is decided here and in retry.py (the failure policy: which
errors are retried, which fail a clip, which stop the run) the same way for both.
"""

from __future__ import annotations

import abc
import base64
import importlib
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ghostprobe.answers import read_answer
from ghostprobe.models.api.retry import ApiModelError, ClipRunner, ErrorKind
from ghostprobe.models.base import ClipInput, ModelOutput
from ghostprobe.prompts import Prompt, after_frames_message

# What an API model's config says about pacing, retries, the key's variable and prices: none of it changes an answer.
API_PACING_KEYS = frozenset(
    {
        "batch_size",
        "max_concurrency",
        "requests_per_minute",
        "timeout_s",
        "max_retries",
        "backoff_initial_s",
        "backoff_max_s",
        "abort_after_failed_clips",
        "api_key_env",
        "price_per_1m_input_usd",
        "price_per_1m_output_usd",
    }
)


@dataclass(kw_only=True)
class ApiConfig:
    """The settings both API backends read from conf/model/*.yaml (documented there)."""

    name: str
    model: str
    api_key_env: str
    base_url: str | None
    max_frames: int
    image_size: int
    jpeg_quality: int
    temperature: float
    max_tokens_score: int
    max_tokens_generate: int
    top_logprobs: int
    timeout_s: float
    max_retries: int
    backoff_initial_s: float
    backoff_max_s: float
    requests_per_minute: float | None
    max_concurrency: int
    batch_size: int  # clips eval hands over per call; `max_concurrency` of them are in flight at once
    abort_after_failed_clips: int
    price_per_1m_input_usd: float
    price_per_1m_output_usd: float


@dataclass
class Reply:
    """One successful API answer, already read out of the backend's response object."""

    text: str | None
    # Per generated token, its top alternatives (and itself) as token -> logprob; None when the API gave none.
    top_logprobs: list[dict[str, float]] | None
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = None


def read_api_key(env_var: str, model_name: str) -> str:
    """The API key from the environment variable the config names; a clear error (naming the variable) if unset."""
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise ApiModelError(
            f"model {model_name!r}: environment variable {env_var} is not set; export your API key as {env_var} "
            f"(keys are read from the environment only, never from config files)"
        )
    return key


def import_client(module: str):
    """The API client package `module`; an ImportError saying how to install it when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed: the API baselines need it, pip install -e .[api]") from error


def redactor(secret: str, max_chars: int = 500) -> Callable[[str], str]:
    """A function that blanks `secret` out of a text and keeps its first `max_chars` characters, for error messages
    that might echo a request back. Blanked before it is cut, so that no part of the secret survives the cut."""
    return lambda text: (text.replace(secret, "[redacted]") if secret else text)[:max_chars]


# ---------------------------------------------------------------------------------------------------------------
# Frames and text sent with them


def jpeg_bytes(frame: np.ndarray, image_size: int, quality: int) -> bytes:
    """One RGB frame as JPEG, shrunk (never enlarged) so that its longest side is at most `image_size`."""
    image = Image.fromarray(frame)
    if max(image.size) > image_size:
        scale = image_size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_data_url(jpeg: bytes) -> str:
    """A JPEG as a `data:` URL, the form OpenAI takes images in."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def request_content(clip: ClipInput, prompt: Prompt, question: str, config: ApiConfig) -> tuple[list[bytes], str]:
    """What one request carries: at most `max_frames` of the clip's frames, evenly spaced (first and last included),
    as JPEG, and the text after them: the question preceded by when the frames were taken, in the prompt's language.

    The models see only still images, so the timestamps are what lets them answer "when" in seconds; they are
    written in hundredths (ghostprobe.prompts.TIME_FORMATS), as these baselines have always been sent them.
    """
    frames = clip.frames
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"clip {clip.clip_id}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    sent = clip.evenly_thinned(config.max_frames)
    jpegs = [jpeg_bytes(frame, config.image_size, config.jpeg_quality) for frame in sent.frames]
    return jpegs, after_frames_message(question, sent.timestamps_s, prompt.language, time_format="hundredths")


# ---------------------------------------------------------------------------------------------------------------
# Reading answers


def _answer_token(token: str) -> str:
    return token.strip().strip("*_.,:;!\"'。，：！").lower()


def p_yes_from_logprobs(steps: list[dict[str, float]] | None, yes_word: str, no_word: str) -> tuple[float, int] | None:
    """P(yes) / (P(yes) + P(no)) at the first generated token whose top alternatives hold the yes or the no word.

    Tokens match case- and whitespace-insensitively ("Yes", " yes", "YES"; "是"), and all spellings of a word add up.
    The first such token is normally token 0; a leading "**" or quote is skipped. A word missing from the top
    alternatives counts as probability 0 (it is below every listed one). Returns (p, token index) or None.
    """
    yes, no = _answer_token(yes_word), _answer_token(no_word)
    for index, alternatives in enumerate(steps or []):
        p_yes = sum(math.exp(lp) for token, lp in alternatives.items() if _answer_token(token) == yes)
        p_no = sum(math.exp(lp) for token, lp in alternatives.items() if _answer_token(token) == no)
        if p_yes + p_no > 0:
            return p_yes / (p_yes + p_no), index
    return None


def reply_to_output(clip: ClipInput, reply: Reply, prompt: Prompt, question: str, want_score: bool) -> ModelOutput:
    """A ModelOutput from an answer: parsed yes/no, event time for "when", and for score() P(ghost probing)."""
    parsed, event_time_s = read_answer(reply.text, "when" if question == "when" else "detect")
    out = ModelOutput(clip_id=clip.clip_id, answer=reply.text, parsed_answer=parsed, event_time_s=event_time_s)
    if reply.finish_reason:
        out.extra["finish_reason"] = reply.finish_reason
    if want_score:
        from_logprobs = p_yes_from_logprobs(reply.top_logprobs, prompt.yes_word, prompt.no_word)
        if from_logprobs is not None:
            out.p_ghost_probing, out.extra["logprob_token_index"] = from_logprobs
            out.extra["score_source"] = "logprobs"
        elif out.parsed_answer is not None:
            out.p_ghost_probing = float(out.parsed_answer)
            out.extra["score_source"] = "parsed"
        else:
            out.extra["score_source"] = "none"  # p stays NaN: an unreadable answer is not a "no"
    return out


# ---------------------------------------------------------------------------------------------------------------
# The model


class ApiModel(abc.ABC):
    """What GPT-4o and Gemini share: score/generate, one request per clip through a `ClipRunner` (retry.py).

    A backend builds its config and calls `super().__init__(config)`, then implements how to connect (`_connect`),
    send one request (`_send`) and read its client's failures (`_classify`, `_describe`, `_retry_after`).
    """

    def __init__(self, config: ApiConfig):
        """Keep the config, read the key from its environment variable, connect, and make the runner."""
        self.config, self.name = config, config.name
        key = read_api_key(config.api_key_env, self.name)
        self._redact = redactor(key)
        self._client = self._connect(key)
        self._runner = ClipRunner(config, self)

    @abc.abstractmethod
    def _connect(self, api_key: str):
        """The backend's API client, its own retries off: the runner's policy is the only one that runs."""

    @abc.abstractmethod
    def _send(self, clip: ClipInput, prompt: Prompt, question: str, max_tokens: int, logprobs: bool) -> Reply:
        """One request for one clip (see `request_content`), its answer read into a Reply; raises the client's
        exception on failure."""

    @abc.abstractmethod
    def _classify(self, exc: Exception) -> ErrorKind:
        """Whether the client's exception is retried, fails the clip, or stops the run."""

    @abc.abstractmethod
    def _describe(self, exc: Exception) -> str:
        """The failure in one line for logs and `extra["error"]`, free of the key."""

    @abc.abstractmethod
    def _retry_after(self, exc: Exception) -> float | None:
        """How long the server asked to wait before the next attempt, in seconds; None when it did not say."""

    def _timed_out(self) -> str:
        """What `_describe` says of a request that ran past `timeout_s`."""
        return f"request timed out after {self.config.timeout_s} s (timeout_s)"

    def score(self, clips: list[ClipInput], prompt: Prompt) -> list[ModelOutput]:
        """P(ghost probing) per clip from the first answer token's logprobs; the parsed answer where there are none."""
        return self._runner.run(
            clips,
            lambda clip: self._send(clip, prompt, prompt.question, self.config.max_tokens_score, logprobs=True),
            lambda clip, reply: reply_to_output(clip, reply, prompt, "detect", want_score=True),
        )

    def generate(self, clips: list[ClipInput], prompt: Prompt, question: str = "detect") -> list[ModelOutput]:
        """Free-text answers, parsed into yes/no and, for question="when", the event time in seconds."""
        text = {"detect": prompt.question, "when": prompt.when_question}[question]
        return self._runner.run(
            clips,
            lambda clip: self._send(clip, prompt, text, self.config.max_tokens_generate, logprobs=False),
            lambda clip, reply: reply_to_output(clip, reply, prompt, question, want_score=False),
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"  # the config names the key's variable, never the key
