"""Another system's per-clip answers as an eval run, so eval/compare.py pairs it with the project's runs.

    python eval/import_predictions.py file=CSV|JSONL model_name=NAME data.path=DS output_dir=RUN
        [id_column=video_id] [answer_column=answer] [score_column=score] [latency_column=latency]

A GPT-4o study's CSV of `video_id, answer[, score, latency]`, another lab's JSONL: one row per clip. Ids match the
dataset's clip ids with or without a video file extension (`images_1_003` = `images_1_003.avi`); answers are
yes/no, true/false or 1/0 in any case; a score is P(ghost probing) in [0, 1]. RUN gets predictions.jsonl and
metrics.json built by the code eval/run.py uses (eval/evaluate.prediction_row, eval/summarize.summarize), plus
report.md/html, so `python eval/compare.py runs=[RUN,PROJECT_RUN]` needs no special case. The run is marked
imported (metrics.json `imported`, each row `imported: true`); latency and cost are those the file gives, else not
measured. Rows whose id matches no clip, and malformed rows (with their line and why), are listed there and
printed; clips of the split the file does not cover are listed too (compare shows them as missing from this run).
Options: conf/import_predictions.yaml.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Run as `python eval/import_predictions.py`: put the repository root on the path so `eval.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from eval.evaluate import prediction_row, sample_meta
from eval.predictions import PredictionWriter, data_fingerprint
from eval.summarize import metrics_document, summarize
from ghostprobe.cli import entry_point
from ghostprobe.config import CONF_DIR
from ghostprobe.files import write_json_atomic
from ghostprobe.models.base import ModelOutput

IMPORTED_PROMPT = "imported"  # the run's `prompt`: compare names runs by model / prompt
ANSWERS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


class ImportSetupError(SystemExit):
    """A problem with the file or the dataset as a whole: the message says what to fix."""


@dataclass
class Imported:
    """What a file gave, matched to the dataset: one entry per clip, and every row that could not be used."""

    by_clip: dict[str, dict] = field(default_factory=dict)  # clip_id -> {line, answer, parsed, score, latency, cost}
    unmatched: list[dict] = field(default_factory=list)  # {line, id, reason}
    malformed: list[dict] = field(default_factory=list)  # {line, id, reason}
    rows: int = 0


def read_records(path: Path) -> tuple[list[tuple[int, dict]], list[dict]]:
    """(line, record) of a CSV (header row) or JSON-lines file, and the lines that are not records."""
    if not path.is_file():
        raise ImportSetupError(f"import: file={path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            records = []
            for record in reader:
                records.append((reader.line_num, {k.strip(): v for k, v in record.items() if k is not None}))
            return records, []
    if suffix in (".jsonl", ".ndjson", ".json"):
        records, bad = [], []
        for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append({"line": line_no, "id": None, "reason": f"not a JSON object ({err.msg})"})
                continue
            if not isinstance(record, dict):
                bad.append({"line": line_no, "id": None, "reason": f"a JSON {type(record).__name__}, not an object"})
                continue
            records.append((line_no, record))
        return records, bad
    raise ImportSetupError(f"import: file={path}: unknown format {suffix!r}; give a .csv, .tsv or .jsonl file")


def _parse_answer(value) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    parsed = ANSWERS.get(str(value).strip().lower())
    if parsed is None:
        raise ValueError(f"answer {value!r} is not one of yes/no/true/false/1/0")
    return parsed


def _parse_number(value, name: str, low: float, high: float) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} {value!r} is outside [{low:g}, {high:g}]")
    return number


def match_records(
    records: list[tuple[int, dict]], clip_ids: list[str], columns: dict, extensions: list[str]
) -> Imported:
    """Match each record to a clip id (exactly, else with a video extension removed on either side) and parse it.
    `columns`: id, answer, score, latency, cost -> the column name in the file."""

    def stem(name: str) -> str:
        suffix = Path(name).suffix
        return name[: -len(suffix)] if suffix and suffix.lower() in extensions else name

    by_key: dict[str, set[str]] = {}
    for clip_id in clip_ids:
        for key in {clip_id, stem(clip_id)}:
            by_key.setdefault(key, set()).add(clip_id)
    out = Imported(rows=len(records))
    first_line: dict[str, int] = {}
    for line, record in records:
        raw_id = record.get(columns["id"])
        video_id = "" if raw_id is None else str(raw_id).strip()
        if not video_id:
            out.malformed.append({"line": line, "id": None, "reason": f"no {columns['id']}"})
            continue
        candidates = by_key.get(video_id) or by_key.get(stem(video_id)) or set()
        if len(candidates) != 1:
            reason = (
                "matches no clip of the dataset"
                if not candidates
                else f"matches several clips ({', '.join(sorted(candidates))})"
            )
            out.unmatched.append({"line": line, "id": video_id, "reason": reason})
            continue
        clip_id = next(iter(candidates))
        if clip_id in first_line:
            out.malformed.append(
                {"line": line, "id": video_id, "reason": f"clip {clip_id} already given at line {first_line[clip_id]}"}
            )
            continue
        try:
            entry = {
                "line": line,
                "answer": record.get(columns["answer"]),
                "parsed": _parse_answer(record.get(columns["answer"])),
                "score": _parse_number(record.get(columns["score"]), columns["score"], 0.0, 1.0),
                "latency": _parse_number(record.get(columns["latency"]), columns["latency"], 0.0, math.inf),
                "cost": _parse_number(record.get(columns["cost"]), columns["cost"], 0.0, math.inf),
            }
        except ValueError as err:
            out.malformed.append({"line": line, "id": video_id, "reason": str(err)})
            continue
        first_line[clip_id] = line
        out.by_clip[clip_id] = entry
    return out


def _load_splits(cfg) -> dict:
    """The reported split (and the val split when present) of the prepared dataset, keyed as eval/run.py keys them
    (the same fingerprint then pairs this run with the project's runs on that dataset)."""
    from datasets import load_from_disk

    path = Path(cfg.data.path)
    if not (path / "dataset_dict.json").exists():
        raise ImportSetupError(f"import: data.path={path} is not a prepared dataset (no dataset_dict.json)")
    dataset = load_from_disk(str(path))
    if cfg.data.split not in dataset:
        raise ImportSetupError(f"import: split {cfg.data.split!r} is not in {path} (it has: {', '.join(dataset)})")
    splits = {cfg.data.split: dataset[cfg.data.split]}
    if cfg.data.val_split and cfg.data.val_split in dataset and cfg.data.val_split != cfg.data.split:
        splits["val"] = dataset[cfg.data.val_split]
    return splits


def import_predictions(cfg) -> dict:
    """Write the run directory for `cfg` (conf/import_predictions.yaml); return its metrics.json content."""
    out_dir = Path(cfg.output_dir)
    previous = out_dir / "metrics.json"
    if previous.exists() and "imported" not in json.loads(previous.read_text(encoding="utf-8")):
        raise ImportSetupError(f"import: output_dir={out_dir} holds an eval/run.py run; choose another folder")
    splits = _load_splits(cfg)
    fingerprint = data_fingerprint(splits)
    labels = {
        name: [
            sample_meta(r) for r in ds.select_columns([c for c in ds.column_names if c != "frames"]).with_format(None)
        ]
        for name, ds in splits.items()
    }
    for name, metas in labels.items():
        clip_ids = [m["clip_id"] for m in metas]
        if len(set(clip_ids)) != len(clip_ids):
            raise ImportSetupError(
                f"import: split {name!r} of {cfg.data.path} holds several windows per clip; "
                "per-clip answers are compared on a dataset prepared with whole-clip sampling "
                "(uniform, fps)"
            )
    path = Path(cfg.file)
    records, bad_lines = read_records(path)
    columns = {
        "id": cfg.id_column,
        "answer": cfg.answer_column,
        "score": cfg.score_column,
        "latency": cfg.latency_column,
        "cost": cfg.cost_column,
    }
    if records and not any(columns["id"] in record for _, record in records):
        found = sorted({key for _, record in records for key in record})
        raise ImportSetupError(
            f"import: {path} has no column {columns['id']!r} (id_column=); its columns: {', '.join(found)}"
        )
    clip_split = {m["clip_id"]: name for name, metas in labels.items() for m in metas}
    imported = match_records(records, list(clip_split), columns, [e.lower() for e in cfg.video_extensions])
    imported.malformed = sorted(bad_lines + imported.malformed, key=lambda m: m["line"])

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    identity = hashlib.sha256(
        json.dumps(
            {"file": digest, "model": cfg.model_name, "columns": columns, "data": fingerprint}, sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    rows_by_split: dict[str, list[dict]] = {name: [] for name in splits}
    for name, metas in labels.items():
        common = {
            "split": name,
            "model": cfg.model_name,
            "prompt": IMPORTED_PROMPT,
            "data_fingerprint": fingerprint,
            "run_identity": identity,
        }
        for meta in metas:
            entry = imported.by_clip.get(meta["clip_id"])
            if entry is None:
                continue
            given = entry["score"] is not None or entry["parsed"] is not None
            output = ModelOutput(
                meta["sample_id"],
                math.nan if entry["score"] is None else entry["score"],
                None if entry["answer"] is None else str(entry["answer"]),
                entry["parsed"],
            )
            row = prediction_row(
                meta,
                output,
                identity,
                common,
                error=None if given else f"no answer or score in {path.name} line {entry['line']}",
            )
            row.update(
                latency_s=entry["latency"],
                tokens_in=None,
                tokens_out=None,
                cost_usd=entry["cost"],
                imported=True,
                source_line=entry["line"],
            )
            rows_by_split[name].append(row)
    test_rows = rows_by_split[cfg.data.split]
    if not test_rows:
        raise ImportSetupError(
            f"import: no row of {path} matched a clip of split {cfg.data.split!r} in "
            f"{cfg.data.path} ({len(imported.unmatched)} unmatched, {len(imported.malformed)} "
            f"malformed; e.g. {(imported.unmatched or imported.malformed or [{}])[0]})"
        )

    eval_cfg = OmegaConf.load(CONF_DIR / "eval.yaml")
    settings = OmegaConf.to_container(cfg, resolve=True)
    settings["metrics"] = OmegaConf.to_container(OmegaConf.merge(eval_cfg.metrics, cfg.metrics), resolve=True)
    settings["report"] = OmegaConf.to_container(eval_cfg.report, resolve=True)
    settings["decision"] = OmegaConf.to_container(eval_cfg.decision, resolve=True)
    summary = summarize(test_rows, rows_by_split.get("val", []), [], settings, None)
    if all(row["latency_s"] is None for row in test_rows):  # not measured, rather than every clip "failed"
        summary["timing"].update(
            n_failed=sum(row["error"] is not None for row in test_rows),
            wall_source="not measured (imported without latency)",
        )
    missing = sorted(
        clip for clip, name in clip_split.items() if name == cfg.data.split and clip not in imported.by_clip
    )
    metrics = metrics_document(
        run_identity=identity,
        model=cfg.model_name,
        prompt=IMPORTED_PROMPT,
        data={
            "path": str(cfg.data.path),
            "split": cfg.data.split,
            "fingerprint": fingerprint,
            "num_samples": len(test_rows),
        },
        summary=summary,
        config=settings,
        imported={
            "file": str(path),
            "sha256": digest,
            "columns": columns,
            "rows": imported.rows,
            "matched": len(imported.by_clip),
            "unmatched": imported.unmatched,
            "malformed": imported.malformed,
            "clips_without_row": missing,
            "latency_given": any(r["latency_s"] is not None for r in test_rows),
            "cost_given": any(r["cost_usd"] is not None for r in test_rows),
        },
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Written as eval/run.py writes them (PredictionWriter: no NaN in the JSON), to a new file renamed into place.
    fresh = out_dir / f".predictions.jsonl.tmp{os.getpid()}"
    fresh.unlink(missing_ok=True)
    writer = PredictionWriter(fresh)
    writer.write([row for name in splits for row in rows_by_split[name]])
    writer.close()
    os.replace(fresh, out_dir / "predictions.jsonl")
    write_json_atomic(out_dir / "metrics.json", metrics, allow_nan=False)
    from eval.report import write_report

    write_report(out_dir)
    return metrics


def _print(metrics: dict, out_dir: Path) -> None:
    info = metrics["imported"]
    print(
        f"imported {info['matched']} of {info['rows']} rows of {info['file']} as {metrics['model']} "
        f"({metrics['data']['num_samples']} clips of split {metrics['data']['split']}) -> {out_dir}"
    )
    for kind in ("unmatched", "malformed"):
        for item in info[kind]:
            print(f"  {kind}: line {item['line']}: {item['id'] or '-'}: {item['reason']}", file=sys.stderr)
    if info["clips_without_row"]:
        print(
            f"  {len(info['clips_without_row'])} clips of split {metrics['data']['split']} have no row in the "
            "file (metrics.json imported.clips_without_row)",
            file=sys.stderr,
        )


@entry_point("import_predictions")
def main(cfg: DictConfig) -> None:
    metrics = import_predictions(cfg)
    _print(metrics, Path(cfg.output_dir))


if __name__ == "__main__":
    main()
