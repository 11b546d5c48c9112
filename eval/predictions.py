"""Predictions that survive: one JSONL row per evaluated sample, appended and flushed as it goes.

A row's `key` hashes the sample, the model, the prompt (its text, not only its name), the data fingerprint and the
questions asked, so a re-run skips exactly the samples already answered under the same conditions and re-asks the
rest (an API outage mid-run, a kill, a changed prompt). A kill loses at most the batch in flight; a torn last line
(killed mid-write) is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from ghostprobe.files import JsonlAppender
from ghostprobe.metrics.common import nan_to_none
from ghostprobe.models.base import answer_settings
from ghostprobe.prompts import Prompt


def run_identity(model_cfg: dict, prompt: Prompt, questions: tuple[str, ...], data_fingerprint: str) -> str:
    """What must match for a stored row to count as done, and what every reader of a run selects rows by: the
    resolved model config minus its kind's pacing keys (batch size, concurrency, rate limits, timeouts, device
    placement: `ghostprobe.models.base.answer_settings`), the prompt, the questions asked and the data."""
    identity = {
        "model": answer_settings(model_cfg),
        "prompt": asdict(prompt),
        "questions": list(questions),
        "data": data_fingerprint,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[
        :16
    ]


def data_fingerprint(splits: dict) -> str:
    """What the rows of a run were scored on: every split's `datasets` fingerprint, by split name."""
    return "+".join(f"{name}:{ds._fingerprint}" for name, ds in sorted(splits.items()))


def row_key(identity: str, split: str, sample_id: str) -> str:
    return f"{identity}:{split}:{sample_id}"


class PredictionWriter(JsonlAppender):
    """predictions.jsonl's appender: a score the model could not give (NaN) is written as null, never 0."""

    def write(self, rows: list[dict]) -> None:
        super().write([_finite(row) for row in rows])


def _finite(row: dict) -> dict:
    # JSON has no NaN: a score the model could not give is null, never 0 (which would read as "no").
    return {k: nan_to_none(v) for k, v in row.items()}
