"""How far eval runs of one checkpoint are from a reference run of it, clip by clip (another device or dtype).

    python scripts/compare_scores.py --reference RUN_CPU RUN_BF16 RUN_FP16

Per run: the hardware profile it ran under, the clips both runs scored, the largest and median |P(yes) - reference|,
the clips whose answer (P(yes) >= 0.5) differs, clips without a score, accuracy, and clips/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ghostprobe.runs import load_run


def scores(run_dir: Path) -> tuple[dict, dict[str, float]]:
    metrics, rows = load_run(run_dir)
    return metrics, {row["sample_id"]: row["p_ghost_probing"] for row in rows}


def profile(metrics: dict) -> str:
    hardware = metrics["config"].get("hardware") or {}
    return f"{hardware.get('device')} {hardware.get('dtype')} (vision {hardware.get('vision_dtype')})"


def compare(reference: dict[str, float], other: dict[str, float]) -> dict:
    both = sorted(k for k in reference if k in other and reference[k] is not None and other[k] is not None)
    gaps = np.array([abs(other[k] - reference[k]) for k in both])
    flipped = [k for k in both if (other[k] >= 0.5) != (reference[k] >= 0.5)]
    return {
        "n": len(both),
        "max_abs": float(gaps.max()) if len(both) else float("nan"),
        "median_abs": float(np.median(gaps)) if len(both) else float("nan"),
        "answers_differ": flipped,
        "unscored": sum(1 for v in other.values() if v is None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="the eval output_dir compared against")
    parser.add_argument("runs", type=Path, nargs="+", help="eval output_dirs of the same checkpoint and clips")
    args = parser.parse_args(argv)
    ref_metrics, reference = scores(args.reference)
    print(
        f"reference {args.reference}: {profile(ref_metrics)}, accuracy "
        f"{ref_metrics['classification']['model']['accuracy']:.3f}, {ref_metrics['timing']['clips_per_s']:.1f} clips/s"
    )
    for run in args.runs:
        metrics, other = scores(run)
        c = compare(reference, other)
        print(
            f"{run}: {profile(metrics)}: {c['n']} clips, |P(yes) - reference| max {c['max_abs']:.2e} median "
            f"{c['median_abs']:.2e}; answers differ on {len(c['answers_differ'])} {c['answers_differ'][:5]}; "
            f"unscored {c['unscored']}; accuracy {metrics['classification']['model']['accuracy']:.3f}; "
            f"{metrics['timing']['clips_per_s']:.1f} clips/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
