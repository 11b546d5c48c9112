"""Ranks of a `torchrun` launch for the stages that split work by files or clips and merge on rank 0 (eval, scan).

Such a stage needs no NCCL collectives: only who it is and a point where every rank has written its share. The
process group is CPU (gloo), started on first use, so a single-process run never imports torch.distributed.
"""

from __future__ import annotations

import os


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) when started as a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def barrier() -> None:
    """Wait until every rank gets here (a gloo process group, started on the first call)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
