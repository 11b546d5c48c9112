"""One run per output folder: a training run's rank 0, or an evaluation, holds an OS lock on DIR/run.lock for as long
as it lives (two evals into one folder would both pay for every API call; two trainings would interleave checkpoints).

The lock is `flock` on an open file, so the kernel drops it when the holding process ends, however it ends
(kill -9 included); the file records who holds it (pid, host, start time) for the message a second run prints. A
clean exit deletes the file, so a file found unlocked was left by a process that died: it is taken over with a
warning. On a shared filesystem (multi-node runs) flock works over NFS; where the filesystem has no locks (some
Lustre mounts) the run goes on unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_FILE = "run.lock"


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory's lock."""


def _holder(f) -> str:
    """The lock file's record as words: 'pid 123 on host node1 since 2026-12-02T10:00:00'."""
    f.seek(0)
    text = f.read().strip()
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on host {record['host']} since {record['started']}"
    except (ValueError, KeyError, TypeError):
        return f"unreadable record {text[:80]!r}" if text else "no record written yet"


class RunLock:
    """`with RunLock(run_dir, "eval"):` holds DIR/run.lock, or raises RunDirBusy naming the folder and the holder.
    `kind` names the run in that message ("training", "eval")."""

    def __init__(self, run_dir: Path, kind: str = "training"):
        self.path = Path(run_dir) / LOCK_FILE
        self.kind = kind
        self._file = None

    def acquire(self) -> RunLock:
        """Take the lock (without waiting): RunDirBusy if a live process holds it; a dead holder's file is taken
        over with a warning."""
        while True:
            f = open(self.path, "a+")  # a+: creates the file, never truncates the record of a live holder
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(f)
                f.close()
                raise RunDirBusy(
                    f"{self.path.parent} is in use by another {self.kind} run ({holder}; lock file "
                    f"{self.path}): wait for it to end or stop it, or choose another output_dir"
                ) from None  # the failed flock is how a busy lock shows, not an error of its own
            except OSError as err:
                f.close()
                if err.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                log.warning(
                    "%s: the filesystem does not support file locks (%s); nothing stops a second run "
                    "from writing this run directory",
                    self.path,
                    err.strerror,
                )
                return self
            try:
                same_file = os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            f.close()  # the holder ended and deleted the file between our open and our lock: lock the new file
        f.seek(0)
        if f.read().strip():
            log.warning("%s: taking over the lock left by %s, which is no longer running", self.path, _holder(f))
        f.truncate(0)
        f.write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            )
            + "\n"
        )
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Delete the lock file, then let go of the lock (deleting first: a run that opened the old file and
        locks it after us sees that it is gone, and opens the new one)."""
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)
        self._file.close()
        self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
