"""Side by side on the same clips: `python eval/compare.py runs=[DIR_A,DIR_B,...] output_dir=OUT`.

Each run is an eval output dir (metrics.json + predictions.jsonl). Runs are compared on the clips of the reported
split that every run scored, matched by clip_id; clips missing from some runs are listed, never silently dropped.
Each run's own headline comes from its metrics.json; the common-clip metrics and the paired tests are computed here:
McNemar on the yes/no decisions (each run at the threshold in its metrics.json) and a paired bootstrap on AUROC.
With 50-100 clips, separate confidence intervals overlap even for models several points apart; pairing on the same
clips removes the clip-difficulty variance they share. Writes comparison.md, comparison.html and comparison.json.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as `python eval/compare.py`: put the repository root on the path so `eval.*` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from omegaconf import DictConfig

from eval.report import labels_and_scores
from ghostprobe.cli import entry_point
from ghostprobe.files import write_json_atomic, write_text_atomic
from ghostprobe.metrics import (
    classification_metrics,
    compare_decisions,
    paired_bootstrap_auroc,
    to_jsonable,
    trivial_baselines,
)
from ghostprobe.metrics.common import format_ids
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


@dataclass
class Run:
    name: str
    run_dir: Path
    metrics: dict
    labels: dict  # clip_id -> is ghost probing
    scores: dict  # clip_id -> P(ghost probing); NaN = no answer

    @property
    def threshold(self) -> float:
        return self.metrics["threshold"]["value"]


def load_runs(run_dirs) -> list[Run]:
    """Every run's metrics and per-clip scores; FileNotFoundError naming a directory that is not a finished run."""
    if len(run_dirs) < 2:
        raise ValueError(f"compare needs at least two runs, got {len(run_dirs)}: runs=[DIR_A,DIR_B,...]")
    runs = []
    for run_dir in map(Path, run_dirs):
        metrics, rows = load_run(run_dir)
        labels, scores = {}, {}
        for row, label, score in zip(rows, *labels_and_scores(rows), strict=True):
            clip_id = str(row["clip_id"])
            labels[clip_id] = bool(label)
            # Several windows of one clip: the clip is flagged when any window is (NaN only if no window answered).
            scores[clip_id] = float(np.fmax(scores.get(clip_id, math.nan), score))
        runs.append(Run(metrics["model"], run_dir, metrics, labels, scores))
    # Names in the tables: the model, then the prompt, then the directory, as far as needed to tell runs apart.
    for make in (
        lambda r: r.metrics["model"],
        lambda r: f"{r.metrics['model']} / {r.metrics['prompt']}",
        lambda r: f"{r.metrics['model']} / {r.metrics['prompt']} ({r.run_dir.name})",
        lambda r: f"{r.metrics['model']} / {r.metrics['prompt']} ({r.run_dir})",
    ):
        names = [make(r) for r in runs]
        if len(set(names)) == len(names):
            break
    for run, name in zip(runs, names, strict=True):
        run.name = name
    return runs


def verdict(p_value: float | None, n_pairs: int, alpha: float, better: str, worse: str, n: int) -> dict:
    """ "A better than B" only when the paired test says so after Bonferroni over the pairs; otherwise inconclusive.

    Returns {"reading", "p_adjusted", "significant"}: the reading names the winner, or says that these clips cannot
    tell the runs apart (never "no difference": the absence of evidence is not evidence of equality).
    """
    if p_value is None or math.isnan(p_value):
        return {"reading": "not testable", "p_adjusted": None, "significant": False}
    adjusted = min(1.0, p_value * n_pairs)
    if adjusted < alpha:
        return {
            "reading": f"{better} is better than {worse} (p = {adjusted:.3g} < {alpha:g})",
            "p_adjusted": adjusted,
            "significant": True,
        }
    return {
        "reading": f"inconclusive: {n} clips do not tell them apart (p = {adjusted:.3g})",
        "p_adjusted": adjusted,
        "significant": False,
    }


def compare_runs(
    run_dirs, out_dir, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95, alpha: float = 0.05
) -> dict:
    """Compare the runs in `run_dirs` on their common clips; write comparison.{md,html,json} into `out_dir`.

    Returns the JSON-ready result: runs, common clips and those missing per run, per-run metrics on the common clips,
    and for every pair of runs `decisions` (compare_decisions: McNemar) and `auroc` (paired_bootstrap_auroc).
    """
    runs = load_runs(list(run_dirs))
    every = sorted(set().union(*(r.labels for r in runs)))
    common = sorted(set.intersection(*(set(r.labels) for r in runs)))
    missing = {r.name: sorted(set(every) - set(r.labels)) for r in runs if set(every) - set(r.labels)}
    if not common:
        raise ValueError(
            "no clip was scored by every run: "
            + ", ".join(f"{r.run_dir} ({len(r.labels)} clips)" for r in runs)
            + "; compare runs on one dataset"
        )
    conflicts = [c for c in common if len({r.labels[c] for r in runs}) > 1]
    if conflicts:
        raise ValueError(
            f"the runs disagree on the label of clips {format_ids(conflicts)}: they were scored against "
            "different label files; compare runs prepared from the same labels"
        )
    labels = {c: runs[0].labels[c] for c in common}
    y = np.array([labels[c] for c in common])
    result = {
        "split": runs[0].metrics["data"]["split"],
        "n_common": len(common),
        "common_clip_ids": common,
        "missing_clip_ids": missing,
        "runs": [],
        "pairs": [],
    }
    for r in runs:
        p = np.array([r.scores[c] for c in common])
        result["runs"].append(
            {
                "name": r.name,
                "dir": str(r.run_dir),
                "model": r.metrics["model"],
                "prompt": r.metrics["prompt"],
                "data_fingerprint": r.metrics["data"]["fingerprint"],
                "threshold": r.threshold,
                "n_own": len(r.labels),
                "on_common": classification_metrics(y, p, r.threshold),
            }
        )
    n_pairs = len(runs) * (len(runs) - 1) // 2
    for a, b in itertools.combinations(runs, 2):
        decide = {
            r.name: {c: None if math.isnan(r.scores[c]) else r.scores[c] >= r.threshold for c in common} for r in (a, b)
        }
        decisions = compare_decisions(labels, decide[a.name], decide[b.name])
        auroc = paired_bootstrap_auroc(
            labels, {c: a.scores[c] for c in common}, {c: b.scores[c] for c in common}, n_resamples, seed, confidence
        )
        first = decisions["only_a_right"] >= decisions["only_b_right"]
        higher = (auroc["difference"] or 0) >= 0
        decisions["verdict"] = verdict(
            decisions["mcnemar"]["p_value"],
            n_pairs,
            alpha,
            *((a.name, b.name) if first else (b.name, a.name)),
            decisions["n"],
        )
        auroc["verdict"] = verdict(
            auroc["p_value"], n_pairs, alpha, *((a.name, b.name) if higher else (b.name, a.name)), auroc["n"]
        )
        result["pairs"].append({"a": a.name, "b": b.name, "decisions": decisions, "auroc": auroc})
    result["settings"] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence, "alpha": alpha}
    result = to_jsonable(result)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = _blocks(runs, result, y, alpha)
    title = f"Ghost probing: {len(runs)} runs compared on {len(common)} common clips"
    write_json_atomic(out_dir / "comparison.json", result, allow_nan=False)
    write_text_atomic(out_dir / "comparison.md", to_markdown(title, blocks) + "\n")
    write_text_atomic(out_dir / "comparison.html", to_html(title, blocks))
    return result


def _blocks(runs: list[Run], result: dict, y: np.ndarray, alpha: float) -> list:
    n = result["n_common"]
    blocks = [
        Para(
            f"{len(runs)} runs on the {n} clips of split {result['split']} that every run scored "
            f"({int(y.sum())} ghost probing, {int((~y).sum())} not)."
        )
    ]
    if result["missing_clip_ids"]:
        blocks += [
            Para("Clips missing from some runs, left out of every comparison below:", css="warning"),
            Bullets(
                [f"{name} lacks {len(ids)}: {format_ids(ids)}" for name, ids in result["missing_clip_ids"].items()]
            ),
        ]
    if len({r["data_fingerprint"] for r in result["runs"]}) > 1:
        blocks.append(
            Para(
                "The runs were scored on different prepared data (fingerprints differ): the clips are "
                "matched by clip_id, their frames may differ (frame rate, resolution).",
                css="note",
            )
        )

    blocks.append(Heading("Each run on its own clips (from its metrics.json)"))
    rows = []
    for run in runs:
        m = run.metrics
        model, ci = m["classification"]["model"], (m["classification"].get("ci") or {}).get("intervals", {})
        acc_ci = ci.get("accuracy_nan_as_wrong", {})
        rows.append(
            [
                run.name,
                m["prompt"],
                m["data"]["num_samples"],
                num(run.threshold),
                Estimate(num(model["accuracy_nan_as_wrong"]), interval([acc_ci.get("low"), acc_ci.get("high")])),
                num(model["fpr"]),
                num(model["f1"]),
                num(model["auroc"]),
                num((m.get("timing") or {}).get("latency_p95_s"), 2),
                m["decision"]["action"] or "no decision",
            ]
        )
    blocks.append(
        Table(
            [
                "run",
                "prompt",
                "samples",
                "threshold",
                "accuracy (no answer = wrong)",
                "FPR",
                "F1",
                "AUROC",
                "p95 latency (s)",
                "decision",
            ],
            rows,
        )
    )

    blocks.append(Heading(f"On the {n} common clips"))
    keys = ("coverage", "accuracy_nan_as_wrong", "accuracy", "fpr", "recall", "precision", "f1", "auroc", "ece")
    rows = [[r["name"], *(num(r["on_common"][k]) for k in keys)] for r in result["runs"]]
    baselines = trivial_baselines(y)
    rows += [
        [name, *(num(baselines[key][k]) for k in keys)]
        for key, name in (("always_yes", "always yes"), ("always_no", "always no"), ("prior", "class-prior random"))
    ]
    blocks.append(
        Table(
            [
                "",
                "answered",
                "accuracy (no answer = wrong)",
                "accuracy",
                "FPR",
                "recall",
                "precision",
                "F1",
                "AUROC",
                "ECE",
            ],
            rows,
        )
    )
    scores = {r.name: np.array([r.scores[c] for c in result["common_clip_ids"]]) for r in runs}
    blocks.append(Image(data_uri(charts.roc_overlay_png(y, scores), "image/png"), "ROC curves of every run"))

    blocks.append(Heading("Paired tests"))
    mcnemar, auroc, verdicts = [], [], []
    for pair in result["pairs"]:
        a, b, d, u = pair["a"], pair["b"], pair["decisions"], pair["auroc"]
        test = d["mcnemar"]
        mcnemar.append(
            [
                f"{a} vs {b}",
                d["n"],
                d["both_right"],
                d["only_a_right"],
                d["only_b_right"],
                d["both_wrong"],
                test["recommended"],
                num(test["p_value"], 4),
                d["verdict"]["reading"],
            ]
        )
        auroc.append(
            [
                f"{a} vs {b}",
                u["n"],
                num(u["auroc_a"]),
                num(u["auroc_b"]),
                Estimate(num(u["difference"]), interval([u["ci_low"], u["ci_high"]], 3)),
                num(u["p_value"], 4),
                u["verdict"]["reading"],
            ]
        )
        verdicts.append(
            f"{a} vs {b}: on the yes/no answers, {d['verdict']['reading']}; on AUROC, {u['verdict']['reading']}."
        )
    blocks += [
        Para(
            "Verdict (a run is called better only when the paired test says so):",
            css="decision "
            + (
                "optimise" if any(p["decisions"]["verdict"]["significant"] for p in result["pairs"]) else "inconclusive"
            ),
        ),
        Bullets(verdicts),
        Heading("McNemar on the yes/no decisions (A vs B)", 3),
        Table(
            ["pair", "clips", "both right", "only A right", "only B right", "both wrong", "test", "p-value", "reading"],
            mcnemar,
        ),
        Heading("Paired bootstrap on AUROC (A - B)", 3),
        Table(["pair", "clips", "AUROC A", "AUROC B", "difference [CI]", "p-value", "reading"], auroc),
        Para(
            "A clip that either run of a pair did not answer is left out of that pair's tests (their ids are in "
            "comparison.json). Exact binomial McNemar below 25 discordant clips, chi-square with continuity "
            f"correction above. The p-value columns are per pair; the readings use them multiplied by the "
            f"{len(result['pairs'])} pairs (Bonferroni).",
            css="note",
        ),
    ]
    return blocks


@entry_point("compare")
def main(cfg: DictConfig) -> None:
    if isinstance(cfg.runs, str):  # runs=DIR would otherwise be read as a list of characters
        sys.exit(f"compare: runs must be a list of eval output dirs: runs=[DIR_A,DIR_B], got runs={cfg.runs}")
    try:
        result = compare_runs(
            list(cfg.runs), cfg.output_dir, cfg.bootstrap_resamples, cfg.seed, cfg.confidence, cfg.alpha
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"compare: {err}", file=sys.stderr)
        sys.exit(1)
    print(
        f"compared {len(result['runs'])} runs on {result['n_common']} common clips -> "
        f"{Path(cfg.output_dir) / 'comparison.html'}"
    )


if __name__ == "__main__":
    main()
