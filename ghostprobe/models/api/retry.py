"""How an API model's requests go out: the rate limit, retries, threads, per-clip accounting and the failure policy.

Failure policy, per clip: 429, 5xx, timeouts and connection errors are retried (tenacity) with exponential backoff
(jittered, never sooner than the server's Retry-After) up to `max_retries`; a clip that still fails, or that the API
rejects (e.g. 400), gets `p_ghost_probing=NaN` and `extra["error"]`, and the other clips carry on. What would fail every
clip stops the run with `ApiModelError`: a missing or rejected key (401/403), an unknown model (404), or
`abort_after_failed_clips` failed clips in a row (network down, quota gone), counted across calls: eval hands the
clips over `batch_size` at a time, and an outage must stop the run however they are batched.
Each backend sorts its client's exceptions into the three `ErrorKind`s (ApiModel._classify).
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import tenacity

from ghostprobe.models.base import ClipInput, ModelOutput

if TYPE_CHECKING:
    from ghostprobe.models.api.common import ApiConfig, ApiModel, Reply

log = logging.getLogger(__name__)


class ErrorKind(enum.Enum):
    """How a failed request is handled (see the module docstring)."""

    TRANSIENT = "transient"  # retried: 429, 5xx, timeouts, connection errors
    FATAL = "fatal"  # stops the run: a missing or rejected key, an unknown model
    CLIP = "clip"  # the clip fails alone, at once: a request the API rejects (e.g. 400)


class ApiModelError(RuntimeError):
    """An API model cannot go on: missing or rejected key, unknown model, or too many failed clips in a row."""


class RateLimiter:
    """A thread-safe token bucket: on average `requests_per_minute`, at most `burst` requests back to back."""

    def __init__(self, requests_per_minute: float | None, burst: int = 1, clock=time.monotonic, sleep=time.sleep):
        self.rate_per_s = requests_per_minute / 60.0 if requests_per_minute else None
        self.burst = burst
        self._clock, self._sleep = clock, sleep  # replaceable: the tests check the schedule, not wake-up jitter
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a request slot; returns the seconds waited."""
        if self.rate_per_s is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            # Take the token now, even into debt, so that waiting threads queue up in order without a second lock.
            self._tokens -= 1.0
            wait_s = -self._tokens / self.rate_per_s if self._tokens < 0 else 0.0
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s


def retry_after_s(exc: Exception) -> float | None:
    """Seconds the server asked to wait, from the headers of the failed request's response: `retry-after-ms`
    (OpenAI) or `Retry-After` (seconds or an HTTP date); None when it said nothing."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
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

    The backend (an ApiModel) says what a failure is: `_classify(exc) -> ErrorKind`, `_describe(exc) -> str`
    (already free of the key) and `_retry_after(exc) -> seconds | None`.
    """

    def __init__(self, config: ApiConfig, backend: ApiModel):
        self.config, self.backend = config, backend
        self.rate_limiter = RateLimiter(config.requests_per_minute)
        self._lock = threading.Lock()
        self._failed_in_a_row = 0
        self._abort_reason: str | None = None

    def run(
        self,
        clips: list[ClipInput],
        send: Callable[[ClipInput], Reply],
        to_output: Callable[[ClipInput, Reply], ModelOutput],
    ) -> list[ModelOutput]:
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
            return ModelOutput(
                clip_id=clip.clip_id,
                extra={"error": str(failure), "attempts": failure.attempts, "model": self.config.model},
            )
        self._count(failed=False)
        out = to_output(clip, reply)
        out.latency_s = latency_s
        out.tokens_in, out.tokens_out = reply.tokens_in, reply.tokens_out
        out.cost_usd = (
            reply.tokens_in * self.config.price_per_1m_input_usd
            + reply.tokens_out * self.config.price_per_1m_output_usd
        ) / 1e6
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
                lambda exc: not isinstance(exc, ApiModelError) and self.backend._classify(exc) is ErrorKind.TRANSIENT
            ),
            wait=lambda state: self._backoff_s(
                state.attempt_number - 1, self.backend._retry_after(state.outcome.exception())
            ),
            before_sleep=lambda state: log.warning(
                "%s: clip %s: %s; retry %d/%d in %.2f s",
                self.config.name,
                clip.clip_id,
                self.backend._describe(state.outcome.exception()),
                state.attempt_number,
                self.config.max_retries,
                state.next_action.sleep,
            ),
            reraise=True,
        )
        try:
            return retrying(attempt), latency_s, attempts
        except ApiModelError:
            raise
        except Exception as exc:  # noqa: BLE001  (any failure of one clip must not stop the others)
            kind, message = self.backend._classify(exc), self.backend._describe(exc)
        # Outside the except block, so that no traceback chains the client's exception (and its request).
        if kind is ErrorKind.FATAL:
            raise ApiModelError(
                f"model {self.config.name!r} ({self.config.model}), clip {clip.clip_id}: "
                f"{message}; check the key in ${self.config.api_key_env}, `model` and `base_url`"
            )
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
