"""Write a synthetic labelled clip set: `python data_prep/synth.py out_dir=DIR num_clips=N seed=S`.

Every setting (resolution, fps, duration, x264 quality, scenario weights) is in conf/synth.yaml and can be
overridden as key=value. Prints one line: clips per label and the seconds it took.
"""

import sys
import time
from collections import Counter
from pathlib import Path

# A stage script runs as `python data_prep/synth.py`: put the repository root on the path for `ghostprobe`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from ghostprobe.cli import entry_point
from ghostprobe.files import write_json_atomic
from ghostprobe.labels import LABEL_NAMES
from ghostprobe.synth import generate


@entry_point("synth")
def main(cfg: DictConfig) -> None:
    started = time.perf_counter()
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    # What made these clips, beside them (Hydra itself writes nothing: ghostprobe/cli.py).
    write_json_atomic(Path(cfg.out_dir) / "synth_config.json", OmegaConf.to_container(cfg, resolve=True))
    if cfg.mode == "drive":
        _drives(cfg, started)
        return
    labels = generate(
        out_dir=cfg.out_dir,
        num_clips=cfg.num_clips,
        seed=cfg.seed,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        duration_s=cfg.duration_s,
        scenario_weights=OmegaConf.to_container(cfg.scenario_weights, resolve=True),
        crf=cfg.crf,
        preset=cfg.preset,
        workers=cfg.workers,
        light_weights=OmegaConf.to_container(cfg.light_weights, resolve=True),
        weather_weights=OmegaConf.to_container(cfg.weather_weights, resolve=True),
    )
    counts = Counter(clip.label for clip in labels)
    per_label = ", ".join(f"{name} {counts[name]}" for name in LABEL_NAMES)
    print(
        f"synth: wrote {len(labels)} clips ({per_label}) to {Path(cfg.out_dir) / 'labels.json'} in "
        f"{time.perf_counter() - started:.1f} s"
    )


def _drives(cfg: DictConfig, started: float) -> None:
    from ghostprobe.synth.drive import generate_drives

    drive = cfg.drive
    labels = generate_drives(
        cfg.out_dir,
        drive.num_drives,
        cfg.seed,
        list(drive.lights),
        num_segments=drive.num_segments,
        segment_s=drive.segment_s,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        crf=cfg.crf,
        preset=cfg.preset,
        scenario_weights=OmegaConf.to_container(drive.scenario_weights, resolve=True),
        weather_weights=OmegaConf.to_container(cfg.weather_weights, resolve=True),
    )
    events = sum(len(label.events) for label in labels)
    positives = sum(e.label == "ghost_probing" for label in labels for e in label.events)
    print(
        f"synth: wrote {len(labels)} drives of {drive.num_segments * drive.segment_s / 60:.1f} min ({events} "
        f"events, {positives} ghost probing) to {Path(cfg.out_dir) / 'labels.json'} in "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
