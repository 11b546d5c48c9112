"""Prompts (conf/prompt/*.yaml) and the frame-timing message every backend puts before the question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ghostprobe.models.base import Prompt


def load_prompt(cfg: Mapping) -> Prompt:
    """A `Prompt` from a conf/prompt/*.yaml mapping; a missing field is named."""
    missing = [f for f in Prompt.__dataclass_fields__ if f not in cfg]
    if missing:
        raise ValueError(f"prompt {cfg.get('name', '?')!r} lacks field(s) {', '.join(missing)}")
    if cfg["language"] not in ("zh", "en"):
        raise ValueError(f"prompt {cfg['name']!r}: language must be 'zh' or 'en', got {cfg['language']!r}")
    return Prompt(**{f: str(cfg[f]) for f in Prompt.__dataclass_fields__})


def frames_message(timestamps_s: Sequence[float], language: str) -> str:
    """The original Video-LLaMA message 'The video contains N frames sampled at t1, t2, ... seconds.'"""
    times = ", ".join(f"{t:.1f}" for t in timestamps_s)
    if language == "zh":
        return f"视频包含{len(timestamps_s)}帧，采样时间为 {times} 秒。"
    return f"The video contains {len(timestamps_s)} frames sampled at {times} seconds."


def prompt_by_name(name: str = "zh") -> Prompt:
    """The prompt `conf/prompt/<name>.yaml` (zh is the default ghost-probing prompt)."""
    import yaml

    from ghostprobe.config import CONF_DIR

    path = CONF_DIR / "prompt" / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ValueError(f"no prompt {name!r} in {path.parent} (known: {known})")
    return load_prompt(yaml.safe_load(path.read_text(encoding="utf-8")))
