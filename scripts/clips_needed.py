"""How many labelled clips a decision needs: prints the Markdown table of docs/decision.md.

    python scripts/clips_needed.py [--method exact|wilson] [--confidence 0.95]

For each observed accuracy: the 95% interval on the plan's 50 and 100 clips, and the smallest number of clips at
which the interval around that accuracy settles the action it points to (clears 80% for deploy, 60% for fine-tune,
both for optimise) and the 85% target.
"""

from __future__ import annotations

import argparse

from ghostprobe.metrics import DecisionRule, clips_needed, proportion_interval, rule_action
from ghostprobe.metrics.decision import _clips_to_settle

ACCURACIES = (0.50, 0.55, 0.65, 0.70, 0.75, 0.78, 0.82, 0.85, 0.88, 0.90, 0.92, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="exact", choices=("exact", "wilson"))
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    rule = DecisionRule(interval=args.method, confidence=args.confidence)
    print(
        f"| observed accuracy | {args.confidence:.0%} interval on 50 clips | on 100 clips | clips for a decision | "
        f"clips to settle the {rule.target_accuracy:.0%} target |"
    )
    print("|---|---|---|---|---|")
    for accuracy in ACCURACIES:
        cells = []
        for n in (50, 100):
            ci = proportion_interval(round(accuracy * n), n, args.confidence, args.method)
            cells.append(f"{ci['low']:.2f}-{ci['high']:.2f}")
        action = rule_action(accuracy, rule.deploy_above, rule.fine_tune_below)
        settle = _clips_to_settle(accuracy, rule)
        target = clips_needed(accuracy, rule.target_accuracy, args.confidence, args.method)
        target_cell = "never (on the target)" if target is None else f"{target:,}"
        print(
            f"| {accuracy:.0%} | {cells[0]} | {cells[1]} | {settle['n']:,} ({action}: interval clear of "
            f"{settle['line']:.0%}) | {target_cell} |"
        )


if __name__ == "__main__":
    main()
