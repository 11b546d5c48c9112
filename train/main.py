"""Stage 2 entry: fine-tune Video-LLaMA-2 on prepared clips with DeepSpeed (ZeRO-2/3) and LoRA or full weights.

    deepspeed train/main.py +exp=lora_fewshot data.path=DS                    # 1 node, every GPU
    deepspeed --num_gpus 2 train/main.py +exp=tiny_smoke data.path=DS output_dir=RUN   # CPU ranks, gloo
    deepspeed --hostfile hosts train/main.py +exp=full_ft data.path=DS         # multi-node: DeepSpeed's own
    deepspeed train/main.py +exp=lora_fewshot output_dir=RUN resume=auto      # continue a stopped run

The run directory (output_dir, or runs/<exp_name>/<time> chosen by rank 0) holds config.yaml, metrics.jsonl,
val_scores/, checkpoint-<step>/ folders, summary.json and, while the run lives, run.lock; docs/training.md describes
them. Ranks started by a launcher exit when it dies (train/launcher_watch.py).
"""

import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A stage script runs as `python train/main.py`: put the repository root on the path for `train.*` imports.
sys.path.insert(0, str(REPO_ROOT))


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


sys.argv = drop_launcher_args(sys.argv)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ghostprobe.cli import entry_point  # noqa: E402

log = logging.getLogger("train")


def init_distributed() -> None:
    """Join the launcher's process group (gloo on CPU, nccl on GPU); a plain `python train/main.py` is a world of 1."""
    if "RANK" not in os.environ:
        with socket.socket() as s:  # a free port for the one-process group
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
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
    dist.barrier()
    return run_dir


@contextlib.contextmanager
def lock_run_dir(run_dir: Path):
    """Rank 0 takes the run directory's lock (ghostprobe/run_lock.py) and holds it through the run; when another live
    run holds it, every rank stops here and rank 0 says which folder and which process."""
    from ghostprobe.run_lock import RunDirBusy, RunLock

    lock, refusal = None, [None]
    if dist.get_rank() == 0:
        try:
            lock = RunLock(run_dir).acquire()
        except RunDirBusy as busy:
            refusal[0] = str(busy)
    dist.broadcast_object_list(refusal, src=0)
    if refusal[0] is not None:
        raise SystemExit(refusal[0] if dist.get_rank() == 0 else 1)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


@entry_point("train")
def main(cfg: DictConfig) -> None:
    if "RANK" in os.environ:  # started by a launcher (deepspeed, torchrun): end with it
        from train.launcher_watch import exit_when_launcher_dies
        exit_when_launcher_dies()
    init_distributed()
    from ghostprobe.files import exit_when_disk_full
    from train.run import run

    rank = dist.get_rank()
    logging.getLogger().setLevel(logging.INFO if rank == 0 else logging.WARNING)
    run_dir = shared_run_dir(cfg)
    if rank == 0:
        log.info("run directory %s (%d ranks)", run_dir, dist.get_world_size())
    # A full disk shows up as torch's "inline_container.cc: unexpected pos" among others: say it in one line.
    with lock_run_dir(run_dir), exit_when_disk_full(
            run_dir, "train", "free space there (or move output_dir), then continue with resume=auto"):
        run(cfg, run_dir)


if __name__ == "__main__":
    main()
