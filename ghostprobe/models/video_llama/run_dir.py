"""The format of a training run directory (train/main.py writes it; eval, export and the trainer read it): its
checkpoints, which of them is complete and whole, which is best, what each holds, and loading one as a model. When
the trainer writes, marks, rotates and resumes from each checkpoint is train/checkpoints.py.

A run directory holds `checkpoint-<step>/` folders. The trainer writes `COMPLETE` into a checkpoint last, after
every rank has finished its files; a folder without it was interrupted mid-write and is never loaded or resumed.
Two formats, named in each checkpoint's `ghostprobe_checkpoint.json`:
- "full": config.json + model.safetensors (consolidated 16-bit weights: `from_pretrained` reads the folder as is);
- "lora": the PEFT adapter (adapter_config.json, adapter_model.safetensors) + `trainables.safetensors` (every other
  trained tensor: video Q-Former, query tokens, projection..., named as in the base model) + the base model folder
  in the json. Loading merges the adapter into the base, so callers get a plain model.
Both hold the tokenizer and processor_config.json, and the DeepSpeed state (global_step*/) for resuming.

`COMPLETE` is also the checkpoint's manifest: every file it held when it was marked, with its size. A checkpoint is
loaded or resumed only when each of them is still there with that size (`verify_checkpoint`): a LoRA checkpoint that
lost trainables.safetensors would otherwise load as base weights plus the adapter, a fine-tune in name only.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from ghostprobe.files import weight_files_signature, write_json_atomic

from .modeling import VideoLlamaForConditionalGeneration

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_INFO = "ghostprobe_checkpoint.json"
TRAINABLES_FILE = "trainables.safetensors"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# What a checkpoint needs only to continue training (DeepSpeed's shards, RNG and scheduler states), not to be loaded
# as a model: eval and export accept a checkpoint whose optimizer state was deleted to save space.
_RESUME_STATE = re.compile(
    r"^(global_step\d+/.*|latest|rng_state.*\.pth|scheduler\.pt|optimizer\.pt|"
    r"training_args\.bin|trainer_state\.json|zero_to_.*\.py)$"
)
# The model files of each format, checked also where a marker predates the manifest.
_FORMAT_FILES = {
    "lora": (("adapter_config.json",), ("adapter_model.safetensors",), (TRAINABLES_FILE,)),
    "full": (("config.json",), ("model.safetensors", "model.safetensors.index.json")),
}


class IncompleteCheckpoint(FileNotFoundError):
    """A checkpoint marked complete that has lost files (or whose files changed size) since."""


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a `checkpoint-<step>` folder, None for any other name."""
    match = _CHECKPOINT_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_complete(checkpoint: str | Path) -> bool:
    """True when the trainer finished writing this checkpoint (its completion marker exists); whether its files are
    all still there is `verify_checkpoint`'s question."""
    return (Path(checkpoint) / COMPLETE_MARKER).is_file()


def mark_complete(checkpoint: str | Path) -> None:
    """Write the completion marker, listing every file of the checkpoint with its size (the manifest), after every
    rank has written its files. Written atomically: the marker is either absent or whole."""
    checkpoint = Path(checkpoint)
    files = {
        p.relative_to(checkpoint).as_posix(): p.stat().st_size
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name != COMPLETE_MARKER
    }
    write_json_atomic(
        checkpoint / COMPLETE_MARKER,
        {"step": checkpoint_step(checkpoint), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files},
    )


def _manifest(checkpoint: Path) -> dict[str, int] | None:
    """The marker's {file: size}; None for a marker written before markers listed files."""
    try:
        files = json.loads((checkpoint / COMPLETE_MARKER).read_text()).get("files")
    except (ValueError, AttributeError):
        return None
    return files if isinstance(files, dict) else None


def checkpoint_problems(checkpoint: str | Path, purpose: str = "load") -> list[str]:
    """What keeps a checkpoint from being used for `purpose` ("load": as a model; "resume": to continue training):
    each file of its manifest that is missing or has another size than when it was written, and each model file its
    format needs that is missing. Empty when the checkpoint is whole."""
    checkpoint = Path(checkpoint)
    problems, missing = [], set()
    for name, size in (_manifest(checkpoint) or {}).items():
        if purpose == "load" and _RESUME_STATE.match(name):
            continue
        path = checkpoint / name
        if not path.is_file():
            missing.add(name)
            problems.append(f"{name} is missing ({size:,} bytes when written)")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size:,} bytes, {size:,} when written")
    if (checkpoint / CHECKPOINT_INFO).is_file():
        kind = checkpoint_info(checkpoint)["format"]
        for choices in _FORMAT_FILES.get(kind, ()):
            if not any((checkpoint / name).is_file() for name in choices) and not missing.intersection(choices):
                problems.append(f"{' or '.join(choices)} is missing (a {kind} checkpoint needs it)")
    return problems


def verify_checkpoint(checkpoint: str | Path, purpose: str = "load") -> Path:
    """`checkpoint` when `checkpoint_problems` finds nothing; otherwise IncompleteCheckpoint naming each file."""
    problems = checkpoint_problems(checkpoint, purpose)
    if problems:
        raise IncompleteCheckpoint(
            f"{checkpoint} is incomplete and cannot be {'loaded' if purpose == 'load' else 'resumed from'}: "
            f"{'; '.join(problems)}. Restore the files from a copy, or use another checkpoint-<step>/ of the run"
        )
    return Path(checkpoint)


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
        raise FileNotFoundError(
            f"{path}: checkpoint was interrupted while being written (no {COMPLETE_MARKER} "
            "marker); use an earlier checkpoint or the run directory"
        )
    if (path / CHECKPOINT_INFO).is_file() or is_complete(path):  # written by the trainer: whole or refused
        return verify_checkpoint(path)
    if (path / "config.json").is_file():
        return path
    best = best_checkpoint(path)
    if best is not None:
        return verify_checkpoint(best)
    raise FileNotFoundError(
        f"{path}: not a converted Video-LLaMA folder (no config.json), nor a training checkpoint or run directory "
        f"with a complete checkpoint-<step>/. Convert the original checkpoints with scripts/convert_video_llama.py, "
        f"build the tiny test model (python -m ghostprobe.models.video_llama.tiny {path}), or train one "
        "(deepspeed train/main.py ...)"
    )


def weights_signature(path: str | Path) -> dict:
    """Which weights `path` stands for now: the folder it resolves to (a run directory's best checkpoint changes as
    training goes on) and its weight files (`files.weight_files_signature`). Part of a run's identity
    (`models.base.answer_settings`), so answers of other weights are never counted as done."""
    return weight_files_signature(resolve_model_dir(path))


def checkpoint_info(model_dir: str | Path) -> dict:
    """The checkpoint's ghostprobe_checkpoint.json ({"format": "full"} for folders the trainer did not write)."""
    info_file = Path(model_dir) / CHECKPOINT_INFO
    return json.loads(info_file.read_text()) if info_file.is_file() else {"format": "full"}


def load_video_llama(
    path: str | Path, base_model: str | Path | None = None, **from_pretrained_kwargs
) -> VideoLlamaForConditionalGeneration:
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
        raise FileNotFoundError(
            f"{model_dir}: LoRA checkpoint of base model {base_dir}, which is not there; pass "
            "base_model=PATH (eval: model.base_model=PATH) to say where it is now"
        )
    model = VideoLlamaForConditionalGeneration.from_pretrained(base_dir, **from_pretrained_kwargs)
    trainables_file = model_dir / TRAINABLES_FILE  # always there: resolve_model_dir verified the checkpoint
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
