"""The report's figures as PNG bytes and frame strips as JPEG bytes.

matplotlib runs on the Agg backend: reports are written on headless GPU nodes and in CI, where no display exists.
Every chart puts the trivial baselines on the same axes as the model, so a curve is never read without them.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on eval nodes

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.metrics import precision_recall_curve, roc_curve

DPI = 100
MODEL_COLOUR, BASELINE_COLOUR = "#2b6cb0", "#718096"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)  # a long eval writes many reports in one process: do not keep figures alive
    return buffer.getvalue()


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def roc_pr_png(y: np.ndarray, p: np.ndarray, threshold: float, auroc: str, auprc: str) -> bytes:
    """ROC and precision-recall curves of the scored clips, with the operating point and the three baselines.

    Always yes sits at (FPR 1, TPR 1) and (recall 1, precision = positive fraction); always no at (0, 0) on the
    ROC (its precision is undefined); class-prior random lies on the chance line at (pi, pi) in both plots.
    """
    scored = ~np.isnan(p)
    y, p = y[scored], p[scored]
    pi = float(y.mean()) if len(y) else float("nan")
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10.5, 4.4))
    if y.any() and (~y).any():
        fpr, tpr, _ = roc_curve(y, p)
        roc.plot(fpr, tpr, color=MODEL_COLOUR, lw=2, label=f"model (AUROC {auroc})")
        precision, recall, _ = precision_recall_curve(y, p)
        pr.plot(recall, precision, color=MODEL_COLOUR, lw=2, drawstyle="steps-post", label=f"model (AUPRC {auprc})")
    predicted = p >= threshold
    tp, fp = int((predicted & y).sum()), int((predicted & ~y).sum())
    op_recall, op_fpr, op_precision = _ratio(tp, int(y.sum())), _ratio(fp, int((~y).sum())), _ratio(tp, tp + fp)
    roc.plot([0, 1], [0, 1], ls="--", color=BASELINE_COLOUR, lw=1, label="chance")
    pr.axhline(pi, ls="--", color=BASELINE_COLOUR, lw=1, label=f"chance (precision {pi:.2f})")
    for ax, point_yes, point_prior, point_model in (
        (roc, (1, 1), (pi, pi), (op_fpr, op_recall)),
        (pr, (1, pi), (pi, pi), (op_recall, op_precision)),
    ):
        ax.scatter(*point_yes, marker="s", s=60, color="#c05621", zorder=3, label="always yes")
        ax.scatter(*point_prior, marker="D", s=50, color="#6b46c1", zorder=3, label="class-prior random")
        ax.scatter(
            *point_model,
            marker="o",
            s=70,
            color=MODEL_COLOUR,
            edgecolor="black",
            zorder=4,
            label=f"model at threshold {threshold:.2f}",
        )
    roc.scatter(0, 0, marker="v", s=60, color="#2f855a", zorder=3, label="always no")
    roc.set(
        xlabel="false positive rate",
        ylabel="true positive rate (recall)",
        title="ROC",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(-0.02, 1.02), ylim=(0, 1.03))
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    return _png(fig)


def calibration_png(bins: list[dict], y: np.ndarray, p: np.ndarray, ece: str) -> bytes:
    """Reliability diagram (mean score vs fraction positive per bin, marker area ~ clips) and score histograms."""
    fig, (rel, hist) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    rel.plot([0, 1], [0, 1], ls="--", color=BASELINE_COLOUR, lw=1, label="perfectly calibrated")
    if bins:
        x = [b["mean_score"] for b in bins]
        frac = [b["fraction_positive"] for b in bins]
        sizes = np.array([b["n"] for b in bins], dtype=float)
        rel.plot(x, frac, color=MODEL_COLOUR, lw=1.5)
        rel.scatter(
            x,
            frac,
            s=30 + 300 * sizes / sizes.max(),
            color=MODEL_COLOUR,
            alpha=0.8,
            zorder=3,
            label="model (area ~ clips in bin)",
        )
    rel.set(
        xlabel="mean P(ghost probing) in bin",
        ylabel="fraction that are ghost probing",
        title=f"Reliability (ECE {ece})",
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
    )
    rel.legend(fontsize=8, loc="upper left")
    scored = ~np.isnan(p)
    edges = np.linspace(0, 1, 21)
    for mask, name, colour in ((y & scored, "ghost probing", "#c53030"), (~y & scored, "not ghost probing", "#2f855a")):
        hist.hist(np.clip(p[mask], 0, 1), bins=edges, alpha=0.55, color=colour, label=f"{name} ({int(mask.sum())})")
    hist.set(xlabel="P(ghost probing)", ylabel="clips", title="Score distribution by true class")
    hist.legend(fontsize=8)
    for ax in (rel, hist):
        ax.grid(alpha=0.3)
    return _png(fig)


def confusion_png(confusion: dict, no_answer_pos: int, no_answer_neg: int) -> bytes:
    """The 2x2 confusion matrix plus a third column of clips without an answer (never counted as "no")."""
    counts = np.array(
        [[confusion["tp"], confusion["fn"], no_answer_pos], [confusion["fp"], confusion["tn"], no_answer_neg]],
        dtype=float,
    )
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            f"{int(count)}\n{shares[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=11,
            color="white" if shares[i, j] > 0.6 else "black",
        )
    ax.set_xticks([0, 1, 2], ["predicted yes", "predicted no", "no answer"])
    ax.set_yticks([0, 1], ["ghost probing", "not ghost probing"])
    ax.set_title("Confusion matrix (share of each true class)", fontsize=11)
    return _png(fig)


def earliness_png(curve: list[dict], recall_target: float, tta_at_target: float | None) -> bytes:
    """Window-level alerting over thresholds: precision vs recall (AP) and mean time-to-event vs recall."""
    recall = [c["recall"] for c in curve]
    fig, (pr, tta) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    pr.plot(recall, [c["precision"] for c in curve], color=MODEL_COLOUR, lw=2, drawstyle="steps-post")
    pr.set(
        xlabel="recall (positive clips alerted before the event)",
        ylabel="precision",
        title="Earliness: alerts",
        xlim=(-0.02, 1.02),
        ylim=(0, 1.03),
    )
    tta.plot(recall, [c["mean_tta_s"] for c in curve], color=MODEL_COLOUR, lw=2, marker=".")
    tta.axvline(recall_target, ls="--", color=BASELINE_COLOUR, lw=1, label=f"recall {recall_target:.0%}")
    if tta_at_target is not None:
        tta.scatter(
            recall_target,
            tta_at_target,
            s=70,
            color="#c05621",
            zorder=3,
            label=f"TTA at {recall_target:.0%} recall: {tta_at_target:.2f} s",
        )
    tta.set(xlabel="recall", ylabel="mean time to event at first alert (s)", title="How early", xlim=(-0.02, 1.02))
    tta.legend(fontsize=8)
    for ax in (pr, tta):
        ax.grid(alpha=0.3)
    return _png(fig)


def frame_strip_jpeg(frames: np.ndarray, max_frames: int = 8, height_px: int = 64, quality: int = 75) -> bytes:
    """Up to `max_frames` evenly spaced frames of a clip side by side, `height_px` tall, as a small JPEG."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    tiles = []
    for frame in frames[picks]:
        width = max(1, round(frame.shape[1] * height_px / frame.shape[0]))
        tiles.append(np.asarray(Image.fromarray(frame).resize((width, height_px), Image.Resampling.BILINEAR)))
        tiles.append(np.full((height_px, 2, 3), 255, np.uint8))  # a white gap so frame boundaries show
    strip = np.concatenate(tiles[:-1], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def roc_overlay_png(y: np.ndarray, scores: dict[str, np.ndarray]) -> bytes:
    """ROC curves of several runs on the same clips (each on the clips it answered), with the chance line."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.plot([0, 1], [0, 1], ls="--", color=BASELINE_COLOUR, lw=1, label="chance (class-prior random)")
    for name, p in scores.items():
        scored = ~np.isnan(p)
        if y[scored].any() and (~y[scored]).any():
            fpr, tpr, _ = roc_curve(y[scored], p[scored])
            ax.plot(fpr, tpr, lw=2, label=name)
    ax.scatter(1, 1, marker="s", s=60, color="#c05621", zorder=3, label="always yes")
    ax.scatter(0, 0, marker="v", s=60, color="#2f855a", zorder=3, label="always no")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate (recall)",
        title="ROC on the common clips",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def scan_timeline_png(
    end_s: list[float],
    p: list[float | None],
    on: float,
    off: float,
    alerts: list[dict],
    events: list[tuple[str, float, float]] | None = None,
) -> bytes:
    """One recording's window scores over time (at each window's end), the on/off thresholds, alert spans shaded;
    labelled events as bands along the bottom (ghost probing red, look-alikes grey) when there are labels."""
    fig, ax = plt.subplots(figsize=(10.5, 2.6))
    values = [np.nan if v is None else v for v in p]
    ax.plot(end_s, values, color=MODEL_COLOUR, lw=1.2, label="P(ghost probing)")
    ax.axhline(on, ls="--", color="#c05621", lw=1, label=f"on {on:.3g}")
    if off < on:
        ax.axhline(off, ls=":", color="#c05621", lw=1, label=f"off {off:.3g}")
    for k, alert in enumerate(alerts):
        ax.axvspan(
            alert["start_s"],
            max(alert["end_s"], alert["start_s"] + 0.05),
            color="#f6ad55",
            alpha=0.35,
            label="alert" if k == 0 else None,
        )
    shown = set()
    for label, start, end in events or []:
        colour = "#e53e3e" if label == "ghost_probing" else BASELINE_COLOUR
        name = "ghost probing (labelled)" if label == "ghost_probing" else "look-alike (labelled)"
        ax.axvspan(
            start,
            max(end, start + 0.05),
            ymin=0,
            ymax=0.06,
            facecolor=colour,
            edgecolor="white",
            label=name if name not in shown else None,
        )
        shown.add(name)
    ax.set(xlabel="time in the recording (s, window end)", ylabel="P", ylim=(-0.02, 1.02))
    ax.set_xlim(0, max(end_s) if end_s else 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def recall_false_alerts_png(curve: list[dict], chosen: dict) -> bytes:
    """Event recall against false alerts per hour over thresholds, the operating point marked."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    points = [c for c in curve if c["recall"] is not None and c["false_alerts_per_hour"] is not None]
    points.sort(key=lambda c: c["false_alerts_per_hour"])
    ax.plot(
        [c["false_alerts_per_hour"] for c in points],
        [c["recall"] for c in points],
        color=MODEL_COLOUR,
        lw=2,
        marker=".",
    )
    for c in points:
        ax.annotate(
            f"{c['threshold']:.3g}",
            (c["false_alerts_per_hour"], c["recall"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(3, -8),
            color=BASELINE_COLOUR,
        )
    if chosen.get("recall") is not None and chosen.get("false_alerts_per_hour") is not None:
        ax.scatter(
            chosen["false_alerts_per_hour"],
            chosen["recall"],
            s=70,
            color="#c05621",
            zorder=3,
            label=f"threshold {chosen['threshold']:.3g}",
        )
        ax.legend(fontsize=8)
    ax.set(xlabel="false alerts per hour", ylabel="event recall", title="Recall vs false alerts", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    return _png(fig)


def lead_time_png(lead_times_s: list[float]) -> bytes:
    """Histogram of lead times (alert start minus t_event_s) of the events found; left of 0 = before the actor
    entered the path."""
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    ax.hist(lead_times_s, bins=min(20, max(5, len(lead_times_s))), color=MODEL_COLOUR)
    ax.axvline(0.0, ls="--", color="#c05621", lw=1, label="actor enters the path")
    ax.set(xlabel="alert start - t_event_s (s)", ylabel="events", title="Lead time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)
