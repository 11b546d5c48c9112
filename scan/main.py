"""Deploy path: `python scan/main.py model=NAME input=FILE|DIR|LIST.txt output_dir=DIR [labels=FILE]`.

Streams each recording (no dataset on disk), scores every window with any model kind, and writes per video
DIR/videos/VIDEO_ID/timeline.jsonl (one row per window: start, end, p_ghost_probing) and alerts.json (alerts
merged with hysteresis), then DIR/scan.json, DIR/scan.html and, with labels=, DIR/metrics.json (event recall,
false alerts per hour, lead times, the recall / false-alert curve). Resumable: a re-run skips finished videos and
answered windows (unanswered ones, e.g. an API outage, are asked again). A file listed twice (another path, a link)
is scanned once; a file that cannot be read, a link to outside the allowed roots or a recording shorter than one
window is reported by name and skipped; a stretch of a file that will not decode is skipped and reported with its
time range while the rest is scored. The exit code is 1 only when nothing could be scanned (or an API budget
stopped the scan). Under `torchrun` ranks split the files and rank 0 writes the scan-wide outputs. Options:
conf/scan.yaml.
"""

import json
import math
import sys
import time
from pathlib import Path

# A stage script runs as `python scan/main.py`: put the repository root on the path so `scan.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from ghostprobe.alerts import alerts_from_timeline, off_threshold
from ghostprobe.cli import entry_point
from ghostprobe.distributed import barrier, rank_and_world_size
from ghostprobe.files import JsonlAppender, exit_when_disk_full, read_json_or_none, write_json_atomic
from ghostprobe.labels import LabelFileError, LabelSet, load_labels
from ghostprobe.links import missing_roots
from ghostprobe.models.api.retry import ApiModelError
from ghostprobe.models.base import model_kind, resolve_model_config
from ghostprobe.prompts import load_prompt
from scan.recordings import (
    ScanInputs,
    VideoJob,
    api_estimate,
    damaged_stretches,
    decoded_chunks,
    file_stamp,
    list_inputs,
    plan_chunks,
    probe,
    read_timeline,
    scan_identity,
    scan_windows,
    timeline_with_gaps,
    window_clip,
)


class ScanSetupError(SystemExit):
    """A problem found before any window is scored: the message says what to fix."""


class BudgetReached(Exception):
    """The next batch of API calls would take the spend past api_budget_usd."""


def resolve_threshold(cfg: DictConfig) -> dict:
    """The on/off thresholds: `threshold=`, or an eval run's (`threshold_from=`): its tuned threshold when it has one
    chosen on a val split, else the model's own answer (0.5). A cross-fitted run has one threshold per fold, none of
    which is the run's: the scan then keeps 0.5 and says so."""
    on, source = float(cfg.threshold), "threshold="
    if cfg.threshold_from:
        path = Path(cfg.threshold_from) / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
            tuned = metrics.get("tuned_threshold") or {}
            if tuned.get("available") and tuned.get("source") == "val":
                on, which = float(tuned["threshold"]), f"its threshold tuned on val ({tuned['note']})"
            else:
                on, which = float(metrics["threshold"]["value"]), "the model's own answer (no val-tuned threshold)"
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ScanSetupError(
                f"scan: threshold_from={cfg.threshold_from}: cannot read the threshold from {path} "
                f"({type(err).__name__}: {err}); point it at an eval/run.py output_dir"
            ) from None
        source = f"threshold_from={cfg.threshold_from}: {which}"
    off = off_threshold(on, float(cfg.alerts.hysteresis))
    return {"on": on, "off": off, "min_gap_s": float(cfg.alerts.min_gap_s), "source": source}


def scan(cfg: DictConfig, model=None, model_cfg: dict | None = None) -> int:
    """Run the scan described by `cfg` (conf/scan.yaml) and return the exit code. `model` (and its `model_cfg`,
    whose kind must be a registered one; default: the configured model's entry) replaces the configured model:
    tests and benchmarks use scorer doubles. A full disk ends it with one line naming the folder."""
    out_dir = Path(cfg.output_dir)
    advice = "free space there (or choose another output_dir), then run the same command again: scored windows are kept"
    with exit_when_disk_full(out_dir, "scan", advice):
        (out_dir / "videos").mkdir(parents=True, exist_ok=True)
        return _scan(cfg, out_dir, model, model_cfg)


def _scan(cfg: DictConfig, out_dir: Path, model, model_cfg: dict | None) -> int:
    rank, world_size = rank_and_world_size()
    prompt = load_prompt(OmegaConf.to_container(cfg.prompt, resolve=True))
    settings = _window_settings(cfg)
    thresholds = resolve_threshold(cfg)
    if model is None:
        model_cfg = _model_config(cfg)
    elif model_cfg is None:
        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    identity = scan_identity(model_cfg, prompt, settings)
    labels = _load_labels(cfg)
    inputs = _list_inputs(cfg)
    if rank == 0:
        for same in inputs.same_file:
            print(
                f"scan: {same['path']} is the same file as {same['same_as']} ({same['file']}): scanned once",
                file=sys.stderr,
            )
    mine = inputs.recordings[rank::world_size]

    jobs, reused, skipped = _prepare_jobs(mine, out_dir, identity, cfg, thresholds)
    pending = sum(len(j.windows) - len(j.done) for j in jobs)
    budget, per_call_usd = _check_api_budget(cfg, model_cfg, pending)
    if model is None:
        from ghostprobe.models.base import build_model

        model = build_model(model_cfg) if pending else None
    batch_size = int(model_cfg.get("batch_size") or 1)
    started = time.perf_counter()
    stopped = None
    try:
        _score(jobs, model, prompt, cfg, identity, out_dir, batch_size, budget, per_call_usd)
    except BudgetReached as err:
        stopped = str(err)
    except ApiModelError as err:  # too many failed calls in a row (network down, quota gone): keep what was scored
        stopped = f"model: {err}"
    finally:
        if model is not None and hasattr(model, "close"):
            model.close()
    wall_s = time.perf_counter() - started
    for job in jobs:
        if not job.error and job.windows and len(job.skipped_windows) == len(job.windows):
            job.error = f"no window could be decoded: {job.undecodable[min(job.undecodable)]}"
        if job.error:
            skipped.append({"video_id": job.video_id, "path": str(job.path), "reason": job.error})
        else:
            _finish_video(job, out_dir, identity, thresholds, cfg)
    status = {
        "rank": rank,
        "scanned": [j.video_id for j in jobs if not j.error] + reused,
        "skipped": skipped,
        "windows_scored": pending,
        "wall_s": wall_s,
        "stopped": stopped,
    }
    write_json_atomic(out_dir / f"scan_status.rank{rank}.json", status, allow_nan=False)
    for item in skipped:
        print(f"scan: skipped {item['path']}: {item['reason']}", file=sys.stderr)
    if world_size > 1:
        barrier()
        if rank != 0:
            return 0  # rank 0 decides the exit code for the whole scan
    from scan.summary import write_outputs

    summary = write_outputs(
        out_dir, inputs, world_size, cfg, thresholds, model_cfg.get("name") or model_cfg["kind"], prompt.name, labels
    )
    if stopped:
        print(
            f"scan: stopped: {stopped}. Windows scored so far are kept; run the same command again to go on "
            "(after raising api_budget_usd, or once the API answers again)",
            file=sys.stderr,
        )
        return 1
    if not summary["videos_scanned"]:
        unanswered = len(summary["videos"])
        why = f"{summary['videos_skipped']} of {summary['videos_total']} files were skipped (reasons above)" + (
            f", and the model answered no window of the other {unanswered} (timeline.jsonl rows hold the errors)"
            if unanswered
            else ""
        )
        print(f"scan: nothing could be scanned: {why}", file=sys.stderr)
        return 1
    return 0


def _model_config(cfg: DictConfig) -> dict:
    """The backend's keyword arguments: the model entry, the hardware keys its kind takes, `batch_size=`."""
    try:
        return resolve_model_config(
            OmegaConf.to_container(cfg.model, resolve=True),
            OmegaConf.to_container(cfg.hardware, resolve=True),
            cfg.batch_size,
        )
    except ValueError as err:  # ModelPathError (weights missing) or an unknown model kind
        raise ScanSetupError(f"scan: {err}") from None


def _window_settings(cfg: DictConfig) -> dict:
    """window_s, stride_s, num_frames, frame_size, checked: a stride longer than the window is refused, since the
    footage between two windows would be seen by no window at all."""
    settings = {k: cfg[k] for k in ("window_s", "stride_s", "num_frames", "frame_size")}
    if cfg.stride_s <= 0 or cfg.window_s <= 0 or cfg.num_frames < 1:
        raise ScanSetupError(f"scan: window_s, stride_s and num_frames must be positive, got {settings}")
    if cfg.stride_s > cfg.window_s:
        gap = float(cfg.stride_s) - float(cfg.window_s)
        raise ScanSetupError(
            f"scan: stride_s={cfg.stride_s:g} is longer than window_s={cfg.window_s:g}: {gap:g} s "
            f"of every {cfg.stride_s:g} s would be seen by no window; set stride_s <= window_s"
        )
    return settings


def _load_labels(cfg: DictConfig) -> LabelSet | None:
    """labels= (and videos_dir=, where its video paths are relative to), read before any window is scored."""
    if cfg.videos_dir is not None and not Path(cfg.videos_dir).is_dir():
        raise ScanSetupError(
            f"scan: videos_dir {cfg.videos_dir} does not exist (the video paths of labels= are "
            "relative to it); set it to the folder the label file's paths start from"
        )
    if not cfg.labels:
        return None
    try:
        return load_labels(cfg.labels)
    except LabelFileError as err:
        raise ScanSetupError(f"scan: labels={cfg.labels}: {err}") from None


def _list_inputs(cfg: DictConfig) -> ScanInputs:
    allowed_roots = tuple(str(p) for p in cfg.allowed_roots or ())
    missing = missing_roots(allowed_roots)
    if missing:
        raise ScanSetupError(
            f"scan: allowed_roots: {', '.join(missing)} is not a folder; list existing folders that "
            "links among the inputs may point into"
        )
    try:
        inputs = list_inputs(str(cfg.input), list(cfg.video_extensions), allowed_roots)
    except FileNotFoundError as err:
        raise ScanSetupError(f"scan: {err}") from None
    if not inputs.recordings:
        raise ScanSetupError(f"scan: input={cfg.input} holds no video file ({', '.join(cfg.video_extensions)})")
    return inputs


def _prepare_jobs(mine, out_dir: Path, identity: str, cfg, thresholds):
    """Probe this rank's files and list their windows; a video finished by an earlier run with the same model,
    prompt, windows and file is not probed or decoded again (its alerts are recomputed for today's thresholds)."""
    jobs, reused, skipped = [], [], []
    for recording in mine:
        video_id, path = recording.video_id, recording.path
        if recording.refused:
            skipped.append({"video_id": video_id, "path": str(path), "reason": recording.refused})
            continue
        video_dir = out_dir / "videos" / video_id
        previous = read_json_or_none(video_dir / "alerts.json")
        if (
            previous
            and previous.get("identity") == identity
            and previous.get("complete")
            and path.exists()
            and previous.get("file") == file_stamp(path)
        ):
            rows = list(read_timeline(video_dir / "timeline.jsonl", identity).values())
            if len(rows) == previous["windows_answered"]:
                rows = timeline_with_gaps(rows, previous.get("damaged_stretches", []))
                alerts = _write_alerts(video_dir, previous | {"threshold": thresholds}, rows, thresholds)
                if cfg.export_alerts and alerts:
                    _export(VideoJob(video_id, path), alerts, video_dir, cfg)
                reused.append(video_id)
                continue
        job = VideoJob(video_id, path)
        probe(job, int(cfg.decode_threads))
        if not job.error and job.clock.duration_s < float(cfg.window_s):
            job.error = (
                f"{job.clock.duration_s:.2f} s long, shorter than window_s={cfg.window_s:g}: no whole "
                "window to score (lower window_s to scan it)"
            )
        if job.error:
            skipped.append({"video_id": video_id, "path": str(path), "reason": job.error})
            continue
        job.windows = scan_windows(job.clock, float(cfg.window_s), float(cfg.stride_s), int(cfg.num_frames))
        _forget_if_changed(video_dir, path)
        job.done = read_timeline(video_dir / "timeline.jsonl", identity)
        jobs.append(job)
    return jobs, reused, skipped


def _forget_if_changed(video_dir: Path, path: Path) -> None:
    """Scores of a file that changed since they were written (same name, new bytes) are set aside, not resumed."""
    source, stamp = video_dir / "source.json", file_stamp(path)
    previous = read_json_or_none(source)
    timeline = video_dir / "timeline.jsonl"
    if previous is not None and previous != stamp and timeline.exists():
        stale = timeline.with_name(f"timeline.stale{time.time_ns()}.jsonl")
        timeline.replace(stale)
        print(f"scan: {path} changed since it was partly scanned: its old scores moved to {stale}", file=sys.stderr)
    video_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(source, stamp)


def _export(job: VideoJob, alerts: list[dict], video_dir: Path, cfg) -> None:
    from scan.export import export_video_alerts

    if job.info is None:
        probe(job, int(cfg.decode_threads))
        if job.error:
            print(f"scan: cannot export the alerts of {job.path}: {job.error}", file=sys.stderr)
            return
    export_video_alerts(job, alerts, video_dir, float(cfg.export.pad_s), float(cfg.window_s))


def _check_api_budget(cfg, model_cfg: dict, pending: int) -> tuple[float | None, float | None]:
    """(budget, estimated dollars per window) for API models, after printing the estimate; (None, None) else."""
    if not model_kind(model_cfg["kind"]).api:
        return None, None
    estimate = api_estimate(model_cfg, pending, int(cfg.num_frames), OmegaConf.to_container(cfg.api_estimate))
    line = (
        f"scan: {model_cfg.get('name')}: {estimate['calls']} calls, about {estimate['tokens_in_per_call']} "
        f"input tokens each, estimated ${estimate['usd']:.2f} (${estimate['usd_per_call']:.4f} a window)"
    )
    print(line, file=sys.stderr)
    if cfg.api_budget_usd is None:
        raise ScanSetupError(f"{line}; set api_budget_usd= (the scan stops before spending more than it)")
    if estimate["usd"] > float(cfg.api_budget_usd):
        print(
            f"scan: the estimate is above api_budget_usd={cfg.api_budget_usd}: the scan will stop when the "
            "budget is reached",
            file=sys.stderr,
        )
    return float(cfg.api_budget_usd), estimate["usd_per_call"]


def _score(
    jobs,
    model,
    prompt,
    cfg,
    identity: str,
    out_dir: Path,
    batch_size: int,
    budget: float | None,
    per_call_usd: float | None,
) -> None:
    """Score every chunk's windows in batches, appending timeline rows; a window that needs a frame that would not
    decode is set aside (`job.skipped_windows`). With a budget, a batch is sent only when the spend so far plus the
    batch at the dearest per-window cost seen (the estimate until a call has been paid) stays within it."""
    from tqdm import tqdm

    chunks = [c for job in jobs for c in plan_chunks(job, int(cfg.chunk_windows))]
    total = sum(len(c.windows) for c in chunks)
    show = bool(cfg.progress) and total > 0
    videos_bar = tqdm(total=len(jobs), desc="videos", unit="video", position=0, disable=not show)
    windows_bar = tqdm(total=total, desc="windows", unit="win", position=1, disable=not show)
    writers: dict[str, JsonlAppender] = {}
    spent, per_call = 0.0, per_call_usd
    try:
        for chunk, frames, undecodable in decoded_chunks(
            iter(chunks),
            int(cfg.frame_size),
            int(cfg.decode_threads),
            int(cfg.decode_workers),
            int(cfg.prefetch_chunks),
        ):
            job = chunk.job
            job.undecodable.update(undecodable)
            windows = []
            for window in chunk.windows:
                damaged = any(i in job.undecodable for i in window.frame_indices)
                (job.skipped_windows if damaged else windows).append(window)
            windows_bar.update(len(chunk.windows) - len(windows))
            writer = writers.get(job.video_id)
            if writer is None and windows:
                writer = writers[job.video_id] = JsonlAppender(out_dir / "videos" / job.video_id / "timeline.jsonl")
            for k in range(0, len(windows), batch_size):
                batch = windows[k : k + batch_size]
                if budget is not None and per_call is not None and spent + per_call * len(batch) > budget:
                    raise BudgetReached(f"api_budget_usd={budget:g} reached (${spent:.2f} spent)")
                outputs = model.score([window_clip(job, w, frames) for w in batch], prompt)
                rows = [_row(w, o, identity) for w, o in zip(batch, outputs, strict=True)]
                writer.write(rows)
                cost = sum(o.cost_usd for o in outputs)
                spent += cost
                per_call = max(per_call or 0.0, cost / len(batch))
                job.done.update({r["window"]: r for r in rows if r["error"] is None})
                windows_bar.update(len(batch))
            if chunk.last_of_video:
                videos_bar.update(1)
    finally:
        for writer in writers.values():
            writer.close()
        windows_bar.close()
        videos_bar.close()


def _row(window, output, identity: str) -> dict:
    p = output.p_ghost_probing
    ok = p is not None and not math.isnan(p)
    error = None if ok else (output.extra.get("error") or "no score")
    return {
        "window": window.index,
        "start_s": window.start_s,
        "end_s": window.end_s,
        "frame_indices": [int(i) for i in window.frame_indices],
        "p_ghost_probing": float(p) if ok else None,
        "error": error,
        "latency_s": round(output.latency_s, 6),
        "run": identity,
    }


def _finish_video(job: VideoJob, out_dir: Path, identity: str, thresholds: dict, cfg) -> None:
    """alerts.json of a scanned video: what was scored, the damaged stretches skipped (said on stderr too) and the
    alerts. Complete when every window was scored or set aside as undecodable (a re-run does not try those again
    unless the file changes)."""
    video_dir = out_dir / "videos" / job.video_id
    video_dir.mkdir(parents=True, exist_ok=True)
    stretches = damaged_stretches(job, float(cfg.stride_s))
    not_scanned_s = sum(hi - lo for lo, hi in (s["not_scanned_s"] for s in stretches))
    header = {
        "video_id": job.video_id,
        "path": str(job.path),
        "identity": identity,
        "file": file_stamp(job.path),
        "info": job.info.to_json(),
        "duration_s": job.clock.duration_s,
        "scanned_s": job.clock.duration_s - not_scanned_s,
        "num_windows": len(job.windows),
        "windows_answered": len(job.done),
        "windows_skipped": len(job.skipped_windows),
        "complete": len(job.done) + len(job.skipped_windows) == len(job.windows),
        "damaged_stretches": stretches,
        "window_s": float(cfg.window_s),
        "stride_s": float(cfg.stride_s),
        "num_frames": int(cfg.num_frames),
    }
    for s in stretches:
        print(
            f"scan: {job.path}: frames {s['damaged_frames'][0]}-{s['damaged_frames'][1]} "
            f"({s['damaged_s'][0]:.2f}-{s['damaged_s'][1]:.2f} s) would not decode: {s['windows_skipped']} windows "
            f"ending {s['window_ends_s'][0]:.2f}-{s['window_ends_s'][1]:.2f} s not scored, the rest was "
            f"({s['reason']})",
            file=sys.stderr,
        )
    rows = timeline_with_gaps([job.done[k] for k in sorted(job.done)], stretches)
    alerts = _write_alerts(video_dir, header, rows, thresholds)
    if cfg.export_alerts and alerts:
        _export(job, alerts, video_dir, cfg)


def _write_alerts(video_dir: Path, header: dict, rows: list[dict], thresholds: dict) -> list[dict]:
    alerts = [
        a.to_json() for a in alerts_from_timeline(rows, thresholds["on"], thresholds["off"], thresholds["min_gap_s"])
    ]
    write_json_atomic(video_dir / "alerts.json", header | {"threshold": thresholds, "alerts": alerts}, allow_nan=False)
    return alerts


@entry_point("scan")
def main(cfg: DictConfig) -> None:
    code = scan(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
