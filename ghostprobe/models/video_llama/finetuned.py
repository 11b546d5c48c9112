"""Checkpoints written by the trainer (train/main.py): finding them in a run directory and loading them.

A run directory holds `checkpoint-<step>/` folders. The trainer writes `COMPLETE` into a checkpoint last, after
every rank has finished its files; a folder without it was interrupted mid-write and is never loaded or resumed.
Two formats, named in each checkpoint's `ghostprobe_checkpoint.json`:
- "full": config.json + model.safetensors (consolidated 16-bit weights: `from_pretrained` reads the folder as is);
- "lora": the PEFT adapter (adapter_config.json, adapter_model.safetensors) + `trainables.safetensors` (every other
  trained tensor: video Q-Former, query tokens, projection..., named as in the base model) + the base model folder
  in the json. Loading merges the adapter into the base, so callers get a plain model.
Both hold the tokenizer and processor_config.json, and the DeepSpeed state (global_step*/) for resuming.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .modeling import VideoLlamaForConditionalGeneration

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_INFO = "ghostprobe_checkpoint.json"
TRAINABLES_FILE = "trainables.safetensors"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a `checkpoint-<step>` folder, None for any other name."""
    match = _CHECKPOINT_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_complete(checkpoint: str | Path) -> bool:
    """True when the trainer finished writing this checkpoint (its completion marker exists)."""
    return (Path(checkpoint) / COMPLETE_MARKER).is_file()


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Every `checkpoint-<step>` folder of a run, complete or not, oldest step first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run, oldest step first (interrupted ones are left out)."""
    return [p for p in list_checkpoints(run_dir) if is_complete(p)]


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a run recommends: the best by its validation metric when the run tracked one (and that
    checkpoint is still there and complete), else the newest complete one; None when there is none."""
    complete = complete_checkpoints(run_dir)
    if not complete:
        return None
    state_file = complete[-1] / "trainer_state.json"
    if state_file.is_file():
        best = json.loads(state_file.read_text()).get("best_model_checkpoint")
        # The trainer records the path it wrote to; the run directory may have moved since, so match by name.
        if best and is_complete(Path(run_dir) / Path(best).name):
            return Path(run_dir) / Path(best).name
    return complete[-1]


def resolve_model_dir(path: str | Path) -> Path:
    """A loadable folder for `path`: a converted/exported model folder or a checkpoint as is, a run directory's
    `best_checkpoint`. Raises FileNotFoundError saying what was found instead."""
    path = Path(path)
    if checkpoint_step(path) is not None and path.is_dir() and not is_complete(path):
        raise FileNotFoundError(f"{path}: checkpoint was interrupted while being written (no {COMPLETE_MARKER} "
                                "marker); use an earlier checkpoint or the run directory")
    if (path / "config.json").is_file() or (path / CHECKPOINT_INFO).is_file():
        return path
    best = best_checkpoint(path)
    if best is not None:
        return best
    raise FileNotFoundError(
        f"{path}: not a converted Video-LLaMA folder (no config.json), nor a training checkpoint or run directory "
        f"with a complete checkpoint-<step>/. Convert the original checkpoints with scripts/convert_video_llama.py, "
        f"build the tiny test model (python -m ghostprobe.models.video_llama.tiny {path}), or train one "
        "(deepspeed train/main.py ...)")


def checkpoint_info(model_dir: str | Path) -> dict:
    """The checkpoint's ghostprobe_checkpoint.json ({"format": "full"} for folders the trainer did not write)."""
    info_file = Path(model_dir) / CHECKPOINT_INFO
    return json.loads(info_file.read_text()) if info_file.is_file() else {"format": "full"}


def load_video_llama(path: str | Path, base_model: str | Path | None = None,
                     **from_pretrained_kwargs) -> VideoLlamaForConditionalGeneration:
    """Load a model folder, a training checkpoint or a run directory (see `resolve_model_dir`) as a plain model.

    A LoRA checkpoint is rebuilt as base + trained tensors + adapter and merged; `base_model` overrides the base
    folder recorded at training time (when the run moved machines). `from_pretrained_kwargs` go to the base (or
    full) model's `from_pretrained` (dtype, device_map, ...).
    """
    model_dir = resolve_model_dir(path)
    info = checkpoint_info(model_dir)
    if info["format"] == "full":
        return VideoLlamaForConditionalGeneration.from_pretrained(model_dir, **from_pretrained_kwargs)
    if info["format"] != "lora":
        raise ValueError(f"{model_dir / CHECKPOINT_INFO}: unknown checkpoint format {info['format']!r}")
    from peft import PeftModel
    from safetensors.torch import load_file

    base_dir = Path(base_model or info["base_model"])
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: LoRA checkpoint of base model {base_dir}, which is not there; pass "
                                "base_model=PATH (eval: model.base_model=PATH) to say where it is now")
    model = VideoLlamaForConditionalGeneration.from_pretrained(base_dir, **from_pretrained_kwargs)
    trainables_file = model_dir / TRAINABLES_FILE
    if trainables_file.is_file():
        tensors = load_file(trainables_file)
        params = dict(model.named_parameters())
        unknown = sorted(set(tensors) - set(params))
        if unknown:
            raise ValueError(f"{trainables_file}: tensors {unknown[:5]} are not in the base model {base_dir}")
        with torch.no_grad():
            for name, tensor in tensors.items():
                params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    model = PeftModel.from_pretrained(model, model_dir)
    return model.merge_and_unload()
