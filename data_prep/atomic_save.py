"""Saving the prepared DatasetDict so that a kill at any moment leaves `out_dir` holding the previous complete dataset
or the new one, never a mix of both and never a folder that looks finished but does not load.

`datasets.load_from_disk(out_dir)` reads `out_dir/dataset_dict.json`, then one folder per split. Several names cannot
be replaced in one step, so they are links that do not change: `out_dir/<name>` -> `.dataset/current/<name>`, where
`.dataset/current` is itself a link to one complete version folder. A new version is written beside the old one, and
one rename of `current` switches to it; the old version is deleted afterwards. Every path is relative, so the folder
can be moved or copied with `cp -a`, `rsync -a` or `tar`.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ghostprobe.labels import SPLIT_NAMES

if TYPE_CHECKING:
    from datasets import DatasetDict

STORE = ".dataset"
DATASET_DICT = "dataset_dict.json"


def save_atomically(dataset: DatasetDict, out_dir: Path, max_shard_size: str | int) -> list[str]:
    """`dataset.save_to_disk(out_dir)`, switched into place in one step; returns warnings for the report.

    Where the file system has no symbolic links (exFAT, some network shares), the dataset is written in place as
    `save_to_disk` does, and a warning says a kill during the write can leave it incomplete.
    """
    store = out_dir / STORE
    store.mkdir(parents=True, exist_ok=True)
    if not _links_work(store):
        dataset.save_to_disk(str(out_dir), max_shard_size=max_shard_size)
        return [
            f"{out_dir}: this file system has no symbolic links, so the dataset was written in place: a kill "
            "during that write leaves it incomplete (re-run data prep to repair it)"
        ]
    _adopt_dataset_saved_in_place(out_dir, store)
    _remove_old_versions(out_dir)  # a version a killed run left half-written
    version = _new_version(store)
    dataset.save_to_disk(str(version), max_shard_size=max_shard_size)
    for name in [DATASET_DICT, *dataset]:  # a split the old version lacks needs its link before the switch
        _replace_link(out_dir / name, Path(STORE, "current", name))
    _replace_link(store / "current", Path(version.name))  # the switch
    for name in set(SPLIT_NAMES) - set(dataset):
        if (out_dir / name).is_symlink():
            (out_dir / name).unlink()
    _remove_old_versions(out_dir)
    return []


def _adopt_dataset_saved_in_place(out_dir: Path, store: Path) -> None:
    """Move a dataset that `save_to_disk` wrote straight into `out_dir` (by an earlier version of data prep) into the
    store and link it, so that it stays loadable while the new one is written. `dataset_dict.json` moves first: for
    the few renames this takes, once, `out_dir` holds no dataset rather than a broken one."""
    in_place = [
        name for name in (DATASET_DICT, *SPLIT_NAMES) if (out_dir / name).exists() and not (out_dir / name).is_symlink()
    ]
    for name in set(in_place) - {DATASET_DICT}:
        # Only what `save_to_disk` writes (Arrow and JSON files) is taken over, and later deleted: never other files.
        if any(entry.suffix not in (".arrow", ".json") for entry in (out_dir / name).iterdir()):
            raise FileExistsError(
                f"{out_dir / name}: not a dataset split, but data prep writes its {name!r} split "
                "there: move that folder away, or choose another out_dir, and re-run (clips already "
                "prepared are reused)"
            )
    if not in_place:
        return
    version = _new_version(store)
    for name in in_place:
        os.replace(out_dir / name, version / name)
    _replace_link(store / "current", Path(version.name))
    for name in in_place:
        _replace_link(out_dir / name, Path(STORE, "current", name))


def _new_version(store: Path) -> Path:
    version = store / f"version-{time.time_ns()}-{os.getpid()}"
    version.mkdir()
    return version


def _replace_link(path: Path, target: Path) -> None:
    """Make `path` a symbolic link to `target` in one step (a rename over the old link)."""
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return
    temporary = path.with_name(f".{path.name}.link-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, path)


def _remove_old_versions(out_dir: Path) -> None:
    """Delete every version but the current one, and temporary links a kill left behind."""
    for link in out_dir.glob(".*.link-*"):
        link.unlink()
    store = out_dir / STORE
    current = os.readlink(store / "current") if (store / "current").is_symlink() else None
    for entry in store.iterdir():
        if entry.name in ("current", current):
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _links_work(store: Path) -> bool:
    probe = store / f".link-probe-{os.getpid()}"
    try:
        probe.unlink(missing_ok=True)
        probe.symlink_to("current")
    except OSError:
        return False
    probe.unlink()
    return True
