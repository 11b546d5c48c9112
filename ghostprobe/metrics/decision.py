"""The planning document's decision rule after an evaluation, with the reason spelled out in numbers.

Rule: accuracy > 80% -> "deploy" (no training); 60% to 80% -> "optimise" (13B-Finetuned if A100s are available,
prompt work, few-shot fine-tuning); < 60% -> "fine-tune" (task-specific, from 7B-Pretrained on 8xA100).
The planning document writes the rule for the zero-shot run; a checkpoint we fine-tuned is held to the same lines,
but its next steps are about that fine-tune (`model_stage="fine-tuned"`): "deploy zero-shot" would be wrong there.
No rule is applied when fewer than `min_answered_fraction` of the clips were answered (an API outage, unreadable
frames, NaN scores): the action is then None and the reason says how many clips failed and why.
Boundaries: the rule says *above* 80% and *below* 60%, so exactly 80% and exactly 60% both give "optimise".
"Exactly" allows 1e-9 of float noise (8/10 and 0.1 * 8 both count as 80%). Targets: accuracy > 85% and response
time < 120 s per video, both strict.

The accuracy used is `accuracy_nan_as_wrong` over all labelled clips: a clip the model did not answer is a failure
in deployment. With full coverage it equals plain accuracy. The action always follows the rule; whether the model
beats the trivial baselines is reported next to it, and a model no better than "always yes" is flagged in the reason
whatever its accuracy (on a set with 85% positives "always yes" is at 85% too).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ghostprobe.metrics.common import to_jsonable

NEXT_STEPS = {
    "zero-shot": {
        "deploy": "deploy zero-shot; no training needed",
        "optimise": "try 13B-Finetuned (if A100s are available), prompt work (Chinese ghost-probing prompt, frame "
                    "rate, resolution, a clear event definition), few-shot fine-tuning",
        "fine-tune": "task-specific fine-tuning from 7B-Pretrained on 8xA100 (2-3 days, full)",
    },
    "fine-tuned": {
        "deploy": "deploy this fine-tuned checkpoint; no further training needed",
        "optimise": "improve this fine-tune: more labelled clips (hard negatives above all), prompt and frame-rate "
                    "work, LoRA on 13B (+exp=lora_13b) or full fine-tuning (+exp=full_ft)",
        "fine-tune": "this fine-tune did not learn the task: check its training clips, labels and validation curve "
                     "(RUN/metrics.jsonl), then full task-specific fine-tuning from 7B-Pretrained on 8xA100 "
                     "(+exp=full_ft, 2-3 days)",
    },
}
NO_DECISION_NEXT_STEPS = ("find out why the clips failed (metrics.json `errors`), fix it and run the same command "
                          "again: failed clips are asked again, answered ones are kept")
_EPS = 1e-9


@dataclasses.dataclass
class Decision:
    """The rule's action, why, and the checks behind it. `to_dict()` is JSON-ready."""

    action: str | None  # "deploy" | "optimise" | "fine-tune"; None: too few clips answered to apply the rule
    reason: str
    accuracy: float
    next_steps: str
    meets_accuracy_target: bool | None  # None: no decision
    meets_time_target: bool | None  # None: response time not measured, or no decision
    beats_baselines: bool | None  # None: no decision
    warnings: list[str]
    model_stage: str = "zero-shot"  # or "fine-tuned": which next steps apply

    def to_dict(self) -> dict:
        return to_jsonable(self)


def rule_action(accuracy: float, deploy_above: float = 0.80, fine_tune_below: float = 0.60) -> str:
    """The bare rule: "deploy" above `deploy_above`, "fine-tune" below `fine_tune_below`, else "optimise"."""
    if math.isnan(accuracy):
        raise ValueError("accuracy is NaN (no labelled clips?): the decision rule needs a measured accuracy")
    if accuracy > deploy_above + _EPS:
        return "deploy"
    if accuracy < fine_tune_below - _EPS:
        return "fine-tune"
    return "optimise"


def _baseline_warnings(metrics: Mapping, baselines: Mapping, accuracy: float) -> list[str]:
    warnings = []
    yes, no, prior = baselines["always_yes"], baselines["always_no"], baselines["prior"]
    if accuracy <= yes["accuracy"] + _EPS:
        warnings.append(f"NO BETTER THAN ALWAYS YES: accuracy {accuracy:.3f} <= always-yes {yes['accuracy']:.3f}")
    f1, yes_f1 = metrics.get("f1", math.nan), yes.get("f1", math.nan)
    if not (math.isnan(f1) or math.isnan(yes_f1)) and f1 <= yes_f1 + _EPS:
        warnings.append(f"NO BETTER THAN ALWAYS YES on F1: F1 {f1:.3f} <= always-yes F1 {yes_f1:.3f}")
    if accuracy <= no["accuracy"] + _EPS:
        warnings.append(f"no better than always no: accuracy {accuracy:.3f} <= always-no {no['accuracy']:.3f}")
    if accuracy <= prior["accuracy"] + _EPS:
        warnings.append(f"no better than class-prior random: accuracy {accuracy:.3f} <= {prior['accuracy']:.3f}")
    ba = metrics.get("balanced_accuracy", math.nan)
    if not math.isnan(ba) and ba <= 0.5 + _EPS:
        warnings.append(f"balanced accuracy {ba:.3f} is at chance (0.5)")
    return warnings


def decide(metrics: Mapping, baselines: Mapping, timing: Mapping | None = None, ci: Mapping | None = None, *,
           deploy_above: float = 0.80, fine_tune_below: float = 0.60, target_accuracy: float = 0.85,
           target_time_s: float = 120.0, time_statistic: str = "latency_p95_s", model_stage: str = "zero-shot",
           min_answered_fraction: float = 0.0, failure_causes: Mapping[str, int] | None = None) -> Decision:
    """Apply the planning document's rule to one evaluation.

    `metrics`: `classification_metrics(...)` of the model; `baselines`: `trivial_baselines(...)` on the same clips;
    `timing`: `timing_stats(...)` (optional); `ci`: `bootstrap_ci(...)` (optional: adds the accuracy interval and
    says when it straddles a rule boundary). `time_statistic` picks which latency must stay under `target_time_s`
    (p95 by default: one cold-start clip should not decide, and the max is quoted next to it). `model_stage`:
    "zero-shot" or "fine-tuned" (a checkpoint we trained), for the next steps. Below `min_answered_fraction`
    answered clips there is no decision (action None); `failure_causes` (cause -> clips) says why in the reason.
    """
    if model_stage not in NEXT_STEPS:
        raise ValueError(f"model_stage must be one of {sorted(NEXT_STEPS)}, got {model_stage!r}")
    if not metrics["n"] or metrics["coverage"] < min_answered_fraction - _EPS:
        return _no_decision(metrics, model_stage, min_answered_fraction, failure_causes or {})
    next_steps = NEXT_STEPS[model_stage]
    accuracy = float(metrics["accuracy_nan_as_wrong"])
    action = rule_action(accuracy, deploy_above, fine_tune_below)
    confusion = metrics["confusion"]
    correct, n = confusion["tp"] + confusion["tn"], metrics["n"]
    where = {"deploy": f"above {deploy_above:.0%}", "fine-tune": f"below {fine_tune_below:.0%}",
             "optimise": f"within {fine_tune_below:.0%}-{deploy_above:.0%} (both ends included)"}[action]
    parts = [f"accuracy {accuracy:.3f} ({correct}/{n} clips correct) is {where} -> {action}: {next_steps[action]}."]
    if metrics["n_missing"]:
        parts.append(f"{metrics['n_missing']} clips had no usable answer and count as wrong (coverage "
                     f"{metrics['coverage']:.3f}; accuracy on answered clips {metrics['accuracy']:.3f}).")
    if ci is not None:
        low, high = ci["intervals"]["accuracy_nan_as_wrong"]["low"], ci["intervals"]["accuracy_nan_as_wrong"]["high"]
        parts.append(f"{ci['confidence']:.0%} CI {low:.3f}-{high:.3f}.")
        straddled = [b for b in (fine_tune_below, deploy_above) if low <= b <= high]
        if straddled:
            parts.append(f"The interval straddles the {', '.join(f'{b:.0%}' for b in straddled)} line: with {n} "
                         "clips the decision is uncertain; more clips or a paired comparison would settle it.")

    warnings = _baseline_warnings(metrics, baselines, accuracy)
    yes, no, prior = (baselines[k]["accuracy"] for k in ("always_yes", "always_no", "prior"))
    verdict = "beats all three" if not warnings else "WARNING: " + "; ".join(warnings)
    parts.append(f"Baselines on the same clips: always yes {yes:.3f}, always no {no:.3f}, class-prior random "
                 f"{prior:.3f}; model FPR {metrics['fpr']:.3f}, F1 {metrics['f1']:.3f}: {verdict}.")

    meets_accuracy = accuracy > target_accuracy + _EPS
    parts.append(f"Target accuracy > {target_accuracy:.0%}: {'met' if meets_accuracy else 'not met'}.")
    meets_time = None
    if timing is None or math.isnan(timing.get(time_statistic, math.nan)):
        parts.append(f"Target < {target_time_s:g} s per video: response time not measured.")
    else:
        value = timing[time_statistic]
        meets_time = value < target_time_s
        parts.append(f"Target < {target_time_s:g} s per video: {'met' if meets_time else 'not met'} "
                     f"({time_statistic} {value:.1f} s, max {timing.get('latency_max_s', math.nan):.1f} s).")
    return Decision(action=action, reason=" ".join(parts), accuracy=accuracy, next_steps=next_steps[action],
                    meets_accuracy_target=meets_accuracy, meets_time_target=meets_time,
                    beats_baselines=not warnings, warnings=warnings, model_stage=model_stage)


def _no_decision(metrics: Mapping, model_stage: str, min_answered_fraction: float,
                 failure_causes: Mapping[str, int]) -> Decision:
    """Too few clips answered: a rule applied to failures would decide on the outage, not on the model."""
    n, n_failed = metrics["n"], metrics["n_missing"]
    causes = sorted(failure_causes.items(), key=lambda item: -item[1])
    why = "; ".join(f"{count} x {cause}" if len(causes) > 1 else cause for cause, count in causes[:3])
    if len(causes) > 3:
        why += f"; {len(causes) - 3} other causes"
    reason = (f"no decision: {n_failed} of {n} clips failed" + (f" ({why})" if why else "")
              + f"; the rule needs at least {min_answered_fraction:.0%} of the clips answered "
              f"(metrics.min_answered_fraction={min_answered_fraction:g}).")
    if not n:
        reason = "no decision: no labelled clips to evaluate."
    return Decision(action=None, reason=reason, accuracy=float(metrics["accuracy_nan_as_wrong"]),
                    next_steps=NO_DECISION_NEXT_STEPS, meets_accuracy_target=None, meets_time_target=None,
                    beats_baselines=None, warnings=[], model_stage=model_stage)
