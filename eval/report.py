"""`report.md` and a self-contained `report.html` for one eval output directory.

    python eval/report.py run_dir=DIR [gallery_size=N] [thumbnails=false]   (eval/run.py calls write_report at the end)

Every number is read from DIR/metrics.json, so the report and the metrics agree to the last digit; the curves, the
"no answer" counts and the gallery come from DIR/predictions.jsonl, and the gallery's frame strips from the dataset
named in metrics.json. A clip without a score is shown as "no answer", never as "no".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Run as `python eval/report.py`: put the repository root on the path so `eval.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from omegaconf import DictConfig, OmegaConf

from eval.gallery import gallery
from eval.summarize import effective_scores
from ghostprobe.cli import entry_point
from ghostprobe.files import write_text_atomic
from ghostprobe.reports import charts
from ghostprobe.reports.document import (
    Bullets,
    Estimate,
    Heading,
    Image,
    Para,
    Table,
    data_uri,
    interval,
    num,
    to_html,
    to_markdown,
)
from ghostprobe.runs import load_run

EVAL_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "eval.yaml"
METRIC_COLUMNS = (
    ("n", "n"),
    ("coverage", "answered"),
    ("accuracy", "accuracy"),
    ("accuracy_nan_as_wrong", "accuracy (no answer = wrong)"),
    ("fpr", "FPR"),
    ("recall", "recall"),
    ("precision", "precision"),
    ("f1", "F1"),
    ("balanced_accuracy", "balanced acc."),
    ("mcc", "MCC"),
    ("auroc", "AUROC"),
    ("auprc", "AUPRC"),
    ("ece", "ECE"),
)
GROUP_COLUMNS = (
    ("accuracy", "accuracy"),
    ("recall", "recall"),
    ("fpr", "FPR"),
    ("precision", "precision"),
    ("f1", "F1"),
    ("auroc", "AUROC"),
)


def labels_and_scores(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Bool labels and the scores the metrics used (probabilities, or parsed answers for models without them)."""
    return np.array([bool(r["is_ghost_probing"]) for r in rows], dtype=bool), effective_scores(rows)[0]


def report_settings(metrics: dict, gallery_size: int | None = None, thumbnails: bool | None = None) -> dict:
    """The run's `report` config (from metrics.json, else conf/eval.yaml), with command-line overrides."""
    settings = dict(OmegaConf.to_container(OmegaConf.load(EVAL_CONFIG).report))
    settings.update((metrics.get("config") or {}).get("report") or {})
    if gallery_size is not None:
        settings["gallery_size"] = gallery_size
    if thumbnails is not None:
        settings["thumbnails"] = thumbnails
    return settings


def headline(metrics: dict, rows: list[dict], y: np.ndarray, p: np.ndarray) -> list:
    """Who was evaluated on what, the decision banner (n, interval, target check), its reason, the threshold used,
    and the planning document's two targets."""
    data, decision, threshold = metrics["data"], metrics["decision"], metrics["threshold"]
    model = metrics["classification"]["model"]
    clips = len({r["clip_id"] for r in rows}) or data["num_samples"]
    samples = "" if clips == data["num_samples"] else f" ({data['num_samples']} samples)"
    no_answer = int(np.isnan(p).sum())
    blocks = []
    if metrics.get("model_random_init"):
        blocks.append(
            Para(
                f"{metrics['model']} is the random-init stand-in built by the project (random weights, "
                "never trained): these figures test the pipeline and say nothing about any detector.",
                css="warning",
            )
        )
    blocks += [
        Para(
            f"Model {metrics['model']} · prompt {metrics['prompt']}{_format_note(metrics)} · data {data['path']} "
            f"(split {data['split']}, fingerprint {data['fingerprint']})"
        ),
        Para(
            f"{clips} clips{samples}: {int(y.sum())} ghost probing, {int((~y).sum())} not; {no_answer} without an "
            f'answer (reported as "no answer", never as "no"). Every figure below is at the model\'s own answer '
            f"(threshold {threshold['value']:g}: yes when P(yes) >= P(no)"
            f"{'; scores: ' + threshold['scores'] if threshold.get('scores') else ''}) unless labelled otherwise."
        ),
        decision_banner(decision),
        Para(decision["reason"]),
        *[Para(f"Warning: {w}", css="warning") for w in decision.get("warnings") or []],
    ]
    for refused in (metrics.get("tuned_threshold") or {}).get("refused") or []:
        blocks.append(
            Para(
                f"Warning: no threshold was tuned on {refused}; the figures stay at the model's own answer.",
                css="warning",
            )
        )
    if len(rows) != data["num_samples"]:  # curves and gallery come from predictions.jsonl: say when it disagrees
        blocks.append(
            Para(
                f"Warning: predictions.jsonl holds {len(rows)} rows of this run for split {data['split']}, "
                f"metrics.json counted {data['num_samples']}; curves and gallery use the rows found.",
                css="warning",
            )
        )
    rule = decision.get("rule") or {}
    target = decision.get("accuracy_target") or {}
    accuracy_ci = decision.get("accuracy_interval") or {}
    accuracy_interval = interval([accuracy_ci.get("low"), accuracy_ci.get("high")])
    timing = metrics.get("timing") or {}
    met = {True: "met", False: "NOT met", None: "not measured"}
    blocks.append(
        Table(
            ["planning target", "required", "measured", ""],
            [
                [
                    "accuracy (no answer = wrong)",
                    f"> {rule.get('target_accuracy', 0.85):.0%}",
                    f"{num(model['accuracy_nan_as_wrong'])} {accuracy_interval}".strip(),
                    {"met": "met", "not met": "NOT met", "uncertain": "uncertain (the interval spans it)"}.get(
                        target.get("status"), "no decision"
                    ),
                ],
                [
                    "response time per video (p95)",
                    f"< {rule.get('target_seconds_per_video', 120):g} s",
                    f"{num(timing.get('latency_p95_s'), 2)} s (max {num(timing.get('latency_max_s'), 2)} s)",
                    met[decision.get("meets_time_target")],
                ],
            ],
        )
    )
    return blocks


def decision_banner(decision: dict) -> Para:
    """The decision in one coloured line that carries its own evidence: n, the interval and the target check.
    Colours: green deploy, red fine-tune, blue optimise, amber inconclusive, grey no decision."""
    if not decision["action"]:
        return Para(f"NO DECISION: {decision['next_steps']}", css="decision none")
    ci = decision["accuracy_interval"]
    target = decision.get("accuracy_target") or {}
    evidence = (
        f" (accuracy {decision['accuracy']:.3f} on {decision['n']} clips, {ci['confidence']:.0%} {ci['method']} "
        f"CI {ci['low']:.2f}-{ci['high']:.2f}; > {target.get('line', 0.85):.0%} target: "
        f"{target.get('status', 'n/a')})"
    )
    return Para(
        f"Decision: {decision['action'].upper()}: {decision['next_steps']}{evidence}",
        css=f"decision {decision['action']}",
    )


def _format_note(metrics: dict) -> str:
    """How the prompt was laid out: "original" is the original Video-LLaMA Chat path, token for token."""
    prompt_format = metrics.get("prompt_format")  # absent in runs made before it was recorded
    return f" (format {prompt_format})" if prompt_format else ""


def metrics_table(classification: dict, decision: dict) -> list:
    """The model, its 95% intervals and the trivial baselines in one table (a headline without baselines misleads).

    Accuracy, FPR and recall carry the decision's exact (or Wilson) interval for a proportion; the other metrics a
    percentile bootstrap over clips."""
    model, ci, baselines = classification["model"], classification.get("ci"), classification["baselines"]
    intervals = {k: [v["low"], v["high"]] for k, v in ((ci or {}).get("intervals") or {}).items()}
    for key, source in (("accuracy_nan_as_wrong", "accuracy_interval"), ("fpr", "fpr_check"), ("recall", "recall")):
        if decision.get(source):
            intervals[key] = [decision[source]["low"], decision[source]["high"]]
    rows = [["model"] + [Estimate(num(model.get(k)), interval(intervals.get(k))) for k, _ in METRIC_COLUMNS]]
    for key, name in (("always_yes", "always yes"), ("always_no", "always no"), ("prior", "class-prior random")):
        rows.append([name] + [num(baselines[key].get(k)) for k, _ in METRIC_COLUMNS])
    note = (
        'Baselines answer every clip; the model\'s metrics are on answered clips, except "answered" (coverage) '
        'and "accuracy (no answer = wrong)". "-": undefined on these clips.'
    )
    method = (decision.get("accuracy_interval") or {}).get("method")
    if method:
        note += f" Brackets: 95% intervals, {method} for accuracy (no answer = wrong), FPR and recall"
        note += f"; a percentile bootstrap over clips ({ci['n_resamples']} resamples) for the others." if ci else "."
    blocks = [
        Heading("Metrics and baselines"),
        Table(["", *(h for _, h in METRIC_COLUMNS)], rows, emphasise_first_row=True),
        Para(note, css="note"),
    ]
    return blocks + [Para(f"Note: {n}", css="note") for n in model.get("notes") or []]


def tuned_section(tuned: dict | None) -> list:
    """The second result: the same clips at a threshold tuned on other clips (val, or cross-fitted), labelled as
    such; or why there is none."""
    if not tuned:
        return []
    blocks = [Heading("At a tuned threshold (a second result, not the decision's)")]
    if not tuned["available"]:
        return blocks + [Para(f"None: {tuned['reason']}.", css="note")]
    m = tuned["metrics"]
    threshold = (
        f"{tuned['threshold']:.3g}"
        if tuned["source"] == "val"
        else ", ".join(f"fold {f['fold']}: {f['threshold']:.3g}" for f in tuned["folds"])
    )
    rows = [
        [
            name,
            Estimate(
                num(m[key]),
                interval([m["intervals"][key]["low"], m["intervals"][key]["high"]]) if key in m["intervals"] else "",
            ),
        ]
        for key, name in (
            ("accuracy_nan_as_wrong", "accuracy (no answer = wrong)"),
            ("fpr", "FPR"),
            ("recall", "recall"),
            ("precision", "precision"),
            ("f1", "F1"),
            ("balanced_accuracy", "balanced accuracy"),
        )
    ]
    return blocks + [
        Para(
            f"Threshold {threshold}: {tuned['note']}. These figures are for comparison only; the "
            "decision reads the model's own answer.",
            css="note",
        ),
        Table(["", "value"], rows, css="keyvalue"),
    ]


def figures(metrics: dict, y: np.ndarray, p: np.ndarray) -> list:
    """ROC/PR with baselines, calibration, and the confusion matrix with its "no answer" column."""
    model = metrics["classification"]["model"]
    threshold = metrics["threshold"]["value"]
    missing = np.isnan(p)
    scored = ~missing
    both_classes = bool(y[scored].any() and (~y[scored]).any())
    return [
        Heading("ROC and precision-recall"),
        Image(
            data_uri(charts.roc_pr_png(y, p, threshold, num(model["auroc"]), num(model["auprc"])), "image/png"),
            "ROC and precision-recall curves with the baselines",
        )
        if both_classes
        else Para(
            f"No curves: the answered clips hold {'no' if not scored.any() else 'one class only'} "
            f"({int((y & scored).sum())} ghost probing, {int((~y & scored).sum())} not).",
            css="note",
        ),
        Heading("Calibration"),
        Image(
            data_uri(charts.calibration_png(model.get("calibration_bins") or [], y, p, num(model["ece"])), "image/png"),
            f"reliability diagram, ECE {num(model['ece'])}",
        )
        if model.get("calibration_bins")
        else Para("No reliability diagram: no answered clip has a probability in [0, 1].", css="note"),
        Heading("Confusion matrix"),
        Table(
            ["true class", "predicted yes", "predicted no", "no answer"],
            [
                ["ghost probing", model["confusion"]["tp"], model["confusion"]["fn"], int((missing & y).sum())],
                ["not ghost probing", model["confusion"]["fp"], model["confusion"]["tn"], int((missing & ~y).sum())],
            ],
        ),
        Image(
            data_uri(
                charts.confusion_png(model["confusion"], int((missing & y).sum()), int((missing & ~y).sum())),
                "image/png",
            ),
            "confusion matrix",
        ),
    ]


def group_tables(by_group: dict) -> list:
    """One table per grouping column; negative-only groups (hard negatives such as cut_in) show FPR, not recall."""
    blocks = [
        Heading("By group"),
        Para(
            "Blank cells are not meaningful for the group: a negative-only group (e.g. "
            "label = cut_in, a hard negative) has no recall, FPR is what it measures; "
            "a positive-only group has no FPR. Brackets: 95% CI.",
            css="note",
        ),
    ]
    for column, groups in by_group.items():
        rows = []
        for value, g in groups.items():
            cells = [
                Estimate(num(g[k]), interval((g.get("ci") or {}).get(k))) if k in g else "" for k, _ in GROUP_COLUMNS
            ]
            rows.append([value, g["n"], g["n_positive"], g["n_negative"], num(g["coverage"]), *cells])
        blocks += [
            Heading(f"by {column}", 3),
            Table([column, "n", "ghost probing", "not", "answered", *(h for _, h in GROUP_COLUMNS)], rows),
        ]
    return blocks


def earliness_section(earliness: dict | None) -> list:
    """AP, mTTA and TTA at 80% recall from sliding windows, with the curve; a pointer when not measured."""
    if not earliness:
        return [
            Heading("Earliness"),
            Para(
                "Not measured: set data.earliness_path= to a dataset prepared with "
                "sampling=sliding to get AP, mTTA and TTA at 80% recall.",
                css="note",
            ),
        ]
    e, target = earliness, earliness["recall_target"]
    blocks = [
        Heading("Earliness"),
        Table(
            ["", "value"],
            [
                ["clips (ghost probing / not)", f"{e['n_clips']} ({e['n_positive']} / {e['n_negative']})"],
                ["AP (alert before the event)", num(e["ap"])],
                ["mTTA (s)", num(e["mtta_s"], 2)],
                ["mTTA, largest per recall level (s)", num(e.get("mtta_max_per_recall_s"), 2)],
                [f"TTA at {target:.0%} recall (s)", num(e["tta_at_recall_target_s"], 2)],
                [
                    f"threshold / precision at {target:.0%} recall",
                    f"{num(e['threshold_at_recall_target'])} / {num(e['precision_at_recall_target'])}",
                ],
                ["clips excluded", len(e.get("excluded") or {})],
            ],
            css="keyvalue",
        ),
    ]
    if e.get("curve"):
        blocks.append(
            Image(
                data_uri(charts.earliness_png(e["curve"], target, e["tta_at_recall_target_s"]), "image/png"),
                "earliness curves",
            )
        )
    return blocks + [Para(f"Note: {n}", css="note") for n in e.get("notes") or []]


def anticipation_section(out_dir: Path, metrics: dict) -> list:
    """The field's anticipation protocols beside published records, when eval/anticipation.py computed them for
    this run (an anticipation.json of another model, prompt or dataset in the same folder is not shown)."""
    path = out_dir / "anticipation.json"
    if not path.exists():
        return []
    from eval.anticipation import anticipation_blocks

    doc = json.loads(path.read_text(encoding="utf-8"))
    if [doc.get(k) for k in ("model", "prompt", "fingerprint")] != [
        metrics["model"],
        metrics["prompt"],
        metrics["data"]["fingerprint"],
    ]:
        return []
    return anticipation_blocks(doc)


def localisation_section(loc: dict | None) -> list:
    """Event-time hits within 1 s / 2 s and absolute errors, when the run asked "when"."""
    if not loc:
        return []
    rows = [
        ["positives with a labelled event time", loc["n_labelled"]],
        ["with a predicted time", loc["n_predicted"]],
        ["mean absolute error (s)", num(loc["mae_s"], 2)],
        ["median absolute error (s)", num(loc["median_abs_error_s"], 2)],
    ]
    rows += [
        [f"hit rate {key[9:].replace('_', ' ')}", num(value)]
        for key, value in loc.items()
        if key.startswith("hit_rate_")
    ]
    return [Heading("Event time"), Table(["", "value"], rows, css="keyvalue")]


def timing_section(timing: dict, rows: list[dict]) -> list:
    """Response time percentiles, throughput, tokens and cost, and the clips that failed."""
    t = timing
    tokens_in = sum(r.get("tokens_in") or 0 for r in rows)
    tokens_out = sum(r.get("tokens_out") or 0 for r in rows)
    table = [
        [
            "latency p50 / p95 / max (s)",
            " / ".join(num(t.get(k), 2) for k in ("latency_p50_s", "latency_p95_s", "latency_max_s")),
        ],
        ["latency mean (s)", num(t.get("latency_mean_s"), 2)],
        ["clips failed", t.get("n_failed", 0)],
        ["wall time (s)", f"{num(t.get('wall_s'), 1)} ({t.get('wall_source', '')})"],
        ["clips per second", num(t.get("clips_per_s"))],
        ["GPUs / GPU-seconds", f"{t.get('n_gpus')} / {num(t.get('gpu_seconds'), 1)}"],
        ["GPU cost (USD)", f"{num(t.get('gpu_cost_usd'), 4)} at {t.get('price_per_gpu_hour')} per GPU-hour"],
        ["API cost (USD)", num(t.get("api_cost_usd"), 4)],
        ["tokens in / out (total)", f"{tokens_in} / {tokens_out}"],
    ]
    errors = [f"{r['sample_id']}: {r['error']}" for r in rows if r.get("error")]
    blocks = [Heading("Response time and cost"), Table(["", "value"], table, css="keyvalue")]
    if errors:
        blocks += [Para(f"Failed samples: {len(errors)} (no score: counted as no answer)"), Bullets(errors[:20])]
    return blocks


def write_report(out_dir, gallery_size: int | None = None, thumbnails: bool | None = None) -> tuple[Path, Path]:
    """Write `report.md` and `report.html` into the eval output dir `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    metrics, rows = load_run(out_dir)
    settings = report_settings(metrics, gallery_size, thumbnails)
    y, p = labels_and_scores(rows)
    blocks = (
        headline(metrics, rows, y, p)
        + metrics_table(metrics["classification"], metrics["decision"])
        + tuned_section(metrics.get("tuned_threshold"))
        + figures(metrics, y, p)
        + group_tables(metrics["classification"].get("by_group") or {})
        + earliness_section(metrics.get("earliness"))
        + anticipation_section(out_dir, metrics)
        + localisation_section(metrics.get("localisation"))
        + timing_section(metrics.get("timing") or {}, rows)
        + gallery(metrics, rows, y, p, settings)
    )
    title = f"Ghost probing: {metrics['model']} ({metrics['prompt']} prompt)"
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, to_markdown(title, blocks) + "\n")
    write_text_atomic(html_path, to_html(title, blocks))
    return md_path, html_path


def report_command(run_dir: str | Path, gallery_size: int | None = None, thumbnails: bool | None = None) -> int:
    """Write the reports of `run_dir` and print their paths; exit code 1 with one line when it has no results."""
    try:
        md, html = write_report(run_dir, gallery_size, thumbnails)
    except (FileNotFoundError, ValueError) as err:  # no finished run there, or a damaged metrics.json
        print(f"report: {err}", file=sys.stderr)
        return 1
    print(f"report: {md}\nreport: {html}")
    return 0


@entry_point("report")
def main(cfg: DictConfig) -> None:
    sys.exit(report_command(cfg.run_dir, cfg.gallery_size, cfg.thumbnails))


if __name__ == "__main__":
    main()
