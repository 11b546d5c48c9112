"""The report's gallery: the most confident false positives and false negatives, each with a strip of its frames
and the model's answer, then the clips without an answer and why.

Looking at the clips a model gets wrong tells more than a point of F1: whether its false positives are the hard
negatives (a cut-in, a pedestrian visible all along) or plain noise, and whether its misses are night clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ghostprobe.frames import frames_from_row
from ghostprobe.reports import charts
from ghostprobe.reports.document import Heading, Image, Link, Para, Table, data_uri, num


def _frame_strips(metrics: dict, sample_ids: set[str], height_px: int) -> tuple[dict, dict, str]:
    """{sample_id: JPEG data URI} and {sample_id: the clip's file} for the gallery, and a note when some could not
    be made (never an exception: a moved dataset or a damaged row must not cost the user the rest of the report)."""
    if not sample_ids:
        return {}, {}, ""
    try:
        from datasets import load_from_disk

        dataset = load_from_disk(metrics["data"]["path"])[metrics["data"]["split"]]
        index = {s: i for i, s in enumerate(dataset["sample_id"]) if s in sample_ids}
        videos = {s: dataset[i]["video"] for s, i in index.items()} if "video" in dataset.column_names else {}
        dataset = dataset.with_format("numpy", columns=["frames"])  # arrays, not nested Python lists: ~100x faster
    except Exception as err:  # noqa: BLE001  (any failure here only loses the thumbnails)
        return {}, {}, f"Frame strips unavailable ({type(err).__name__}: {err})."
    strips, failed = {}, sorted(sample_ids - set(index))
    for sample_id, i in index.items():
        try:
            strip = charts.frame_strip_jpeg(frames_from_row(dataset[i]["frames"]), height_px=height_px)
            strips[sample_id] = data_uri(strip, "image/jpeg")
        except Exception:  # noqa: BLE001
            failed.append(sample_id)
    return strips, _clip_files(metrics["data"]["path"], videos), f"No frames for {', '.join(failed)}." if failed else ""


def _clip_files(dataset_path: str, videos: dict[str, str]) -> dict[str, str]:
    """The clip files as file: URIs, from the folder data prep resolved `video` against (prep_report.json)."""
    try:
        root = Path(json.loads((Path(dataset_path) / "prep_report.json").read_text(encoding="utf-8"))["videos_root"])
    except (OSError, ValueError, KeyError):  # a dataset prepared before videos_root was recorded: no links
        return {}
    return {sample_id: (root / video).resolve().as_uri() for sample_id, video in videos.items() if video}


def label_text(row: dict) -> str:
    """ "ghost_probing, event at 3.0 s (actor child, light day)": the label first, then what is known of it."""
    text = str(row.get("label") or "unlabelled")
    if row.get("t_event_s") is not None:
        text += f", event at {row['t_event_s']:.1f} s"
    context = ", ".join(f"{k} {row[k]}" for k in ("actor", "occluder", "light", "weather") if row.get(k))
    return text + (f" ({context})" if context else "")


def gallery(metrics: dict, rows: list[dict], y: np.ndarray, p: np.ndarray, settings: dict) -> list:
    """The most confident false positives and false negatives with frame strips and answers, then no-answer clips."""
    threshold, size = metrics["threshold"]["value"], int(settings["gallery_size"])
    scored = ~np.isnan(p)
    fp = [i for i in np.argsort(-np.where(scored, p, -np.inf)) if scored[i] and not y[i] and p[i] >= threshold]
    fn = [i for i in np.argsort(np.where(scored, p, np.inf)) if scored[i] and y[i] and p[i] < threshold]
    missing = list(np.flatnonzero(~scored))
    shown = {rows[i]["sample_id"] for i in fp[:size] + fn[:size]}
    strips, files, note = (
        _frame_strips(metrics, shown, int(settings["strip_height_px"]))
        if settings.get("thumbnails", True)
        else ({}, {}, "")
    )

    def item(i: int) -> list:
        r = rows[i]
        sid = r["sample_id"]
        frames = Image(strips[sid], f"frames of {sid}", zoom=True) if sid in strips else "-"
        parsed = {True: "yes", False: "no", None: "unclear"}[r.get("parsed_answer")]
        answer = (
            f"{r['answer'][:300]} [parsed: {parsed}]"
            if r.get("answer")
            else "(no free-text answer; run with generate_answers=true)"
        )
        sample = Link(sid, files[sid]) if sid in files else sid
        return [frames, sample, label_text(r), num(float(p[i])), answer]

    header = ["frames", "sample", "label and context", "P(ghost probing)", "answer"]
    blocks = [Heading("Gallery: where the model is wrong")]
    for title, picked, total in (
        ("False positives (most confident first)", fp[:size], len(fp)),
        ("False negatives (most confident first)", fn[:size], len(fn)),
    ):
        blocks.append(Heading(f"{title}: {len(picked)} of {total}", 3))
        blocks.append(Table(header, [item(i) for i in picked], css="gallery") if picked else Para("None."))
    if note:
        blocks.append(Para(note, css="note"))
    blocks.append(Heading(f"No answer: {len(missing)} samples ({int(y[missing].sum())} ghost probing)", 3))
    if missing:
        blocks.append(
            Table(
                ["sample", "label", "why"],
                [
                    [
                        rows[i]["sample_id"],
                        rows[i].get("label", ""),
                        rows[i].get("error") or f"answer not parsed: {(rows[i].get('answer') or '(empty)')[:120]}",
                    ]
                    for i in missing[:size]
                ],
            )
        )
    return blocks
