"""One interface for every kind of model: Video-LLaMA-2, HF-native video LLMs and API models.

A model answers two calls on a batch of prepared clips:
- `score`: P(ghost probing) from the yes/no answer-token probabilities (no generation where the model exposes
  logits; API models without logits derive it from a parsed answer, see their docs);
- `generate`: free-text answers, parsed into yes/no and, for the event-time question, seconds.
Backends register a factory under a `kind` name; `build_model(cfg)` picks it from `cfg.kind` (conf/model/*.yaml).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ghostprobe.prompts import Prompt


@dataclass(frozen=True)
class ClipInput:
    """One prepared clip (or window): frames as stored by data prep and their timestamps."""

    clip_id: str
    frames: np.ndarray  # uint8 RGB [T, H, W, 3]
    timestamps_s: tuple[float, ...]

    def evenly_thinned(self, max_frames: int | None = None, max_fps: float | None = None) -> ClipInput:
        """The clip with at most `max_frames` frames and at most `max_fps` frames per second of its span, evenly
        spaced over the stored ones (first and last kept); None leaves that limit off: how the HF-native and API
        backends choose the frames they send."""
        count = len(self.frames)
        if len(self.timestamps_s) != count:
            raise ValueError(f"clip {self.clip_id}: {count} frames but {len(self.timestamps_s)} timestamps")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"clip {self.clip_id}: at most {max_frames} frames asked; ask for 1 or more (null: all)")
        keep = count
        if max_fps and count > 1:
            keep = min(keep, int(round((self.timestamps_s[-1] - self.timestamps_s[0]) * max_fps)) + 1)
        if max_frames is not None:
            keep = min(keep, int(max_frames))
        if keep >= count:
            return self
        chosen = np.linspace(0, count - 1, max(keep, 1)).round().astype(int)  # distinct: the step is at least 1
        return ClipInput(self.clip_id, self.frames[chosen], tuple(self.timestamps_s[i] for i in chosen))


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


@dataclass(frozen=True)
class ModelKind:
    """What the project knows of a backend besides how to build it, declared where it registers."""

    factory: Callable[..., VideoQAModel]
    # conf/hardware/ keys it takes (None: all of them; empty: none, e.g. an API model)
    hardware_keys: frozenset[str] | None
    # settings that change how fast or how robustly it answers, never what: left out of a run's identity
    pacing_keys: frozenset[str]
    api: bool  # answers come from a paid remote service (budgets, cost estimates)
    # the weights a config stands for now (folder and weight files), part of a run's identity; None: nothing local
    weights: Callable[[dict], dict | None] | None = None


_REGISTRY: dict[str, ModelKind] = {}
# Placement keys every local backend takes: where the weights sit changes speed, not answers.
PLACEMENT_KEYS = frozenset({"batch_size", "device", "device_map", "max_memory"})


def accelerate_max_memory(max_memory: Mapping | None) -> dict | None:
    """conf/hardware's `max_memory` as accelerate takes it: keys written on the command line arrive as strings
    ("0": "10GiB"), accelerate wants GPU indices as ints."""
    if max_memory is None:
        return None
    return {int(k) if str(k).isdigit() else k: v for k, v in dict(max_memory).items()}


def register(kind: str, *, hardware_keys=frozenset(), pacing_keys=PLACEMENT_KEYS, api: bool = False, weights=None):
    """Class or factory decorator: `@register("openai", ...)` makes `kind: openai` in conf/model/*.yaml build it.

    `hardware_keys`: which conf/hardware/ keys eval hands it (None: all; the default, none); `pacing_keys`: its
    settings that do not change an answer (batch size, device placement, rate limits, timeouts, retries, prices), so
    that changing them keeps a run's identity and its answers are re-used; `api`: a remote paid service; `weights`:
    config -> the weights its path stands for now (see `answer_settings`), for kinds that load local folders.
    """

    def wrap(factory):
        if kind in _REGISTRY:
            raise ValueError(f"model kind {kind!r} registered twice")
        _REGISTRY[kind] = ModelKind(
            factory, None if hardware_keys is None else frozenset(hardware_keys), frozenset(pacing_keys), api, weights
        )
        return factory

    return wrap


def model_kind(kind: str) -> ModelKind:
    """The registered facts of `kind` (importing every backend first); ValueError naming the known kinds."""
    from ghostprobe.models import backends  # noqa: F401  (importing registers every backend)

    if kind not in _REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]


def answer_settings(model_cfg: dict) -> dict:
    """The resolved model config minus its kind's pacing keys: everything that can change an answer (model name,
    dtypes, frames sent, image size, decoding, prompt layout), plus `weights`: the folder a local path stands for now
    and its weight files' names, sizes and times (a training run's best checkpoint moves as training goes on; a folder
    can be converted again in place). Runs that agree on it share their answers."""
    kind = model_kind(model_cfg["kind"])
    settings = {k: v for k, v in sorted(model_cfg.items()) if k not in kind.pacing_keys}
    weights = kind.weights(model_cfg) if kind.weights is not None else None
    if weights is not None:
        settings["weights"] = weights
    return settings


class ModelPathError(ValueError):
    """A local model's weights folder does not exist; the message says how to get it."""


def resolve_model_config(model: dict, hardware: dict, batch_size: int | None = None) -> dict:
    """The backend's keyword arguments: the model entry (conf/model/), plus the hardware profile's keys that its kind
    takes (conf/hardware/), plus a batch size override. ModelPathError when a local model's folder is missing."""
    from ghostprobe.models.video_llama.tiny import TINY_MODEL_NAME

    model_cfg = dict(model)
    kind = model_kind(model_cfg["kind"])
    accepted = set(hardware) if kind.hardware_keys is None else kind.hardware_keys
    model_cfg.update({k: v for k, v in hardware.items() if k in accepted})
    path = model_cfg.get("path")
    if not kind.api and path and not Path(path).exists():
        how = (
            "convert the original checkpoints with scripts/convert_video_llama.py (README), or point "
            "model.path= at a converted folder, a training run or one of its checkpoints"
            if model_cfg["kind"] == "video_llama"
            else "download the model's HF folder on a machine with internet "
            "(huggingface-cli download ...) and set model.path="
        )
        if model_cfg.get("name") == TINY_MODEL_NAME:
            how = (
                f"build the random-init tiny model there with `python -m ghostprobe.models.video_llama.tiny "
                f"{path}` (a second), or point model.path= at a training run of it or one of its checkpoints"
            )
        raise ModelPathError(f"model path {path} does not exist: {how}")
    if batch_size:
        model_cfg["batch_size"] = int(batch_size)
    return model_cfg


def build_model(cfg) -> VideoQAModel:
    """Build the model described by a conf/model/*.yaml mapping (`kind` picks the backend, the rest is its args)."""
    cfg = dict(cfg)
    kind = model_kind(cfg.pop("kind"))
    return kind.factory(**cfg)
