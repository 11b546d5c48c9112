"""scripts/gpu_check.sh and its Python part on CPU at the tiny preset's shapes (on a GPU it measures 7B/13B; it has
not run on one yet): every step lands in the JSON with figures a model must give, a failing or late step does not
lose the others, and the depth scaling is the straight line through the two measured depths."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_script_measures_every_step_at_tiny_shapes_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [
        "bash",
        "scripts/gpu_check.sh",
        str(out),
        "--device",
        "cpu",
        "--presets",
        "tiny",
        "--dtypes",
        "fp16",
        "--batch-sizes",
        "1,2",
        "--repeats",
        "1",
        "--train-preset",
        "tiny",
        "--train-exps",
        "lora_fewshot",
        "--train-layers",
        "1,2",
        "--train-steps",
        "1",
        "--guard-preset",
        "tiny",
        "--guard-batch-size",
        "2",
    ]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, PYTHON=sys.executable, GPU_CHECK_TIMEOUT_S="850"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = json.loads(out.read_text())["steps"]
    assert sorted(steps) == ["environment", "nan_guard_tiny", "scoring_tiny", "training_tiny"]

    scoring = steps["scoring_tiny"]["result"]
    assert [(r["dtype"], r["batch_size"]) for r in scoring] == [("fp16", 1), ("fp16", 2)]
    assert all(r["seconds_per_clip"] > 0 and r["finite_scores"] == r["batch_size"] for r in scoring)

    training = steps["training_tiny"]["result"]
    assert [r["llm_layers"] for r in training] == [1, 2]  # the tiny LLaMA's full depth is 2: nothing to scale
    assert all(math.isfinite(r["loss"]) and r["trainable_params"] < r["total_params"] for r in training)
    assert training[1]["flops_per_sample"] > training[0]["flops_per_sample"]

    guard = steps["nan_guard_tiny"]["result"]
    assert guard["finite_scores"] == 2 and guard["guard_holds"]
    assert guard["forced_overflow_scores_nan"] == guard["forced_overflow_generate_flagged"] == 2
    assert len(guard["largest_activation_per_llm_layer"]) == 2


def test_depths_are_scaled_linearly_to_the_full_depth_with_mfu(monkeypatch):
    gpu_check = _gpu_check()

    def fake_step(preset, exp, layers, num_frames, steps, device):
        return {
            "llm_layers": layers,
            "micro_batch_size": 4,
            "text_tokens": 100.0,
            "step_s": 0.1 * layers,
            "samples_per_s": 4 / (0.1 * layers),
            "tokens_per_s": 400 / (0.1 * layers),
            "flops_per_sample": 1e12 * layers,
            "peak_gib": 10.0 + layers,
            "loss": 1.0,
        }

    monkeypatch.setattr(gpu_check, "training_step", fake_step)
    rows = gpu_check.training(
        "7b",
        ["lora_fewshot"],
        [4, 8],
        8,
        1,
        "cuda",
        {"bf16_matmul_tflops_measured": 800.0, "bf16_tflops_datasheet": 989.0},
    )
    scaled = rows[-1]
    assert [r["llm_layers"] for r in rows] == [4, 8, 32] and scaled["scaled_from"] == [4, 8]
    assert scaled["step_s"] == pytest.approx(3.2) and scaled["peak_gib"] == pytest.approx(42.0)
    assert scaled["samples_per_s"] == pytest.approx(4 / 3.2) and scaled["tokens_per_s"] == pytest.approx(400 / 3.2)
    assert scaled["mfu_measured_peak"] == pytest.approx(4 / 3.2 * 32e12 / 800e12)
    assert rows[0]["mfu_datasheet"] == pytest.approx(10 * 4e12 / 989e12)


def test_a_failed_step_is_recorded_and_a_step_past_the_budget_skipped(tmp_path):
    gpu_check = _gpu_check()
    run = gpu_check.Run(tmp_path / "out.json", budget_s=3600, args={})

    def broken():
        raise RuntimeError("CUDA out of memory")

    run.step("first", broken)
    assert run.step("second", lambda: {"ok": 1}) == {"ok": 1}
    run.budget_s = 0.0
    run.step("third", lambda: {"ok": 2})
    steps = json.loads((tmp_path / "out.json").read_text())["steps"]
    assert steps["first"]["error"] == "RuntimeError: CUDA out of memory"
    assert steps["second"]["result"] == {"ok": 1}
    assert steps["third"]["skipped"].startswith("time budget")
