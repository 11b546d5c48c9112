"""The field's anticipation protocols (ghostprobe/metrics/anticipation.py): UString's evaluation against its golden
outputs (scripts/check_protocols.py on ../shared/protocols) and on hand-computed cases that show its quirks, the
corrected figures beside it, FAR-gated AUC / mTTA and Nexar's mAP by hand, and per-frame scores from windows."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ghostprobe.metrics.anticipation import corrected_ap_mtta, far_gated_anticipation, nexar_map, ustring_ap_mtta
from ghostprobe.sampling import FrameClock, frame_scores, scores_at
from helpers import REPO_ROOT

PROTOCOLS_DIR = Path(os.environ.get("GHOSTPROBE_PROTOCOLS_DIR", REPO_ROOT.parent / "shared" / "protocols"))
needs_golden = pytest.mark.skipif(
    not (PROTOCOLS_DIR / "ustring" / "cases.json").is_file(), reason=f"no golden protocol cases at {PROTOCOLS_DIR}"
)


def check_protocols(fixture: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    summary = tmp_path / "summary.json"
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/check_protocols.py"), f"fixture={fixture}", f"summary={summary}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    return run, json.loads(summary.read_text()) if summary.exists() else {}


@needs_golden
def test_check_protocols_reproduces_every_golden_figure(tmp_path):
    run, summary = check_protocols(PROTOCOLS_DIR / "ustring", tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    cases = json.loads((PROTOCOLS_DIR / "ustring" / "cases.json").read_text())
    checked = {(row["case"], row["figure"]) for row in summary["rows"] if row["ok"] and row["difference"] <= 1e-9}
    assert checked == {(case["name"], figure) for case in cases for figure in case["expected"]}
    assert len(checked) == 3 * len(cases) >= 12


@needs_golden
def test_a_wrong_expected_value_fails_by_case_and_figure(tmp_path):
    cases = json.loads((PROTOCOLS_DIR / "ustring" / "cases.json").read_text())
    victim = cases[2]
    victim["expected"]["mTTA"] += 1e-6  # far below what a printed table shows, far above the tolerance
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "cases.json").write_text(json.dumps(cases))
    run, summary = check_protocols(tmp_path / "wrong", tmp_path)
    assert run.returncode == 1
    assert f"1 of {3 * len(cases)} figures FAILED: {victim['name']} mTTA" in run.stderr
    failed = [row for row in summary["rows"] if not row["ok"]]
    assert [(row["case"], row["figure"]) for row in failed] == [(victim["name"], "mTTA")]


def test_check_protocols_names_an_unknown_protocol_and_a_missing_fixture(tmp_path):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "cases.json").write_text(
        json.dumps([{"name": "c1", "protocol": "dota_auc", "inputs": {}, "expected": {"AUC": 0.5}}])
    )
    run, _ = check_protocols(tmp_path / "odd", tmp_path)
    assert run.returncode == 1 and "FAIL  c1  *  unknown protocol 'dota_auc'" in run.stdout
    run, _ = check_protocols(tmp_path / "nothing", tmp_path)
    assert run.returncode == 1 and "no cases.json" in run.stderr


# Three videos of 40 frames at 10 fps. P1 (accident at frame 30) scores 0.95 on frames 10-29, P2 (accident at
# frame 20) stays at the lowest score 0.9005, the negative N at 0.93. The reference's grid starts at 0.9005:
#   th 0.9005:          P1 at frame 0, P2 at frame 0, N flagged -> recall 1, precision 2/3, time 1 - 0 = 1
#   th 0.9015-0.9295:   P1 at frame 10, N flagged               -> recall .5, precision .5, time 1 - 10/30 = 2/3
#   th 0.9305-0.9495:   P1 at frame 10                          -> recall .5, precision 1,  time 2/3
# 50 points in 90 slots (40 left at recall 0, dropped as the lowest level). Levels: .5 (max precision 1, max time
# 2/3) and 1 (its only point: 2/3, 1). AP = 1 x .5 + (1 + 2/3) / 2 x .5 = 11/12; mTTA = mean(2/3, 1) x 40 / 10 s
# = 10/3 s, where P1's alert came (30 - 10) / 10 = 2 s before its accident; TTA@R80 at recall 1: 1 x 4 s.
# (Checked against the original function as well; see docs/protocols.md.)
CLIP_LENGTH = np.stack(
    [np.r_[np.full(10, 0.9005), np.full(20, 0.95), np.full(10, 0.9005)], np.full(40, 0.9005), np.full(40, 0.93)]
)


def test_ustring_by_hand_reads_the_clip_length_not_the_time_to_the_accident():
    figures = ustring_ap_mtta(CLIP_LENGTH, [1, 1, 0], [30, 20, 41], fps=10.0)
    assert figures["AP"] == pytest.approx(11 / 12, abs=1e-12)
    assert figures["mTTA"] == pytest.approx(10 / 3, abs=1e-12)
    assert figures["TTA_R80"] == pytest.approx(4.0, abs=1e-12)


def test_corrected_figures_on_the_same_frames_are_seconds_to_the_accident():
    # Thresholds at the distinct scores .95, .93, .9005: P1 alone (TTA 2 s), then N too, then everything (P1 at
    # frame 0: 3 s, P2 at frame 0: 2 s). AP = .5 x 1 + .5 x 2/3 = 5/6, sklearn's on the clip maxima.
    c = corrected_ap_mtta(list(CLIP_LENGTH), [1, 1, 0], [30, 20, 41], 10.0, clip_ids=["p1", "p2", "n"])
    assert c["ap"] == pytest.approx(5 / 6)
    assert c["ap"] == pytest.approx(average_precision_score([1, 1, 0], [0.95, 0.9005, 0.93]))
    assert c["mtta_s"] == pytest.approx(0.5 * 2.0 + 0.5 * 2.5)
    assert c["tta_at_recall_target_s"] == pytest.approx(2.5) and c["threshold_at_recall_target"] == 0.9005
    assert c["excluded"] == {}


def test_ustring_counts_every_negative_as_a_hit_at_threshold_zero():
    # One positive (score 0 on its first frame, then .5005) and two negatives (.2005, .7005), 400 frames at 20 fps.
    # At threshold 0 all three videos are "true positives" (score x label = 0 >= 0): recall 3 / 1, precision 1,
    # time 1. Below: recall 1 with precision 1/3 (th <= .2005) or 1/2, time 1 - 1/400. AP = .5 x 1 + (.5 + 1) / 2
    # x (3 - 1) = 2.0, an "AP" above 1; mTTA = mean(.9975, 1) x 20 s.
    positive = np.full(400, 0.5005)
    positive[0] = 0.0
    figures = ustring_ap_mtta(
        np.stack([positive, np.full(400, 0.2005), np.full(400, 0.7005)]), [1, 0, 0], [400, 401, 401], fps=20.0
    )
    assert figures["AP"] == pytest.approx(2.0, abs=1e-12)
    assert figures["mTTA"] == pytest.approx(0.99875 * 20, abs=1e-12)
    assert figures["TTA_R80"] == pytest.approx(0.9975 * 20, abs=1e-12)


def test_ustring_says_where_the_original_fails():
    with pytest.raises(ValueError, match="more usable thresholds than the 30 counted frames"):
        ustring_ap_mtta(np.linspace(0.0, 0.9, 30).reshape(3, 10), [1, 0, 0], [10, 11, 11], fps=10.0)
    with pytest.raises(ValueError, match="no positive video"):
        ustring_ap_mtta(CLIP_LENGTH, [0, 0, 0], [41, 41, 41], fps=10.0)
    with pytest.raises(ValueError, match="video 1: positive with time_of_accidents 0"):
        ustring_ap_mtta(CLIP_LENGTH, [1, 1, 0], [30, 0, 41], fps=10.0)


def test_ustring_treats_frames_without_a_score_as_never_alerting():
    # Frames before the first window carry NaN: they never reach a threshold and do not lower the grid's start.
    with_gap = CLIP_LENGTH.copy()
    with_gap[:, :5] = np.nan
    with_gap[0, 5:10] = 0.9005
    figures = ustring_ap_mtta(with_gap, [1, 1, 0], [30, 20, 41], fps=10.0)
    # At 0.9005 both positives now alert at frame 5: time 1 - (5/30 + 5/20) / 2; the rest is unchanged.
    top = 1 - (5 / 30 + 5 / 20) / 2
    assert figures["mTTA"] == pytest.approx((2 / 3 + top) / 2 * 4.0, abs=1e-12)
    assert figures["AP"] == pytest.approx(11 / 12, abs=1e-12)


# FAR-gated, by hand. Negative frames (10): .9 .8 .4 .3 .2 .2 .1 .1 .1 .1 -> thresholds in that order with false-alarm
# rates .1 .2 .3 .4 .6 .6 1 1 1 1. P1: anomaly from frame 3, event at frame 8; its frame 0 (.95) comes before the
# anomaly and does not count. P2: anomaly from frame 0, event at frame 5. P3 has no score in its window.
FAR_CLIPS = {
    "n1": ([0.1, 0.2, 0.9, 0.3, 0.1], 0, None, None),
    "n2": ([0.2, 0.4, 0.1, 0.1, 0.8], 0, None, None),
    "p1": ([0.95, 0.1, 0.1, 0.2, 0.5, 0.85, 0.92, 0.3, 0.99, 0.99], 1, 8, 3),
    "p2": ([0.1, 0.45, 0.1, 0.2, 0.3, 0.9], 1, 5, None),
    "p3": ([np.nan] * 6 + [0.99], 1, 6, 2),
}


def far_gated(max_far: float) -> dict:
    scores, labels, events, starts = zip(*FAR_CLIPS.values(), strict=True)
    return far_gated_anticipation(scores, labels, events, starts, 10.0, max_far, clip_ids=list(FAR_CLIPS))


def test_far_gated_by_hand():
    # max_far .3 keeps .9, .8, .4. P1: first alert at frame 6 (.92), 5 (.85), 4 (.5): TTA .2, .3, .4 s.
    # P2: none, none, frame 1 (.45): TTA 0, 0, .4 s. Recall .5, .5, 1 -> AUC 2/3; mean TTA .1, .15, .4 -> .65 / 3.
    r = far_gated(0.3)
    assert r["n_thresholds"] == 3 and r["auc"] == pytest.approx(2 / 3) and r["mtta_s"] == pytest.approx(0.65 / 3)
    assert (r["threshold"], r["recall_at_threshold"], r["mean_tta_at_threshold_s"]) == (0.4, 1.0, pytest.approx(0.4))
    assert r["excluded"] == {"p3": "no scored frame between the anomaly start and the event"}
    assert (r["n_positive"], r["n_negative"], r["n_negative_frames"]) == (2, 2, 10)
    # max_far .1 keeps .9 alone: P1 at frame 6 (.2 s), P2 missed.
    r = far_gated(0.1)
    assert (r["n_thresholds"], r["auc"], r["mtta_s"]) == (1, 0.5, pytest.approx(0.1))
    # Tied negative scores move together: .2 (twice) has a false-alarm rate of .6, so .5 keeps only four.
    assert far_gated(0.5)["n_thresholds"] == 4 and far_gated(0.6)["n_thresholds"] == 6


def test_far_gated_undefined_cases_say_why():
    r = far_gated(0.01)
    assert math.isnan(r["auc"]) and "no threshold keeps" in r["notes"][-1]
    r = far_gated_anticipation([[0.5, 0.6]], [1], [2], [None], 10.0)
    assert math.isnan(r["mtta_s"]) and "needs scored positive and negative clips" in r["notes"][-1]


def test_nexar_map_by_hand_and_equal_to_sklearn():
    labels = [1, 1, 0, 0]
    scores = {0.5: [0.9, 0.6, 0.7, 0.1], 1.0: [0.8, None, 0.2, 0.3], 1.5: [0.4, 0.5, 0.6, 0.7]}
    r = nexar_map(scores, labels, clip_ids=["a", "b", "c", "d"])
    # .5 s: ranked .9 P, .7 N, .6 P -> 1 x 1/2 + 2/3 x 1/2. 1.0 s: b has no score yet and is left out -> 1.
    # 1.5 s: both negatives first -> 1/3 x 1/2 + 2/4 x 1/2.
    assert r["ap_by_horizon"] == {"0.5": pytest.approx(5 / 6), "1": 1.0, "1.5": pytest.approx(5 / 12)}
    assert r["map"] == pytest.approx((5 / 6 + 1 + 5 / 12) / 3)
    assert r["ap_by_horizon"]["0.5"] == pytest.approx(average_precision_score(labels, scores[0.5]))
    assert r["excluded_by_horizon"] == {"1": ["b"]} and r["n_by_horizon"]["1"] == 3
    assert "1 s: b" in r["notes"][-1]


def test_frame_scores_hold_the_latest_window_and_none_before_the_first():
    clock = FrameClock(10.0, 35)
    scores = frame_scores([2.5, 2.0, 3.0], [None, 0.1, 0.7], clock)  # any order; the 2.5 s window gave no answer
    assert np.isnan(scores[:20]).all()  # frames 0-19 are shown before the first window ends
    assert scores[20:30].tolist() == [0.1] * 10  # frame 20 is shown at 2.0 s: that window's score is known then
    assert scores[30:].tolist() == [0.7] * 5
    assert np.isnan(scores_at([2.0], [0.4], [1.999])).all() and scores_at([2.0], [0.4], [2.0]).tolist() == [0.4]
    assert np.isnan(frame_scores([], [], clock)).all()
