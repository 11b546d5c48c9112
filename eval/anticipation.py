"""The table an accident-anticipation paper prints, for one eval run, beside the published records.

    python eval/anticipation.py run_dir=RUN [protocol=ustring|far|nexar|all]

RUN is an eval/run.py output_dir whose run scored windows: `data.earliness_path=` (a dataset prepared with
`sampling=sliding`), or a test split prepared with a windowed policy. Each clip's window scores are put back on the
video's frames (`ghostprobe.sampling.frame_scores`: frame i holds the latest window ending at or before it, none
before the first window) and the protocols of `ghostprobe.metrics.anticipation` run on them: UString's evaluation
reproduced with its quirks and the project's corrected AP / mTTA beside it, the FAR-gated AUC / mTTA at each
`far_max`, Nexar's mAP. Writes RUN/anticipation.json and RUN/anticipation.md (both atomically), prints the table and
re-renders RUN/report.{md,html}, which then shows it. Options and the published records: conf/anticipation.yaml.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as `python eval/anticipation.py`: put the repository root on the path so `eval.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from omegaconf import DictConfig, OmegaConf

from eval.summarize import effective_scores
from ghostprobe.cli import entry_point
from ghostprobe.files import read_jsonl, write_text_atomic
from ghostprobe.metrics import anticipation as P
from ghostprobe.metrics.common import format_ids, to_jsonable
from ghostprobe.reports.document import Bullets, Heading, Para, Table, num, to_markdown
from ghostprobe.sampling import FrameClock, frame_scores, scores_at

PROTOCOL_CHOICES = ("ustring", "far", "nexar", "all")
CLIP_FIELDS = ("video_fps", "video_num_frames", "t_first_visible_s")


@dataclass
class ClipWindows:
    """One clip's window scores and what is needed to put them on its frames."""

    clip_id: str
    is_positive: bool
    t_event_s: float | None
    t_first_visible_s: float | None
    fps: float
    num_frames: int
    ends_s: list[float]
    scores: list[float]  # NaN: the model gave no answer for that window

    @property
    def clock(self) -> FrameClock:
        return FrameClock(self.fps, self.num_frames)

    def frames(self) -> np.ndarray:
        return frame_scores(self.ends_s, self.scores, self.clock)


def load_window_clips(run_dir: Path) -> tuple[dict, list[ClipWindows], str]:
    """The run's metrics.json, its clips with their window scores, and which split they come from. Raises
    FileNotFoundError / ValueError naming the directory and the fix when the run has no window scores."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.json (expected an eval/run.py output_dir)")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    want = (metrics["model"], metrics["prompt"], metrics["data"]["fingerprint"])
    by_split: dict[str, dict[str, dict]] = {}
    for row in read_jsonl([run_dir / "predictions.jsonl"]):
        if (row.get("model"), row.get("prompt"), row.get("data_fingerprint")) == want:
            by_split.setdefault(row["split"], {})[row["sample_id"]] = row  # a re-asked sample keeps its newest row
    split = "earliness" if "earliness" in by_split else metrics["data"]["split"]
    rows = list(by_split.get(split, {}).values())
    if not any((row.get("window_index") or 0) > 0 for row in rows):
        raise ValueError(
            f"{run_dir}: the run scored no windows (split {split!r} has one sample per clip). Run "
            "eval/run.py with data.earliness_path= set to a dataset prepared with sampling=sliding"
        )
    _fill_clip_fields(rows, metrics)
    scores, _ = effective_scores(rows)
    clips: dict[str, ClipWindows] = {}
    for row, score in zip(rows, scores, strict=True):
        clip_id = str(row["clip_id"])
        clip = clips.get(clip_id)
        if clip is None:
            clip = clips[clip_id] = ClipWindows(
                clip_id,
                bool(row["is_ghost_probing"]),
                row.get("t_event_s"),
                row.get("t_first_visible_s"),
                float(row["video_fps"]),
                int(row["video_num_frames"]),
                [],
                [],
            )
        clip.ends_s.append(float(row["window_end_s"]))
        clip.scores.append(float(score))
    return metrics, [clips[c] for c in sorted(clips)], split


def _fill_clip_fields(rows: list[dict], metrics: dict) -> None:
    """Runs made before prediction rows carried the frame rate and length: read them from the prepared dataset."""
    if all(row.get(name) is not None for row in rows for name in CLIP_FIELDS[:2]):
        return
    data = (metrics.get("config") or {}).get("data") or {}
    path = data.get("earliness_path") or metrics["data"]["path"]
    from datasets import load_from_disk

    try:
        split = load_from_disk(str(path))[metrics["data"]["split"]]
    except Exception as err:  # noqa: BLE001  (any failure means the same: the fields cannot be found)
        raise ValueError(
            f"predictions.jsonl lacks the clips' frame rate; reading it from the dataset {path} failed "
            f"({type(err).__name__}: {err}); re-run eval/run.py"
        ) from None
    info = {}
    for entry in split.select_columns(["clip_id", *CLIP_FIELDS]).with_format(None):
        info[entry["clip_id"]] = entry
    for row in rows:
        for name in CLIP_FIELDS:
            if row.get(name) is None:
                row[name] = info.get(row["clip_id"], {}).get(name)


def anticipation_results(clips: list[ClipWindows], settings: dict, protocol: str = "all") -> dict:
    """Every protocol asked for (`protocol`: ustring, far, nexar or all) on the clips' frame scores; JSON-ready.
    `settings`: conf/anticipation.yaml (far_max, nexar_horizons_s, recall_target, records and their sources)."""
    if protocol not in PROTOCOL_CHOICES:
        raise ValueError(f"protocol={protocol}: choose one of {', '.join(PROTOCOL_CHOICES)}")
    excluded = {c.clip_id: "ghost probing without t_event_s" for c in clips if c.is_positive and c.t_event_s is None}
    clips = [c for c in clips if c.clip_id not in excluded]
    if not clips:
        raise ValueError(f"no clip can be scored: {format_ids(excluded)} are ghost probing without t_event_s")
    series = [c.frames() for c in clips]
    labels = [c.is_positive for c in clips]
    events = [c.clock.frames_before(c.t_event_s) if c.is_positive else c.num_frames for c in clips]
    fps = [c.fps for c in clips]
    ids = [c.clip_id for c in clips]
    result = {
        "clips": len(clips),
        "positives": int(sum(labels)),
        "excluded": excluded,
        "protocol": protocol,
        "records": [
            {**r, "source": settings["sources"].get(r["source"], r["source"])}
            for r in settings["records"]
            if protocol in ("all", r["protocol"])
        ],
    }
    if protocol in ("ustring", "all"):
        result["ustring"] = _ustring(series, labels, events, fps)
        result["corrected"] = P.corrected_ap_mtta(series, labels, events, fps, ids, settings["recall_target"])
    if protocol in ("far", "all"):
        starts = [
            c.clock.frames_before(c.t_first_visible_s) if c.t_first_visible_s is not None else None for c in clips
        ]
        result["far"] = {
            f"{lam:g}": P.far_gated_anticipation(series, labels, events, starts, fps, lam, ids)
            for lam in settings["far_max"]
        }
    if protocol in ("nexar", "all"):
        horizons = [float(h) for h in settings["nexar_horizons_s"]]
        # the moment h seconds before a positive's event, or before a negative's end
        refs_s = [c.t_event_s if c.is_positive else c.clock.duration_s for c in clips]
        at = {
            h: [float(scores_at(c.ends_s, c.scores, [ref - h])[0]) for c, ref in zip(clips, refs_s, strict=True)]
            for h in horizons
        }
        result["nexar"] = P.nexar_map(at, labels, ids)
    return to_jsonable(result)


def _ustring(series: list[np.ndarray], labels: list[bool], events: list[int], fps: list[float]) -> dict:
    """UString's evaluation on one [clips, frames] array: clips shorter than the longest are padded with frames
    without a score (they never alert; the clip length the reference multiplies mTTA by is the longest)."""
    if len({round(f, 6) for f in fps}) > 1:
        return {
            "error": f"clips at several frame rates ({sorted({round(f, 3) for f in fps})}): UString's "
            "evaluation takes one"
        }
    length = max(len(s) for s in series)
    pred = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        pred[i, : len(s)] = s
    toa = [event if label else length + 1 for event, label in zip(events, labels, strict=True)]
    try:
        figures = P.ustring_ap_mtta(pred, np.asarray(labels, int), toa, fps[0])
    except ValueError as err:
        return {"error": str(err)}
    notes = [
        "frames before the first window have no score: they never alert and are left out of the minimum "
        "score that starts the threshold grid (the original takes no NaN)"
    ]
    if len({len(s) for s in series}) > 1:
        notes.append(
            f"clips of {min(len(s) for s in series)}-{length} frames padded to {length} frames without "
            f"a score; mTTA is a fraction of {length / fps[0]:.2f} s"
        )
    return {**figures, "clip_s": length / fps[0], "notes": notes}


def anticipation_blocks(result: dict) -> list:
    """The table (this run beside the published records, with their sources) as document blocks."""
    records = result.get("records") or []
    sources, rows = [], []

    def published(protocol: str, figure: str) -> str:
        cells = []
        for record in records:
            if record["protocol"] == protocol and record["figure"] == figure:
                if record["source"] not in sources:
                    sources.append(record["source"])
                value = f"{record['value']:g}{' s' if figure.startswith('mtta') else ''}"
                cells.append(f"{value} ({record['dataset']}) [{sources.index(record['source']) + 1}]")
        return "; ".join(cells) or "-"

    if "ustring" in result:
        u, c = result["ustring"], result["corrected"]
        name = "UString evaluation, reproduced with its quirks (comparable with published DAD/CCD/A3D figures)"
        rows += [
            [name, "AP (%)", _pct(u.get("AP")), published("ustring", "ap")],
            ["", "mTTA (s, fraction of the clip length)", num(u.get("mTTA"), 2), published("ustring", "mtta_s")],
            ["", "TTA@R80 (s)", num(u.get("TTA_R80"), 2), "-"],
            ["Project's corrected AP / mTTA (not comparable with published tables)", "AP (%)", _pct(c["ap"]), "-"],
            ["", "mTTA (s before the event)", num(c["mtta_s"], 2), "-"],
            [
                "",
                f"TTA at {c['recall_target']:.0%} recall (s before the event)",
                num(c["tta_at_recall_target_s"], 2),
                "-",
            ],
        ]
    for lam, far in (result.get("far") or {}).items():
        rows += [
            [
                f"FAR-gated (TOP), frame-level false-alarm rate <= {lam}",
                "AUC",
                num(far["auc"]),
                published("far", f"auc@{lam}"),
            ],
            ["", "mTTA (s before the event)", num(far["mtta_s"], 3), published("far", f"mtta_s@{lam}")],
        ]
    if "nexar" in result:
        n = result["nexar"]
        rows += [
            [
                "Nexar collision prediction (negatives: the same time before their end)" if k == 0 else "",
                f"AP {float(h):.1f} s before the event",
                num(ap),
                "-",
            ]
            for k, (h, ap) in enumerate(n["ap_by_horizon"].items())
        ]
        rows.append(["", "mAP", num(n["map"]), published("nexar", "map")])
    blocks = [
        Heading("Accident-anticipation protocols"),
        Para(
            f"{result['clips']} clips ({result['positives']} ghost probing) from their window scores, put on "
            "the video's frames: frame i holds the score of the latest window ending at or before it, none "
            "before the first window (docs/protocols.md)."
        ),
        Table(["protocol", "figure", "this run", "published record"], rows),
    ]
    if sources:
        blocks += [
            Para("Sources of the published records:"),
            Bullets([f"[{k + 1}] {s}" for k, s in enumerate(sources)]),
        ]
    notes = _notes(result)
    if notes:
        blocks.append(Bullets(notes))
    return blocks


def _notes(result: dict) -> list[str]:
    notes = []
    if result["excluded"]:
        notes.append(f"left out of every protocol: {format_ids(result['excluded'])} (ghost probing without t_event_s)")
    if "ustring" in result:
        if result["ustring"].get("error"):
            notes.append(f"UString evaluation not computed: {result['ustring']['error']}")
        notes += [f"UString evaluation: {n}" for n in result["ustring"].get("notes", [])]
        notes += [f"corrected: {n}" for n in result["corrected"]["notes"]]
    for lam, far in (result.get("far") or {}).items():
        notes += [f"FAR <= {lam}: {n}" for n in far["notes"]]
    if "nexar" in result:
        notes += [f"Nexar: {n}" for n in result["nexar"]["notes"]]
    return notes


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def run_anticipation(run_dir: str | Path, settings: dict, protocol: str = "all") -> dict:
    """Compute the table for `run_dir`, write anticipation.json / anticipation.md there, re-render the report."""
    run_dir = Path(run_dir)
    metrics, clips, split = load_window_clips(run_dir)
    result = {
        "model": metrics["model"],
        "prompt": metrics["prompt"],
        "fingerprint": metrics["data"]["fingerprint"],
        "split": split,
        **anticipation_results(clips, settings, protocol),
    }
    write_text_atomic(run_dir / "anticipation.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    title = f"Accident anticipation: {metrics['model']} ({metrics['prompt']} prompt), split {split}"
    write_text_atomic(run_dir / "anticipation.md", to_markdown(title, anticipation_blocks(result)) + "\n")
    if (run_dir / "report.md").exists():
        from eval.report import write_report

        write_report(run_dir)
    return result


@entry_point("anticipation")
def main(cfg: DictConfig) -> None:
    settings = OmegaConf.to_container(cfg, resolve=True)
    try:
        run_anticipation(cfg.run_dir, settings, str(cfg.protocol))
    except (FileNotFoundError, ValueError) as err:
        print(f"anticipation: {err}", file=sys.stderr)
        sys.exit(1)
    print((Path(cfg.run_dir) / "anticipation.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
