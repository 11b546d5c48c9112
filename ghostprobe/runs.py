"""Reading a finished eval run: its metrics.json and the prediction rows behind it.

eval/run.py writes a run directory (metrics.json, predictions.jsonl); the eval reports and comparisons read it back, and
so does data prep's review loop (`order=uncertainty`), which may not import the eval stage: the reader lives here.
"""

from __future__ import annotations

import json
from pathlib import Path

from ghostprobe.files import read_jsonl


def load_run(run_dir) -> tuple[dict, list[dict]]:
    """metrics.json of `run_dir` and the prediction rows behind it (reported split, newest row per sample).

    Raises FileNotFoundError naming the directory when it is not a finished eval output directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such directory (expected an eval output_dir)")
    if not (run_dir / "metrics.json").exists():
        raise FileNotFoundError(
            f"{run_dir}: no metrics.json. eval/run.py writes it when a run finishes; a run "
            "stopped early has only predictions.jsonl: run the same command again to resume it"
        )
    if not (run_dir / "predictions.jsonl").exists():
        raise FileNotFoundError(f"{run_dir}: metrics.json without predictions.jsonl; re-run eval/run.py there")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(
            f"{run_dir / 'metrics.json'} cannot be read ({type(err).__name__}: {err}): it was cut short "
            "(a full disk or a kill while it was written); run eval/run.py into that folder again to "
            "rewrite it (answered clips are kept)"
        ) from None
    return metrics, run_rows(run_dir, metrics)


def run_rows(run_dir, metrics: dict, split: str | None = None) -> list[dict]:
    """The prediction rows metrics.json was computed from: this run's identity (`run_identity`, written into
    metrics.json and every row) and the reported split (or `split`), newest row per sample.

    A directory may also hold rows of earlier runs (another model, prompt, dataset, frames sent...) and other splits.
    Runs written before the identity was recorded are selected by model name, prompt, data and split.
    """
    split = split or metrics["data"]["split"]
    if metrics.get("run_identity"):

        def mine(row):
            return row.get("run_identity") == metrics["run_identity"] and row.get("split") == split
    else:
        want = (metrics["model"], metrics["prompt"], metrics["data"]["fingerprint"], split)

        def mine(row):
            return (row.get("model"), row.get("prompt"), row.get("data_fingerprint"), row.get("split")) == want

    latest = {}
    for row in read_jsonl(Path(run_dir) / "predictions.jsonl"):
        if mine(row):
            latest[row["sample_id"]] = row  # a re-asked sample keeps its newest row, as eval/run.py does
    return list(latest.values())
