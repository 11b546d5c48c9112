"""Prompts (conf/prompt/*.yaml) and the frames message every backend puts before the question."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


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


def load_prompt(cfg: Mapping) -> Prompt:
    """A `Prompt` from a conf/prompt/*.yaml mapping; a missing field is named."""
    missing = [f for f in Prompt.__dataclass_fields__ if f not in cfg]
    if missing:
        raise ValueError(f"prompt {cfg.get('name', '?')!r} lacks field(s) {', '.join(missing)}")
    if cfg["language"] not in ("zh", "en"):
        raise ValueError(f"prompt {cfg['name']!r}: language must be 'zh' or 'en', got {cfg['language']!r}")
    return Prompt(**{f: str(cfg[f]) for f in Prompt.__dataclass_fields__})


# How the frames message writes a time, by name. Each backend keeps the format its models have always been sent, so
# that no model's input changes:
# - "original": Video-LLaMA-2's `load_video`, `str(round(t, 1))`: a tenth of a second, printed as Python prints a
#   float ("0.6", "2.0"; ties of the binary value to even: 0.625 -> "0.6"). Video-LLaMA-2 was trained with it
#   (scripts/check_parity.py proves it token for token), and the HF-native models get it too;
# - "hundredths": the API baselines' `f"{round(t, 2):g}"`: hundredths, trailing zeros dropped ("0.62", "2"); %g
#   keeps six significant digits, so 123456.789 s reads "123457".
TIME_FORMATS: dict[str, Callable[[float], str]] = {
    "original": lambda t: str(round(float(t), 1)),
    "hundredths": lambda t: f"{round(float(t), 2):g}",
}


def frames_message(timestamps_s: Sequence[float], language: str, time_format: str = "original") -> str:
    """'The video contains N frames sampled at t1, t2, ... seconds.', the original Video-LLaMA's sentence; in Chinese
    for language="zh". `time_format` names how each time is written (TIME_FORMATS; "original" by default)."""
    if time_format not in TIME_FORMATS:
        raise ValueError(f"time_format must be one of {', '.join(TIME_FORMATS)}, got {time_format!r}")
    times = ", ".join(TIME_FORMATS[time_format](t) for t in timestamps_s)
    if language == "zh":
        return f"视频包含{len(timestamps_s)}帧，采样时间为 {times} 秒。"
    return f"The video contains {len(timestamps_s)} frames sampled at {times} seconds."


def after_frames_message(
    question: str, timestamps_s: Sequence[float], language: str, time_format: str = "original"
) -> str:
    """The question on a line after the frames message: what the HF-native and API models are asked. A model that sees
    its frames as separate images learns from the message when they were taken, so it can answer "when" in seconds."""
    return f"{frames_message(timestamps_s, language, time_format)}\n{question}"


def prompt_by_name(name: str = "zh") -> Prompt:
    """The prompt `conf/prompt/<name>.yaml` (zh is the default ghost-probing prompt)."""
    import yaml

    from ghostprobe.config import CONF_DIR

    path = CONF_DIR / "prompt" / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ValueError(f"no prompt {name!r} in {path.parent} (known: {known})")
    return load_prompt(yaml.safe_load(path.read_text(encoding="utf-8")))
