"""scripts/dry_run.py end to end at the tiny preset's shapes (its 7B run is a benchmark, docs/benchmarks.md): fake
originals -> streamed conversion -> backend -> score + generate, then two ZeRO-3 LoRA steps on 2 CPU ranks, with
the figures it reports checked against what the model must give."""

import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_dry_run_scores_generates_and_trains_and_reports_matching_counts(tmp_path):
    command = [
        sys.executable,
        "scripts/dry_run.py",
        "preset=tiny",
        f"work_dir={tmp_path}",
        "scoring.dtype=fp32",
        "memory_budget_gb=4",
        "scoring.generate_tokens=3",
    ]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "dry_run.json").read_text())

    scoring = result["scoring"]
    assert scoring["llm_layers"] == scoring["full_depth"] == 2  # the tiny model fits 4 GB whole
    assert len(scoring["scores"]) == 2 and all(0 < p < 1 for p in scoring["scores"])
    # the placeholder sits just past the vocabulary, as <ImageHere> at 32000 does for LLaMA-2
    assert scoring["video_token_index"] == scoring["vocab_size"] == scoring["tokenizer_length"] - 1 == 1024
    assert scoring["generate"]["tokens"] <= 3 and scoring["generate"]["error"] is None
    assert scoring["peak_rss_gb"] > 0.1 and scoring["weights_gb"] > 0
    assert not (tmp_path / "converted_scoring").exists() and not (tmp_path / "originals_scoring").exists()

    training = result["training"]
    assert len(training["losses"]) == 2 and all(math.isfinite(x) for x in training["losses"])
    assert sorted(training["peak_rss_gb_per_rank"]) == ["0", "1"]
    # LoRA r 128 on the 7 linears of 4 tiny layers (width 64, MLP 128) plus the video side trained in full
    assert training["lora_formula"]["lora_per_layer"] == 128 * (4 * (64 + 64) + 3 * (64 + 128))
    assert training["trainable_params"] == training["lora_formula"]["total"]
    assert training["trainer_logged_trainable_m"] == round(training["trainable_params"] / 1e6, 2)
    assert "per GPU" in training["deepspeed_table"]
