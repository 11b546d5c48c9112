"""The planning document's decision rule, applied only as far as the clips can carry it.

The plan's rule: accuracy > 80% -> "deploy"; 60% to 80% -> "optimise" (13B, prompts, few-shot fine-tuning);
< 60% -> "fine-tune" (task-specific, from 7B-Pretrained on 8xA100). On 6 clips an observed 5/6 says little: its 95%
interval runs from 36% to 99.6%. So every branch is gated by the interval of the accuracy (exact Clopper-Pearson by
default, `DecisionRule.interval`):
- "deploy" only when the interval's lower bound is above `deploy_above`, the model beats the best trivial baseline
  (always yes or always no, whichever is right more often on these clips) by an exact McNemar test at `alpha`, and the
  false positive rate is at most `max_fpr` (the project's addition to the plan: an alert that fires on half the
  normal clips is not deployable; `max_fpr=None` restores the plan's rule);
- "fine-tune" only when the upper bound is below `fine_tune_below`;
- "optimise" only when the interval lies within [fine_tune_below, deploy_above];
- otherwise "inconclusive": the reason names the actions the interval spans (or the check that failed) and
  `clips_needed`, the number of clips at which an interval around the observed accuracy would clear the nearest line.
The 85% target is "met" or "not met" only when the interval is wholly on one side of it; else "uncertain".
The accuracy counts every clip without an answer as wrong (`accuracy_nan_as_wrong`): a silent detector fails in
deployment. Below `min_answered_fraction` answered clips there is no decision at all (action None).
A checkpoint fine-tuned here (`model_stage="fine-tuned"`) is held to the same gates with next steps of its own.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ghostprobe.metrics.breakdown import trivial_baselines
from ghostprobe.metrics.classification import classification_metrics
from ghostprobe.metrics.common import as_labels, as_scores, to_jsonable
from ghostprobe.metrics.intervals import clips_needed, proportion_interval
from ghostprobe.metrics.paired import mcnemar_test

ACTIONS = ("deploy", "optimise", "fine-tune", "inconclusive")
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
NO_DECISION_NEXT_STEPS = (
    "find out why the clips failed (metrics.json `errors`), fix it and run the same command "
    "again: failed clips are asked again, answered ones are kept"
)
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class DecisionRule:
    """The lines, targets and gates of the decision (conf/eval.yaml `decision:`)."""

    deploy_above: float = 0.80
    fine_tune_below: float = 0.60
    target_accuracy: float = 0.85
    target_seconds_per_video: float = 120.0
    time_statistic: str = "latency_p95_s"  # p95: one cold-start clip should not decide; the max is quoted beside it
    max_fpr: float | None = 0.2
    interval: str = "exact"  # exact (Clopper-Pearson) | wilson
    confidence: float = 0.95
    alpha: float = 0.05  # the paired test against the best trivial baseline
    min_answered_fraction: float = 0.0

    @classmethod
    def from_config(cls, cfg: dict) -> DecisionRule:
        """From the `decision:` section of the eval config; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"unknown decision settings {unknown}; known: {sorted(names)}")
        return cls(**cfg)


@dataclasses.dataclass
class Decision:
    """The gated action, why, and every check behind it. `to_dict()` is JSON-ready (metrics.json `decision`)."""

    action: str | None  # one of ACTIONS; None: too few clips answered to apply the rule
    reason: str
    next_steps: str
    accuracy: float
    n: int
    n_correct: int
    accuracy_interval: dict  # proportion_interval of the accuracy (no answer = wrong)
    spans: list[str]  # the actions the accuracy interval covers
    baseline_test: dict | None  # exact McNemar against the best trivial baseline
    fpr_check: dict | None
    recall: dict | None
    clips_needed: dict | None  # {"line", "n"}: clips at this accuracy that would clear the nearest line inside
    accuracy_target: dict | None  # {"line", "status": met | not met | uncertain, "clips_needed"}
    meets_time_target: bool | None  # None: response time not measured, or no decision
    warnings: list[str]
    rule: dict
    model_stage: str = "zero-shot"

    @property
    def beats_baselines(self) -> bool | None:
        return None if self.baseline_test is None else self.baseline_test["beats"]

    def to_dict(self) -> dict:
        return to_jsonable(self)


def rule_action(accuracy: float, deploy_above: float = 0.80, fine_tune_below: float = 0.60) -> str:
    """The plan's bare rule on a point estimate: "deploy" above `deploy_above`, "fine-tune" below
    `fine_tune_below`, else "optimise" (both ends included). `decide` gates it by the interval."""
    if math.isnan(accuracy):
        raise ValueError("accuracy is NaN (no labelled clips?): the decision rule needs a measured accuracy")
    if accuracy > deploy_above + _EPS:
        return "deploy"
    if accuracy < fine_tune_below - _EPS:
        return "fine-tune"
    return "optimise"


def spanned_actions(low: float, high: float, rule: DecisionRule) -> list[str]:
    """The plan's actions whose accuracy range the interval [low, high] overlaps, from worst to best."""
    spans = []
    if low < rule.fine_tune_below - _EPS:
        spans.append("fine-tune")
    if low <= rule.deploy_above + _EPS and high >= rule.fine_tune_below - _EPS:
        spans.append("optimise")
    if high > rule.deploy_above + _EPS:
        spans.append("deploy")
    return spans


def baseline_test(y_true, predicted, alpha: float = 0.05) -> dict:
    """Exact McNemar of the model's yes/no answers against the best trivial baseline on the same clips.

    `predicted` holds 1.0 (yes), 0.0 (no) or NaN (no answer: wrong, as in the accuracy). The baseline is "always
    yes" or "always no", whichever is right on more clips; on a tie both are tested and the harder one is reported.
    `beats` is True when the model is right on more of the discordant clips and the exact p-value is below `alpha`.
    """
    y = as_labels(y_true)
    answered = as_scores(predicted, len(y), "predicted")
    model_right = ~np.isnan(answered) & ((answered > 0.5) == y)
    results = []
    for name, baseline_right in (("always_yes", y), ("always_no", ~y)):
        only_model, only_baseline = (
            int((model_right & ~baseline_right).sum()),
            int((~model_right & baseline_right).sum()),
        )
        test = mcnemar_test(only_model, only_baseline)
        results.append(
            {
                "baseline": name,
                "baseline_accuracy": float(baseline_right.mean()) if len(y) else math.nan,
                "only_model_right": only_model,
                "only_baseline_right": only_baseline,
                "p_value": test["p_exact"],
                "method": "exact McNemar (two-sided)",
                "alpha": alpha,
                "beats": only_model > only_baseline and test["p_exact"] < alpha,
            }
        )
    yes, no = results
    if yes["baseline_accuracy"] != no["baseline_accuracy"]:
        return yes if yes["baseline_accuracy"] > no["baseline_accuracy"] else no
    return max(results, key=lambda r: (not r["beats"], r["p_value"]))


def decide(
    y_true,
    p,
    threshold: float = 0.5,
    timing: dict | None = None,
    *,
    rule: DecisionRule = DecisionRule(),
    model_stage: str = "zero-shot",
    failure_causes: dict[str, int] | None = None,
) -> Decision:
    """Apply the gated rule to one evaluation: labels `y_true`, scores `p` (NaN = no answer) read as yes when
    `p >= threshold` (0.5: the model's own answer), `timing` from `timing_stats` (optional).

    `failure_causes` (cause -> clips) explains a missing decision when too few clips were answered.
    """
    if model_stage not in NEXT_STEPS:
        raise ValueError(f"model_stage must be one of {sorted(NEXT_STEPS)}, got {model_stage!r}")
    y = as_labels(y_true)
    scores = as_scores(p, len(y))
    metrics = classification_metrics(y, scores, threshold)
    rule_dict = dataclasses.asdict(rule)
    if not metrics["n"] or metrics["coverage"] < rule.min_answered_fraction - _EPS:
        return _no_decision(metrics, model_stage, rule, failure_causes or {})

    confusion = metrics["confusion"]
    n, n_correct = metrics["n"], confusion["tp"] + confusion["tn"]
    accuracy = proportion_interval(n_correct, n, rule.confidence, rule.interval)
    low, high = accuracy["low"], accuracy["high"]
    spans = spanned_actions(low, high, rule)
    predicted = np.where(np.isnan(scores), np.nan, (scores >= threshold).astype(np.float64))
    versus = baseline_test(y, predicted, rule.alpha)
    negatives, positives = confusion["fp"] + confusion["tn"], confusion["tp"] + confusion["fn"]
    fpr = proportion_interval(confusion["fp"], negatives, rule.confidence, rule.interval)
    fpr_passed = None if rule.max_fpr is None or not negatives else fpr["estimate"] <= rule.max_fpr + _EPS
    fpr_check = {**fpr, "max_fpr": rule.max_fpr, "passed": fpr_passed}
    recall = proportion_interval(confusion["tp"], positives, rule.confidence, rule.interval)

    failed_gates = []
    if spans == ["deploy"]:
        if not versus["beats"]:
            failed_gates.append(_baseline_sentence(versus))
        if rule.max_fpr is not None and fpr_passed is not True:
            failed_gates.append(_fpr_sentence(fpr_check))
    action = spans[0] if len(spans) == 1 and not failed_gates else "inconclusive"

    needed = _clips_to_settle(accuracy["estimate"], rule) if action == "inconclusive" and not failed_gates else None
    target = _target_check(accuracy, rule)
    steps = _next_steps(action, model_stage, spans, needed, failed_gates)
    ci_text = f"{rule.confidence:.0%} {rule.interval} CI {low:.3f}-{high:.3f}"
    parts = [f"accuracy {accuracy['estimate']:.3f} ({n_correct}/{n} clips right, {ci_text})"]
    if action == "inconclusive" and failed_gates:
        parts[0] += f" lies above {rule.deploy_above:.0%}, but " + " and ".join(failed_gates) + " -> inconclusive."
    elif action == "inconclusive":
        parts[0] += f" spans {_join(spans)} -> inconclusive."
        if needed and needed["n"]:
            parts.append(
                f"About {needed['n']} clips at this accuracy would settle it (the interval clearing the "
                f"{needed['line']:.0%} line)."
            )
    else:
        parts[0] += f" is {_where(action, rule)} -> {action}: {steps}."
    if metrics["n_missing"]:
        parts.append(
            f"{metrics['n_missing']} clips had no usable answer and count as wrong (coverage "
            f"{metrics['coverage']:.3f}; accuracy on answered clips {metrics['accuracy']:.3f})."
        )
    parts.append(
        f"Against {versus['baseline'].replace('_', ' ')} ({versus['baseline_accuracy']:.3f} on the same "
        f"clips): {versus['only_model_right']} clips only the model gets right, "
        f"{versus['only_baseline_right']} only the baseline; exact McNemar p = {versus['p_value']:.3g}."
    )
    parts.append(
        f"FPR {_fmt(fpr['estimate'])} ({fpr['successes']}/{fpr['n']} negatives, CI {_fmt(fpr['low'])}-"
        f"{_fmt(fpr['high'])})" + (f", max {rule.max_fpr:g}." if rule.max_fpr is not None else ".")
    )
    parts.append(_target_sentence(target))
    meets_time = None
    value = math.nan if timing is None else timing.get(rule.time_statistic, math.nan)
    if value is None or math.isnan(value):
        parts.append(f"Target < {rule.target_seconds_per_video:g} s per video: response time not measured.")
    else:
        meets_time = value < rule.target_seconds_per_video
        parts.append(
            f"Target < {rule.target_seconds_per_video:g} s per video: {'met' if meets_time else 'not met'} "
            f"({rule.time_statistic} {value:.1f} s, max {timing.get('latency_max_s', math.nan):.1f} s)."
        )
    return Decision(
        action=action,
        reason=" ".join(parts),
        next_steps=steps,
        accuracy=accuracy["estimate"],
        n=n,
        n_correct=n_correct,
        accuracy_interval=accuracy,
        spans=spans,
        baseline_test=versus,
        fpr_check=fpr_check,
        recall=recall,
        clips_needed=needed,
        accuracy_target=target,
        meets_time_target=meets_time,
        warnings=_baseline_warnings(metrics, trivial_baselines(y)),
        rule=rule_dict,
        model_stage=model_stage,
    )


def _clips_to_settle(observed: float, rule: DecisionRule) -> dict:
    """How many clips at the observed accuracy would give an interval on one side of every line that the action it
    points to needs (the 80% line for deploy, the 60% line for fine-tune, both for optimise): {"line" (the one that
    needs the most clips), "n" (None: the accuracy sits on a line, or beyond MAX_CLIPS_NEEDED)}."""
    if observed > rule.deploy_above + _EPS:
        lines = [rule.deploy_above]
    elif observed < rule.fine_tune_below - _EPS:
        lines = [rule.fine_tune_below]
    else:
        lines = [rule.fine_tune_below, rule.deploy_above]
    needed = {line: clips_needed(observed, line, rule.confidence, rule.interval) for line in lines}
    if any(n is None for n in needed.values()):
        line = next(line for line, n in needed.items() if n is None)
        return {"line": line, "n": None}
    line = max(needed, key=needed.get)
    return {"line": line, "n": needed[line]}


def _target_check(accuracy: dict, rule: DecisionRule) -> dict:
    target = rule.target_accuracy
    if accuracy["low"] > target + _EPS:
        status = "met"
    elif accuracy["high"] < target - _EPS:
        status = "not met"
    else:
        status = "uncertain"
    needed = (
        None if status != "uncertain" else clips_needed(accuracy["estimate"], target, rule.confidence, rule.interval)
    )
    return {"line": target, "status": status, "clips_needed": needed, "observed": accuracy["estimate"]}


def _target_sentence(target: dict) -> str:
    text = f"Target accuracy > {target['line']:.0%}: {target['status']}"
    if target["status"] == "uncertain":
        side = "met" if target["observed"] > target["line"] else "not met"
        text += (
            f" (the interval spans {target['line']:.0%}; about {target['clips_needed']} clips at this accuracy "
            f"would show it {side})"
            if target["clips_needed"]
            else " (the observed accuracy sits on the target: no number of clips separates them)"
        )
    return text + "."


def _baseline_sentence(versus: dict) -> str:
    name = versus["baseline"].replace("_", " ")
    if versus["only_model_right"] <= versus["only_baseline_right"]:
        return f"the model is no better than {name} on these clips"
    return (
        f"the model is not shown better than {name} (exact McNemar p = {versus['p_value']:.3g} >= {versus['alpha']:g})"
    )


def _fpr_sentence(fpr: dict) -> str:
    if fpr["passed"] is None:
        return "the false positive rate cannot be checked (no negative clips)"
    return f"its false positive rate {fpr['estimate']:.3f} is above decision.max_fpr={fpr['max_fpr']:g}"


def _next_steps(action: str, model_stage: str, spans: list[str], needed: dict | None, failed: list[str]) -> str:
    if action != "inconclusive":
        return NEXT_STEPS[model_stage][action]
    if failed:
        return (
            "do not deploy yet: " + "; ".join(failed) + ". Work on false positives and the hard negatives "
            "(prompt, threshold, few-shot fine-tuning), or label more clips if the test was close, then evaluate "
            "again"
        )
    how_many = f" (about {needed['n']} clips at this accuracy would settle it)" if needed and needed["n"] else ""
    return (
        f"label more clips and evaluate again{how_many}; the result lies between {_join(spans)}, so do not act "
        "on it yet"
    )


def _where(action: str, rule: DecisionRule) -> str:
    return {
        "deploy": f"wholly above {rule.deploy_above:.0%}",
        "fine-tune": f"wholly below {rule.fine_tune_below:.0%}",
        "optimise": f"within {rule.fine_tune_below:.0%}-{rule.deploy_above:.0%}",
    }[action]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _baseline_warnings(metrics: dict, baselines: dict) -> list[str]:
    """Point-estimate comparisons with the trivial baselines (the gate itself is the paired test)."""
    warnings = []
    accuracy = metrics["accuracy_nan_as_wrong"]
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


def _no_decision(metrics: dict, model_stage: str, rule: DecisionRule, failure_causes: dict[str, int]) -> Decision:
    """Too few clips answered: a rule applied to failures would decide on the outage, not on the model."""
    n, n_failed = metrics["n"], metrics["n_missing"]
    causes = sorted(failure_causes.items(), key=lambda item: -item[1])
    why = "; ".join(f"{count} x {cause}" if len(causes) > 1 else cause for cause, count in causes[:3])
    if len(causes) > 3:
        why += f"; {len(causes) - 3} other causes"
    reason = (
        f"no decision: {n_failed} of {n} clips failed"
        + (f" ({why})" if why else "")
        + f"; the rule needs at least {rule.min_answered_fraction:.0%} of the clips answered "
        f"(decision.min_answered_fraction={rule.min_answered_fraction:g})."
    )
    if not n:
        reason = "no decision: no labelled clips to evaluate."
    correct = metrics["confusion"]["tp"] + metrics["confusion"]["tn"]
    return Decision(
        action=None,
        reason=reason,
        next_steps=NO_DECISION_NEXT_STEPS,
        accuracy=float(metrics["accuracy_nan_as_wrong"]),
        n=n,
        n_correct=correct,
        accuracy_interval=proportion_interval(correct, n, rule.confidence, rule.interval),
        spans=[],
        baseline_test=None,
        fpr_check=None,
        recall=None,
        clips_needed=None,
        accuracy_target=None,
        meets_time_target=None,
        warnings=[],
        rule=dataclasses.asdict(rule),
        model_stage=model_stage,
    )
