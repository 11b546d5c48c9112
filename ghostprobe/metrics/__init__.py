"""Metrics for the eval harness: pure functions on labels, scores and times, no model code.

- classification: clip-level metrics from P(ghost probing) with the NaN policy (scored clips only + coverage +
  accuracy_nan_as_wrong), bootstrap CIs, threshold choice on a val set;
- breakdown: trivial baselines (always yes / always no / class-prior random), per-group metrics, one report, a table;
- earliness: AP, mTTA and TTA at 80% recall from sliding-window scores (the project's own definition);
- anticipation: the field's protocols on per-frame scores (UString's evaluation reproduced, the corrected AP / mTTA,
  FAR-gated AUC / mTTA, Nexar's mAP), each saying where it comes from;
- localisation: event-time hit rates within 1 s / 2 s and absolute errors;
- timing: response-time percentiles, throughput, GPU-seconds and cost;
- decision: the planning document's deploy / optimise / fine-tune rule, gated by the accuracy's interval, a paired
  test against the best trivial baseline and the FPR ("inconclusive" otherwise), with a reason in numbers;
- intervals: exact / Wilson intervals of proportions, exact Poisson intervals of rates, clips needed to settle a line;
- thresholds: the model's own answer (0.5) and a tuned threshold from val or cross-fitting, as a second result;
- paired: McNemar and paired-bootstrap AUROC for two models on the same clips.
Results are plain dicts (or the `Decision` dataclass); `to_jsonable` makes them strict JSON for metrics.json.
"""

from ghostprobe.metrics.breakdown import (
    classification_report,
    format_table,
    group_metrics,
    prior_baseline,
    trivial_baselines,
)
from ghostprobe.metrics.classification import (
    SCALAR_METRICS,
    THRESHOLD_CRITERIA,
    answers_to_scores,
    bootstrap_ci,
    calibration_bins,
    choose_threshold,
    classification_metrics,
)
from ghostprobe.metrics.common import to_jsonable
from ghostprobe.metrics.decision import ACTIONS, Decision, DecisionRule, baseline_test, decide, rule_action
from ghostprobe.metrics.earliness import clip_scores_from_windows, counted_windows, earliness_metrics
from ghostprobe.metrics.intervals import clips_needed, poisson_rate_interval, proportion_interval
from ghostprobe.metrics.localisation import localisation_metrics
from ghostprobe.metrics.paired import align, compare_decisions, mcnemar_test, paired_bootstrap_auroc
from ghostprobe.metrics.thresholds import OWN_ANSWER_THRESHOLD, tuned_threshold
from ghostprobe.metrics.timing import timing_stats

__all__ = [
    "ACTIONS",
    "OWN_ANSWER_THRESHOLD",
    "SCALAR_METRICS",
    "THRESHOLD_CRITERIA",
    "Decision",
    "DecisionRule",
    "align",
    "answers_to_scores",
    "baseline_test",
    "bootstrap_ci",
    "calibration_bins",
    "choose_threshold",
    "classification_metrics",
    "classification_report",
    "clip_scores_from_windows",
    "clips_needed",
    "compare_decisions",
    "counted_windows",
    "decide",
    "earliness_metrics",
    "format_table",
    "group_metrics",
    "localisation_metrics",
    "mcnemar_test",
    "paired_bootstrap_auroc",
    "poisson_rate_interval",
    "prior_baseline",
    "proportion_interval",
    "rule_action",
    "timing_stats",
    "to_jsonable",
    "trivial_baselines",
    "tuned_threshold",
]
