"""What starting a training run takes around the recipe (train/run.py), in the order train/main.py does it:

- `drop_launcher_args`: the deepspeed launcher's `--local_rank` argument removed before Hydra reads the command line;
- `exit_when_launcher_dies`: ranks end when their launcher ends, so that killing `deepspeed` (even with kill -9)
  stops the training it began;
- `init_distributed`: the launcher's process group (gloo on CPU, nccl on GPU; a plain `python train/main.py` is a
  world of 1);
- `shared_run_dir`: one run directory for all ranks, which rank 0 locks for the run's life (`lock_run_dir`,
  ghostprobe/run_lock.py);
- `refuse`: every rank stops before training, and rank 0 says why in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import psutil
import torch
import torch.distributed as dist
from omegaconf import DictConfig

from ghostprobe.run_lock import RunDirBusy, RunLock

log = logging.getLogger(__name__)


def drop_launcher_args(argv: list[str]) -> list[str]:
    """Remove the `--local_rank=N` (or `--local_rank N`) the deepspeed launcher appends, which Hydra would reject
    (hydra#2038); the rank is read from the LOCAL_RANK environment variable instead. The launcher's own
    `--no_local_rank` would do the same, but only when every user remembers to type it: the documented command is
    `deepspeed train/main.py +exp=...`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("--local_rank=") or arg.startswith("--local-rank="):
            os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
        elif arg in ("--local_rank", "--local-rank"):
            skip = True
        else:
            out.append(arg)
    return out


# ---- the launcher watch ---------------------------------------------------------------------------------------
# On one node the `deepspeed` command starts `python -m deepspeed.launcher.launch`, which starts the ranks; killing
# the first forwards nothing (the other two go on), killing the second with kill -9 leaves the ranks training. A
# daemon thread in each rank therefore checks every `poll_s` that the chain of launcher processes above it is
# unchanged: its parent is still the process that started it, and each launcher above is still the parent of the
# one below (a process whose parent dies is handed to another parent at once, so this holds for any way of dying
# and is safe from pid reuse). The chain is the parent, plus every ancestor above it run as `deepspeed`; the user's
# shell is never watched, so `nohup deepspeed ... &` survives the terminal being closed.


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


# ---- the process group and the run directory ------------------------------------------------------------------
def init_distributed() -> None:
    """Join the launcher's process group (gloo on CPU, nccl on GPU); a plain `python train/main.py` is a world of 1.
    Rank 0 logs at INFO, the others only warnings (they would repeat rank 0's lines)."""
    if "RANK" not in os.environ:
        with socket.socket() as s:  # a free port for the one-process group
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(
            RANK="0",
            LOCAL_RANK="0",
            WORLD_SIZE="1",
            LOCAL_WORLD_SIZE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
    import deepspeed
    import deepspeed.ops

    if not torch.cuda.is_available():
        if "OMP_NUM_THREADS" not in os.environ:
            # CPU ranks share the cores; each taking all of them (torch's default) oversubscribes and slows all.
            # The variable too: accelerate (inside the Trainer) resets the thread count when it is unset, and it
            # reads LOCAL_WORLD_SIZE, which the deepspeed launcher does not set (it sets LOCAL_SIZE).
            ranks_here = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
            threads = max(1, (os.cpu_count() or 1) // ranks_here)
            os.environ["OMP_NUM_THREADS"] = str(threads)
            torch.set_num_threads(threads)
        # DeepSpeed compiles a shared-memory all-reduce kernel on first use on CPU (~2 min on 2 cores); it serves
        # only inference all-reduce, which training never calls.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    else:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    logging.getLogger().setLevel(logging.INFO if dist.get_rank() == 0 else logging.WARNING)


def refuse(message: str) -> NoReturn:
    """Stop every rank before training; rank 0 says why in one line (the others would only repeat it)."""
    raise SystemExit(message if dist.get_rank() == 0 else 1)


def shared_run_dir(cfg: DictConfig) -> Path:
    """One run directory for all ranks: `output_dir`, else decided by rank 0 and broadcast (a per-rank `${now:}`
    would give each rank its own). With resume=auto and no output_dir: the experiment's newest run."""
    if cfg.output_dir:
        run_dir = Path(cfg.output_dir)
    else:
        choice = [None]
        if dist.get_rank() == 0:
            root = Path(cfg.runs_root) / cfg.exp_name
            earlier = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
            if cfg.resume == "auto" and earlier:
                choice[0] = str(earlier[-1])
            else:
                choice[0] = str(root / time.strftime("%Y%m%d-%H%M%S"))
        dist.broadcast_object_list(choice, src=0)
        run_dir = Path(choice[0])
    if dist.get_rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        log.info("run directory %s (%d ranks)", run_dir, dist.get_world_size())
    dist.barrier()
    return run_dir


@contextlib.contextmanager
def lock_run_dir(run_dir: Path):
    """Rank 0 takes the run directory's lock (ghostprobe/run_lock.py) and holds it through the run; when another
    live run holds it, every rank stops here and rank 0 says which folder and which process."""
    lock, refusal = None, [None]
    if dist.get_rank() == 0:
        try:
            lock = RunLock(run_dir).acquire()
        except RunDirBusy as busy:
            refusal[0] = str(busy)
    dist.broadcast_object_list(refusal, src=0)
    if refusal[0] is not None:
        refuse(refusal[0])
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
