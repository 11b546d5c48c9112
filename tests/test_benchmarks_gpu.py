"""Smoke tests of the GPU benchmarks (scripts/bench_scoring.py, scripts/bench_train.py --device cuda): each runs to
its table on the tiny preset's shapes. Marked `gpu`: skipped where there is no CUDA device (conftest.py)."""

import subprocess
import sys

import pytest

from helpers import REPO_ROOT

pytestmark = pytest.mark.gpu


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_scoring_benchmark_measures_each_batch_size_on_the_gpu():
    out = _run(
        "scripts/bench_scoring.py", "--device", "cuda", "--dtype", "bf16", "--batch-sizes", "1,2", "--repeats", "1"
    )
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all("GiB" in row for row in rows), out


def test_training_benchmark_measures_lora_steps_on_the_gpu():
    out = _run(
        "scripts/bench_train.py",
        "--device",
        "cuda",
        "--preset",
        "tiny",
        "--llm",
        "lora",
        "--llm-layers",
        "1,2",
        "--steps",
        "2",
        "--frames",
        "2",
    )
    rows = [line for line in out.splitlines() if line.startswith("| lora_fewshot (lora) |")]
    assert [row.split("|")[3].strip() for row in rows][:2] == ["1", "2"], out  # one row per LLM depth measured
