"""Writing result files safely: atomic replacement, and one clear line when the disk is full.

Every result file (summary.json, metrics.json, scores...) is written to a temporary file in the same folder, flushed
to disk, then renamed over the target: a kill or a full disk leaves the old file or the new one, never half of one.

A full disk reaches Python in several disguises: an OSError with errno ENOSPC (or EDQUOT, a quota), safetensors'
"No space left on device" inside its own error type, and torch.save's `[enforce fail at inline_container.cc]
unexpected pos ...`, which names no cause at all. `exit_when_disk_full` turns all of them into one line naming the
folder and its free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What the libraries that wrap the OS error say instead (safetensors: "No space left on device (os error 28)").
_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")
# torch's zip writer reports a short write without its cause; read as "disk full" only when the folder is nearly so.
_TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing")
NEARLY_FULL_BYTES = 1 << 30


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (temporary file in the same folder, fsync, rename); returns `path`.

    On failure (a full disk) the temporary file is removed and the old `path`, if any, is left untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 and the umask, as open() would (tempfile.mkstemp would make results readable by us only).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself reaches the disk only with the folder's entry: without this a power cut may undo it. Some
    # network filesystems refuse to sync a folder; the file is whole either way, so that is not an error.
    with contextlib.suppress(OSError):
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def write_json_atomic(path: str | Path, obj, indent: int | None = 2, allow_nan: bool = True) -> Path:
    """Write `obj` as JSON (UTF-8, plus a final newline) to `path` atomically; see `write_text_atomic`.
    `allow_nan=False` refuses NaN/Infinity (strict JSON: results that other languages read)."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=allow_nan) + "\n")


def _existing_folder(path: Path) -> Path:
    """`path` or its nearest existing parent: the free space of a folder not created yet is its parent's."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def format_bytes(n: int) -> str:
    """1536 -> "1.5 KiB": sizes for messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def is_disk_full(error: BaseException, folder: str | Path) -> bool:
    """True when `error` (or an error it was raised from) says the disk holding `folder` ran out of space."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        message = str(error)
        if any(words in message for words in _DISK_FULL_WORDS):
            return True
        if any(words in message for words in _TORCH_SHORT_WRITE):
            return shutil.disk_usage(_existing_folder(Path(folder))).free < NEARLY_FULL_BYTES
        error = error.__cause__ or error.__context__
    return False


def disk_full_message(folder: str | Path, program: str, advice: str) -> str:
    """The one line a full disk gets: which folder, how much space is free there, and what to do."""
    usage = shutil.disk_usage(_existing_folder(Path(folder)))
    return (
        f"{program}: disk full: no space left to write in {folder} ({format_bytes(usage.free)} free of "
        f"{format_bytes(usage.total)}); {advice}"
    )


@contextlib.contextmanager
def exit_when_disk_full(folder: str | Path, program: str, advice: str):
    """Inside this block, an error caused by a full disk (see `is_disk_full`) ends the program with exit code 1 and
    the one line of `disk_full_message` instead of a traceback; every other error passes through."""
    try:
        yield
    except Exception as error:
        if is_disk_full(error, folder):
            raise SystemExit(disk_full_message(folder, program, advice)) from None
        raise


def read_json_or_none(path: str | Path):
    """The JSON document at `path`, or None when it is missing or unreadable (a status file another run may not
    have written yet, a cache entry cut short): for files whose absence the caller handles."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(paths) -> list[dict]:
    """Every complete row of the JSONL files `paths` (one path or several, in order; missing files are skipped).
    A torn line, which only a killed writer leaves (as the last line), is skipped: its row is asked again."""
    rows = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if not path.exists():
            continue
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def _drop_partial_last_line(path: Path, chunk_bytes: int = 1 << 16) -> None:
    """Cut a file back to its last newline, reading only its end (a long timeline is not read whole to check it)."""
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - chunk_bytes)
            f.seek(start)
            block = f.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            position = start
        else:
            cut = 0
        if cut != end:
            f.truncate(cut)


class JsonlAppender:
    """Appends rows to a JSONL file with one flush + fsync per batch, so a kill loses at most the batch in flight.

    A row cut short by a killed writer is removed when the file is opened (it would glue onto the next row).
    Values must be strict JSON: NaN is refused (write None for "no value"; see `ghostprobe.metrics.nan_to_none`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            _drop_partial_last_line(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self._file.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_files_signature(folder: str | Path) -> dict:
    """A model folder as a run's identity sees it: its absolute path and each weight file's name, size and
    modification time (not a hash: reading 14 GB per eval start would cost minutes)."""
    folder = Path(folder).resolve()
    files = sorted(f for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    return {"dir": str(folder), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
