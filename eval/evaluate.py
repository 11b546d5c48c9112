"""The scoring loop: batches of prepared clips through one model, frames loaded while the model runs.

Each batch is scored (and, when asked, answered in free text and asked for the event time), then written to the
predictions file before the next one starts. A clip whose stored frames cannot be read gets a row with its error and
a NaN score; the other clips carry on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from eval.predictions import PredictionWriter, row_key
from ghostprobe.dataset import LABEL_COLUMNS
from ghostprobe.frames import frames_from_row
from ghostprobe.labels import LABEL_NAMES
from ghostprobe.models.base import ClipInput, ModelOutput, VideoQAModel
from ghostprobe.prompts import Prompt


def load_batch(dataset, label_view, indices: Sequence[int]) -> tuple[list[ClipInput], list[dict], list]:
    """Rows of `dataset` at `indices` as model inputs; rows whose frames cannot be read come back as failures.
    `label_view` is the dataset without its frames (reading labels must not decode frames)."""
    clips, metas, failed = [], [], []
    for index in indices:
        meta = sample_meta(label_view[int(index)])
        try:
            row = dataset[int(index)]  # decodes the frames: may fail on a damaged row
            frames = frames_from_row(row["frames"])
            if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != len(row["timestamps_s"]):
                raise ValueError(f"frames have shape {frames.shape}, expected [{len(row['timestamps_s'])}, H, W, 3]")
        except Exception as err:  # a damaged row must not stop the run
            failed.append((meta, f"clip {meta['clip_id']!r} field 'frames': unreadable ({type(err).__name__}: {err})"))
            continue
        clips.append(ClipInput(meta["sample_id"], frames, tuple(row["timestamps_s"])))
        metas.append(meta)
    return clips, metas, failed


def sample_meta(labels: dict) -> dict:
    """The label fields a predictions.jsonl row carries, from a dataset row read without its frames."""
    meta = {name: _plain(labels.get(name)) for name in ("sample_id", *LABEL_COLUMNS)}
    meta["label"] = LABEL_NAMES[int(labels["label"])]
    return meta


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@dataclass
class EvalSession:
    """What every split of one evaluation shares: the model and prompt, where rows go, what is already done."""

    model: VideoQAModel
    prompt: Prompt
    identity: str  # predictions.run_identity: rows with another identity do not count as done
    writer: PredictionWriter
    done_keys: set[str]
    batch_size: int
    prefetch_batches: int  # batches of frames loaded ahead while the model runs
    generate_answers: bool
    ask_event_time: bool
    model_name: str
    data_fingerprint: str
    rank: int = 0
    world_size: int = 1


def evaluate_split(session: EvalSession, dataset, split: str) -> float:
    """Score every not-yet-done sample of `dataset` (this rank's share); return the wall-clock seconds spent."""
    model, prompt, identity = session.model, session.prompt, session.identity
    prefetch_batches = session.prefetch_batches
    todo = [
        i
        for i, sample_id in enumerate(dataset["sample_id"])
        if i % session.world_size == session.rank and row_key(identity, split, sample_id) not in session.done_keys
    ]
    batches = [todo[k : k + session.batch_size] for k in range(0, len(todo), session.batch_size)]
    # Optional label columns (actor, light, ...) may be absent from datasets made elsewhere: they read as None.
    wanted = [c for c in ("sample_id", "label", *LABEL_COLUMNS) if c in dataset.column_names]
    label_view = dataset.select_columns(wanted).with_format(None)
    started = time.perf_counter()
    common = {
        "split": split,
        "model": session.model_name,
        "prompt": prompt.name,
        "data_fingerprint": session.data_fingerprint,
        "run_identity": identity,
    }
    with (
        ThreadPoolExecutor(max_workers=1) as loader,
        tqdm(total=len(todo), desc=f"eval {split}", unit="clip", disable=not todo or session.rank != 0) as progress,
    ):
        pending = [loader.submit(load_batch, dataset, label_view, b) for b in batches[:prefetch_batches]]
        for k in range(len(batches)):
            clips, metas, failed = pending.pop(0).result()
            if k + prefetch_batches < len(batches):
                pending.append(loader.submit(load_batch, dataset, label_view, batches[k + prefetch_batches]))
            rows = [
                prediction_row(meta, ModelOutput(meta["sample_id"]), identity, common, error=error)
                for meta, error in failed
            ]
            if clips:
                rows += _ask(
                    model, prompt, clips, metas, identity, common, session.generate_answers, session.ask_event_time
                )
            session.writer.write(rows)
            progress.update(len(rows))
    return time.perf_counter() - started


def _ask(model, prompt, clips, metas, identity, common, generate_answers, ask_event_time) -> list[dict]:
    scored = model.score(clips, prompt)
    answered = model.generate(clips, prompt, "detect") if generate_answers else [None] * len(clips)
    timed = model.generate(clips, prompt, "when") if ask_event_time else [None] * len(clips)
    rows = []
    for meta, score, answer, when in zip(metas, scored, answered, timed, strict=True):
        extra_latency = sum(o.latency_s for o in (answer, when) if o is not None)
        row = prediction_row(meta, score, identity, common, error=score.extra.get("error"))
        row["latency_s"] = score.latency_s + extra_latency
        if answer is not None:
            row.update(
                answer=answer.answer,
                parsed_answer=answer.parsed_answer,
                tokens_out=row["tokens_out"] + answer.tokens_out,
                cost_usd=row["cost_usd"] + answer.cost_usd,
            )
        if when is not None:
            row.update(
                event_time_answer=when.answer,
                event_time_s=when.event_time_s,
                tokens_out=row["tokens_out"] + when.tokens_out,
                cost_usd=row["cost_usd"] + when.cost_usd,
            )
        rows.append(row)
    return rows


def prediction_row(meta: dict, output: ModelOutput, identity: str, common: dict, error: str | None = None) -> dict:
    """One predictions.jsonl row: the sample's labels (`meta`), what the model said, and the run's `common` fields
    (split, model, prompt, data_fingerprint)."""
    return {
        "key": row_key(identity, common["split"], meta["sample_id"]),
        **common,
        **meta,
        "p_ghost_probing": output.p_ghost_probing,
        "answer": output.answer,
        "parsed_answer": output.parsed_answer,
        "event_time_s": output.event_time_s,
        "latency_s": output.latency_s,
        "tokens_in": output.tokens_in,
        "tokens_out": output.tokens_out,
        "cost_usd": output.cost_usd,
        "error": error,
    }
