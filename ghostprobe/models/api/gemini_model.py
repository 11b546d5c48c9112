"""Gemini as a baseline, through the official `google-genai` client (Gemini Developer API, not Vertex AI).

Each clip is one `generateContent` request: the prompt's system message as `system_instruction`, the sampled frames
as inline JPEG parts, then the question. `score()` asks for `response_logprobs` and reads P(yes) against P(no) at the
first answer token; models that refuse logprobs (HTTP 400 naming them) are asked again without, once, and from then
on score() uses the parsed answer (`extra["score_source"] = "parsed"`). conf/model/gemini.yaml holds every setting.
The client retries nothing unless given `retry_options`, which we never give: retry.ClipRunner's policy (with
tenacity) runs alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from ghostprobe.models.api.common import API_PACING_KEYS, ApiConfig, ApiModel, Reply, import_client, request_content
from ghostprobe.models.api.retry import ErrorKind, retry_after_s
from ghostprobe.models.base import ClipInput, register
from ghostprobe.prompts import Prompt

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class GeminiConfig(ApiConfig):
    api_version: str  # "v1beta": where response logprobs are served
    response_logprobs: bool  # ask for logprobs in score(); off for models known to refuse them
    thinking_budget: int | None  # 0: answer at once (thinking tokens are billed as output); null: model default


@register("gemini", pacing_keys=API_PACING_KEYS, api=True)
class GeminiModel(ApiModel):
    """A VideoQAModel answering through Gemini generateContent with inline images (build it with `kind: gemini`)."""

    def __init__(self, **cfg):
        self._genai, self._types = import_client("google.genai"), import_client("google.genai.types")
        self._logprobs_refused = False
        super().__init__(GeminiConfig(**cfg))

    def _connect(self, api_key: str):
        return self._genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=self._types.HttpOptions(
                base_url=self.config.base_url,  # None keeps the official endpoint
                api_version=self.config.api_version,
                timeout=int(self.config.timeout_s * 1000),  # milliseconds in this client
            ),
        )

    def _send(self, clip: ClipInput, prompt: Prompt, question: str, max_tokens: int, logprobs: bool) -> Reply:
        types = self._types
        jpegs, text = request_content(clip, prompt, question, self.config)
        parts = [types.Part.from_bytes(data=jpeg, mime_type="image/jpeg") for jpeg in jpegs]
        parts.append(types.Part.from_text(text=text))
        want_logprobs = logprobs and self.config.response_logprobs and not self._logprobs_refused
        config = types.GenerateContentConfig(
            system_instruction=prompt.system or None,
            temperature=self.config.temperature,
            max_output_tokens=max_tokens,
            response_logprobs=True if want_logprobs else None,
            logprobs=self.config.top_logprobs if want_logprobs else None,
            thinking_config=(
                types.ThinkingConfig(thinking_budget=self.config.thinking_budget)
                if self.config.thinking_budget is not None
                else None
            ),
        )
        contents = [types.Content(role="user", parts=parts)]
        try:
            response = self._client.models.generate_content(model=self.config.model, contents=contents, config=config)
        except Exception as exc:
            if not (want_logprobs and self._refuses_logprobs(exc)):
                raise
            log.warning(
                "%s: %s does not serve logprobs (%s); score() falls back to parsed answers",
                self.name,
                self.config.model,
                self._describe(exc),
            )
            self._logprobs_refused = True
            config.response_logprobs, config.logprobs = None, None
            response = self._client.models.generate_content(model=self.config.model, contents=contents, config=config)
        return self._read(response)

    @staticmethod
    def _read(response) -> Reply:
        usage = response.usage_metadata
        tokens_in = (usage.prompt_token_count or 0) if usage else 0
        # Thinking tokens are billed as output tokens.
        tokens_out = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        if not response.candidates:  # the prompt itself was blocked
            feedback = response.prompt_feedback
            reason = f"blocked: {feedback.block_reason}" if feedback and feedback.block_reason else "no candidates"
            return Reply(text=None, top_logprobs=None, tokens_in=tokens_in, tokens_out=tokens_out, finish_reason=reason)
        candidate = response.candidates[0]
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        text = "".join(part.text for part in parts if part.text and not part.thought) or None
        steps = None
        result = candidate.logprobs_result
        if result is not None and result.top_candidates:
            steps = []
            for index, position in enumerate(result.top_candidates):
                alternatives = {
                    alt.token: alt.log_probability
                    for alt in position.candidates or []
                    if alt.token is not None and alt.log_probability is not None
                }
                chosen = result.chosen_candidates[index] if index < len(result.chosen_candidates or []) else None
                if chosen is not None and chosen.token is not None and chosen.log_probability is not None:
                    alternatives[chosen.token] = chosen.log_probability
                steps.append(alternatives)
        finish_reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)  # an enum, or a new str
        return Reply(
            text=text, top_logprobs=steps, tokens_in=tokens_in, tokens_out=tokens_out, finish_reason=finish_reason
        )

    @staticmethod
    def _refuses_logprobs(exc: Exception) -> bool:
        from google.genai import errors

        return isinstance(exc, errors.ClientError) and exc.code == 400 and "logprob" in str(exc.message).lower()

    @staticmethod
    def _classify(exc: Exception) -> ErrorKind:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            # The Developer API answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
            if exc.code in (401, 403, 404) or (exc.code == 400 and "api key" in str(exc.message).lower()):
                return ErrorKind.FATAL
            if exc.code in (408, 429) or exc.code >= 500:
                return ErrorKind.TRANSIENT
            return ErrorKind.CLIP
        # Timeouts and refused connections come from httpx or httpx2, whichever the client picked.
        names = {cls.__name__ for cls in type(exc).__mro__}
        if names & {"TimeoutException", "ConnectError", "RemoteProtocolError", "ReadError", "WriteError"}:
            return ErrorKind.TRANSIENT
        return ErrorKind.CLIP

    def _describe(self, exc: Exception) -> str:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            return self._redact(f"HTTP {exc.code} {exc.status or ''} from the Gemini API: {exc.message}")
        if "TimeoutException" in {cls.__name__ for cls in type(exc).__mro__}:
            return self._timed_out()
        return self._redact(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _retry_after(exc: Exception) -> float | None:
        """Retry-After header, else the google.rpc.RetryInfo delay ("retryDelay": "7s") Gemini puts in 429 bodies."""
        from_header = retry_after_s(exc)
        if from_header is not None:
            return from_header
        details = getattr(exc, "details", None)
        error = details.get("error", details) if isinstance(details, dict) else {}
        for detail in error.get("details", []) if isinstance(error, dict) else []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
                match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
                if match:
                    return float(match.group(1))
        return None
