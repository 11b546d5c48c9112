"""The README's main job, `bash scripts/demo.sh`, end to end: synthetic clips -> prepared datasets -> the tiny
model fine-tuned on two CPU ranks (DeepSpeed ZeRO-2, every part trained) -> eval/run.py -> report.html.

This is also the proof that labels, frames, prompt, loss and scoring are wired right: a random model can only reach
a test accuracy far above the trivial baselines if the answer it is trained on matches the clip's label, the frames
it sees are that clip's, and the score the eval harness reads is the token training taught.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    demo = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "GHOSTPROBE_DEMO_DIR": str(demo), "WANDB_SILENT": "true"}
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    (demo / "demo.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"scripts/demo.sh exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}"
    return demo


def test_demo_trains_the_tiny_model_well_above_the_trivial_baselines(demo_dir):
    metrics = json.loads((demo_dir / "eval" / "metrics.json").read_text())
    model = metrics["classification"]["model"]
    baselines = metrics["classification"]["baselines"]
    assert metrics["data"]["num_samples"] >= 80  # the test split, scored by the trained checkpoint
    assert model["accuracy_nan_as_wrong"] >= 0.85, model
    assert model["auroc"] >= 0.85, model
    for name in ("always_yes", "always_no"):
        assert baselines[name]["accuracy"] <= 0.6, (name, baselines[name])
    # the harness scored the trained run (its best checkpoint), with the prompt it was trained on
    summary = json.loads((demo_dir / "train" / "summary.json").read_text())
    assert summary["global_step"] == 600 and summary["best_checkpoint"]
    assert Path(metrics["config"]["model"]["path"]) == demo_dir / "train"
    trained_with = json.loads(
        (demo_dir / "train" / summary["best_checkpoint"] / "ghostprobe_checkpoint.json").read_text()
    )["prompt"]
    assert metrics["config"]["prompt"]["name"] == trained_with == "en"


def test_demo_ends_in_a_report_with_its_numbers(demo_dir):
    html = (demo_dir / "eval" / "report.html").read_text()
    metrics = json.loads((demo_dir / "eval" / "metrics.json").read_text())
    accuracy = metrics["classification"]["model"]["accuracy"]
    assert f"{accuracy:.3f}" in html or f"{100 * accuracy:.1f}" in html
    assert "<img" in html  # charts and the gallery are embedded


def test_second_demo_run_reuses_clips_frames_and_training(demo_dir):
    before = (demo_dir / "train" / "summary.json").stat().st_mtime_ns
    env = {**os.environ, "GHOSTPROBE_DEMO_DIR": str(demo_dir), "WANDB_SILENT": "true"}
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "1200 reused from cache" in done.stdout
    assert (demo_dir / "train" / "summary.json").stat().st_mtime_ns == before
