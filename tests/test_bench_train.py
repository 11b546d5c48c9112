"""scripts/bench_train.py's reading of a run's metrics.jsonl: the figures it prints are medians of the trainer's
throughput windows after the warm-up one, whatever else the file holds."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench_train():
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "scripts" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_summarize_drops_warmup_and_skips_eval_and_end_lines(tmp_path):
    windows = [(2.0, 200, 0.01, 0.60), (4.0, 400, 0.03, 0.62), (3.0, 300, 0.02, 0.61), (10.0, 1000, 0.10, 0.62)]
    records = [
        {"step": 1, "loss": 6.0, "peak_memory_gib": 0.50},  # logging_first_step: no window yet
        {"step": 2, "loss": 5.9, "samples_per_s": 100.0, "tokens_per_s": 9999.0, "mfu": 0.9, "peak_memory_gib": 0.51},
        *(
            {"step": 3 + i, "loss": 5.0, "samples_per_s": s, "tokens_per_s": t, "mfu": m, "peak_memory_gib": g}
            for i, (s, t, m, g) in enumerate(windows)
        ),
        {"step": 6, "eval_loss": 1.0, "eval_auroc": 0.5},
        {"step": 6, "train_runtime": 10.0, "train_samples_per_second": 50.0},
    ]
    summary = _bench_train().summarize(_write(tmp_path / "metrics.jsonl", records))
    assert summary["windows"] == 4
    assert summary["samples_per_s"] == pytest.approx(3.5)  # 4.0 if the warm-up window's 100 were counted
    assert (summary["samples_per_s_p25"], summary["samples_per_s_p75"]) == pytest.approx((2.75, 5.5))
    assert summary["tokens_per_s"] == pytest.approx(350)
    assert summary["mfu"] == pytest.approx(0.025)
    assert summary["peak_memory_gib"] == pytest.approx(0.62)


def test_summarize_refuses_a_run_without_windows_after_warmup(tmp_path):
    records = [
        {"step": 1, "loss": 6.0, "peak_memory_gib": 0.5},
        {"step": 2, "loss": 5.9, "samples_per_s": 1.0, "tokens_per_s": 10.0, "peak_memory_gib": 0.5},
    ]
    with pytest.raises(ValueError, match="no throughput window"):
        _bench_train().summarize(_write(tmp_path / "metrics.jsonl", records))
