"""What the OpenAI and Gemini baselines share: settings, frames as JPEG, the retry/rate-limit loop, yes/no probability.

The two backends differ only in how one request is made and read (openai_model.py, gemini_model.py); everything a
user tunes or pays for (frames sent, retries, rate, prices) is decided here the same way for both.

Failure policy, per clip: 429, 5xx, timeouts and connection errors are retried (tenacity) with exponential backoff
(jittered, never sooner than the server's Retry-After) up to `max_retries`; a clip that still fails, or that the API rejects
(e.g. 400), gets `p_ghost_probing=NaN` and `extra["error"]`, and the other clips carry on. What would fail every
clip stops the run with `ApiModelError`: a missing or rejected key (401/403), an unknown model (404), or
`abort_after_failed_clips` failed clips in a row (network down, quota gone), counted across calls: eval hands the
clips over `batch_size` at a time, and an outage must stop the run however they are batched.
"""

from __future__ import annotations

import base64
import email.utils
import importlib
import io
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tenacity
from PIL import Image

from ghostprobe.answers import read_answer
from ghostprobe.models.base import ClipInput, ModelOutput, Prompt

# What an API model's config says about pacing, retries, the key's variable and prices: none of it changes an answer.
API_PACING_KEYS = frozenset({"batch_size", "max_concurrency", "requests_per_minute", "timeout_s", "max_retries",
                             "backoff_initial_s", "backoff_max_s", "abort_after_failed_clips", "api_key_env",
                             "price_per_1m_input_usd", "price_per_1m_output_usd"})

log = logging.getLogger(__name__)

# How a failed request is handled (see the module docstring).
TRANSIENT, FATAL, CLIP = "transient", "fatal", "clip"


class ApiModelError(RuntimeError):
    """An API model cannot go on: missing or rejected key, unknown model, or too many failed clips in a row."""


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


def redactor(secret: str) -> Callable[[str], str]:
    """A function that blanks `secret` out of a text, for error messages that might echo a request back."""
    return lambda text: text.replace(secret, "[redacted]") if secret else text


# ---------------------------------------------------------------------------------------------------------------
# Frames and text sent with them


def select_frames(clip: ClipInput, max_frames: int) -> tuple[np.ndarray, list[float]]:
    """At most `max_frames` evenly spaced frames of the clip (first and last included) and their timestamps."""
    frames = clip.frames
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"clip {clip.clip_id}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    thinned = clip.evenly_thinned(max_frames)
    return thinned.frames, list(thinned.timestamps_s)


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
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def user_text(prompt: Prompt, question: str, timestamps_s: list[float]) -> str:
    """The question preceded by when the frames were taken, in the prompt's language.

    The models see only still images, so the timestamps are what lets them answer "when" in seconds.
    """
    times = ", ".join(f"{round(t, 2):g}" for t in timestamps_s)
    if prompt.language == "zh":
        frames_line = f"视频包含{len(timestamps_s)}帧，采样时间为 {times} 秒。"
    else:
        frames_line = f"The video contains {len(timestamps_s)} frames sampled at {times} seconds."
    return f"{frames_line}\n{question}"


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
# Sending: rate limit, retries, threads, accounting



class ApiModel:
    """What GPT-4o and Gemini share: score/generate through a `ClipRunner`. Subclasses call `_setup`, set `_client`
    and implement `_send(clip, prompt, question, max_tokens, logprobs) -> Reply`, `_classify`, `_describe` and
    `_retry_after` (see ClipRunner)."""

    def _setup(self, config: ApiConfig) -> str:
        """Keep the config, read the key from its environment variable and make the runner; returns the key."""
        self.config, self.name = config, config.name
        key = read_api_key(config.api_key_env, self.name)
        self._redact = redactor(key)
        self._runner = ClipRunner(config, self._classify, self._describe, self._retry_after)
        return key

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

class RateLimiter:
    """A thread-safe token bucket: on average `requests_per_minute`, at most `burst` requests back to back."""

    def __init__(self, requests_per_minute: float | None, burst: int = 1):
        self.rate_per_s = requests_per_minute / 60.0 if requests_per_minute else None
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a request slot; returns the seconds waited."""
        if self.rate_per_s is None:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            # Take the token now, even into debt, so that waiting threads queue up in order without a second lock.
            self._tokens -= 1.0
            wait_s = -self._tokens / self.rate_per_s if self._tokens < 0 else 0.0
        if wait_s > 0:
            time.sleep(wait_s)
        return wait_s


def retry_after_s(headers) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date), or None."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class ClipFailed(Exception):
    """A clip's request failed for good (see the module docstring); the run goes on."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class ClipRunner:
    """Sends one request per clip, a few clips at a time, with the rate limit, retries and per-clip accounting.

    The backend supplies `classify(exc) -> TRANSIENT | FATAL | CLIP`, `describe(exc) -> str` (already free of the
    key) and `retry_after(exc) -> seconds | None`.
    """

    def __init__(self, config: ApiConfig, classify, describe, retry_after):
        self.config = config
        self.classify, self.describe, self.retry_after = classify, describe, retry_after
        self.rate_limiter = RateLimiter(config.requests_per_minute)
        self._lock = threading.Lock()
        self._failed_in_a_row = 0
        self._abort_reason: str | None = None

    def run(self, clips: list[ClipInput], send: Callable[[ClipInput], Reply],
            to_output: Callable[[ClipInput, Reply], ModelOutput]) -> list[ModelOutput]:
        """`send` each clip (with retries) and turn its reply into a ModelOutput; outputs in input order."""
        # The failed-in-a-row count carries over from the previous call; an earlier fatal error does not.
        self._abort_reason = None
        if self.config.max_concurrency <= 1 or len(clips) <= 1:
            return [self._one(clip, send, to_output) for clip in clips]
        pool = ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix=self.config.name)
        try:
            return list(pool.map(lambda clip: self._one(clip, send, to_output), clips))
        finally:
            # After a fatal error the clips not started yet are dropped, not sent only to fail the same way.
            pool.shutdown(cancel_futures=True)

    def _one(self, clip, send, to_output) -> ModelOutput:
        start = time.monotonic()
        try:
            reply, latency_s, attempts = self._send_with_retries(clip, send)
        except ApiModelError as fatal:
            with self._lock:
                self._abort_reason = self._abort_reason or str(fatal)  # stops the clips in flight on other threads
            raise
        except ClipFailed as failure:
            self._count(failed=True, clip_id=clip.clip_id, message=str(failure))
            if self._abort_reason:
                raise ApiModelError(self._abort_reason) from None
            return ModelOutput(clip_id=clip.clip_id, extra={"error": str(failure), "attempts": failure.attempts,
                                                             "model": self.config.model})
        self._count(failed=False)
        out = to_output(clip, reply)
        out.latency_s = latency_s
        out.tokens_in, out.tokens_out = reply.tokens_in, reply.tokens_out
        out.cost_usd = (reply.tokens_in * self.config.price_per_1m_input_usd
                        + reply.tokens_out * self.config.price_per_1m_output_usd) / 1e6
        out.extra.update(model=self.config.model, attempts=attempts, wall_s=time.monotonic() - start)
        return out

    def _send_with_retries(self, clip, send) -> tuple[Reply, float, int]:
        """(reply, latency of the successful request, attempts); raises ClipFailed or, if fatal, ApiModelError.

        tenacity runs the retries. Not the clients' own: they would retry past the rate limiter and a run stopped
        on another thread, ignore Gemini's RetryInfo delay and backoff_initial_s/backoff_max_s (openai's delays are
        fixed), and not say how many attempts a clip took.
        """
        attempts, latency_s = 0, 0.0

        def attempt() -> Reply:
            nonlocal attempts, latency_s
            if self._abort_reason:
                raise ApiModelError(self._abort_reason)
            self.rate_limiter.acquire()
            attempts += 1
            start = time.monotonic()
            reply = send(clip)
            latency_s = time.monotonic() - start
            return reply

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.max_retries + 1),
            retry=tenacity.retry_if_exception(
                lambda exc: not isinstance(exc, ApiModelError) and self.classify(exc) == TRANSIENT),
            wait=lambda state: self._backoff_s(state.attempt_number - 1,
                                               self.retry_after(state.outcome.exception())),
            before_sleep=lambda state: log.warning(
                "%s: clip %s: %s; retry %d/%d in %.2f s", self.config.name, clip.clip_id,
                self.describe(state.outcome.exception()), state.attempt_number, self.config.max_retries,
                state.next_action.sleep),
            reraise=True)
        try:
            return retrying(attempt), latency_s, attempts
        except ApiModelError:
            raise
        except Exception as exc:  # noqa: BLE001  (any failure of one clip must not stop the others)
            kind, message = self.classify(exc), self.describe(exc)
        # Outside the except block, so that no traceback chains the client's exception (and its request).
        if kind == FATAL:
            raise ApiModelError(f"model {self.config.name!r} ({self.config.model}), clip {clip.clip_id}: "
                                f"{message}; check the key in ${self.config.api_key_env}, `model` and `base_url`")
        raise ClipFailed(f"{message} (after {attempts} attempt(s))", attempts)

    def _backoff_s(self, attempt: int, server_asks_s: float | None) -> float:
        # Full exponential backoff with jitter spreads out clients that failed together; the server's Retry-After is
        # a floor, capped so that a bogus huge value cannot stall a run for hours.
        backoff = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2**attempt)
        backoff *= random.uniform(0.5, 1.0)
        if server_asks_s is not None:
            backoff = max(backoff, min(server_asks_s, self.config.backoff_max_s))
        return backoff

    def _count(self, failed: bool, clip_id: str = "", message: str = "") -> None:
        """Count failed clips in a row; enough of them set the reason that stops the run."""
        with self._lock:
            self._failed_in_a_row = self._failed_in_a_row + 1 if failed else 0
            if not failed:
                return
            log.error("%s: clip %s failed: %s", self.config.name, clip_id, message)
            if self._failed_in_a_row >= self.config.abort_after_failed_clips and not self._abort_reason:
                self._abort_reason = (
                    f"model {self.config.name!r}: {self._failed_in_a_row} clips in a row failed, the last ({clip_id}) "
                    f"with: {message}; stopping (abort_after_failed_clips={self.config.abort_after_failed_clips})"
                )
