"""GPT-4o (and other OpenAI vision chat models) as a baseline, through the official `openai` client.

Each clip is one chat-completions request: the prompt's system message, then the sampled frames as JPEG data URLs
(`image_url` parts) and the question. `score()` asks for `logprobs` with `top_logprobs` and reads P(yes) against
P(no) at the first answer token; `generate()` returns free text. conf/model/gpt4o.yaml holds every setting.
The client's own retries are off (`max_retries=0`): retry.ClipRunner's policy (tenacity) is the only one that runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ghostprobe.models.api.common import (
    API_PACING_KEYS,
    ApiConfig,
    ApiModel,
    Reply,
    import_client,
    jpeg_data_url,
    request_content,
)
from ghostprobe.models.api.retry import ErrorKind, retry_after_s
from ghostprobe.models.base import ClipInput, register
from ghostprobe.prompts import Prompt


@dataclass(kw_only=True)
class OpenAIConfig(ApiConfig):
    image_detail: str  # "low" | "high" | "auto": how many tokens each image costs


@register("openai", pacing_keys=API_PACING_KEYS, api=True)
class OpenAIChatModel(ApiModel):
    """A VideoQAModel answering through OpenAI chat completions with images (build it with `kind: openai`)."""

    def __init__(self, **cfg):
        self._openai = import_client("openai")
        super().__init__(OpenAIConfig(**cfg))

    def _connect(self, api_key: str):
        return self._openai.OpenAI(
            api_key=api_key, base_url=self.config.base_url, timeout=self.config.timeout_s, max_retries=0
        )

    def _send(self, clip: ClipInput, prompt: Prompt, question: str, max_tokens: int, logprobs: bool) -> Reply:
        jpegs, text = request_content(clip, prompt, question, self.config)
        content = [
            {"type": "image_url", "image_url": {"url": jpeg_data_url(jpeg), "detail": self.config.image_detail}}
            for jpeg in jpegs
        ]
        content.append({"type": "text", "text": text})
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages.append({"role": "user", "content": content})
        extra = {"logprobs": True, "top_logprobs": self.config.top_logprobs} if logprobs else {}
        response = self._client.chat.completions.create(
            model=self.config.model,
            messages=messages,
            temperature=self.config.temperature,
            max_tokens=max_tokens,
            **extra,
        )
        choice = response.choices[0]
        steps = None
        if choice.logprobs is not None and choice.logprobs.content:
            steps = [
                {**{alt.token: alt.logprob for alt in position.top_logprobs}, position.token: position.logprob}
                for position in choice.logprobs.content
            ]
        usage = response.usage
        return Reply(
            text=choice.message.content,
            top_logprobs=steps,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )

    @staticmethod
    def _classify(exc: Exception) -> ErrorKind:
        import openai

        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return ErrorKind.TRANSIENT
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code in (401, 403, 404):
                return ErrorKind.FATAL
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                return ErrorKind.TRANSIENT
        return ErrorKind.CLIP

    def _describe(self, exc: Exception) -> str:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return self._timed_out()
        if isinstance(exc, openai.APIConnectionError):  # the client's message hides why: the cause says it
            where = self.config.base_url or "the OpenAI API"
            return self._redact(f"APIConnectionError: cannot reach {where}: {exc.__cause__ or exc}")
        if isinstance(exc, openai.APIStatusError):
            message = exc.message
            if isinstance(exc.body, dict) and exc.body.get("message"):
                message = str(exc.body["message"])
            return self._redact(f"HTTP {exc.status_code} from the OpenAI API: {message}")
        return self._redact(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _retry_after(exc: Exception) -> float | None:
        return retry_after_s(exc)
