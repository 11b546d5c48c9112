"""What keeps a run directory to one run: metrics rows of a stopped attempt dropped on resume. Fast (no
training); the resume over a real run is in test_train_deepspeed.py."""

import json
from pathlib import Path

from train.callbacks import JsonlMetrics, drop_metrics_after


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_drops_metrics_rows_after_the_resumed_checkpoint(tmp_path):
    """A run killed at step 9 whose last complete checkpoint is 6: rows 7-9 and the line cut by the kill go, the
    resumed run's rows follow without duplicate steps."""
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 10)] + [{"step": 6, "eval_loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 10, "lo')

    assert drop_metrics_after(tmp_path, 6) == 4
    assert _rows(tmp_path) == [r for r in rows if r["step"] <= 6]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary file left

    class State:
        is_world_process_zero, global_step = True, 7
    JsonlMetrics(tmp_path).on_log(None, State(), None, logs={"loss": 0.1})
    steps = [r["step"] for r in _rows(tmp_path) if "loss" in r]
    assert steps == list(range(1, 8))


def test_a_fresh_start_drops_every_row_and_a_clean_file_is_left_alone(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n')
    assert drop_metrics_after(tmp_path, 2) == 0 and path.read_text().count("\n") == 2
    assert drop_metrics_after(tmp_path, 0) == 2 and path.read_text() == ""
    assert drop_metrics_after(tmp_path / "missing", 0) == 0
