"""Ranks end when their launcher ends, so that killing `deepspeed` (even with kill -9) stops the training it began.

On one node the `deepspeed` command starts `python -m deepspeed.launcher.launch`, which starts the ranks; killing
the first forwards nothing (the other two go on), killing the second with kill -9 leaves the ranks training. A
daemon thread in each rank therefore checks every `poll_s` that the chain of launcher processes above it is
unchanged: its parent is still the process that started it, and each launcher above is still the parent of the one
below (a process whose parent dies is handed to another parent at once, so this holds for any way of dying and is
safe from pid reuse). The chain is the parent, plus every ancestor above it run as `deepspeed`; the user's shell
is never watched, so `nohup deepspeed ... &` survives the terminal being closed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def _is_deepspeed_command(process: psutil.Process) -> bool:
    try:
        return any(Path(arg).name == "deepspeed" for arg in process.cmdline()[:2])
    except psutil.Error:
        return False


def launcher_chain() -> list[tuple[int, int]]:
    """(pid, its parent's pid) from this process up through its launchers: the parent, then each ancestor run as
    the `deepspeed` command."""
    chain = [(os.getpid(), os.getppid())]
    process = psutil.Process(os.getppid())
    while (parent := process.parent()) is not None and _is_deepspeed_command(parent):
        chain.append((process.pid, parent.pid))
        process = parent
    return chain


def _broken_link(chain: list[tuple[int, int]]) -> int | None:
    """The pid of the first launcher in `chain` that is gone (its child now has another parent), or None."""
    for pid, parent in chain:
        try:
            if psutil.Process(pid).ppid() != parent:
                return parent
        except psutil.NoSuchProcess:
            return pid
    return None


def exit_when_launcher_dies(poll_s: float = 1.0) -> threading.Thread:
    """Start the watch (a daemon thread): when a launcher in `launcher_chain()` is gone, log it and end this
    process at once with exit code 1 (os._exit: the main thread may be blocked in a collective that never ends)."""
    chain = launcher_chain()

    def watch():
        while (gone := _broken_link(chain)) is None:
            time.sleep(poll_s)
        log.error("the launcher (pid %d) is gone: rank pid %d exits", gone, os.getpid())
        sys.stderr.flush()
        os._exit(1)

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    return thread
