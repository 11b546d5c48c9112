"""Stage 1: annotated clips + a label file -> a `datasets.DatasetDict` (train/val/test) on disk, plus a report.

Order of work: validate labels -> resolve video paths -> prepare clips in parallel into a content-addressed cache
(resumable) -> assign splits -> stream cache entries into Arrow, one split at a time -> `save_to_disk` beside the
previous dataset, switched into place in one step (data_prep/atomic_save.py). Bad clips are collected with a reason
in `prep_report.json` and never stop the others.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

from data_prep.atomic_save import save_atomically
from data_prep.clip_worker import (
    CACHE_SUFFIX,
    CachedClip,
    ClipTask,
    cache_entry_complete,
    cache_key,
    load_cache_meta,
    prepare_clip,
)
from data_prep.splits import assign_splits
from ghostprobe.dataset import dataset_features, rows_for_clip
from ghostprobe.files import write_json_atomic
from ghostprobe.labels import ClipLabel, LabelFileError, load_labels
from ghostprobe.links import AllowedRoots, PathNotAllowed, resolve_allowed

CACHE_DIR = ".prep_cache"


def prepare_dataset(
    labels_path: str | Path,
    out_dir: str | Path,
    settings: dict,
    videos_dir: str | Path | None = None,
    allowed_roots: tuple[str, ...] = (),
    config: dict | None = None,
) -> dict:
    """Prepare every clip of `labels_path` into a DatasetDict at `out_dir`; return the report (also written to
    `out_dir/prep_report.json`). `settings` is the resolved data-prep config (see conf/data_prep.yaml);
    `allowed_roots`: folders outside the videos folder that its links may point into (ghostprobe/links.py); `config`,
    the whole resolved command config, is recorded in the report as it was given."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    cache_dir = out_dir / CACHE_DIR / "clips"
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob("*.npz"):  # entries of cache format 3 and before: no data prep reads them any more
        stale.unlink()
    report: dict = {
        "labels": str(labels_path),
        "out_dir": str(out_dir),
        "rejected": [],
        "warnings": [],
        "config": config,
    }

    try:
        label_set = load_labels(labels_path)
    except LabelFileError as err:
        report["rejected"].append({"clip_id": None, "video": None, "reason": str(err)})
        return _finish(report, out_dir, {}, [], started, total_entries=1)
    report["warnings"] += label_set.warnings
    report["rejected"] += [{"clip_id": p.clip_id, "video": p.video, "reason": str(p)} for p in label_set.problems]
    videos_root = Path(videos_dir) if videos_dir else Path(labels_path).parent
    report["videos_root"] = str(videos_root.resolve())  # the report's gallery links each clip to its file
    total_entries = len(label_set.clips) + len(label_set.problems)

    tasks, clips_by_id, reused = [], {}, 0
    for clip in label_set.clips:
        video_path = _resolve_video(AllowedRoots.of(videos_root, allowed_roots), clip, report)
        if video_path is None:
            continue
        cache_path = cache_dir / f"{cache_key(clip, video_path, settings)}{CACHE_SUFFIX}"
        clips_by_id[clip.clip_id] = (clip, cache_path, video_path)
        if cache_entry_complete(cache_path):
            reused += 1
        else:
            tasks.append(
                ClipTask(
                    clip.model_dump_json(),
                    str(video_path),
                    str(cache_path),
                    settings,
                    str(videos_root),
                    tuple(allowed_roots),
                )
            )
    report["reused_from_cache"] = reused

    for result in _run_tasks(tasks, settings["num_proc"]):
        if not result["ok"]:
            clip, _, video_path = clips_by_id.pop(result["clip_id"])
            report["rejected"].append({"clip_id": clip.clip_id, "video": clip.video, "reason": result["reason"]})

    prepared = [clips_by_id[clip_id][0] for clip_id in sorted(clips_by_id)]
    if not prepared:
        return _finish(report, out_dir, {}, [], started, total_entries)
    metas = {clip.clip_id: load_cache_meta(clips_by_id[clip.clip_id][1]) for clip in prepared}
    report["warnings"] += [
        f"clip {clip_id!r}: {warning}" for clip_id, meta in metas.items() for warning in meta.get("warnings", [])
    ]
    video_of = _video_names(videos_root, {clip.clip_id: clips_by_id[clip.clip_id][2] for clip in prepared})
    split = settings["split"]
    report["split_policy"] = split["name"]
    split_of, split_warnings, split_rejected = assign_splits(
        prepared, split["ratios"], settings["seed"], video_of, honour_fixed=split["honour_fixed_splits"]
    )
    report["warnings"] += split_warnings
    report["rejected"] += [
        {"clip_id": clip.clip_id, "video": clip.video, "reason": split_rejected[clip.clip_id]}
        for clip in prepared
        if clip.clip_id in split_rejected
    ]
    prepared = [clip for clip in prepared if clip.clip_id not in split_rejected]
    if not prepared:
        return _finish(report, out_dir, {}, [], started, total_entries)
    splits, write_warnings = _write_dataset(out_dir, prepared, clips_by_id, metas, split_of, settings)
    report["warnings"] += write_warnings
    for name, info in splits.items():
        members = [c for c in prepared if split_of[c.clip_id] == name]
        info.update(_split_stats(members, [metas[c.clip_id]["video_info"]["duration_s"] for c in members]))
    report["test_split_warning"] = _small_test_warning(prepared, split_of, settings)
    return _finish(report, out_dir, splits, prepared, started, total_entries)


def _small_test_warning(prepared: list[ClipLabel], split_of: dict[str, str], settings: dict) -> str | None:
    """A test split too small to decide anything on: the planning document scores 50-100 clips zero-shot."""
    test = [c for c in prepared if split_of[c.clip_id] == "test"]
    positives = sum(c.is_ghost_probing for c in test)
    problems = []
    if len(test) < settings["min_test_clips"]:
        problems.append(f"{len(test)} clips (prep.min_test_clips={settings['min_test_clips']})")
    if min(positives, len(test) - positives) < settings["min_test_clips_per_class"]:
        problems.append(
            f"{positives} ghost probing and {len(test) - positives} other clips "
            f"(prep.min_test_clips_per_class={settings['min_test_clips_per_class']})"
        )
    if not problems:
        return None
    how = (
        " Label more clips: docs/decision.md says how many a decision needs."
        if settings["split"]["name"] == "zero_shot"
        else " Score every clip zero-shot with split=zero_shot, or label more clips."
    )
    return (
        f"SMALL TEST SPLIT: test holds {' and '.join(problems)}; its accuracy interval will be wide and the "
        f"decision likely inconclusive.{how}"
    )


def _resolve_video(roots: AllowedRoots, clip: ClipLabel, report: dict) -> Path | None:
    """The clip's video as named in the videos folder (its links followed only into the allowed roots: the reader
    opens the same file), or None after recording why it is refused."""
    try:
        resolve_allowed(roots.folder / clip.video, roots)
    except PathNotAllowed as err:
        report["rejected"].append({"clip_id": clip.clip_id, "video": clip.video, "reason": str(err)})
        return None
    # The name, not the link's target: the report and the split's same-video check name clips by their path in the
    # videos folder.
    return Path(os.path.normpath(roots.folder.resolve() / clip.video))


def _video_names(videos_root: Path, paths: dict[str, Path]) -> dict[str, str]:
    """clip_id -> its video file's path in the videos folder; clips whose files hold the same bytes (a copy under
    another name) get the same name. Only files of equal size are compared, by their first and last MiB; a frame
    folder is named by its path."""
    root = videos_root.resolve()
    by_size: dict[int, set[Path]] = defaultdict(set)
    name_of: dict[Path, str] = {}
    for path in paths.values():
        if path.is_dir():
            name_of[path] = str(path.relative_to(root))
        else:
            by_size[path.stat().st_size].add(path)
    for candidates in by_size.values():
        copies: dict[str, list[Path]] = defaultdict(list)
        for path in sorted(candidates):
            copies[_file_sha256(path) if len(candidates) > 1 else ""].append(path)
        for same in copies.values():
            names = [str(path.relative_to(root)) for path in same]
            for path in same:
                name_of[path] = names[0] + (f" (same bytes as {', '.join(names[1:])})" if len(names) > 1 else "")
    return {clip_id: name_of[path] for clip_id, path in paths.items()}


def _file_sha256(path: Path, edge_bytes: int = 1 << 20) -> str:
    """A digest of the first and last MiB (files of equal size only reach here): two different recordings of one
    size never share both, and a folder of fixed-size dashcam segments is not read whole on every run."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(edge_bytes))
        f.seek(max(f.seek(0, os.SEEK_END) - edge_bytes, 0))
        digest.update(f.read(edge_bytes))
    return digest.hexdigest()


def _run_tasks(tasks: list[ClipTask], num_proc: int):
    progress = tqdm(total=len(tasks), desc="prepare clips", unit="clip", disable=not tasks)
    if num_proc <= 1:
        for task in tasks:
            yield prepare_clip(task)
            progress.update()
    else:
        # spawn, not fork: decord is not fork-safe once its threads exist (decord issue #363).
        with multiprocessing.get_context("spawn").Pool(num_proc, maxtasksperchild=200) as pool:
            for result in pool.imap_unordered(prepare_clip, tasks, chunksize=1):
                yield result
                progress.update()
    progress.close()


def _write_dataset(
    out_dir: Path, prepared: list[ClipLabel], clips_by_id: dict, metas: dict, split_of: dict, settings: dict
) -> tuple[dict, list[str]]:
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # our own bar counts clips; Arrow writing is short next to decoding

    features = dataset_features(settings)
    hf_cache = out_dir / CACHE_DIR / "hf"
    splits, fingerprints = {}, {}
    for split in ("train", "val", "test"):
        members = [clip for clip in prepared if split_of[clip.clip_id] == split]
        if not members:
            continue
        entries = [(clip.model_dump_json(), str(clips_by_id[clip.clip_id][1])) for clip in members]
        fingerprint = _split_fingerprint(split, entries, [metas[c.clip_id] for c in members], settings)
        fingerprints[split] = fingerprint
        splits[split] = Dataset.from_generator(
            _generate_rows,
            features=features,
            gen_kwargs={"entries": entries, "storage": settings["storage"]},
            cache_dir=str(hf_cache),
            fingerprint=fingerprint,
            writer_batch_size=settings["writer_batch_size"],
        )
    warnings = save_atomically(DatasetDict(splits), out_dir, settings["max_shard_size"])
    shutil.rmtree(hf_cache, ignore_errors=True)  # save_to_disk made its own copy
    return {split: {"samples": len(ds), "fingerprint": fingerprints[split]} for split, ds in splits.items()}, warnings


def _generate_rows(entries: list[tuple[str, str]], storage: str):
    # One row at a time, its frames read from the clip's cache entry: memory does not grow with a clip's length.
    for clip_json, cache_path in entries:
        with CachedClip(Path(cache_path)) as cached:
            yield from rows_for_clip(
                ClipLabel.model_validate_json(clip_json), cached.meta, cached.stored_frames, storage
            )


def _split_fingerprint(split: str, entries: list[tuple[str, str]], metas: list[dict], settings: dict) -> str:
    # Content, not paths or times: an interrupted-then-resumed run hashes to the same value as an uninterrupted one.
    digest = hashlib.sha256(json.dumps({"split": split, "storage": settings["storage"]}).encode())
    for (clip_json, _), meta in zip(entries, metas, strict=True):
        digest.update(clip_json.encode() + meta["content_sha256"].encode())
    return digest.hexdigest()[:16]


def _finish(
    report: dict, out_dir: Path, splits: dict, prepared: list[ClipLabel], started: float, total_entries: int
) -> dict:
    report["num_label_entries"] = total_entries
    report["num_prepared"] = len(prepared)
    report["num_rejected"] = len(report["rejected"])
    report["rejected_fraction"] = report["num_rejected"] / max(total_entries, 1)
    report["dataset_fingerprint"] = (
        hashlib.sha256(json.dumps({s: v["fingerprint"] for s, v in sorted(splits.items())}).encode()).hexdigest()[:16]
        if splits
        else None
    )
    report["splits"] = splits
    report["seconds"] = round(time.perf_counter() - started, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "prep_report.json", report)  # a kill never truncates the report
    return report


def _split_stats(clips: list[ClipLabel], durations_s: list[float]) -> dict:
    return {
        "clips": len(clips),
        "labels": dict(Counter(c.label for c in clips)),
        "actors": dict(Counter(c.event.actor for c in clips if c.event and c.event.actor)),
        "light": dict(Counter(c.context.light or "unknown" for c in clips)),
        "groups": len({c.group or c.clip_id for c in clips}),
        "duration_s": {
            "total": round(sum(durations_s), 2),
            "min": round(min(durations_s), 2),
            "median": round(statistics.median(durations_s), 2),
            "max": round(max(durations_s), 2),
        },
    }
