"""Checkpoints a user can trust, fast (no training; the end-to-end versions run the real trainer in
test_train_deepspeed.py): the COMPLETE marker lists every file with its size and a checkpoint that lost one is refused
by name, for loading (eval, export) and for resuming; resume refuses settings that change the run; a stop at
train.stop_at_step writes a checkpoint."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ghostprobe.models.video_llama.run_dir import (
    CHECKPOINT_INFO,
    COMPLETE_MARKER,
    TRAINABLES_FILE,
    IncompleteCheckpoint,
    mark_complete,
    resolve_model_dir,
)
from train.callbacks import StopAtStep
from train.checkpoints import changed_settings, find_resume_checkpoint

REPO = Path(__file__).resolve().parents[1]
# What a LoRA checkpoint of the trainer holds (sizes made up), model files and resume state.
LORA_FILES = {
    "adapter_config.json": 1321,
    "adapter_model.safetensors": 73544,
    TRAINABLES_FILE: 119888,
    "tokenizer.json": 51399,
    "processor_config.json": 266,
    "trainer_state.json": 6953,
    "global_step6/zero_pp_rank_0_mp_rank_00_optim_states.pt": 279295,
    "rng_state_0.pth": 14469,
}


def lora_checkpoint(run_dir: Path, step: int = 6, legacy_marker: bool = False) -> Path:
    """A LoRA checkpoint folder as the trainer leaves it; `legacy_marker`: a COMPLETE written before markers listed
    the files (step and time only)."""
    checkpoint = run_dir / f"checkpoint-{step}"
    for name, size in LORA_FILES.items():
        (checkpoint / name).parent.mkdir(parents=True, exist_ok=True)
        (checkpoint / name).write_bytes(b"{}".ljust(size) if name.endswith(".json") else b"\0" * size)
    (checkpoint / CHECKPOINT_INFO).write_text(json.dumps({"format": "lora", "base_model": "/base", "step": step}))
    if legacy_marker:
        (checkpoint / COMPLETE_MARKER).write_text(json.dumps({"step": step, "time": "2026-12-01T10:00:00"}))
    else:
        mark_complete(checkpoint)
    return checkpoint


def test_a_lora_checkpoint_without_its_trained_tensors_is_refused_even_under_an_old_marker(tmp_path):
    """The issue's case: COMPLETE present, trainables.safetensors gone. Loading it would give base weights plus the
    adapter under a fine-tune's name; eval, export and the trainer's model loading all go through resolve_model_dir."""
    checkpoint = lora_checkpoint(tmp_path / "run", legacy_marker=True)
    assert resolve_model_dir(checkpoint) == checkpoint
    (checkpoint / TRAINABLES_FILE).unlink()
    for path in (checkpoint, tmp_path / "run"):  # the checkpoint, or the run directory (its best checkpoint)
        with pytest.raises(IncompleteCheckpoint) as refused:
            resolve_model_dir(path)
        assert str(refused.value).startswith(
            f"{checkpoint} is incomplete and cannot be loaded: "
            f"{TRAINABLES_FILE} is missing (a lora checkpoint needs it)"
        )


def test_the_marker_lists_every_file_and_a_missing_or_cut_file_is_named(tmp_path):
    checkpoint = lora_checkpoint(tmp_path / "run")
    listed = json.loads((checkpoint / COMPLETE_MARKER).read_text())["files"]
    assert listed == {**LORA_FILES, CHECKPOINT_INFO: (checkpoint / CHECKPOINT_INFO).stat().st_size}
    assert [p.name for p in checkpoint.iterdir() if p.name.endswith(".tmp")] == []

    (checkpoint / "tokenizer.json").write_bytes(b"{}")  # cut short, e.g. by a copy that ran out of space
    (checkpoint / TRAINABLES_FILE).unlink()
    with pytest.raises(IncompleteCheckpoint) as refused:
        resolve_model_dir(checkpoint)
    assert (
        f"cannot be loaded: tokenizer.json has 2 bytes, 51,399 when written; {TRAINABLES_FILE} is missing "
        "(119,888 bytes when written). Restore the files"
    ) in str(refused.value)
    with pytest.raises(IncompleteCheckpoint) as refused:
        find_resume_checkpoint("auto", tmp_path / "run")
    assert str(refused.value).startswith(f"resume=auto: {checkpoint} is incomplete and cannot be resumed from: ")


def test_optimizer_state_is_needed_to_resume_but_not_to_load(tmp_path):
    """Deleting the DeepSpeed shards (84 GB per 7B checkpoint) to keep only the model is allowed for eval/export."""
    older = lora_checkpoint(tmp_path / "run", step=3)
    checkpoint = lora_checkpoint(tmp_path / "run", step=6)
    (checkpoint / "global_step6/zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()
    assert resolve_model_dir(checkpoint) == checkpoint
    with pytest.raises(IncompleteCheckpoint) as refused:
        find_resume_checkpoint("auto", tmp_path / "run")
    assert str(refused.value) == (
        f"resume=auto: {checkpoint} is incomplete and cannot be resumed from: global_step6/zero_pp_rank_0_mp_rank_00"
        "_optim_states.pt is missing (279,295 bytes when written). Restore the files from a copy, or use another "
        f"checkpoint-<step>/ of the run; or resume={older} to continue from the one before (the newer checkpoints "
        "are then deleted)"
    )
    with pytest.raises(IncompleteCheckpoint, match="cannot be resumed from: global_step6/"):
        find_resume_checkpoint(str(checkpoint), tmp_path / "run")
    assert find_resume_checkpoint(str(older), tmp_path / "run") == older


def _train_config(*overrides: str) -> dict:
    """conf/train.yaml composed with the tiny_smoke experiment and `overrides`, resolved, as the trainer sees it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["+exp=tiny_smoke", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def test_resume_settings_changes_are_refused_by_key_unless_declared_safe_in_yaml():
    trained = _train_config("output_dir=RUN")
    safe = _train_config(
        "output_dir=RUN",
        "resume=auto",
        "logger=none",
        "train.stop_at_step=9",
        "eval.every_steps=3",
        "checkpoint.keep_last=5",
        "train.log_every_steps=2",
    )
    assert changed_settings(trained, safe, safe["resume_may_change"]) == []
    unsafe = _train_config("output_dir=RUN", "resume=auto", "train.lr=0.5", "prompt=zh", "train.global_batch_size=16")
    changes = changed_settings(trained, unsafe, unsafe["resume_may_change"])
    assert "train.lr (0.001 -> 0.5)" in changes and "train.global_batch_size (8 -> 16)" in changes
    assert "prompt.name ('en' -> 'zh')" in changes
    assert not any(change.startswith(("resume ", "output_dir ")) for change in changes)


def test_stopping_at_train_stop_at_step_saves_a_checkpoint():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    class Args:
        save_strategy = "steps"

    state, control = TrainerState(), TrainerControl()
    state.global_step = 7
    StopAtStep(8).on_step_end(Args(), state, control)
    assert not control.should_training_stop and not control.should_save
    state.global_step = 8
    StopAtStep(8).on_step_end(Args(), state, control)
    assert control.should_training_stop and control.should_save
    Args.save_strategy = TrainingArguments(output_dir="x", save_strategy="no").save_strategy  # checkpoint.every_steps=0
    control = TrainerControl()
    StopAtStep(8).on_step_end(Args(), state, control)
    assert control.should_training_stop and not control.should_save
