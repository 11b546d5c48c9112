"""Stage 2 entry: fine-tune Video-LLaMA-2 on prepared clips with DeepSpeed (ZeRO-2/3) and LoRA or full weights.

    deepspeed train/main.py +exp=lora_fewshot data.path=DS                    # 1 node, every GPU
    deepspeed --num_gpus 2 train/main.py +exp=tiny_smoke data.path=DS output_dir=RUN   # CPU ranks, gloo
    deepspeed --hostfile hosts train/main.py +exp=full_ft data.path=DS         # multi-node: DeepSpeed's own
    deepspeed train/main.py +exp=lora_fewshot output_dir=RUN resume=auto      # continue a stopped run

The run directory (output_dir, or runs/<exp_name>/<time> chosen by rank 0) holds config.yaml, metrics.jsonl,
val_scores/, checkpoint-<step>/ folders, summary.json and, while the run lives, run.lock; docs/training.md describes
them. What happens around the recipe (launcher watch, process group, shared and locked run directory) is
train/launch.py; the recipe itself is train/run.py.
"""

import os
import sys
from pathlib import Path

# A stage script runs as `python train/main.py`: put the repository root on the path for `train.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig

from ghostprobe.cli import entry_point
from ghostprobe.files import exit_when_disk_full
from train.launch import drop_launcher_args, exit_when_launcher_dies, init_distributed, lock_run_dir, shared_run_dir


@entry_point("train")
def main(cfg: DictConfig) -> None:
    """Train per `cfg`: every rank of the launch runs this."""
    if "RANK" in os.environ:  # started by a launcher (deepspeed, torchrun): end with it
        exit_when_launcher_dies()
    init_distributed()
    from train.run import run

    run_dir = shared_run_dir(cfg)
    # A full disk shows up as torch's "inline_container.cc: unexpected pos" among others: say it in one line.
    with (
        lock_run_dir(run_dir),
        exit_when_disk_full(run_dir, "train", "free space there (or move output_dir), then continue with resume=auto"),
    ):
        run(cfg, run_dir)


if __name__ == "__main__":
    sys.argv = drop_launcher_args(sys.argv)
    main()
