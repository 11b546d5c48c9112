"""Shared fixtures: small real videos made on the spot (no downloaded data anywhere in the suite)."""

import os
import sys
from pathlib import Path

import pytest

from ghostprobe.config import prep_settings
from helpers import REPO_ROOT, moving_pattern

# Stage packages (data_prep, train, eval) are imported by tests the way their scripts import them.
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped, saying so, where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_video(tmp_path):
    """make_video(name, num_frames=75, fps=15, width=320, height=180, codec="libx264") -> Path of a real video."""
    from ghostprobe.video import write_video

    def _make(name, num_frames=75, fps=15, width=320, height=180, codec="libx264", seed=0):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, moving_pattern(num_frames, height, width, seed), fps, codec=codec)
        return path

    return _make


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A small prepared dataset of synthetic clips (train/val/test), made once per test session."""
    from data_prep.prepare import prepare_dataset
    from ghostprobe.synth import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(out_dir=root / "clips", num_clips=30, seed=7, fps=10, duration_s=3.0)
    report = prepare_dataset(root / "clips" / "labels.json", root / "prepared", prep_settings(frame_size=64))
    assert report["num_rejected"] == 0, report["rejected"]
    return root / "prepared"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-init tiny Video-LLaMA folder (model, tokenizer, processor) as the demo builds it."""
    from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", seed=0)
