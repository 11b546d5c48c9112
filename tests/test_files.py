"""ghostprobe/files.py: result files written atomically, and a full disk said in one line whatever library hit it.

A really full disk (a small tmpfs, tests/small_disk.py) where the machine allows one without root; the other cases
raise the error at the write call (monkeypatch), which the tests say."""

import errno
import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from ghostprobe import files
from ghostprobe.files import exit_when_disk_full, write_json_atomic
from small_disk import on_small_disk, small_disk_available

REPO = Path(__file__).resolve().parents[1]
ADVICE = "free space there, then run again"


def test_json_is_replaced_whole_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"step": 1})
    assert json.loads(path.read_text()) == {"step": 1}
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # readable by whoever could read a file written the ordinary way
    assert path.stat().st_mode == plain.stat().st_mode
    plain.unlink()

    def no_space(fd):  # simulated at the flush to disk, where a full disk (or quota) shows on many filesystems
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError):
        write_json_atomic(path, {"step": 2, "scores": list(range(1000))})
    assert json.loads(path.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # the temporary file went


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device", "/runs/x/metrics.jsonl"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        # what safetensors raises (its own type, the OS error in the text)
        RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
        # torch.save: no cause given; the folder's free space decides (below)
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
    ],
    ids=["ENOSPC", "EDQUOT", "safetensors", "torch.save"],
)
def test_a_full_disk_ends_with_one_line_naming_the_folder_and_its_free_space(tmp_path, monkeypatch, error):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage(8 << 30, (8 << 30) - 12288, 12288))
    with pytest.raises(SystemExit) as stopped, exit_when_disk_full(tmp_path, "train", ADVICE):
        try:
            raise error
        except Exception as inner:  # wrapped, as DeepSpeed and the Trainer may do: the cause is still found
            raise RuntimeError("saving checkpoint-6 failed") from inner
    assert stopped.value.code == (
        f"train: disk full: no space left to write in {tmp_path} (12.0 KiB free of 8.0 GiB); {ADVICE}"
    )


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(OSError) as passed, exit_when_disk_full(tmp_path, "train", ADVICE):
        raise OSError(errno.EACCES, "Permission denied")
    assert passed.value.errno == errno.EACCES
    # torch's short write with plenty of space left is something else (a broken network mount...): not "disk full"
    assert shutil.disk_usage(tmp_path).free > files.NEARLY_FULL_BYTES
    with pytest.raises(RuntimeError, match="unexpected pos"), exit_when_disk_full(tmp_path, "train", ADVICE):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


WRITER = """import sys, torch
from pathlib import Path
from ghostprobe.files import exit_when_disk_full, write_json_atomic
folder = Path(sys.argv[1])
write_json_atomic(folder / "summary.json", {"step": 1})
try:
    with exit_when_disk_full(folder, "train", "free space there, then run again"):
        if sys.argv[2] == "json":
            write_json_atomic(folder / "summary.json", {"scores": list(range(100000))})
        else:
            torch.save({"weights": torch.zeros(100000)}, folder / "optim_states.pt")
finally:  # the tmpfs goes with this process: show what the earlier result file holds now
    print((folder / "summary.json").read_text(), end="")
"""


@pytest.mark.skipif(not small_disk_available(), reason="needs unprivileged user namespaces (unshare) for a tmpfs")
@pytest.mark.parametrize("writer", ["json", "torch"])
def test_a_really_full_disk(tmp_path, writer):
    """A 64 KiB tmpfs: a 600 KB JSON and a 400 KB torch.save (the `inline_container.cc: unexpected pos` of the
    issue) both end in the one line; the JSON written before is intact."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        on_small_disk(folder, "64k", [sys.executable, "-c", WRITER, str(folder), writer]),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout == '{\n  "step": 1\n}\n'  # the earlier result, whole
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"train: disk full: no space left to write in {folder} (")
    assert line.endswith(f" free of 64.0 KiB); {ADVICE}")


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b'{"a": 1}\n{"a": 2}\n', b'{"a": 1}\n{"a": 2}\n'),  # whole: untouched
        (b'{"a": 1}\n{"a": 2}\n{"a"', b'{"a": 1}\n{"a": 2}\n'),  # a row cut short by a kill
        (b'{"a"', b""),  # nothing whole at all
        (b'{"a": 1}\n' + b"x" * 200_000, b'{"a": 1}\n'),  # a cut row longer than one block read from the end
    ],
)
def test_an_appender_drops_a_row_cut_short_and_appends_after_the_last_whole_one(tmp_path, content, kept):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with files.JsonlAppender(path) as appender:
        appender.write([{"b": 3}])
    assert path.read_bytes() == kept + b'{"b": 3}\n'
    assert files.read_jsonl([path])[-1] == {"b": 3}
