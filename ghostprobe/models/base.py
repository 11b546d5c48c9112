"""One interface for every kind of model: Video-LLaMA-2, HF-native video LLMs and API models.

A model answers two calls on a batch of prepared clips:
- `score`: P(ghost probing) from the yes/no answer-token probabilities (no generation where the model exposes
  logits; API models without logits derive it from a parsed answer, see their docs);
- `generate`: free-text answers, parsed into yes/no and, for the event-time question, seconds.
Backends register a factory under a `kind` name; `build_model(cfg)` picks it from `cfg.kind` (conf/model/*.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ClipInput:
    """One prepared clip (or window): frames as stored by data prep and their timestamps."""

    clip_id: str
    frames: np.ndarray  # uint8 RGB [T, H, W, 3]
    timestamps_s: tuple[float, ...]

    def evenly_thinned(self, keep: int) -> ClipInput:
        """The clip with at most `keep` of its frames, evenly spaced over the stored ones (first and last kept)."""
        count = len(self.frames)
        if len(self.timestamps_s) != count:
            raise ValueError(f"clip {self.clip_id}: {count} frames but {len(self.timestamps_s)} timestamps")
        if keep >= count:
            return self
        chosen = np.linspace(0, count - 1, max(keep, 1)).round().astype(int)  # distinct: the step is at least 1
        return ClipInput(self.clip_id, self.frames[chosen], tuple(self.timestamps_s[i] for i in chosen))


@dataclass(frozen=True)
class Prompt:
    """A prompt from conf/prompt/: the system message, the yes/no question and the event-time question."""

    name: str
    language: str  # "zh" or "en": which answer words score() compares
    system: str
    question: str
    when_question: str
    yes_word: str  # the first answer token that means yes ("是" / "Yes")
    no_word: str


@dataclass
class ModelOutput:
    """What a model says about one clip. `p_ghost_probing` is NaN when the model gave no usable answer."""

    clip_id: str
    p_ghost_probing: float = float("nan")
    answer: str | None = None
    parsed_answer: bool | None = None
    event_time_s: float | None = None
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    extra: dict = field(default_factory=dict)


class VideoQAModel(Protocol):
    name: str

    def score(self, clips: list[ClipInput], prompt: Prompt) -> list[ModelOutput]:
        """P(ghost probing) per clip, in input order."""

    def generate(self, clips: list[ClipInput], prompt: Prompt, question: str = "detect") -> list[ModelOutput]:
        """Free-text answers per clip; `question` is "detect" (yes/no) or "when" (event time)."""


_REGISTRY: dict[str, Callable[..., VideoQAModel]] = {}


def register(kind: str):
    """Class or factory decorator: `@register("openai")` makes `kind: openai` in conf/model/*.yaml build it."""

    def wrap(factory):
        if kind in _REGISTRY:
            raise ValueError(f"model kind {kind!r} registered twice")
        _REGISTRY[kind] = factory
        return factory

    return wrap


def build_model(cfg) -> VideoQAModel:
    """Build the model described by a conf/model/*.yaml mapping (`kind` picks the backend, the rest is its args)."""
    from ghostprobe.models import backends  # noqa: F401  (importing registers every backend)

    cfg = dict(cfg)
    kind = cfg.pop("kind")
    if kind not in _REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind](**cfg)
