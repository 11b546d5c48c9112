"""Stage 1 entry: `python data_prep/main.py labels=FILE out_dir=DIR` or `python data_prep/main.py source=synthetic`.

Exit code 0 when the dataset was written and the rejected share is within `max_rejected_fraction`; 1 otherwise
(the dataset and `prep_report.json` are still written whenever at least one clip survived).
"""

import json
import sys
from pathlib import Path

# A stage script runs as `python data_prep/main.py`: put the repository root on the path so `data_prep.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig, OmegaConf

from data_prep.prepare import prepare_dataset
from ghostprobe.cli import entry_point
from ghostprobe.links import missing_roots


def resolve_labels(cfg: DictConfig) -> Path:
    """The label file to prepare: the user's, or (source=synthetic) one generated now into `synthetic.out_dir`."""
    if cfg.source.name == "synthetic":
        from ghostprobe.synth import generate

        params = OmegaConf.to_container(cfg.source.generator, resolve=True)
        clips_dir = Path(cfg.source.clips_dir)
        stamp = clips_dir / "generator_params.json"
        labels = clips_dir / "labels.json"
        # Re-use clips generated with the same parameters: the generator is deterministic.
        if not (labels.exists() and stamp.exists() and json.loads(stamp.read_text()) == params):
            generate(out_dir=clips_dir, **params)
            stamp.write_text(json.dumps(params, indent=2) + "\n")
        return labels
    if cfg.labels is None:
        raise SystemExit("data_prep: set labels=PATH/TO/labels.json (or source=synthetic for the built-in demo)")
    return Path(cfg.labels)


@entry_point("data_prep")
def main(cfg: DictConfig) -> int:
    labels = resolve_labels(cfg)
    if cfg.videos_dir is not None and not Path(cfg.videos_dir).is_dir():
        print(
            f"data_prep: videos_dir {cfg.videos_dir} does not exist (video paths in {labels} are relative to it); "
            "set videos_dir= to the folder that holds the videos, or leave it out to use the label file's folder",
            file=sys.stderr,
        )
        sys.exit(1)
    allowed_roots = tuple(str(p) for p in cfg.allowed_roots or ())
    missing = missing_roots(allowed_roots)
    if missing:
        print(
            f"data_prep: allowed_roots: {', '.join(missing)} is not a folder; list existing folders that links in "
            "the videos folder may point into",
            file=sys.stderr,
        )
        sys.exit(1)
    settings = OmegaConf.to_container(cfg.prep, resolve=True)
    report = prepare_dataset(
        labels,
        cfg.out_dir,
        settings,
        videos_dir=cfg.videos_dir,
        allowed_roots=allowed_roots,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    print(summary(report))
    too_many = report["rejected_fraction"] > cfg.max_rejected_fraction
    if report["num_prepared"] == 0 or too_many:
        reason = (
            "no clip survived"
            if report["num_prepared"] == 0
            else (
                f"rejected share {report['rejected_fraction']:.1%} exceeds max_rejected_fraction "
                f"{cfg.max_rejected_fraction:.1%}"
            )
        )
        print(f"data_prep: FAILED: {reason} (see {Path(cfg.out_dir) / 'prep_report.json'})", file=sys.stderr)
        sys.exit(1)
    return 0


def summary(report: dict) -> str:
    lines = [
        f"prepared {report['num_prepared']} of {report['num_label_entries']} clips in {report['seconds']} s "
        f"({report.get('reused_from_cache', 0)} reused from cache) -> {report['out_dir']}"
    ]
    for split, info in report["splits"].items():
        labels = ", ".join(f"{k} {v}" for k, v in sorted(info["labels"].items()))
        lines.append(f"  {split:5s} {info['clips']:5d} clips {info['samples']:6d} samples  [{labels}]")
    if report["rejected"]:
        lines.append(f"  rejected {len(report['rejected'])}:")
        lines += [f"    {r['clip_id'] or '-'}: {r['reason']}" for r in report["rejected"][:10]]
        if len(report["rejected"]) > 10:
            lines.append(f"    ... {len(report['rejected']) - 10} more in prep_report.json")
    if report.get("test_split_warning"):
        lines.append(f"  WARNING: {report['test_split_warning']}")
    for warning in report["warnings"][:5]:
        lines.append(f"  warning: {warning}")
    if report["dataset_fingerprint"]:
        lines.append(f"  dataset fingerprint {report['dataset_fingerprint']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
